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


def _names(cell):
    """The job's trained parameters: one bias, or the GRU's two."""
    return ("weight_ih", "weight_hh") + be.BIASES[cell] + ("w_out", "b_out")


def _epoch(impl, cell, batches, params):
    impl.prepare(cell, batches, params)
    impl.epoch()
    return impl


def _torch_params(impl):
    rnn, head = impl.rnn, impl.head
    biases = (dict(bias_ih=rnn.bias_ih_l0, bias_hh=rnn.bias_hh_l0)
              if type(rnn).__name__ == "GRU"
              else dict(bias=rnn.bias_ih_l0 + rnn.bias_hh_l0))
    return dict(weight_ih=rnn.weight_ih_l0, weight_hh=rnn.weight_hh_l0,
                **biases, w_out=head.weight, b_out=head.bias)


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


def _cbptt_loss_and_grads(cell, p, x_tm, y):
    """The job's loss and every parameter's gradient for one time-major
    mini-batch, through cbptt's functional API (what CbpttImpl.epoch does
    before its update)."""
    import cbptt
    prefix = "rnn" if cell == "elman" else cell
    fwd = getattr(cbptt, f"{prefix}_forward")
    bwd = getattr(cbptt, f"{prefix}_backward")
    biases = be.BIASES[cell]
    res = fwd(x_tm, p["weight_ih"], p["weight_hh"], *(p[b] for b in biases),
              batch_first=False)
    pred = res.h_last @ p["w_out"].T + p["b_out"]
    d_pred = 2.0 * (pred - y) / pred.size
    grad_h = np.zeros(res.h.shape, pred.dtype)
    grad_h[-1] = d_pred @ p["w_out"]
    g = bwd(res, grad_h, input_grad=False)
    return ((pred - y) ** 2).mean(), dict(
        weight_ih=g.weight_ih, weight_hh=g.weight_hh,
        **{b: getattr(g, b) for b in biases},
        w_out=d_pred.T @ res.h_last, b_out=d_pred.sum(0))


@pytest.mark.parametrize("dtype,rtol", [("float64", 1e-10), ("float32", 2e-4)])
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_jax_loss_and_gradients_equal_cbptt(cell, dtype, rtol):
    pytest.importorskip("jax", reason="jax not installed")
    batches, params = be.make_job(cell, dtype, H=5, T=4)
    impl = be.JaxImpl()
    impl.prepare(cell, batches, params)
    x_tm, y = be.time_major(batches[0][0]), batches[0][1]
    loss, grads = impl.loss_and_grads(impl.p, impl.batches[0][0], impl.batches[0][1])
    ref_loss, ref = _cbptt_loss_and_grads(cell, params, x_tm, y)
    assert np.asarray(loss).dtype == np.dtype(dtype)
    np.testing.assert_allclose(float(loss), ref_loss, rtol=rtol)
    assert set(grads) == set(ref)
    for name, g in ref.items():
        assert np.asarray(grads[name]).dtype == np.dtype(dtype), name
        np.testing.assert_allclose(np.asarray(grads[name]), g, rtol=rtol,
                                   atol=rtol * np.abs(g).max(), err_msg=name)


