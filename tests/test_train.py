"""The compiled training-loop pieces of cbptt._train against NumPy and
scikit-learn: the fused optimizer step, the dense output head, the gather."""
import numpy as np
import pytest
from sklearn.neural_network._stochastic_optimizers import (AdamOptimizer,
                                                            SGDOptimizer)

from cbptt import _train

from conftest import rel_err


def step(params, grads, solver, s1=None, s2=None, n_decay=0, decay=0.0,
         clip=0.0, lr=0.01, b1=0.9, b2=0.999, eps=1e-8, mu=0.9,
         nesterov=False, t=1):
    s1 = np.zeros_like(params) if s1 is None else s1
    s2 = np.zeros_like(params) if s2 is None else s2
    code = {"sgd": _train.SGD, "adam": _train.ADAM,
            "rmsprop": _train.RMSPROP}[solver]
    return _train.optimizer_step(params, grads, s1, s2, n_decay, decay, clip,
                                 code, lr, b1, b2, eps, mu, nesterov, t)


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_matches_sklearn(rng, nesterov):
    w = rng.standard_normal(20)
    ref = [w.copy()]
    opt = SGDOptimizer(ref, 0.1, momentum=0.9, nesterov=nesterov)
    v = np.zeros(20)
    for _ in range(5):
        g = rng.standard_normal(20)
        opt.update_params(ref, [g.copy()])
        step(w, g.copy(), "sgd", s1=v, lr=0.1, mu=0.9, nesterov=nesterov)
    assert rel_err(w, ref[0]) < 1e-14


def test_adam_matches_sklearn(rng):
    w = rng.standard_normal(20)
    ref = [w.copy()]
    opt = AdamOptimizer(ref, 0.01, 0.9, 0.999, 1e-8)
    m, u = np.zeros(20), np.zeros(20)
    for t in range(1, 6):
        g = rng.standard_normal(20)
        opt.update_params(ref, [g.copy()])
        step(w, g.copy(), "adam", s1=m, s2=u, t=t)
    assert rel_err(w, ref[0]) < 1e-14


def test_rmsprop(rng):
    w = rng.standard_normal(20)
    ref, u_ref, u = w.copy(), np.zeros(20), np.zeros(20)
    for _ in range(5):
        g = rng.standard_normal(20)
        u_ref = 0.9 * u_ref + 0.1 * g * g
        ref -= 0.01 * g / (np.sqrt(u_ref) + 1e-8)
        step(w, g.copy(), "rmsprop", s1=u, b2=0.9)
    assert rel_err(w, ref) < 1e-14


def test_weight_decay_clipping_and_norms(rng):
    w = rng.standard_normal(10)
    g = rng.standard_normal(10) * 10
    w0, g0 = w.copy(), g.copy()
    norm, wsq = step(w, g, "sgd", n_decay=6, decay=0.5, clip=1.0, lr=0.1,
                     mu=0.0)
    g_ref = g0.copy()
    g_ref[:6] += 0.5 * w0[:6]
    assert wsq == pytest.approx(np.sum(w0[:6] ** 2))
    assert norm == pytest.approx(np.linalg.norm(g_ref))
    np.testing.assert_allclose(g, g_ref)               # L2 added in place
    np.testing.assert_allclose(w, w0 - 0.1 * g_ref / norm, rtol=1e-14)
    # Below the threshold nothing is scaled.
    w, g = w0.copy(), g0 * 1e-3
    step(w, g.copy(), "sgd", clip=1.0, lr=0.1, mu=0.0)
    np.testing.assert_allclose(w, w0 - 0.1 * g, rtol=1e-14)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
@pytest.mark.parametrize("solver", ["sgd", "adam", "rmsprop"])
def test_non_finite_gradient_changes_nothing(rng, bad, solver):
    w = rng.standard_normal(8)
    g = rng.standard_normal(8)
    g[3] = bad
    s1, s2 = np.ones(8), np.ones(8)
    w0 = w.copy()
    norm, _ = step(w, g, solver, s1=s1, s2=s2)
    assert not np.isfinite(norm)
    np.testing.assert_array_equal(w, w0)
    assert (s1 == 1).all() and (s2 == 1).all()


