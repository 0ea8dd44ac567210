/* cbptt_vmath.h: accurate exp, tanh and logistic that compilers vectorise.
 *
 * Contract: every function is `static inline`, branch-free (selects only, no
 * libm call, no table), exists for float (_f) and double (_d), and is
 * written so that GCC and Clang vectorise a loop calling it without
 * -ffast-math. Accuracy against glibc over the whole range (tested in
 * tests/test_elman_kernels.py): a few ulp (double: < 1e-15 relative for
 * tanh and logistic; float: < 4e-7). NaN propagates; +-inf give the limits.
 *
 * Method: exp(x) = 2^n (1 + p(r)) with n = round(x / ln 2) (the 1.5 * 2^52
 * shifter, no rounding call), r = x - n ln 2 (|r| <= ln2/2), 2^n built in
 * the exponent bits, and p(r) = expm1(r) = r + r^2 q(r) with q a near-minimax
 * polynomial on [-ln2/2, ln2/2] (Chebyshev fit; degree 9 for double, 4 for
 * float: truncation error 4e-17 and 2e-8 relative, below half an ulp).
 * Then
 *   tanh(x)     = sign(x) em / (em + 2),    em = expm1(2|x|) = 2^n p + (2^n - 1)
 *   logistic(x) = num / (1 + e),            e = exp(-|x|), num = 1 or e
 * which never cancel: both are accurate in relative terms everywhere,
 * including near 0, where 1 - 2/(e^{2x} + 1) would lose every digit.
 * The logistic's exp(-|x|) is the result itself for x << 0, so its r takes
 * ln 2 in two pieces (Cody-Waite: r exact); tanh takes one FMA with ln 2
 * rounded once, an error n ulp(ln 2) in r that tanh's 2 / (em + 2) damps
 * by 2^(1-n): below an ulp of the result for every n.
 */
#ifndef CBPTT_VMATH_H
#define CBPTT_VMATH_H

#include <stdint.h>
#include <string.h>

/* ---- double ---------------------------------------------------------- */

#define CBPTT_LOG2E_D 1.4426950408889634
#define CBPTT_LN2HI_D 6.93147180369123816490e-01 /* 32 trailing zero bits */
#define CBPTT_LN2LO_D 1.90821492927058770002e-10
#define CBPTT_SHIFT_D 6755399441055744.0         /* 1.5 * 2^52 */

/* n = round(x / ln2) (returned) and *s = 2^n.
 * Needs -1022 <= n <= 1023 (callers clamp x). */
static inline double cbptt_exp_split_d(double x, double *s)
{
    double t = x * CBPTT_LOG2E_D + CBPTT_SHIFT_D; /* n in the low bits */
    uint64_t u;
    memcpy(&u, &t, sizeof u);
    u = (u << 52) + ((uint64_t)1023 << 52);        /* exponent field n + 1023 */
    memcpy(s, &u, sizeof u);
    return t - CBPTT_SHIFT_D;                      /* exact */
}

/* x = n ln2 + r with |r| <= ln2/2; returns r, sets *s = 2^n. */
static inline double cbptt_exp_reduce_d(double x, double *s)
{
    double n = cbptt_exp_split_d(x, s);
    return (x - n * CBPTT_LN2HI_D) - n * CBPTT_LN2LO_D;
}

/* The same with ln 2 rounded once (one FMA; see the header): tanh only. */
static inline double cbptt_exp_reduce1_d(double x, double *s)
{
    double n = cbptt_exp_split_d(x, s);
    return x - n * 6.93147180559945309417e-01;
}

/* expm1(r) for |r| <= ln2/2: r + r^2 q(r), q near-minimax of degree 9 */
static inline double cbptt_expm1_poly_d(double r)
{
    double q = 2.510037583256123366e-8;
    q = q * r + 2.762007587998336659e-7;
    q = q * r + 2.755726848031002553e-6;
    q = q * r + 2.480152132236869327e-5;
    q = q * r + 1.984126986304054527e-4;
    q = q * r + 1.388888891719671908e-3;
    q = q * r + 8.333333333330064449e-3;
    q = q * r + 4.166666666662416190e-2;
    q = q * r + 1.666666666666666745e-1;
    q = q * r + 5.000000000000001021e-1;
    return r + (r * r) * q;
}

