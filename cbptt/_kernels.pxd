# cbptt._kernels: C declarations shared by the Cython kernels (src/*.h).
cdef extern from "cbptt_math.h" nogil:
    int CBPTT_IDENTITY, CBPTT_LOGISTIC, CBPTT_TANH, CBPTT_RELU
    float cbptt_logistic_f(float x)
    double cbptt_logistic_d(double x)
    float cbptt_tanh_f(float x)
    double cbptt_tanh_d(double x)
    void cbptt_bias_activate_f(int act, float *z, const float *b, long n)
    void cbptt_bias_activate_d(int act, double *z, const double *b, long n)
    void cbptt_delta_f(int act, float *d, const float *y, const float *g,
                       const float *c, long n)
    void cbptt_delta_d(int act, double *d, const double *y, const double *g,
                       const double *c, long n)
    void cbptt_column_sums_f(float *out, const float *a, long rows, long cols)
    void cbptt_column_sums_d(double *out, const double *a, long rows, long cols)

cdef extern from "cbptt_fpenv.h" nogil:
    unsigned int cbptt_ftz_enter()
    void cbptt_ftz_leave(unsigned int saved)