def test_float32_step_and_bad_arguments(rng):
    w = rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal(8).astype(np.float32)
    w64 = w.astype(np.float64)
    step(w, g.copy(), "adam")
    step(w64, g.astype(np.float64), "adam")
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, w64, rtol=1e-6)
    with pytest.raises(ValueError, match="inconsistent"):
        step(w, g[:4], "sgd")
    with pytest.raises(ValueError, match="inconsistent"):
        step(w, g, "adam", t=0)


def numpy_head(h, w, b, y, codes, valid):
    z = h @ w.T + b
    ok = np.ones(len(h), bool) if valid is None else valid.astype(bool)
    if codes is None:
        dz = z - y
        loss = 0.5 * np.sum(dz[ok] ** 2)
    else:
        m = z.max(axis=1, keepdims=True)
        e = np.exp(z - m)
        p = e / e.sum(axis=1, keepdims=True)
        loss = -np.sum(np.log(p[np.arange(len(h)), codes])[ok])
        dz = p
        dz[np.arange(len(h)), codes] -= 1.0
    dz[~ok] = 0.0
    dz /= max(ok.sum(), 1)
    return loss, ok.sum(), dz.T @ h, dz.sum(axis=0), dz @ w


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("classify", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_dense_head_matches_numpy(rng, dtype, classify, masked):
    n, H, k = 7, 5, 3
    h = rng.standard_normal((n, H)).astype(dtype)
    w = rng.standard_normal((k, H)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype)
    y = None if classify else rng.standard_normal((n, k)).astype(dtype)
    codes = rng.integers(0, k, n).astype(np.int32) if classify else None
    valid = (rng.random(n) > 0.4).astype(np.uint8) if masked else None
    if masked:
        h[valid == 0] = 1e30             # padded rows never leak into anything
    z = np.empty((n, k), dtype)
    dw, db, dh = np.empty((k, H), dtype), np.empty(k, dtype), np.empty((n, H), dtype)
    code = _train.SOFTMAX_CROSS_ENTROPY if classify else _train.SQUARED_ERROR
    loss, count = _train.dense_head(h, w, b, y, codes, valid, code, z, dw, db,
                                    dh)
    h64 = np.where(np.abs(h) < 1e29, h, 0).astype(np.float64)
    ref = numpy_head(h64, w.astype(np.float64), b.astype(np.float64),
                     None if y is None else y.astype(np.float64), codes, valid)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert count == ref[1]
    assert loss == pytest.approx(ref[0], rel=tol)
    for got, want in zip((dw, db), ref[2:4]):
        assert rel_err(got, want) < tol
    assert rel_err(dh, ref[4]) < tol
    if masked:
        assert (dh[valid == 0] == 0).all()


def test_dense_head_bad_arguments(rng):
    h, w, b = np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2)
    z, dw, db, dh = np.empty((3, 2)), np.empty((2, 2)), np.empty(2), np.empty((3, 2))
    with pytest.raises(ValueError, match="out of range"):
        _train.dense_head(h, w, b, None, np.array([0, 2, 1], np.int32), None,
                          _train.SOFTMAX_CROSS_ENTROPY, z, dw, db, dh)
    with pytest.raises(ValueError, match="y must have shape"):
        _train.dense_head(h, w, b, None, None, None, _train.SQUARED_ERROR, z,
                          dw, db, dh)
    with pytest.raises(ValueError, match="inconsistent"):
        _train.dense_head(h, w, b, np.zeros((3, 2)), None, None,
                          _train.SQUARED_ERROR, z[:2], dw, db, dh)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_gather_batch(rng, dtype):
    src = (rng.standard_normal((10, 6, 3)) * 10).astype(dtype)   # (N, T, F)
    rows = np.array([7, 0, 3, 3], dtype=np.intp)
    out = np.empty((4, 4, 3), dtype)
    _train.gather_batch_first(src, rows, None, out)
    np.testing.assert_array_equal(out, src[rows, :4].swapaxes(0, 1))
    with pytest.raises(ValueError, match="out of range"):
        _train.gather_batch_first(src, np.array([0, 1, 2, 10], np.intp),
                                  None, out)