/* exp(-a) for a >= 0 (a NaN gives NaN); a > -ln(DBL_MIN) = 708.3964 is
 * treated as that (2^n stays a normal number). */
static inline double cbptt_exp_neg_d(double a)
{
    double s, p;
    a = a > 708.3964 ? 708.3964 : a;
    p = cbptt_expm1_poly_d(cbptt_exp_reduce_d(-a, &s));
    return s + s * p;
}

static inline double cbptt_tanh_v_d(double x)
{
    double a = __builtin_fabs(x), s, p, em;
    a = a > 20.0 ? 20.0 : a;          /* tanh(20) rounds to 1; NaN passes */
    p = cbptt_expm1_poly_d(cbptt_exp_reduce1_d(2.0 * a, &s));
    em = s * p + (s - 1.0);           /* expm1(2a) */
    return __builtin_copysign(em / (em + 2.0), x);
}

static inline double cbptt_logistic_v_d(double x)
{
    double a = __builtin_fabs(x);
    double e = cbptt_exp_neg_d(a);    /* exp(-|x|) in (0, 1] */
    double y = (x < 0.0 ? e : 1.0) / (1.0 + e);
    return x < -708.3964 ? 0.0 : y;   /* below the smallest normal: 0 */
}

/* ---- float ----------------------------------------------------------- */

#define CBPTT_LOG2E_F 1.44269504f
#define CBPTT_LN2HI_F 0.693359375f         /* 355/512, exact in a few bits */
#define CBPTT_LN2LO_F -2.12194440e-4f
#define CBPTT_SHIFT_F 12582912.0f          /* 1.5 * 2^23 */

static inline float cbptt_exp_split_f(float x, float *s)
{
    float t = x * CBPTT_LOG2E_F + CBPTT_SHIFT_F;
    uint32_t u;
    memcpy(&u, &t, sizeof u);
    u = (u << 23) + ((uint32_t)127 << 23);
    memcpy(s, &u, sizeof u);
    return t - CBPTT_SHIFT_F;
}

static inline float cbptt_exp_reduce_f(float x, float *s)
{
    float n = cbptt_exp_split_f(x, s);
    return (x - n * CBPTT_LN2HI_F) - n * CBPTT_LN2LO_F;
}

static inline float cbptt_exp_reduce1_f(float x, float *s)
{
    float n = cbptt_exp_split_f(x, s);
    return x - n * 0.693147182f;
}

/* expm1(r) for |r| <= ln2/2: r + r^2 q(r), q near-minimax of degree 4 */
static inline float cbptt_expm1_poly_f(float r)
{
    float q = 1.392617612e-3f;
    q = q * r + 8.363173075e-3f;
    q = q * r + 4.166655466e-2f;
    q = q * r + 1.666657703e-1f;
    q = q * r + 0.5f;
    return r + (r * r) * q;
}

static inline float cbptt_exp_neg_f(float a)
{
    float s, p;
    a = a > 87.3365f ? 87.3365f : a;  /* -ln(FLT_MIN) */
    p = cbptt_expm1_poly_f(cbptt_exp_reduce_f(-a, &s));
    return s + s * p;
}

static inline float cbptt_tanh_v_f(float x)
{
    float a = __builtin_fabsf(x), s, p, em;
    a = a > 9.0f ? 9.0f : a;          /* tanh(9) rounds to 1 in float */
    p = cbptt_expm1_poly_f(cbptt_exp_reduce1_f(2.0f * a, &s));
    em = s * p + (s - 1.0f);
    return __builtin_copysignf(em / (em + 2.0f), x);
}

static inline float cbptt_logistic_v_f(float x)
{
    float a = __builtin_fabsf(x);
    float e = cbptt_exp_neg_f(a);
    float y = (x < 0.0f ? e : 1.0f) / (1.0f + e);
    return x < -87.3365f ? 0.0f : y;
}

#endif /* CBPTT_VMATH_H */
