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

The common case in one call
---------------------------
Typed memoryviews cost about a microsecond per argument to acquire, and the
functional API's checks cost one Python call per argument, per property. The
functions below read raw buffers instead and never raise on a bad input: they
answer None (or False) for anything but the common case, float32/float64
ndarrays of consistent shapes and finite values, and the caller then runs its
full validation, which gives the precise error. So they change no result and
no message, only the time taken.

* :func:`forward_inputs` ``(x, batch_first, gates, w_ih, w_hh, bias, h0,
  c0)``: every check of a forward pass's arrays, then their private read-only
  copies (``x`` time-major, with its column maxima) in one pass each.
* :func:`grad_input` ``(g, batch_first, T, B, H, itemsize, scan=True)``: a
  loss gradient, checked finite (unless ``scan`` is False), time-major and
  C-contiguous for the kernels.
* :func:`all_finite_arrays` ``(arrays)``: True iff every array is a
  scannable ndarray of finite values (None entries are skipped).
* :func:`preact_bound_or_none`: :func:`preact_bound`, or None when the
  arrays are not all C-contiguous float arrays of one dtype (the bias may
  also be float64).
* :func:`aligned_empty` ``(shape, dtype)``: an uninitialised C-contiguous
  array starting on a page (a 64-byte line when smaller than a page), for
  the kernels' outputs; about 1 us, against 7 us in Python (np.prod,
  ``.ctypes``).

Instruction set
---------------
The scans are compiled for each level of ``src/cbptt_isa.h``;
:func:`simd_level`, :func:`_limit_simd_level` and :func:`cpu_simd_level`
are this module's copy of the level (``cbptt.set_isa`` sets every module's).
"""
from cpython.buffer cimport (PyBUF_RECORDS, PyBUF_RECORDS_RO, PyBUF_SIMPLE,
                             PyBuffer_Release, PyObject_GetBuffer)
from cpython.ref cimport Py_REFCNT
from cython cimport floating
from libc.float cimport DBL_MAX, FLT_MAX
from libc.math cimport fabs
from libc.string cimport memset

import numpy as np

cdef extern from "cbptt_isa.h" nogil:
    int cbptt_isa()
    int cbptt_isa_cpu()
    int cbptt_isa_limit(int level)

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
    int cbptt_copy_finite_f(long n, const float *src, float *dst)
    int cbptt_copy_finite_d(long n, const double *src, double *dst)
    void cbptt_time_major_f(long B, long T, long F, const float *src, long sb,
                            long st, long sf, float *dst, float *cm,
                            float *bad)
    void cbptt_time_major_d(long B, long T, long F, const double *src,
                            long sb, long st, long sf, double *dst,
                            double *cm, double *bad)


cdef object empty = np.empty
cdef object ndarray = np.ndarray
cdef object setflags = np.ndarray.setflags   # (a, False): read-only, fast
cdef object F32 = np.dtype(np.float32), F64 = np.dtype(np.float64)

# Columns up to this many keep their running maxima on the stack.
cdef enum:
    STACK_COLS = 256


cdef enum:
    PAGE_BYTES = 4096


# aligned_empty's pool of padded byte buffers (newest last) and their bytes.
# A training loop asks for the same large arrays every mini-batch (a
# forward pass's copies and outputs, a backward pass's gradients) just
# after the previous ones were dropped; fresh memory of that size comes
# from the operating system each time (glibc maps it, or trims the heap
# top it came from), zeroed page by page on first touch, which can take as
# long as the kernel itself; the pool hands the dropped buffers out again.
cdef list _pool = []
cdef Py_ssize_t _pool_bytes = 0
# Buffers smaller than this are not pooled (the heap recycles them).
cdef Py_ssize_t POOL_MIN_BYTES = 64 * 1024
# At most this many bytes of buffers in the pool, in use or free.
cdef Py_ssize_t POOL_MAX_BYTES = 256 * 1024 * 1024


cdef object _pool_take(Py_ssize_t size):
    """A pooled buffer of ``size`` bytes that nothing but the pool holds, or
    None; on None, every other free buffer leaves the pool (so what the
    pool holds never adds to a peak that new sizes make)."""
    global _pool, _pool_bytes
    cdef Py_ssize_t i
    cdef list kept
    for i in range(len(_pool) - 1, -1, -1):
        b = _pool[i]
        # free: referenced by the list and by b only (no array, no view)
        if Py_REFCNT(b) == 2 and (<object> b).nbytes == size:
            return b
    b = None                    # (a reference of its own to the last one)
    kept = [b for b in _pool if Py_REFCNT(b) > 2]
    _pool_bytes = sum([(<object> b).nbytes for b in kept])
    _pool = kept
    return None


def _pool_state():
    """(buffers, bytes) in aligned_empty's pool (tests)."""
    return len(_pool), _pool_bytes


