"""The benchmark's implementations do the same job: after one epoch from the
same start, every implementation holds the same weights, and their forward
passes give the same predictions (benchmarks/bench_epoch.py times them)."""
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "benchmarks"))

import bench_epoch as be  # noqa: E402

NAMES = ("weight_ih", "weight_hh", "bias", "w_out", "b_out")


def _epoch(impl, cell, batches, params):
    impl.prepare(cell, batches, params)
    impl.epoch()
    return impl


def _torch_params(impl):
    rnn, head = impl.rnn, impl.head
    return dict(weight_ih=rnn.weight_ih_l0, weight_hh=rnn.weight_hh_l0,
                bias=rnn.bias_ih_l0 + rnn.bias_hh_l0, w_out=head.weight,
                b_out=head.bias)


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_cbptt_numpy_and_torch_epochs_agree(cell):
    batches, params = be.make_job(cell, "float64", H=6, T=5)
    ref = _epoch(be.NumpyImpl(), cell, batches, params)
    ours = _epoch(be.CbpttImpl(), cell, batches, params)
    for name in NAMES:
        assert not np.allclose(ref.p[name], params[name]), name  # it trained
        np.testing.assert_allclose(ours.p[name], ref.p[name], rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    for a, b in zip(ours.infer(), ref.infer()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    if be.TorchImpl(1).available(cell):
        pytest.skip("torch not installed")
    torch = _epoch(be.TorchImpl(1), cell, batches, params)
    for name, value in _torch_params(torch).items():
        np.testing.assert_allclose(value.detach().numpy(), ours.p[name],
                                   rtol=1e-9, atol=1e-12, err_msg=name)


def test_cbptt_and_torch_gru_epochs_agree():
    # no NumPy GRU: cbptt's epoch against torch.nn.GRU's, both biases trained
    if be.TorchImpl(1).available("gru"):
        pytest.skip("torch not installed")
    assert be.NumpyImpl().available("gru")
    batches, params = be.make_job("gru", "float64", H=6, T=5)
    ours = _epoch(be.CbpttImpl(), "gru", batches, params)
    torch = _epoch(be.TorchImpl(1), "gru", batches, params)
    rnn, head = torch.rnn, torch.head
    theirs = dict(weight_ih=rnn.weight_ih_l0, weight_hh=rnn.weight_hh_l0,
                  bias_ih=rnn.bias_ih_l0, bias_hh=rnn.bias_hh_l0,
                  w_out=head.weight, b_out=head.bias)
    for name, value in theirs.items():
        assert not np.allclose(ours.p[name], params[name]), name  # it trained
        np.testing.assert_allclose(value.detach().numpy(), ours.p[name],
                                   rtol=1e-9, atol=1e-12, err_msg=name)
    for a, b in zip(ours.infer(), torch.infer()):
        np.testing.assert_allclose(a, b.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)


def test_ratios_pair_the_samples_of_each_round():
    """A slow round slows both sides and cancels; an implementation timed
    once counts with that time in every round."""
    row = {"train_all": {"cbptt": [1.0, 2.0, 1.0], "cbptt 1thr": [1.5, 1.8, 0.5],
                         "torch 1thr": [10.0, 20.0, 10.0], "torch 2thr": [30.0],
                         "estimator": [1.1, 2.2, 1.1]}}
    # rounds: torch 10/20/10 over cbptt's faster 1.0/1.8/0.5
    assert be.paired_ratio(row) == pytest.approx(20.0 / 1.8)
    assert be.paired_ratio(row, ours=("cbptt",)) == pytest.approx(10.0)
    assert be.estimator_ratio(row) == pytest.approx(1.1)
    assert be.paired_ratio({"train_all": {"cbptt": [1.0]}}) is None


import dtype_cost as dc  # noqa: E402


def test_dtype_cost_summary_pairs_rounds():
    """Per round: f64/f32 costs and ratios; the f64/f32 cbptt may cost for
    the float64 ratio to reach its target is ratio f32 x torch f64/f32 /
    target; the medians are over the rounds."""
    rows = {"cbptt f32": [1.0, 2.0, 1.0], "cbptt f64": [2.0, 3.0, 1.5],
            "torch f32": [30.0, 40.0, 30.0], "torch f64": [33.0, 60.0, 36.0],
            "act f32": [0.1, 0.2, 0.3], "act f64": []}
    out = dc.summarise("elman", 16, rows, 30.0)
    assert out["cbptt f64/f32"] == pytest.approx(1.5)       # 2, 1.5, 1.5
    assert out["torch f64/f32"] == pytest.approx(1.2)       # 1.1, 1.5, 1.2
    assert out["ratio f32"] == pytest.approx(30.0)          # 30, 20, 30
    assert out["ratio f64"] == pytest.approx(20.0)          # 16.5, 20, 24
    # 30 * 1.1 / 30, 20 * 1.5 / 30, 30 * 1.2 / 30
    assert out["f64/f32 allowed"] == pytest.approx(1.1)
    assert out["act f32"] == pytest.approx(0.2) and out["act f64"] is None
    text = dc.render([out], T=100, rounds=3)
    assert "| elman | 16 | 1.00 | 2.00 | 1.50 |" in text
    assert text.rstrip().endswith("| 1.10 | 20% | - |")


@pytest.mark.parametrize("cell", ["elman", "lstm"])
def test_dtype_cost_measures_every_column(cell, monkeypatch):
    monkeypatch.setattr(be, "SETTLE_S", 0.0)
    monkeypatch.setattr(be, "MIN_SAMPLE_S", 0.0)   # one call per sample
    rows = dc.measure(cell, H=4, T=5, rounds=2)
    has_torch = be.TorchImpl(1).available(cell) is None
    for key, values in rows.items():
        expected = (2 if (not key.startswith("torch") or has_torch)
                    and (not key.startswith("act") or cell == "elman") else 0)
        assert len(values) == expected, key
        assert all(np.isfinite(v) for v in values), key
    assert all(v > 0 for v in rows["cbptt f32"] + rows["cbptt f64"])
    assert all(v < 1 for v in rows["act f32"] + rows["act f64"])
    out = dc.summarise(cell, 4, rows, None)
    assert (out["ratio f64"] is not None) == has_torch
    assert out["f64/f32 allowed"] is None                  # no target at H=4
