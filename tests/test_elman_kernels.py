"""The Elman kernels at the sizes where their fast paths run: every register
tile, panel and remainder of the per-step products, each instruction set the
CPU offers, and bitwise-identical results for any thread count.

(`test_elman.py` covers the maths on small problems; these problems are large
enough for the vectorised tiles: H up to 130, batches of 1 to 37 rows.)
"""
import numpy as np
import pytest

from cbptt import _elman, _layer, rnn_backward, rnn_forward

from conftest import rel_err, simd_level_fixture
from reference import rnn_backward_ref, rnn_forward_ref

threadpoolctl = pytest.importorskip("threadpoolctl", reason="threadpoolctl not installed")

SIZES = [(1, 16), (5, 33), (32, 16), (37, 64), (8, 100), (32, 130)]


simd_level = simd_level_fixture()


def _problem(rng, B, H, T=7, I=8):
    x = rng.standard_normal((B, T, I))
    w_ih = rng.standard_normal((H, I)) * 0.3
    w_hh = rng.standard_normal((H, H)) / np.sqrt(H)
    b = rng.standard_normal(H) * 0.1
    h0 = rng.standard_normal((B, H)) * 0.5
    g = rng.standard_normal((B, T, H))
    return x, w_ih, w_hh, b, h0, g


@pytest.mark.parametrize("B,H", SIZES)
@pytest.mark.parametrize("activation", ["tanh", "logistic"])
def test_large_sizes_match_reference(rng, simd_level, B, H, activation):
    x, w_ih, w_hh, b, h0, g = _problem(rng, B, H)
    res = rnn_forward(x, w_ih, w_hh, b, h0, activation)
    hs = rnn_forward_ref(x, w_ih, w_hh, b, h0, activation)
    assert rel_err(res.h, hs) < 1e-12
    grads = rnn_backward(res, g, truncate=3)
    ref = rnn_backward_ref(x, w_ih, w_hh, b, h0, hs, g, activation, 3)
    for name in ref:
        assert rel_err(getattr(grads, name), ref[name]) < 1e-12, name
    res32 = rnn_forward(*(a.astype(np.float32) for a in (x, w_ih, w_hh, b, h0)),
                        activation=activation)
    assert rel_err(res32.h, hs) < 1e-5
    g32 = rnn_backward(res32, g.astype(np.float32), truncate=3)
    for name in ref:
        assert rel_err(getattr(g32, name), ref[name]) < 1e-4, name


def _runs(args, g, limits):
    runs = []
    for n in limits:
        with threadpoolctl.threadpool_limits(limits=n):
            res = rnn_forward(*args)
            runs.append((res.h.copy(), rnn_backward(res, g)))
    return runs


