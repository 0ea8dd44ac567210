"""Compiled value scans for the API boundary: one pass, no temporaries.

Design contract
---------------
* The functional API checks every array it receives and every result it
  returns (finite values, no overflow hidden by a saturating activation).
  NumPy does each check in several passes with temporaries (``isfinite``
  then ``all``; ``max`` then ``min``; a strided transpose copy), which at
  small H costs as much as the BPTT kernels. The loops of
  ``src/cbptt_scan.h`` do each in one vectorised pass, GIL released.
* :func:`all_finite` ``(a)``: True iff no NaN or infinity in the flat
  C-contiguous ``a``.
* :func:`colmax_abs` ``(a)``: ``max_r |a[r, j]|`` per column of the
  C-contiguous ``a (rows, n)`` as float64, NaN for a column holding a NaN or
  an infinity (so the result also says which columns are finite).
* :func:`time_major` ``(src, dst)``: ``dst[t, b, :] = src[b, t, :]``
  (batch-first to time-major, any strides in ``src``), and returns the
  column maxima of the copy as :func:`colmax_abs` does (unless asked not
  to).
* :func:`preact_bound`: the bound of ``check_preactivation_range`` in one
  pass over the weights.
* One fused source serves float32 and float64; the callers fall back to
  NumPy for any other dtype or layout.
"""
from cython cimport floating
from libc.math cimport fabs
from libc.string cimport memset

import numpy as np

cdef extern from "cbptt_scan.h" nogil:
    int cbptt_all_finite_f(long n, const float *a)
    int cbptt_all_finite_d(long n, const double *a)
    void cbptt_colmax_f(long rows, long n, const float *a, float *cm,
                        float *bad)
    void cbptt_colmax_d(long rows, long n, const double *a, double *cm,
                        double *bad)
    void cbptt_colmax_finish_f(long n, const float *cm, const float *bad,
                               double *out)
    void cbptt_colmax_finish_d(long n, const double *cm, const double *bad,
                               double *out)
    void cbptt_time_major_f(long B, long T, long F, const float *src, long sb,
                            long st, long sf, float *dst, float *cm,
                            float *bad)
    void cbptt_time_major_d(long B, long T, long F, const double *src,
                            long sb, long st, long sf, double *dst,
                            double *cm, double *bad)


# Columns up to this many keep their running maxima on the stack.
cdef enum:
    STACK_COLS = 256


cdef object finish(long n, const floating *cm, const floating *bad):
    """The column maxima as a float64 array, NaN where a column is not finite."""
    out = np.empty(n, np.float64)
    cdef double[::1] o = out
    if n:
        if floating is float:
            cbptt_colmax_finish_f(n, cm, bad, &o[0])
        else:
            cbptt_colmax_finish_d(n, cm, bad, &o[0])
    return out


def all_finite(const floating[::1] a):
    """True iff every element of the flat array ``a`` is finite."""
    cdef long n = a.shape[0]
    cdef int ok
    if n == 0:
        return True
    with nogil:
        if floating is float:
            ok = cbptt_all_finite_f(n, &a[0])
        else:
            ok = cbptt_all_finite_d(n, &a[0])
    return ok != 0


def colmax_abs(const floating[:, ::1] a):
    """max over rows of |a[:, j]| as float64; NaN where a column is not finite."""
    cdef long rows = a.shape[0], n = a.shape[1]
    cdef floating stack[2 * STACK_COLS]
    cdef floating[::1] heap
    cdef floating *cm = stack
    if n > STACK_COLS:
        heap = np.empty(2 * n, np.float32 if floating is float else np.float64)
        cm = &heap[0]
    memset(cm, 0, 2 * n * sizeof(floating))
    if rows and n:
        with nogil:
            if floating is float:
                cbptt_colmax_f(rows, n, &a[0, 0], cm, cm + n)
            else:
                cbptt_colmax_d(rows, n, &a[0, 0], cm, cm + n)
    return finish(n, cm, cm + n)


def time_major(const floating[:, :, :] src, floating[:, :, ::1] dst,
               bint colmax=True):
    """dst (T, B, F) = src (B, T, F) transposed; returns colmax_abs of it
    (None when ``colmax`` is False: no scan)."""
    cdef long B = src.shape[0], T = src.shape[1], F = src.shape[2]
    cdef long s = sizeof(floating)
    cdef long sb = src.strides[0] // s, st = src.strides[1] // s
    cdef long sf = src.strides[2] // s
    cdef floating stack[2 * STACK_COLS]
    cdef floating[::1] heap
    cdef floating *cm = stack
    if (dst.shape[0] != T or dst.shape[1] != B or dst.shape[2] != F
            or src.strides[0] % s or src.strides[1] % s or src.strides[2] % s):
        raise ValueError("time_major: inconsistent shapes or strides")
    if F > STACK_COLS:
        heap = np.empty(2 * F, np.float32 if floating is float else np.float64)
        cm = &heap[0]
    memset(cm, 0, 2 * F * sizeof(floating))
    if B and T and F:
        with nogil:
            if floating is float:
                cbptt_time_major_f(B, T, F, &src[0, 0, 0], sb, st, sf,
                                   &dst[0, 0, 0], cm if colmax else NULL,
                                   cm + F)
            else:
                cbptt_time_major_d(B, T, F, &src[0, 0, 0], sb, st, sf,
                                   &dst[0, 0, 0], cm if colmax else NULL,
                                   cm + F)
    return finish(F, cm, cm + F) if colmax else None


def preact_bound(const floating[::1] bias, const floating[:, ::1] w1,
                 const double[::1] v1, const floating[:, ::1] w2,
                 const double[::1] v2):
    """max_j |bias_j| + sum_k |w1[j, k]| v1[k] + sum_k |w2[j, k]| v2[k],
    in float64; NaN when any term is NaN (``w2`` may have no columns)."""
    cdef Py_ssize_t j, k, n = bias.shape[0]
    cdef double s, worst = 0.0
    if (w1.shape[0] != n or w2.shape[0] != n or v1.shape[0] != w1.shape[1]
            or v2.shape[0] != w2.shape[1]):
        raise ValueError("preact_bound: inconsistent shapes")
    with nogil:
        for j in range(n):
            s = fabs(<double> bias[j])
            for k in range(w1.shape[1]):
                s += fabs(<double> w1[j, k]) * v1[k]
            for k in range(w2.shape[1]):
                s += fabs(<double> w2[j, k]) * v2[k]
            if not s <= worst:      # a larger s, or NaN (which then sticks)
                worst = s
                if s != s:
                    break
    return worst
