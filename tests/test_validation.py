"""Validation helpers: the folded column max equals the plain reduction."""
import numpy as np
import pytest

from cbptt._validation import colmax_abs


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