@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_jax_and_batch_first_epochs_agree_with_cbptt(cell):
    """After one epoch: JAX's jitted steps, cbptt on batch-first arrays and
    PyTorch's batch_first modules hold cbptt's time-major weights."""
    batches, params = be.make_job(cell, "float64", H=6, T=5)
    ours = _epoch(be.CbpttImpl(), cell, batches, params)
    bf = _epoch(be.CbpttImpl(batch_first=True), cell, batches, params)
    for name in _names(cell):
        np.testing.assert_allclose(bf.p[name], ours.p[name], rtol=1e-12,
                                   atol=1e-14, err_msg=name)
    for a, b in zip(bf.infer(), ours.infer()):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    if be.TorchImpl(1).available(cell) is None:
        torch_bf = _epoch(be.TorchImpl(1, batch_first=True), cell, batches, params)
        for name, value in _torch_params(torch_bf).items():
            np.testing.assert_allclose(value.detach().numpy(), ours.p[name],
                                       rtol=1e-9, atol=1e-12, err_msg=name)
    if be.JaxImpl().available(cell) is not None:
        pytest.skip("jax not installed")
    jx = _epoch(be.JaxImpl(), cell, batches, params)
    for name in _names(cell):
        assert not np.allclose(np.asarray(jx.p[name]), params[name]), name
        np.testing.assert_allclose(np.asarray(jx.p[name]), ours.p[name],
                                   rtol=1e-10, atol=1e-12, err_msg=name)
    for a, b in zip(jx.infer(), ours.infer()):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def _fake_results(with_jax):
    """One configuration's timings as run_config returns them (2 rounds)."""
    train = {"cbptt": [2.0, 2.0], "cbptt 1thr": [2.2, 2.2],
             "torch 1thr": [40.0, 44.0], "torch 2thr": [50.0, 50.0],
             "numpy": [9.0, 9.0], "cbptt bf": [2.5, 2.4],
             "torch bf 1thr": [60.0, 48.0], "torch bf 2thr": [70.0, 70.0]}
    skipped = {}
    if with_jax:
        train["jax"] = [5.0, 3.0]
    else:
        skipped["jax"] = "jax not installed (pip install jax jaxlib)"
    infer = {k: [v[0] / 4, v[1] / 4] for k, v in train.items()}
    med = {k: float(np.median(v)) for k, v in train.items()}
    return {("elman", "float32", 16, 100): {
        "train": med, "infer": {k: v / 4 for k, v in med.items()},
        "train_all": train, "infer_all": infer, "skipped": skipped, "once": []}}


def test_table_gains_the_jax_and_batch_first_columns():
    import argparse
    args = argparse.Namespace(quick=True, rounds=2)
    text = be.render(_fake_results(True), {}, {}, {"cpu": "X"}, args)
    assert ("| cell | dtype | H | T | cbptt | cbptt 1thr | torch 1thr | torch 2thr "
            "| jax | numpy |") in text
    # jax/cbptt per round: 5/2, 3/2 -> median 2.0; target 2 at H = 16: met
    assert "| elman | float32 | 16 | 100 | 2.00 | 4.00 | 2.00 | >= 2 | yes | 2.00 |" in text
    assert "| elman float32 H=16 T=100: ahead of JAX by >= 2x | 2.0x | yes |" in text
    # batch-first: torch bf per round 60/2.5, 48/2.4 -> 22, cost 2.5/2, 2.4/2
    assert ("| elman | float32 | 16 | 100 | 2.00 | 2.45 | 42.0 | 54.0 | 21.0 "
            "| 22.0 | 1.23 | 1.30 |") in text
    # the time-major ratio ignores the batch-first and JAX columns
    assert be.paired_ratio(_fake_results(True)[("elman", "float32", 16, 100)]) \
        == pytest.approx(21.0)
    without = be.render(_fake_results(False), {}, {}, {"cpu": "X"}, args)
    assert "## JAX/XLA" not in without
    assert "Skipped: jax: jax not installed (pip install jax jaxlib)." in without
    assert "| 50.0 | - | 9.0 |" in without            # the column stays, empty


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


# --- benchmarks/isa_peak.py and BENCHMARKS.md's sections per CPU class ----

import cpu_report  # noqa: E402
import isa_peak  # noqa: E402

HARNESS_OUT = """peak baseline float 50.0
peak baseline double 25.0
mm baseline float 16 32 10.0
mm baseline double 16 32 5.0
mm baseline float 64 32 30.0
mm baseline double 64 32 12.0
mm baseline float 256 32 26.0
mm baseline double 256 32 13.0
peak avx2 float 100.0
mm avx2 float 16 32 80.0
mm avx2 float 64 32 95.0
mm avx2 float 256 32 49.0
"""


