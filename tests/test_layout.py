"""batch_first=False (time-major arrays) in the functional API, and the
compiled boundary scans of cbptt._scan that validation relies on."""
import numpy as np
import pytest

import cbptt
from cbptt import _scan
from cbptt._validation import colmax_abs, time_major, time_major_colmax

DTYPES = [np.float32, np.float64]


def _weights(rng, G, H, I, dtype):
    k = 1.0 / np.sqrt(H)
    return (rng.uniform(-k, k, (G * H, I)).astype(dtype),
            rng.uniform(-k, k, (G * H, H)).astype(dtype),
            rng.uniform(-k, k, G * H).astype(dtype))


def _tm(a):
    return np.ascontiguousarray(np.swapaxes(a, 0, 1))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("truncate", [None, 3])
def test_rnn_time_major_equals_batch_first(dtype, truncate):
    rng = np.random.default_rng(0)
    B, T, I, H = 5, 7, 3, 4
    x = rng.standard_normal((B, T, I)).astype(dtype)
    w_ih, w_hh, b = _weights(rng, 1, H, I, dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype)
    g = rng.standard_normal((B, T, H)).astype(dtype)
    bf = cbptt.rnn_forward(x, w_ih, w_hh, b, h0)
    tm = cbptt.rnn_forward(_tm(x), w_ih, w_hh, b, h0, batch_first=False)
    assert tm.h.shape == (T, B, H) and tm.x.shape == (T, B, I)
    assert tm.batch_first is False and bf.batch_first is True
    np.testing.assert_array_equal(tm.h, _tm(bf.h))
    np.testing.assert_array_equal(tm.h_last, bf.h_last)
    gb = cbptt.rnn_backward(bf, g, truncate=truncate)
    gt = cbptt.rnn_backward(tm, _tm(g), truncate=truncate)
    for name in ("weight_ih", "weight_hh", "bias", "h0"):
        np.testing.assert_array_equal(getattr(gt, name), getattr(gb, name))
    np.testing.assert_array_equal(gt.x, _tm(gb.x))
    np.testing.assert_array_equal(gt.delta, _tm(gb.delta))


@pytest.mark.parametrize("forget_gate", [True, False])
def test_lstm_time_major_equals_batch_first(forget_gate):
    rng = np.random.default_rng(1)
    B, T, I, H = 4, 6, 3, 5
    G = 4 if forget_gate else 3
    x = rng.standard_normal((B, T, I))
    w_ih, w_hh, b = _weights(rng, G, H, I, np.float64)
    g, gc = rng.standard_normal((2, B, T, H))
    bf = cbptt.lstm_forward(x, w_ih, w_hh, b, forget_gate=forget_gate)
    tm = cbptt.lstm_forward(_tm(x), w_ih, w_hh, b, forget_gate=forget_gate,
                            batch_first=False)
    for name in ("h", "c", "gates", "x"):
        np.testing.assert_array_equal(getattr(tm, name), _tm(getattr(bf, name)))
    np.testing.assert_array_equal(tm.c_last, bf.c_last)
    gb = cbptt.lstm_backward(bf, g, gc)
    gt = cbptt.lstm_backward(tm, _tm(g), _tm(gc))
    for name in ("weight_ih", "weight_hh", "bias", "h0", "c0"):
        np.testing.assert_array_equal(getattr(gt, name), getattr(gb, name))
    for name in ("x", "delta", "delta_c"):
        np.testing.assert_array_equal(getattr(gt, name), _tm(getattr(gb, name)))


def test_cec_time_major_equals_batch_first():
    rng = np.random.default_rng(2)
    B, T, I, H = 3, 5, 2, 4
    x = rng.standard_normal((B, T, I))
    w_ih, _, b = _weights(rng, 1, H, I, np.float64)
    g = rng.standard_normal((B, T, H))
    bf = cbptt.cec_forward(x, w_ih, b)
    tm = cbptt.cec_forward(_tm(x), w_ih, b, batch_first=False)
    np.testing.assert_array_equal(tm.h, _tm(bf.h))
    gb, gt = cbptt.cec_backward(bf, g), cbptt.cec_backward(tm, _tm(g))
    np.testing.assert_array_equal(gt.delta, _tm(gb.delta))
    np.testing.assert_array_equal(gt.weight_ih, gb.weight_ih)


def test_time_major_grad_h_shape_is_checked():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2, 3))                      # (T, B, I)
    w_ih, w_hh, b = _weights(rng, 1, 4, 3, np.float64)
    res = cbptt.rnn_forward(x, w_ih, w_hh, b, batch_first=False)
    with pytest.raises(ValueError, match=r"grad_h has shape \(2, 6, 4\); "
                                         r"expected \(6, 2, 4\)"):
        cbptt.rnn_backward(res, np.zeros((2, 6, 4)))


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_batch_first_must_be_bool(bad):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 1))
    w_ih, w_hh, b = _weights(rng, 1, 2, 1, np.float64)
    with pytest.raises(TypeError, match="batch_first"):
        cbptt.rnn_forward(x, w_ih, w_hh, b, batch_first=bad)


