# cbptt._simd: declarations of src/cbptt_simd.h (the per-step building blocks
# compiled for several instruction sets, chosen at run time) and of the
# thread limit in src/cbptt_fpenv.h. Contracts are in the headers.
cdef extern from "cbptt_simd.h" nogil:
    int cbptt_isa()
    int cbptt_isa_limit(int level)
    void cbptt_pack_f(int n, int k, const float *w, long rs, long cs,
                      float *packed)
    void cbptt_pack_d(int n, int k, const double *w, long rs, long cs,
                      double *packed)
    void cbptt_mm_f(int m, int n, int k, const float *a, long lda, long ak,
                    const float *w, long ldw, float *c, long ldc,
                    int accumulate)
    void cbptt_mm_d(int m, int n, int k, const double *a, long lda, long ak,
                    const double *w, long ldw, double *c, long ldc,
                    int accumulate)
    void cbptt_col_sums_f(long rows, int n, const float *a, long lda,
                          float *out, int accumulate)
    void cbptt_col_sums_d(long rows, int n, const double *a, long lda,
                          double *out, int accumulate)
    void cbptt_bias_act_rows_f(int act, int m, int n, float *z, long ldz,
                               const float *b)
    void cbptt_bias_act_rows_d(int act, int m, int n, double *z, long ldz,
                               const double *b)
    void cbptt_delta_rows_f(int act, long length, float *d, const float *y,
                            const float *g, int carry)
    void cbptt_delta_rows_d(int act, long length, double *d, const double *y,
                            const double *g, int carry)

cdef extern from "cbptt_fpenv.h" nogil:
    int cbptt_max_threads()
    int cbptt_fork_guard()
    int cbptt_forked()


# Fused-type wrappers (one source for float32 and float64) and the row-chunk
# arithmetic of the batch split, for the kernels that cimport them.
from cython cimport floating


cdef inline void pack(int n, int k, const floating *w, long rs, long cs,
                      floating *packed) noexcept nogil:
    """cbptt_pack: W[kk, j] = w[kk*rs + j*cs] (k x n) into ``packed``."""
    if floating is float:
        cbptt_pack_f(n, k, w, rs, cs, packed)
    else:
        cbptt_pack_d(n, k, w, rs, cs, packed)


cdef inline void small_mm(int m, int n, int k, const floating *a, long lda,
                          long ak, const floating *w, long ldw, floating *c,
                          long ldc, bint accumulate) noexcept nogil:
    """C (+)= A W, A[r, k] = a[r*lda + k*ak]; W packed (ldw 0) or row-major."""
    if floating is float:
        cbptt_mm_f(m, n, k, a, lda, ak, w, ldw, c, ldc, accumulate)
    else:
        cbptt_mm_d(m, n, k, a, lda, ak, w, ldw, c, ldc, accumulate)


cdef inline void col_sums(long rows, int n, const floating *a, long lda,
                          floating *out, bint accumulate) noexcept nogil:
    """out[0:n] (+)= the sum of the rows a[r*lda : r*lda + n], r < rows."""
    if floating is float:
        cbptt_col_sums_f(rows, n, a, lda, out, accumulate)
    else:
        cbptt_col_sums_d(rows, n, a, lda, out, accumulate)


# Rows of a packed weight matrix per block in the per-step products: a panel
# of a block (128 rows x 64 floats, 32 doubles, with AVX-512) is 32 KiB, so
# it stays in L1 while the rows of the batch pass over it, instead of being
# fetched from L2 once per row.
cdef enum:
    MM_K_BLOCK = 128


cdef inline void pack_blocked(int n, int k, const floating *w, long rs,
                              long cs, floating *packed) noexcept nogil:
    """Pack W (k x n) as row blocks of MM_K_BLOCK rows, each packed on its own
    and stored one after another (k * n elements in all), for
    ``small_mm_blocked``."""
    cdef int k0 = 0
    while k0 < k:
        pack(n, min(<int> MM_K_BLOCK, k - k0), w + k0 * rs, rs, cs,
             packed + <long> k0 * n)
        k0 += MM_K_BLOCK


cdef inline void small_mm_blocked(int m, int n, int k, const floating *a,
                                  long lda, const floating *packed,
                                  floating *c, long ldc,
                                  bint accumulate) noexcept nogil:
    """C (+)= A W with W packed by ``pack_blocked``: one product per row block
    of W, so that each panel of the block stays in L1 while every row block
    of A passes over it. Every element of C still gets its multiply-adds in
    increasing k: the result is bitwise that of one product."""
    cdef int k0 = 0
    while k0 < k:
        small_mm(m, n, min(<int> MM_K_BLOCK, k - k0), a + k0, lda, 1,
                 packed + <long> k0 * n, 0, c, ldc, accumulate or k0 > 0)
        k0 += MM_K_BLOCK


cdef inline int n_chunks(int rows, int chunk) noexcept nogil:
    """How many chunks of ``chunk`` rows cover ``rows``."""
    return (rows + chunk - 1) // chunk


cdef inline int chunk_end(int c, int rows, int chunk) noexcept nogil:
    """One past the last row of chunk ``c``."""
    return (c + 1) * chunk if (c + 1) * chunk < rows else rows


# Bytes per cache line: the packed weights start on one, or every vector
# load of a panel row straddles two lines (NumPy's large allocations start
# 16 bytes past one). Bytes per memory page: two
# threads that write one page every step slow each other down, so
# per-thread work areas start on pages of their own.
cdef enum:
    LINE_BYTES = 64
    PAGE_BYTES = 4096


cdef inline long whole_units(long n, int itemsize, int unit) noexcept nogil:
    """``n`` elements of ``itemsize`` bytes rounded up to whole ``unit``s of
    bytes (in elements)."""
    cdef long per_unit = unit // itemsize
    return (n + per_unit - 1) // per_unit * per_unit


cdef inline floating *unit_start(floating *p, int unit) noexcept nogil:
    """The first ``unit``-byte boundary at or after ``p`` (a buffer needs
    ``unit`` bytes more to hold it)."""
    return p + ((unit - <size_t> p % unit) % unit) // sizeof(floating)


cdef inline long whole_lines(long n, int itemsize) noexcept nogil:
    """``n`` elements rounded up to whole cache lines."""
    return whole_units(n, itemsize, LINE_BYTES)


cdef inline floating *line_start(floating *p) noexcept nogil:
    """The first cache-line boundary at or after ``p``."""
    return unit_start(p, LINE_BYTES)


cdef inline long whole_pages(long n, int itemsize) noexcept nogil:
    """``n`` elements rounded up to whole pages."""
    return whole_units(n, itemsize, PAGE_BYTES)


cdef inline floating *page_start(floating *p) noexcept nogil:
    """The first page boundary at or after ``p``."""
    return unit_start(p, PAGE_BYTES)


cdef inline void add_partials(long n, int count, long pstride,
                              const floating *partials,
                              floating *out) noexcept nogil:
    """out[0:n] = the sum of ``count`` partials ``pstride`` apart, in their
    order (the in-loop weight gradients' groups)."""
    cdef long i
    cdef int g
    for i in range(n):
        out[i] = partials[i]
    for g in range(1, count):
        for i in range(n):
            out[i] += partials[g * pstride + i]