def test_isa_peak_shares_and_table():
    """Best over runs per figure; share = products / the same level's and
    dtype's peak; the target is judged at H >= 64 only."""
    slower = HARNESS_OUT.replace("peak avx2 float 100.0", "peak avx2 float 90.0")
    best = isa_peak.best_of([isa_peak.parse(slower), isa_peak.parse(HARNESS_OUT)])
    assert best[("peak", "avx2", "float")] == 100.0
    table = isa_peak.shares(best)
    assert set(table) == {("baseline", "float"), ("baseline", "double"),
                          ("avx2", "float")}
    assert table[("baseline", "float")][64] == (30.0, 60.0)
    assert table[("baseline", "double")][64] == (12.0, 48.0)
    text = isa_peak.render(table, {"date": "now", "cpu": "X"}, 2, 3)
    assert "| baseline | float32 | 50.0 | 10.0 | 20 | 30.0 | 60 | 26.0 | 52 | yes |" in text
    assert "| baseline | float64 | 25.0 | 5.0 | 20 | 12.0 | 48 | 13.0 | 52 | **no** |" in text
    assert "| AVX2+FMA | float32 | 100.0 | 80.0 | 80 | 95.0 | 95 | 49.0 | 49 | **no** |" in text
    assert "- cpu: X" in text
    assert isa_peak.implausible(table) == []


def test_isa_peak_refuses_products_above_the_peak(tmp_path):
    """Products faster than the peak mean the peak loop measured something
    else (its chains spilled to memory): the script says so and does not
    write the table; 10% above is still timing noise."""
    above = HARNESS_OUT.replace("mm avx2 float 64 32 95.0",
                                "mm avx2 float 64 32 162.0")
    table = isa_peak.shares(isa_peak.parse(above))
    assert isa_peak.implausible(table) == ["AVX2+FMA float32: products at "
                                           "162% of the peak"]
    noise = HARNESS_OUT.replace("mm avx2 float 64 32 95.0",
                                "mm avx2 float 64 32 109.0")
    assert isa_peak.implausible(isa_peak.shares(isa_peak.parse(noise))) == []


def test_isa_peak_harness_runs_every_level(tmp_path):
    import shutil
    if shutil.which("gcc") is None:
        pytest.skip("no C compiler (gcc)")
    from cbptt import _isa
    exe = isa_peak.build("gcc", str(tmp_path))
    best = isa_peak.measure(exe, rounds=1, reps=1, log=lambda m: None)
    levels = isa_peak.LEVELS[:_isa._cpu_level() + 1]
    for level in levels:
        for dtype in ("float", "double"):
            assert best[("peak", level, dtype)] > 0
            for H in isa_peak.HS:
                assert best[("mm", level, dtype, H)] > 0
    assert {k[1] for k in best} == set(levels)


def test_sections_keep_the_other_cpu_class_byte_for_byte():
    root = os.path.dirname(HERE)
    with open(os.path.join(root, "BENCHMARKS.md")) as fh:
        text = fh.read()
    sections = text.split("\n## CPU: ")
    assert len(sections) >= 2 and sections[0].startswith("# Benchmarks")
    new = cpu_report.update_text(text, "Other CPU, AVX9", "Other CPU, AVX9 (x)",
                                 "Some table (s.py)", "| a |\n")
    assert new.startswith(text.rstrip("\n"))          # all kept, appended
    assert new.endswith("## CPU: Other CPU, AVX9 (x)\n\n### Some table (s.py)\n\n| a |\n")
    again = cpu_report.update_text(new, "Other CPU, AVX9", "Other CPU, AVX9 (y)",
                                   "Some table (s.py)", "| b |\n")
    assert again.startswith(text.rstrip("\n"))
    assert "| a |" not in again and again.count("### Some table (s.py)") == 1
    assert "## CPU: Other CPU, AVX9 (y)" in again       # details refreshed
    # a second table of the same class goes into the same section
    both = cpu_report.update_text(again, "Other CPU, AVX9", "Other CPU, AVX9 (y)",
                                  "Second (t.py)", "| c |\n")
    tail = both.split("## CPU: Other CPU, AVX9 (y)")[1]
    assert tail.index("### Some table") < tail.index("### Second (t.py)")
    assert both.startswith(text.rstrip("\n"))


def test_demote_turns_a_report_into_a_subsection():
    body = cpu_report.demote("# Title\n\nintro\n\n## Part\n\n| x |\n")
    assert body == "intro\n\n#### Part\n\n| x |\n"


def test_cpu_class_names_model_isa_and_topology():
    key, heading = cpu_report.cpu_class()
    assert heading.startswith(key + " (")
    assert "per core" in heading
    cores, per_core = cpu_report.topology()
    assert cores >= 1 and per_core >= 1 and cores * per_core <= (os.cpu_count() or 1)
