"""The LSTM (and CEC) kernels at the sizes where their fast paths run: the
vectorised gate loops (full vectors and remainders), every tile of the
per-step and all-steps products, each instruction set the CPU offers, and
bitwise identical results for any thread count.

(`test_lstm.py` covers the maths on small problems; these are large enough
for the vector loops: H up to 130, batches of 1 to 37 rows.)
"""
import numpy as np
import pytest

from cbptt import _layer, _lstm, cec_backward, cec_forward, lstm_backward, lstm_forward

from conftest import rel_err, simd_level_fixture
from reference import (cec_backward_ref, cec_forward_ref, lstm_backward_ref,
                       lstm_forward_ref)

threadpoolctl = pytest.importorskip("threadpoolctl",
                                    reason="threadpoolctl not installed")

SIZES = [(1, 16), (5, 33), (32, 16), (37, 64), (8, 100), (20, 130)]
GRADS = ["weight_ih", "weight_hh", "bias", "h0", "c0", "x", "delta", "delta_c"]


simd_level = simd_level_fixture(_lstm)


def _problem(rng, B, H, forget_gate=True, T=7, I=8):
    G = 4 if forget_gate else 3
    return dict(
        x=rng.standard_normal((B, T, I)),
        w_ih=rng.standard_normal((G * H, I)) * 0.3,
        w_hh=rng.standard_normal((G * H, H)) / np.sqrt(H),
        b=rng.standard_normal(G * H) * 0.3,
        h0=rng.standard_normal((B, H)) * 0.5,
        c0=rng.standard_normal((B, H)) * 0.5,
        g=rng.standard_normal((B, T, H)),
        gc=rng.standard_normal((B, T, H)),
    )


def _forward(p, forget_gate, dtype=np.float64):
    names = ("x", "w_ih", "w_hh", "b", "h0", "c0")
    return lstm_forward(*(p[k].astype(dtype) for k in names),
                        forget_gate=forget_gate)


def _reference(p, forget_gate, grad_c, truncate):
    hs, cs, gates = lstm_forward_ref(p["x"], p["w_ih"], p["w_hh"], p["b"],
                                     p["h0"], p["c0"], forget_gate)
    grads = lstm_backward_ref(p["x"], p["w_ih"], p["w_hh"], p["h0"], p["c0"],
                              hs, cs, gates, p["g"], grad_c, forget_gate,
                              truncate)
    return hs, cs, gates, grads


@pytest.mark.parametrize("B,H", SIZES)
@pytest.mark.parametrize("forget_gate", [True, False])
def test_large_sizes_match_reference(rng, simd_level, B, H, forget_gate):
    p = _problem(rng, B, H, forget_gate)
    with_grad_c = H % 2 == 0          # both kinds of the backward's cell loop
    grad_c = p["gc"] if with_grad_c else None
    hs, cs, gates, ref = _reference(p, forget_gate, grad_c, 3)
    res = _forward(p, forget_gate)
    assert rel_err(res.h, hs) < 1e-12
    assert rel_err(res.c, cs) < 1e-12
    assert rel_err(res.gates, gates) < 1e-12
    g = lstm_backward(res, p["g"], grad_c, truncate=3)
    for name in GRADS:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name
    res32 = _forward(p, forget_gate, np.float32)
    assert rel_err(res32.h, hs) < 1e-5
    assert rel_err(res32.gates, gates) < 1e-5
    g32 = lstm_backward(res32, p["g"].astype(np.float32),
                        None if grad_c is None else grad_c.astype(np.float32),
                        truncate=3)
    for name in GRADS:
        assert rel_err(getattr(g32, name), ref[name]) < 1e-4, name


@pytest.mark.parametrize("forget_gate", [True, False])
def test_tiny_output_gate_in_a_vector_row(rng, simd_level, forget_gate):
    """A row whose output gate is <= 1e-20 in one unit takes tanh(c) there
    (h / o elsewhere); rows without one stay on the vector path."""
    B, H = 6, 40
    G = 4 if forget_gate else 3
    p = _problem(rng, B, H, forget_gate)
    oo = (G - 1) * H
    p["b"][oo + 17] = -800.0          # o = 0 exactly
    p["b"][oo + 33] = -45.0           # o ~ 3e-20, just above the threshold
    p["w_ih"][oo + 17] *= 1e-3
    p["w_ih"][oo + 33] *= 1e-3
    p["w_hh"][[oo + 17, oo + 33]] *= 1e-3
    hs, cs, gates, ref = _reference(p, forget_gate, p["gc"], None)
    res = _forward(p, forget_gate)
    assert res.gates[..., oo + 17].max() == 0.0
    g = lstm_backward(res, p["g"], p["gc"])
    for col in range(G * H):
        assert rel_err(g.delta[..., col], ref["delta"][..., col]) < 1e-12, col
    for name in GRADS:
        assert rel_err(getattr(g, name), ref[name]) < 1e-12, name


