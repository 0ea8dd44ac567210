"""Validation helpers: the folded column max equals the plain reduction;
the kernels' output arrays start on a page (or cache line)."""
import numpy as np
import pytest

from cbptt._validation import PAGE_BYTES, aligned_empty, colmax_abs


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5, 8), (100, 32, 8), (7, 3, 1500),
                                   (1, 1, 2000), (13, 17, 3), (2, 1025)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_colmax_abs_equals_plain_reduction(shape, dtype):
    a = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    flat = a.reshape(-1, a.shape[-1])
    expect = np.maximum(flat.max(0), -flat.min(0)).astype(np.float64)
    np.testing.assert_array_equal(colmax_abs(a), expect)
    np.testing.assert_array_equal(colmax_abs(np.asfortranarray(a)), expect)


def test_colmax_abs_propagates_nan():
    a = np.ones((50, 32, 8))
    a[3, 4, 5] = np.nan
    out = colmax_abs(a)
    assert np.isnan(out[5]) and np.isfinite(np.delete(out, 5)).all()


@pytest.mark.parametrize("shape, align", [((100, 32, 16), PAGE_BYTES),
                                          ((1024,), PAGE_BYTES),
                                          ((3, 5), 64), ((0, 4, 2), 64)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_aligned_empty(shape, align, dtype):
    a = aligned_empty(shape, dtype)
    assert a.shape == shape and a.dtype == dtype
    assert a.flags.c_contiguous and a.flags.writeable
    if a.size:
        assert a.ctypes.data % align == 0
    a[...] = 1.5                 # its own memory, the whole of it writable
    assert (a == 1.5).all()


def test_functional_outputs_are_page_aligned():
    import cbptt
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 32, 3)).astype(np.float32)
    H = 16
    res = cbptt.lstm_forward(x, rng.standard_normal((4 * H, 3)),
                             rng.standard_normal((4 * H, H)),
                             np.zeros(4 * H), batch_first=False)
    for a in (res.h, res.c, res.gates):
        assert a.ctypes.data % PAGE_BYTES == 0
    g = cbptt.lstm_backward(res, np.ones_like(res.h))
    assert g.delta.ctypes.data % PAGE_BYTES == 0
    r = cbptt.rnn_forward(x, rng.standard_normal((H, 3)),
                          rng.standard_normal((H, H)), np.zeros(H),
                          batch_first=False)
    assert r.h.ctypes.data % PAGE_BYTES == 0