def _pool_clear(max_bytes=None):
    """Empty aligned_empty's pool and, given ``max_bytes``, set its limit
    (0: no pooling) (tests, benchmarks); returns the previous limit."""
    global _pool, _pool_bytes, POOL_MAX_BYTES
    old = POOL_MAX_BYTES
    _pool = []
    _pool_bytes = 0
    if max_bytes is not None:
        POOL_MAX_BYTES = max_bytes
    return old


def aligned_empty(shape, dtype):
    """An uninitialised C-contiguous array of ``shape`` (a tuple of ints, or
    an int) and ``dtype`` whose data start on a page boundary (on a 64-byte
    line when it is smaller than a page): the kernels' threads each write
    their own rows, and NumPy's allocations start 16 bytes past a page, so
    a part that fills whole pages on paper would straddle one shared with
    the other thread. Its ``base`` is the padded byte buffer: from 64 KiB, a
    buffer of the pool when one of that size is free (its arrays and views
    all gone), else a new one, pooled while the pool holds at most 256 MiB."""
    global _pool_bytes
    cdef Py_ssize_t nbytes, d, size
    cdef size_t align, addr
    cdef Py_buffer v
    dtype = np.dtype(dtype)
    if type(shape) is not tuple:
        shape = (shape,)
    nbytes = dtype.itemsize
    for d in shape:
        nbytes *= d
    align = PAGE_BYTES if nbytes >= PAGE_BYTES else 64
    size = nbytes + align
    buf = _pool_take(size) if size >= POOL_MIN_BYTES else None
    if buf is None:
        buf = empty(size, np.uint8)
        if size >= POOL_MIN_BYTES and _pool_bytes + size <= POOL_MAX_BYTES:
            _pool.append(buf)
            _pool_bytes += size
    PyObject_GetBuffer(buf, &v, PyBUF_RECORDS)
    addr = <size_t> v.buf
    PyBuffer_Release(&v)
    return ndarray(shape, dtype, buf, (align - addr % align) % align)


cdef object finish(long n, const floating *cm, const floating *bad):
    """The column maxima as a float64 array, NaN where a column is not finite."""
    out = empty(n, F64)
    cdef Py_buffer o
    if n:
        PyObject_GetBuffer(out, &o, PyBUF_RECORDS)
        if floating is float:
            cbptt_colmax_finish_f(n, cm, bad, <double *> o.buf)
        else:
            cbptt_colmax_finish_d(n, cm, bad, <double *> o.buf)
        PyBuffer_Release(&o)
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
    cdef long n = bias.shape[0]
    cdef double worst
    if (w1.shape[0] != n or w2.shape[0] != n or v1.shape[0] != w1.shape[1]
            or v2.shape[0] != w2.shape[1]):
        raise ValueError("preact_bound: inconsistent shapes")
    with nogil:
        worst = bound_loop(n, &bias[0], w1.shape[1], &w1[0, 0], &v1[0],
                           w2.shape[1], &w2[0, 0] if w2.shape[1] else NULL,
                           &v2[0] if w2.shape[1] else NULL)
    return worst


# The bias of a bound: the weights' dtype, or float64 for either (a GRU's
# |b_ih| + |b_hh|, summed in float64 by the network's overflow guard).
ctypedef fused bias_floating:
    float
    double


cdef double bound_loop(long n, const bias_floating *bias, long k1,
                       const floating *w1, const double *v1, long k2,
                       const floating *w2, const double *v2) noexcept nogil:
    """The loop of :func:`preact_bound` (rows of w1 (n x k1), w2 (n x k2))."""
    cdef long j, k
    cdef double s, worst = 0.0
    for j in range(n):
        s = fabs(<double> bias[j])
        for k in range(k1):
            s += fabs(<double> w1[j * k1 + k]) * v1[k]
        for k in range(k2):
            s += fabs(<double> w2[j * k2 + k]) * v2[k]
        if not s <= worst:      # a larger s, or NaN (which then sticks)
            worst = s
            if s != s:
                break
    return worst