def _assert_same(a, b):
    np.testing.assert_array_equal(a[0], b[0])
    for name in a[1]._fields:
        np.testing.assert_array_equal(getattr(a[1], name), getattr(b[1], name),
                                      err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,H", [(32, 64), (37, 100), (9, 48), (37, 130), (32, 256)])
def test_bitwise_same_for_any_thread_count(rng, dtype, B, H):
    x, w_ih, w_hh, b, h0, g = (a.astype(dtype) for a in _problem(rng, B, H, T=12))
    one, two = _runs((x, w_ih, w_hh, b, h0), g, (1, 2))
    _assert_same(one, two)


@pytest.fixture
def threads_always():
    """Threads for every layer with at least two row chunks, however small."""
    old = _layer._set_parallel_min_work("elman", 0, 0)
    yield
    _layer._set_parallel_min_work("elman", *old)


@pytest.mark.parametrize("B,H,I", [(16, 5, 30), (17, 33, 3), (40, 12, 8),
                                   (16, 1, 1), (27, 2, 9), (50, 40, 4),
                                   (20, 240, 8)])
def test_bitwise_same_for_any_split(rng, threads_always, B, H, I):
    """Each thread's part of the batch: layers from H = 32 to 384 KB of
    weight gradients sum them per group of 16 rows in the time loop (parts
    of whole groups, a last group shorter); the others split them by rows
    after it (part 0 also takes dW_ih and db: with I > H it has no dW_hh
    rows)."""
    x, w_ih, w_hh, b, h0, g = _problem(rng, B, H, T=5, I=I)
    runs = _runs((x, w_ih, w_hh, b, h0), g, (1, 2, 3))
    _assert_same(runs[0], runs[1])
    _assert_same(runs[0], runs[2])
    hs = rnn_forward_ref(x, w_ih, w_hh, b, h0)
    ref = rnn_backward_ref(x, w_ih, w_hh, b, h0, hs, g)
    for name in ref:
        assert rel_err(getattr(runs[1][1], name), ref[name]) < 1e-12, name


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitwise_same_for_the_same_thread_count(rng, dtype):
    """At H >= 128 dW_hh is a BLAS product: reproducible per thread count."""
    x, w_ih, w_hh, b, h0, g = (a.astype(dtype) for a in _problem(rng, 37, 130, T=12))
    for n in (1, 2):
        first, again = _runs((x, w_ih, w_hh, b, h0), g, (n, n))
        _assert_same(first, again)


def _used(B, H, itemsize=4):
    return _layer.threads_used("elman", 10, B, H, itemsize)


@pytest.mark.parametrize("real_cores", [False, True])
def test_threads_policy(real_cores):
    old = _layer._set_real_cores(real_cores)
    try:
        assert _used(32, 16) == 1                # too little work per step
        assert _used(32, 16, 8) == 1             # float64, too little
        with threadpoolctl.threadpool_limits(limits=1):
            assert _used(32, 256) == 1           # the OpenMP limit holds
            assert _used(32, 64, 8) == 1
        assert _used(4, 256) == 1                # too few rows to split
        with threadpoolctl.threadpool_limits(limits=4):
            assert _used(24, 256) <= 3           # 8 sequences a thread
        with threadpoolctl.threadpool_limits(limits=2):
            if _used(32, 256) == 2:              # built with OpenMP, 2 CPUs
                assert _used(32, 32) == 2        # float32 gains here
                assert _used(32, 32, 8) == 2     # float64 gains here
                # SMT siblings from 32^3; real cores from 16384
                assert _used(32, 24) == (2 if real_cores else 1)
                assert _used(32, 24, 8) == (2 if real_cores else 1)
                assert _used(32, 16, 8) == 1
    finally:
        _layer._set_real_cores(old)


def _points(dtype):
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.standard_normal(20000) * s
                        for s in (1e-9, 1e-3, 0.1, 1.0, 3.0, 10.0, 60.0, 800.0)]
                       + [np.linspace(-40, 40, 20001)])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-15), (np.float32, 4e-7)])
@pytest.mark.parametrize("name,code", [("tanh", 2), ("logistic", 1)])
def test_vectorised_activations_are_accurate(simd_level, dtype, tol, name, code):
    """Relative error against glibc (in float64) at every point, near 0 too."""
    x = _points(dtype)
    y = x.copy()
    _elman._activate(y, code)
    xd = x.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        ref = np.tanh(xd) if name == "tanh" else np.where(
            xd >= 0, 1 / (1 + np.exp(-xd)), np.exp(xd) / (1 + np.exp(xd)))
    normal = np.abs(ref) > np.finfo(dtype).tiny   # FTZ flushes below this
    err = np.abs(y[normal] - ref[normal]) / np.abs(ref[normal])
    assert err.max() < tol


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_vectorised_activations_special_values(simd_level, dtype):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e4, -1e4], dtype)
    t = x.copy()
    _elman._activate(t, 2)
    np.testing.assert_array_equal(t[[0, 1, 2, 3, 5, 6]], [0, 0, 1, -1, 1, -1])
    assert np.isnan(t[4])
    s = x.copy()
    _elman._activate(s, 1)
    np.testing.assert_array_equal(s[[0, 1, 2, 3, 5, 6]], [0.5, 0.5, 1.0, 0.0, 1.0, 0.0])
    assert np.isnan(s[4])