def test_time_major_result_does_not_share_the_input():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 2, 3))
    w_ih, w_hh, b = _weights(rng, 1, 3, 3, np.float64)
    res = cbptt.rnn_forward(x, w_ih, w_hh, b, batch_first=False)
    assert not np.shares_memory(res.x, x) and not res.x.flags.writeable
    g = np.ones_like(res.h)
    before = cbptt.rnn_backward(res, g).weight_ih
    x[...] = 100.0                                 # the caller's array changes
    np.testing.assert_array_equal(cbptt.rnn_backward(res, g).weight_ih, before)


# -- the compiled scans --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 15, 16, 17, 64, 1001])
def test_all_finite(dtype, n):
    a = np.linspace(-3, 3, n).astype(dtype)
    assert _scan.all_finite(a)
    for bad in (np.nan, np.inf, -np.inf):
        for pos in {0, n // 2, n - 1}:
            b = a.copy()
            b[pos] = bad
            assert not _scan.all_finite(b)
    big = np.full(n, np.finfo(dtype).max, dtype)    # finite, near overflow
    assert _scan.all_finite(big)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (40, 8), (33, 16), (5, 64),
                                   (3, 100), (100, 5), (9, 300), (0, 4)])
def test_colmax_abs_matches_numpy(dtype, shape):
    rng = np.random.default_rng(6)
    a = (rng.standard_normal(shape) * 10).astype(dtype)
    want = (np.abs(a).max(axis=0).astype(np.float64) if shape[0]
            else np.zeros(shape[1]))
    np.testing.assert_array_equal(_scan.colmax_abs(a), want)
    if not shape[0]:
        return
    for bad in (np.nan, np.inf):
        b = a.copy()
        b[-1, -1] = bad
        out = _scan.colmax_abs(b)
        assert np.isnan(out[-1]) and np.all(np.isfinite(out[:-1]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_time_major_any_strides(dtype):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((6, 10, 9)).astype(dtype)
    wide = rng.standard_normal((3, 4, 300)).astype(dtype)   # beyond the stack
    for src in (base, base[::2, ::-1, 1::3], np.asfortranarray(base),
                base.swapaxes(0, 1), wide, wide[:, :, ::-2]):
        want = np.ascontiguousarray(np.swapaxes(src, 0, 1))
        got, cm = time_major_colmax(src, np.dtype(dtype))
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(cm, colmax_abs(want))
        np.testing.assert_array_equal(time_major(src, np.dtype(dtype)), want)
        assert not np.shares_memory(got, src)
    # another dtype goes through NumPy and still gives a fresh copy
    got, cm = time_major_colmax(base[:, :1], np.dtype(np.float64))
    assert got.dtype == np.float64 and not np.shares_memory(got, base)


# -- input_grad=False: dL/dx skipped, everything else unchanged ---------------

@pytest.mark.parametrize("cell", ["rnn", "cec", "lstm"])
@pytest.mark.parametrize("batch_first", [True, False])
def test_input_grad_false_skips_only_dx(cell, batch_first):
    rng = np.random.default_rng(8)
    B, T, I, H = 3, 6, 2, 4
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    g = rng.standard_normal((B, T, H) if batch_first else (T, B, H))
    G = 4 if cell == "lstm" else 1
    w_ih, w_hh, b = _weights(rng, G, H, I, np.float64)
    if cell == "rnn":
        res = cbptt.rnn_forward(x, w_ih, w_hh, b, batch_first=batch_first)
        bwd = cbptt.rnn_backward
    elif cell == "cec":
        res = cbptt.cec_forward(x, w_ih, b, batch_first=batch_first)
        bwd = cbptt.cec_backward
    else:
        res = cbptt.lstm_forward(x, w_ih, w_hh, b, batch_first=batch_first)
        bwd = cbptt.lstm_backward
    full = bwd(res, g, truncate=4)
    lean = bwd(res, g, truncate=4, input_grad=False)
    assert lean.x is None and full.x.shape == x.shape
    for name in full._fields:
        if name != "x":
            np.testing.assert_array_equal(getattr(lean, name),
                                          getattr(full, name))
    with pytest.raises(TypeError, match="input_grad"):
        bwd(res, g, input_grad="no")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("F", [3, 8, 300])
def test_time_major_colmax_flags_non_finite_columns(dtype, F):
    rng = np.random.default_rng(9)
    src = rng.standard_normal((5, 7, F)).astype(dtype)
    src[4, 6, F - 1] = np.inf
    src[0, 0, 0] = np.nan
    got, cm = time_major_colmax(src, np.dtype(dtype))
    np.testing.assert_array_equal(got, np.swapaxes(src, 0, 1))
    assert np.isnan(cm[0]) and np.isnan(cm[F - 1])
    if F > 2:
        assert np.all(np.isfinite(cm[1:F - 1]))
