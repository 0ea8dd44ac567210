"""Row-major BLAS for cbptt's kernels, over ``scipy.linalg.cython_blas``.

Contract: ``gemm`` computes ``C = alpha op(A) op(B) + beta C`` for C-ordered
(row-major) matrices, where ``op(A)`` is ``(m x k)``, ``op(B)`` is
``(k x n)`` and ``C`` is ``(m x n)``; ``lda``, ``ldb`` and ``ldc`` are the row
strides in elements. One fused source serves float32 (sgemm) and float64
(dgemm). Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T,
so the operands are swapped here and nowhere else.
"""
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating *a, int lda,
               const floating *b, int ldb,
               floating beta, floating *c, int ldc) noexcept nogil:
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef blas_int bm = m, bn = n, bk = k
    cdef blas_int blda = lda, bldb = ldb, bldc = ldc
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &bn, &bm, &bk, &alpha, <float *> b, &bldb,
              <float *> a, &blda, &beta, c, &bldc)
    else:
        dgemm(&tb, &ta, &bn, &bm, &bk, &alpha, <double *> b, &bldb,
              <double *> a, &blda, &beta, c, &bldc)


def _gemm_check(floating[:, ::1] a, floating[:, ::1] b, floating[:, ::1] c,
                bint trans_a, bint trans_b, double alpha, double beta):
    """Test twin of ``gemm``: ``c = alpha op(a) op(b) + beta c`` in place."""
    cdef int m = a.shape[1] if trans_a else a.shape[0]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int n = b.shape[0] if trans_b else b.shape[1]
    cdef int kb = b.shape[1] if trans_b else b.shape[0]
    if k != kb or c.shape[0] != m or c.shape[1] != n:
        raise ValueError("_gemm_check: inconsistent shapes")
    with nogil:
        gemm(trans_a, trans_b, m, n, k, <floating> alpha, &a[0, 0], a.shape[1],
             &b[0, 0], b.shape[1], <floating> beta, &c[0, 0], c.shape[1])
