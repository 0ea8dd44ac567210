# cbptt._simd: declarations of src/cbptt_simd.h (the per-step building blocks
# compiled for several instruction sets, chosen at run time) and of the
# thread limit in src/cbptt_fpenv.h. Contracts are in the headers.
cdef extern from "cbptt_simd.h" nogil:
    int cbptt_isa()
    void cbptt_pack_f(int n, int k, const float *w, long rs, long cs,
                      float *packed)
    void cbptt_pack_d(int n, int k, const double *w, long rs, long cs,
                      double *packed)
    void cbptt_mm_f(int m, int n, int k, const float *a, long lda,
                    const float *packed, float *c, long ldc, int accumulate)
    void cbptt_mm_d(int m, int n, int k, const double *a, long lda,
                    const double *packed, double *c, long ldc, int accumulate)
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
