# cbptt._kernels: C declarations shared by the Cython kernels (src/*.h).
cdef extern from "cbptt_math.h" nogil:
    int CBPTT_IDENTITY, CBPTT_LOGISTIC, CBPTT_TANH, CBPTT_RELU
    int CBPTT_N_ACTIVATIONS
    const char *const *cbptt_activation_names
    void cbptt_delta_f(int act, float *d, const float *y, const float *g,
                       const float *c, long n)
    void cbptt_delta_d(int act, double *d, const double *y, const double *g,
                       const double *c, long n)

cdef extern from "cbptt_fpenv.h" nogil:
    unsigned int cbptt_ftz_enter()
    void cbptt_ftz_leave(unsigned int saved)
