# cbptt._blas: the one place where cbptt calls BLAS (scipy.linalg.cython_blas).
#
# Every caller thinks in C order (row-major); the swap to BLAS's column-major
# convention happens only in _blas.pyx. Integers passed to BLAS are blas_int.
from cython cimport floating

include "cbptt_blas_int.pxi"

cdef void gemm(bint trans_a, bint trans_b, int m, int n, int k,
               floating alpha, const floating *a, int lda,
               const floating *b, int ldb,
               floating beta, floating *c, int ldc) noexcept nogil