# -- The common case in one call (raw buffers; None means "not this case") ---

cdef long INDEX_MAX = 2147483647      # the kernels' 32-bit BLAS index limit


cdef int float_view(object a, Py_buffer *v, int flags=PyBUF_RECORDS_RO):
    """Acquire ``a``'s buffer into ``v`` when ``a`` is an ndarray (not a
    subclass) of native float32 or float64: returns its itemsize (4 or 8),
    and the caller must release ``v``. Otherwise returns 0, holding nothing."""
    if type(a) is not ndarray:
        return 0
    try:
        PyObject_GetBuffer(a, v, flags)
    except Exception:                 # a dtype without a buffer format, ...
        return 0
    if (v.format != NULL and v.format[1] == 0
            and ((v.format[0] == b'f' and v.itemsize == 4)
                 or (v.format[0] == b'd' and v.itemsize == 8))):
        return <int> v.itemsize
    PyBuffer_Release(v)
    return 0


cdef int buffer_finite(const Py_buffer *v) noexcept nogil:
    """1 iff the C-contiguous float32/float64 buffer ``v`` is all finite."""
    if v.itemsize == 4:
        return cbptt_all_finite_f(v.len // 4, <const float *> v.buf)
    return cbptt_all_finite_d(v.len // 8, <const double *> v.buf)


cdef bint c_contiguous(const Py_buffer *v) noexcept:
    """NumPy's C-contiguity (axes of length 1 may have any stride)."""
    cdef Py_ssize_t want = v.itemsize
    cdef int d
    for d in range(v.ndim - 1, -1, -1):
        if v.shape[d] != 1 and v.strides[d] != want:
            return False
        want *= v.shape[d]
    return True


cdef void *data_of(object a) except NULL:
    """The data pointer of a C-contiguous ndarray (kept alive by the caller)."""
    cdef Py_buffer v
    PyObject_GetBuffer(a, &v, PyBUF_SIMPLE)
    cdef void *p = v.buf
    PyBuffer_Release(&v)
    return p


cdef int result_inputs(object x_tm, object h_tm, object w_ih, int G,
                       int *dims, void **p) except -1:
    """The sizes of a forward result's time-major ``x_tm (T, B, I)`` and
    ``h_tm (T, B, H)``, ``dims = (T, B, H, I)``, and the checked data
    pointers of ``x_tm`` (``p[0]``) and of its ``w_ih (G*H, I)`` (``p[1]``,
    as ``data_if`` checks them), returning ``h_tm``'s itemsize; 0 when
    either is not a 3-D ndarray, an axis is empty or ``x_tm`` or ``w_ih``
    does not fit (the one-call backward paths then answer None)."""
    if (type(h_tm) is not ndarray or h_tm.ndim != 3
            or type(x_tm) is not ndarray or x_tm.ndim != 3):
        return 0
    dims[0], dims[1], dims[2] = h_tm.shape[0], h_tm.shape[1], h_tm.shape[2]
    dims[3] = x_tm.shape[2]
    if dims[0] < 1 or dims[1] < 1 or dims[2] < 1 or dims[3] < 1:
        return 0
    cdef int s = h_tm.dtype.itemsize
    p[0] = data_if(x_tm, s, dims[0], dims[1], dims[3])
    p[1] = data_if(w_ih, s, <Py_ssize_t> G * dims[2], dims[3])
    return s if p[0] != NULL and p[1] != NULL else 0


cdef void *data_if(object a, int itemsize, Py_ssize_t n0, Py_ssize_t n1,
                   Py_ssize_t n2=0):
    """The data pointer of ``a`` when it is a C-contiguous float ndarray of
    ``itemsize`` bytes per value and shape (n0, n1[, n2]) (kept alive by
    the caller), else NULL."""
    cdef Py_buffer v
    cdef void *p = NULL
    if float_view(a, &v) != itemsize:
        return NULL
    if (v.ndim == (3 if n2 else 2) and v.shape[0] == n0 and v.shape[1] == n1
            and (n2 == 0 or v.shape[2] == n2) and c_contiguous(&v)):
        p = v.buf
    PyBuffer_Release(&v)
    return p


cdef object owned_if(object a, int itemsize, Py_ssize_t n0, Py_ssize_t n1=0):
    """A fresh read-only C-contiguous copy of ``a`` when it is a float ndarray
    of ``itemsize`` bytes per value, C-contiguous, of shape (n0,) (or (n0,
    n1) when ``n1``) and finite; else None, and nothing is raised."""
    cdef Py_buffer v
    if float_view(a, &v) != itemsize:
        return None
    try:
        if not has_shape(&v, 2 if n1 else 1, n0, n1):
            return None
        if n1:
            shape = (n0, n1)
        else:
            shape = (n0,)
        return private_copy(&v, shape, F32 if itemsize == 4 else F64)
    finally:
        PyBuffer_Release(&v)


cdef int preact_in_range(str func, object dtype, object bias, object w1,
                         object v1, object w2, object v2) except -1:
    """``check_preactivation_range(func, dtype, bias, (w1, v1), (w2, v2))``
    of ``cbptt._validation`` (which raises its ValueError when the bound on
    the pre-activations leaves a quarter of ``dtype``'s range), with the
    bound computed here in one pass and that function called only when the
    bound is not plainly within range (or the arrays are not the compiled
    loop's): the same decision, the same message."""
    worst = preact_bound_or_none(bias, w1, v1, w2, v2)
    if worst is not None and <double> worst <= (
            FLT_MAX / 4 if dtype.itemsize == 4 else DBL_MAX / 4):
        return 0
    from cbptt._validation import check_preactivation_range
    check_preactivation_range(func, dtype, bias, (w1, v1), (w2, v2))
    return 0


cdef bint has_shape(const Py_buffer *v, int ndim, Py_ssize_t n0,
                    Py_ssize_t n1) noexcept:
    """``v`` has ``ndim`` (1 or 2) axes of lengths (n0[, n1]), C-contiguous."""
    return (v.ndim == ndim and v.shape[0] == n0
            and (ndim == 1 or v.shape[1] == n1) and c_contiguous(v))


cdef object private_copy(const Py_buffer *v, object shape, object dtype):
    """A fresh read-only C-contiguous copy of the C-contiguous ``v``, or None
    when it holds a NaN or an infinity."""
    out = empty(shape, dtype)
    cdef Py_buffer o
    cdef int ok
    PyObject_GetBuffer(out, &o, PyBUF_RECORDS)
    if v.itemsize == 4:
        ok = cbptt_copy_finite_f(v.len // 4, <const float *> v.buf,
                                 <float *> o.buf)
    else:
        ok = cbptt_copy_finite_d(v.len // 8, <const double *> v.buf,
                                 <double *> o.buf)
    PyBuffer_Release(&o)
    if not ok:
        return None
    setflags(out, False)
    return out


cdef object copy_time_major(const Py_buffer *v, bint batch_first,
                            bint colmax, object dtype):
    """The fresh C-contiguous time-major copy of the 3-D ``v`` ((B, T, F)
    when ``batch_first``, else (T, B, F); any strides), with the column
    maxima of ``colmax_abs`` when ``colmax`` (else its finiteness only):
    ``(copy, maxima or None)``, or None when a value is not finite."""
    cdef long s = v.itemsize
    cdef int a = 0 if batch_first else 1      # the batch axis of v
    cdef long B = v.shape[a], T = v.shape[1 - a], F = v.shape[2]
    cdef long sb = v.strides[a] // s, st = v.strides[1 - a] // s
    cdef long sf = v.strides[2] // s
    cdef long j
    cdef double stack[2 * STACK_COLS]       # room for either dtype
    cdef double[::1] heap
    cdef void *cm = stack
    cdef Py_buffer o
    if v.strides[0] % s or v.strides[1] % s or v.strides[2] % s:
        return None
    if F > STACK_COLS:
        heap = np.empty(2 * F, np.float64)
        cm = &heap[0]
    memset(cm, 0, 2 * F * s)
    out = empty((T, B, F), dtype)
    PyObject_GetBuffer(out, &o, PyBUF_RECORDS)
    with nogil:
        if s == 4:
            cbptt_time_major_f(B, T, F, <const float *> v.buf, sb, st, sf,
                               <float *> o.buf,
                               <float *> cm if colmax else NULL,
                               <float *> cm + F)
        else:
            cbptt_time_major_d(B, T, F, <const double *> v.buf, sb, st, sf,
                               <double *> o.buf,
                               <double *> cm if colmax else NULL,
                               <double *> cm + F)
        if not colmax:        # finiteness only: the cheaper scan
            j = buffer_finite(&o)
    PyBuffer_Release(&o)
    if not colmax:
        return (out, None) if j else None
    for j in range(F):           # bad[j] == 0 iff column j is finite
        if (((<float *> cm)[F + j] != 0) if s == 4
                else ((<double *> cm)[F + j] != 0)):
            return None
    if s == 4:
        return out, finish(F, <const float *> cm, <const float *> cm + F)
    return out, finish(F, <const double *> cm, <const double *> cm + F)


def forward_inputs(x, bint batch_first, int gates, w_ih, w_hh, bias, h0,
                   c0, bint recurrent=True):
    """The checked private copies of a forward pass's arrays, or None.

    The common case: every array a float32 or float64 ndarray of ``x``'s
    dtype; ``x`` 3-D with no empty axis (any strides), of sizes (B, T, I)
    (batch-first) or (T, B, I); the others C-contiguous of shapes
    ``w_ih (G*H, I)``, ``w_hh (G*H, H)``, ``bias (G*H,)`` and ``h0``, ``c0``
    ``(B, H)`` or None, with G = ``gates`` and H >= 1; B*T, I, G*H, G*H*I
    and G*H*H within the kernels' 32-bit index limit; every value finite.
    Without ``recurrent`` (a layer with no recurrent weights: the CEC,
    whose self-weight is fixed at 1), ``w_hh`` is not looked at and its
    copy is None. Then returns ``(x_tm, x_max, w_ih, w_hh, bias, h0,
    c0)``: fresh read-only copies (``x_tm`` time-major (T, B, I),
    ``x_max`` its ``colmax_abs``; None for a state given as None).
    Anything else: None, and nothing is raised.
    """
    cdef Py_buffer v[6]
    cdef int held = 0, s, k
    cdef long B, T, I, GH, H
    cdef int a = 0 if batch_first else 1
    states = (h0, c0)
    if not recurrent:
        w_hh = None
    try:
        s = float_view(x, &v[0])
        if s == 0:
            return None
        held = 1
        if v[0].ndim != 3:
            return None
        B, T, I = v[0].shape[a], v[0].shape[1 - a], v[0].shape[2]
        if B < 1 or T < 1 or I < 1 or B * T > INDEX_MAX or I > INDEX_MAX:
            return None
        for arr in ((w_ih, w_hh, bias) if recurrent else (w_ih, bias)):
            k = float_view(arr, &v[held])
            held += k != 0
            if k != s:
                return None
        GH = v[1].shape[0] if v[1].ndim == 2 else 0
        if GH < gates or GH % gates or GH > INDEX_MAX:
            return None
        H = GH // gates
        if GH * I > INDEX_MAX or GH * H > INDEX_MAX:
            return None
        if not (has_shape(&v[1], 2, GH, I)
                and (not recurrent or has_shape(&v[2], 2, GH, H))
                and has_shape(&v[held - 1], 1, GH, 0)):
            return None
        for arr in states:
            if arr is not None:
                k = float_view(arr, &v[held])
                held += k != 0
                if k != s or not has_shape(&v[held - 1], 2, B, H):
                    return None
        dtype = F32 if s == 4 else F64
        copies = []
        k = 1
        for shape, arr in (((GH, I), w_ih), ((GH, H), w_hh), ((GH,), bias),
                           ((B, H), h0), ((B, H), c0)):
            if arr is None:
                copies.append(None)
                continue
            c = private_copy(&v[k], shape, dtype)
            if c is None:
                return None
            copies.append(c)
            k += 1
        xc = copy_time_major(&v[0], batch_first, True, dtype)
        if xc is None:
            return None
        x_tm, x_max = xc
        setflags(x_tm, False)
        return (x_tm, x_max, *copies)
    finally:
        for k in range(held):
            PyBuffer_Release(&v[k])


def grad_input(g, bint batch_first, long T, long B, long H, int itemsize,
               bint scan=True):
    """A loss gradient for the kernels, or None.

    The common case: ``g`` a float ndarray of ``itemsize`` (4 or 8) bytes per
    value, 3-D of shape (B, T, H) when ``batch_first`` else (T, B, H), every
    value finite (not looked at when ``scan`` is False: the caller then
    checks what the kernel made of it). Then returns ``g`` itself when it is
    time-major and C-contiguous, else a fresh C-contiguous time-major copy.
    Anything else: None, and nothing is raised.
    """
    cdef Py_buffer v
    cdef int ok
    cdef int a = 0 if batch_first else 1
    cdef int s = float_view(g, &v)
    if s == 0:
        return None
    try:
        if s != itemsize:
            return None
        if not (v.ndim == 3 and v.shape[a] == B and v.shape[1 - a] == T
                and v.shape[2] == H and B > 0 and T > 0 and H > 0):
            return None
        if not batch_first and c_contiguous(&v):
            if not scan:
                return g
            with nogil:
                ok = buffer_finite(&v)
            return g if ok else None
        gc = copy_time_major(&v, batch_first, False,
                             F32 if itemsize == 4 else F64)
        return None if gc is None else gc[0]
    finally:
        PyBuffer_Release(&v)


def all_finite_arrays(arrays):
    """True iff every array of ``arrays`` (None entries skipped) is a
    C-contiguous float32/float64 ndarray of finite values, not empty."""
    cdef Py_buffer v
    cdef int s, ok
    for a in arrays:
        if a is None:
            continue
        s = float_view(a, &v)
        if s == 0:
            return False
        ok = v.len > 0 and c_contiguous(&v)
        if ok:
            with nogil:
                ok = buffer_finite(&v)
        PyBuffer_Release(&v)
        if not ok:
            return False
    return True


def preact_bound_or_none(bias, w1, v1, w2, v2):
    """:func:`preact_bound` when ``w1``, ``w2`` are non-empty C-contiguous
    2-D ndarrays of one float dtype, ``bias`` a non-empty C-contiguous
    vector of that dtype or of float64 (a bias bound summed in float64, as
    the network's guard of a GRU has), and ``v1``, ``v2`` C-contiguous
    float64 vectors (the arrays the ``colmax_abs`` and ``owned`` of
    ``_validation`` give); else None, and nothing is raised."""
    cdef Py_buffer v[5]
    cdef int held = 0, s = 0, k
    cdef long n
    cdef double worst
    try:
        for k, arr in enumerate((bias, w1, w2, v1, v2)):
            if float_view(arr, &v[k]) == 0:
                return None
            held += 1
            if not (v[k].len > 0 and c_contiguous(&v[k])) and k < 3:
                return None
        s = <int> v[1].itemsize                 # the weights' dtype
        if ((v[0].itemsize != s and v[0].itemsize != 8)
                or v[2].itemsize != s or v[3].itemsize != 8
                or v[4].itemsize != 8 or v[0].ndim != 1 or v[1].ndim != 2
                or v[2].ndim != 2 or v[3].ndim != 1 or v[4].ndim != 1
                or not c_contiguous(&v[3]) or not c_contiguous(&v[4])):
            return None
        n = v[0].shape[0]
        if (v[1].shape[0] != n or v[2].shape[0] != n
                or v[3].shape[0] != v[1].shape[1]
                or v[4].shape[0] != v[2].shape[1]):
            raise ValueError("preact_bound: inconsistent shapes")
        with nogil:
            if s == 4 and v[0].itemsize == 8:
                worst = bound_loop(n, <const double *> v[0].buf,
                                   v[1].shape[1], <const float *> v[1].buf,
                                   <const double *> v[3].buf, v[2].shape[1],
                                   <const float *> v[2].buf,
                                   <const double *> v[4].buf)
            elif s == 4:
                worst = bound_loop(n, <const float *> v[0].buf, v[1].shape[1],
                                   <const float *> v[1].buf,
                                   <const double *> v[3].buf, v[2].shape[1],
                                   <const float *> v[2].buf,
                                   <const double *> v[4].buf)
            else:
                worst = bound_loop(n, <const double *> v[0].buf,
                                   v[1].shape[1], <const double *> v[1].buf,
                                   <const double *> v[3].buf, v[2].shape[1],
                                   <const double *> v[2].buf,
                                   <const double *> v[4].buf)
        return worst
    finally:
        for k in range(held):
            PyBuffer_Release(&v[k])


def simd_level():
    """The instruction set the scans use: 2 AVX-512, 1 AVX2+FMA, 0 baseline."""
    return cbptt_isa()


def cpu_simd_level():
    """The best instruction set this CPU runs (CBPTT_ISA not applied)."""
    return cbptt_isa_cpu()


def _limit_simd_level(int level):
    """Run the scans at most at ``level`` (never above the CPU's best);
    returns the level used."""
    return cbptt_isa_limit(level)
