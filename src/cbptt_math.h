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

/* LOGISTIC and TANH: the branch-free, vectorisable cbptt_vmath.h versions. */ \
#define CBPTT_DEFINE_MATH(T, S, LOGISTIC, TANH)                               \
static inline T cbptt_logistic_##S(T x) { return LOGISTIC(x); }               \
static inline T cbptt_tanh_##S(T x) { return TANH(x); }                       \
                                                                              \
/* z[0:n] = f(z[0:n] + b[0:n]): bias add and activation in one pass. */       \
static inline void cbptt_bias_activate_##S(int act, T *z, const T *b, long n) \
{                                                                             \
    long i;                                                                   \
    switch (act) {                                                            \
    case CBPTT_LOGISTIC:                                                      \
        for (i = 0; i < n; i++) z[i] = cbptt_logistic_##S(z[i] + b[i]);       \
        break;                                                                \
    case CBPTT_TANH:                                                          \
        for (i = 0; i < n; i++) z[i] = TANH(z[i] + b[i]);                     \
        break;                                                                \
    case CBPTT_RELU:                                                          \
        for (i = 0; i < n; i++) { T v = z[i] + b[i]; z[i] = v > (T)0 ? v : (T)0; } \
        break;                                                                \
    default:                                                                  \
        for (i = 0; i < n; i++) z[i] += b[i];                                 \
    }                                                                         \
}                                                                             \
                                                                              \
/* d[0:n] = f'(net) * (g[0:n] + c[0:n]) with f' taken from y = f(net).        \
 * c may be NULL (no carried error). */                                       \
static inline void cbptt_delta_##S(int act, T *d, const T *y, const T *g,     \
                                   const T *c, long n)                        \
{                                                                             \
    long i;                                                                   \
    if (c == 0) {                                                             \
        switch (act) {                                                        \
        case CBPTT_LOGISTIC:                                                  \
            for (i = 0; i < n; i++) d[i] = y[i] * ((T)1 - y[i]) * g[i]; break; \
        case CBPTT_TANH:                                                      \
            for (i = 0; i < n; i++) d[i] = ((T)1 - y[i] * y[i]) * g[i]; break; \
        case CBPTT_RELU:                                                      \
            for (i = 0; i < n; i++) d[i] = y[i] > (T)0 ? g[i] : (T)0; break;  \
        default:                                                              \
            for (i = 0; i < n; i++) d[i] = g[i];                              \
        }                                                                     \
        return;                                                               \
    }                                                                         \
    switch (act) {                                                            \
    case CBPTT_LOGISTIC:                                                      \
        for (i = 0; i < n; i++) d[i] = y[i] * ((T)1 - y[i]) * (g[i] + c[i]); break; \
    case CBPTT_TANH:                                                          \
        for (i = 0; i < n; i++) d[i] = ((T)1 - y[i] * y[i]) * (g[i] + c[i]); break; \
    case CBPTT_RELU:                                                          \
        for (i = 0; i < n; i++) d[i] = y[i] > (T)0 ? g[i] + c[i] : (T)0; break; \
    default:                                                                  \
        for (i = 0; i < n; i++) d[i] = g[i] + c[i];                           \
    }                                                                         \
}

CBPTT_DEFINE_MATH(float, f, cbptt_logistic_v_f, cbptt_tanh_v_f)
CBPTT_DEFINE_MATH(double, d, cbptt_logistic_v_d, cbptt_tanh_v_d)

/* out[0:cols] = sum over the rows of the C-ordered (rows x cols) matrix a:
 * a bias gradient, the error signals summed over every step and sequence. */
#define CBPTT_DEFINE_REDUCE(T, S)                                             \
static inline void cbptt_column_sums_##S(T *out, const T *a, long rows,      \
                                         long cols)                           \
{                                                                             \
    long r, j;                                                                \
    for (j = 0; j < cols; j++) out[j] = (T)0;                                 \
    for (r = 0; r < rows; r++) {                                              \
        const T *row = a + r * cols;                                          \
        for (j = 0; j < cols; j++) out[j] += row[j];                          \
    }                                                                         \
}

CBPTT_DEFINE_REDUCE(float, f)
CBPTT_DEFINE_REDUCE(double, d)

#endif /* CBPTT_MATH_H */
