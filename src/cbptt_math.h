/* cbptt_math.h: pointwise maths shared by the Cython kernels.
 *
 * Contract: every function is `static inline`, exists for float (suffix _f)
 * and double (suffix _d), allocates nothing and touches only the n elements
 * it is given. Derivatives are taken from the stored forward *outputs*
 * (y = f(net)), the way min-char-rnn does: tanh' = 1 - y^2, logistic' =
 * y (1 - y), relu' = [y > 0], identity' = 1.
 *
 * Activation codes (the order of scikit-learn's names):
 *   0 identity, 1 logistic, 2 tanh, 3 relu.
 */
#ifndef CBPTT_MATH_H
#define CBPTT_MATH_H

#include <math.h>
#include "cbptt_vmath.h"

#define CBPTT_IDENTITY 0
#define CBPTT_LOGISTIC 1
#define CBPTT_TANH 2
#define CBPTT_RELU 3
#define CBPTT_N_ACTIVATIONS 4

/* The activations' names, indexed by code: the one table every layer above
 * reads (cbptt._cells.activations builds the Python table from it). */
static const char *const cbptt_activation_names[CBPTT_N_ACTIVATIONS] = {
    "identity", "logistic", "tanh", "relu"};

#define CBPTT_DEFINE_MATH(T, S)                                               \
/* d[0:n] = f'(net) * (g[0:n] + c[0:n]) with f' taken from y = f(net).        \
 * c may be NULL (no carried error). */                                       \
static inline void cbptt_delta_##S(int act, T *d, const T *y, const T *g,     \
                                   const T *c, long n)                        \
{                                                                             \
    long i;                                                                   \
    if (c == 0) {                                                             \
        switch (act) {                                                        \
        case CBPTT_LOGISTIC:                                                  \
            for (i = 0; i < n; i++)                                           \
                d[i] = y[i] * ((T)1 - y[i]) * g[i];                           \
            break;                                                            \
        case CBPTT_TANH:                                                      \
            for (i = 0; i < n; i++)                                           \
                d[i] = ((T)1 - y[i] * y[i]) * g[i];                           \
            break;                                                            \
        case CBPTT_RELU:                                                      \
            for (i = 0; i < n; i++)                                           \
                d[i] = y[i] > (T)0 ? g[i] : (T)0;                             \
            break;                                                            \
        default:                                                              \
            for (i = 0; i < n; i++) d[i] = g[i];                              \
        }                                                                     \
        return;                                                               \
    }                                                                         \
    switch (act) {                                                            \
    case CBPTT_LOGISTIC:                                                      \
        for (i = 0; i < n; i++)                                               \
            d[i] = y[i] * ((T)1 - y[i]) * (g[i] + c[i]);                      \
        break;                                                                \
    case CBPTT_TANH:                                                          \
        for (i = 0; i < n; i++)                                               \
            d[i] = ((T)1 - y[i] * y[i]) * (g[i] + c[i]);                      \
        break;                                                                \
    case CBPTT_RELU:                                                          \
        for (i = 0; i < n; i++)                                               \
            d[i] = y[i] > (T)0 ? g[i] + c[i] : (T)0;                          \
        break;                                                                \
    default:                                                                  \
        for (i = 0; i < n; i++) d[i] = g[i] + c[i];                           \
    }                                                                         \
}

CBPTT_DEFINE_MATH(float, f)
CBPTT_DEFINE_MATH(double, d)

#endif /* CBPTT_MATH_H */