@pytest.mark.parametrize("B,H", [(1, 16), (37, 33), (20, 130)])
def test_cec_large_sizes_match_reference(rng, simd_level, B, H):
    T, I = 9, 8
    x = rng.standard_normal((B, T, I))
    w_ih = rng.standard_normal((H, I)) * 0.3
    b = rng.standard_normal(H) * 0.3
    h0 = rng.standard_normal((B, H))
    g = rng.standard_normal((B, T, H))
    hs = cec_forward_ref(x, w_ih, b, h0)
    ref = cec_backward_ref(x, w_ih, g, 4)
    res = cec_forward(x, w_ih, b, h0)
    assert rel_err(res.h, hs) < 1e-12
    grads = cec_backward(res, g, truncate=4)
    for name in ref:
        assert rel_err(getattr(grads, name), ref[name]) < 1e-12, name
    res32 = cec_forward(*(a.astype(np.float32) for a in (x, w_ih, b, h0)))
    assert rel_err(res32.h, hs) < 1e-5
    g32 = cec_backward(res32, g.astype(np.float32), truncate=4)
    for name in ref:
        assert rel_err(getattr(g32, name), ref[name]) < 1e-5, name


def _runs(p, forget_gate, dtype, limits, truncate=None):
    runs = []
    for n in limits:
        with threadpoolctl.threadpool_limits(limits=n):
            res = _forward(p, forget_gate, dtype)
            g = lstm_backward(res, p["g"].astype(dtype),
                              p["gc"].astype(dtype), truncate=truncate)
            runs.append(((res.h.copy(), res.c.copy(), res.gates.copy()), g))
    return runs


def _assert_same(a, b):
    for u, v in zip(a[0], b[0]):
        np.testing.assert_array_equal(u, v)
    for name in a[1]._fields:
        np.testing.assert_array_equal(getattr(a[1], name), getattr(b[1], name),
                                      err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H,forget_gate", [(32, 64, True), (37, 48, False),
                                             (19, 100, True), (32, 130, True)])
def test_bitwise_same_for_any_thread_count(rng, dtype, B, H, forget_gate):
    T = 60
    p = _problem(rng, B, H, forget_gate, T=T)
    with threadpoolctl.threadpool_limits(limits=2):
        if _layer.threads_used("lstm", T, B, H, np.dtype(dtype).itemsize,
                               forget_gate) < 2:
            pytest.skip("the kernels run one thread here (one CPU)")
    one, two = _runs(p, forget_gate, dtype, (1, 2), truncate=5)
    _assert_same(one, two)


@pytest.fixture
def threads_always():
    """Threads for every layer with at least two row chunks, however small."""
    old = _layer._set_parallel_min_work("lstm", 0, 0)
    yield
    _layer._set_parallel_min_work("lstm", *old)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H,forget_gate", [(16, 5, True), (17, 16, False),
                                             (20, 40, True), (40, 16, True),
                                             (33, 24, False)])
def test_bitwise_same_for_any_split(rng, threads_always, dtype, B, H,
                                    forget_gate):
    """Each thread's part of the batch and of the weight-gradient columns:
    parts narrower than a panel (delta used in place) and packed ones; small
    layers sum their weight gradients in the time loop, per group of 8 rows
    (chunks of whole groups, a last group shorter)."""
    p = _problem(rng, B, H, forget_gate, T=6)
    runs = _runs(p, forget_gate, dtype, (1, 2, 3), truncate=4)
    _assert_same(runs[0], runs[1])
    _assert_same(runs[0], runs[2])
    *_, ref = _reference(p, forget_gate, p["gc"], 4)
    tol = 1e-12 if dtype == np.float64 else 1e-4
    for name in GRADS:
        assert rel_err(getattr(runs[1][1], name), ref[name]) < tol, name


def _used(T, B, H, forget_gate=True, itemsize=4):
    return _layer.threads_used("lstm", T, B, H, itemsize, forget_gate)


@pytest.mark.parametrize("real_cores", [False, True])
def test_threads_policy(real_cores):
    old = _layer._set_real_cores(real_cores)
    try:
        assert _used(25, 32, 8) == 1          # too little work per call
        with threadpoolctl.threadpool_limits(limits=1):
            assert _used(100, 32, 256) == 1   # the OpenMP limit holds
        assert _used(100, 8, 256) == 1        # too few rows to split
        with threadpoolctl.threadpool_limits(limits=2):
            assert _used(100, 32, 256) == 2
            assert _used(100, 32, 16, True, 8) == 2   # float64 gains
            assert _used(100, 32, 16, True, 4) == 2   # float32 too
            assert _used(25, 32, 16, True, 8) == 1    # 819200 < 2e6
            assert _layer.threads_used("gru", 100, 32, 8) == 1  # 614400
    finally:
        _layer._set_real_cores(old)
