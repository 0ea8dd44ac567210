/* cbptt_scan.h: one-pass value scans for the API boundary.
 *
 * Contract
 * --------
 * - cbptt_all_finite_{f,d}(n, a): 1 iff a[0:n] holds no NaN and no infinity.
 * - cbptt_colmax_{f,d}(rows, n, a, cm, bad): for every row r of the
 *   C-contiguous a (rows x n),
 *       cm[j]  = max(cm[j], |a[r*n + j]|)
 *       bad[j] += a - a    (0 for a finite value, NaN for NaN or infinity)
 *   so after the last row, bad[j] == 0 iff column j is finite;
 *   cbptt_colmax_finish_{f,d}(n, cm, bad, out) then writes out[j] = cm[j] in
 *   double, or NaN where bad[j] != 0.
 * - cbptt_copy_finite_{f,d}(n, src, dst): dst[0:n] = src[0:n], and 1 iff
 *   those values hold no NaN and no infinity (one pass: copy and check).
 * - cbptt_time_major_{f,d}(B, T, F, src, sb, st, sf, dst, cm, bad):
 *       dst[(t*B + b)*F + j] = src[b*sb + t*st + j*sf]
 *   (dst must not overlap src) then, unless cm is NULL, the column scan
 *   above over dst.
 *
 * Every loop is elementwise across its innermost index, so the compiler
 * vectorises it without reassociating a sum (no -ffast-math needed): the
 * "sum" of a - a is a per-lane accumulation of exact zeros, or NaN.
 */
#ifndef CBPTT_SCAN_H
#define CBPTT_SCAN_H

#include <string.h>
#include "cbptt_isa.h"

/* Compiled for each level of src/cbptt_isa.h and dispatched by cbptt_isa(),
 * so that cbptt.set_isa and CBPTT_ISA reach the scans too. The x86 levels
 * take only the vector width (avx2, avx512f; the code the loader's
 * target_clones picked before): the scans do no arithmetic an FMA could
 * fuse, so their results are the same at every level. */
#if defined(CBPTT_X86_DISPATCH)
#define CBPTT_SCAN_ATTR_AVX512 __attribute__((target("avx512f")))
#define CBPTT_SCAN_ATTR_AVX2 __attribute__((target("avx2")))
#endif
#define CBPTT_SCAN_LANES 16
#define CBPTT_SCAN_WIDE 64
#define CBPTT_SCAN_CHUNK 8

#define CBPTT_DEFINE_SCAN(T, S, SUF, ATTR)                                    \
ATTR static int cbptt_all_finite_##S##_##SUF(long n, const T *a)              \
{                                                                             \
    T acc[CBPTT_SCAN_LANES] = {0};                                            \
    long i = 0;                                                               \
    int j;                                                                    \
    for (; i + CBPTT_SCAN_LANES <= n; i += CBPTT_SCAN_LANES)                  \
        for (j = 0; j < CBPTT_SCAN_LANES; j++)                                \
            acc[j] += a[i + j] - a[i + j];                                    \
    for (; i < n; i++) acc[0] += a[i] - a[i];                                 \
    for (j = 0; j < CBPTT_SCAN_LANES; j++)                                    \
        if (!(acc[j] == 0)) return 0;                                         \
    return 1;                                                                 \
}                                                                             \
                                                                              \
ATTR static int cbptt_copy_finite_##S##_##SUF(long n, const T *src, T *dst)   \
{                                                                             \
    T acc[CBPTT_SCAN_LANES] = {0};                                            \
    long i = 0;                                                               \
    int j;                                                                    \
    for (; i + CBPTT_SCAN_LANES <= n; i += CBPTT_SCAN_LANES)                  \
        for (j = 0; j < CBPTT_SCAN_LANES; j++) {                              \
            T x = src[i + j];                                                 \
            dst[i + j] = x;                                                   \
            acc[j] += x - x;                                                  \
        }                                                                     \
    for (; i < n; i++) {                                                      \
        T x = src[i];                                                         \
        dst[i] = x;                                                           \
        acc[0] += x - x;                                                      \
    }                                                                         \
    for (j = 0; j < CBPTT_SCAN_LANES; j++)                                    \
        if (!(acc[j] == 0)) return 0;                                         \
    return 1;                                                                 \
}                                                                             \
                                                                              \
ATTR static void cbptt_colmax_##S##_##SUF(long rows, long n, const T *a,      \
                                          T *cm, T *bad)                      \
{                                                                             \
    /* Rows of n < 64 are short: when n divides 64, fold 64 / n consecutive   \
     * rows into one chunk of 64 elements (element j of a chunk is in         \
     * column j % n), scan the chunks with 64 accumulators, fold them back. */ \
    T wcm[CBPTT_SCAN_WIDE] = {0}, wbad[CBPTT_SCAN_WIDE] = {0};                \
    long total = rows * n, i = 0, j;                                          \
    if (n < CBPTT_SCAN_WIDE && CBPTT_SCAN_WIDE % n == 0) {                    \
        for (; i + CBPTT_SCAN_WIDE <= total; i += CBPTT_SCAN_WIDE)            \
            for (j = 0; j < CBPTT_SCAN_WIDE; j++) {                           \
                T x = a[i + j], v = x < 0 ? -x : x;                           \
                wcm[j] = v > wcm[j] ? v : wcm[j];                             \
                wbad[j] += x - x;                                             \
            }                                                                 \
        for (j = 0; j < CBPTT_SCAN_WIDE; j++) {                               \
            cm[j % n] = wcm[j] > cm[j % n] ? wcm[j] : cm[j % n];              \
            bad[j % n] += wbad[j];                                            \
        }                                                                     \
    }                                                                         \
    for (; i < total; i += n)               /* the rest, row by row */        \
        for (j = 0; j < n; j++) {                                             \
            T x = a[i + j], v = x < 0 ? -x : x;                               \
            cm[j] = v > cm[j] ? v : cm[j];                                    \
            bad[j] += x - x;                                                  \
        }                                                                     \
}                                                                             \
                                                                              \
ATTR static void cbptt_time_major_##S##_##SUF(long B, long T_, long F,        \
                                 const T *src, long sb, long st, long sf,     \
                                 T *dst, T *cm, T *bad)                       \
{                                                                             \
    /* dst is written in order, row by row; a unit-stride row is copied in    \
     * chunks of CBPTT_SCAN_CHUNK (a fixed count the compiler turns into a    \
     * few vector moves), then the tail. */                                   \
    long b, t, j;                                                             \
    int k;                                                                    \
    if (sf == 1 && sb == F && st == B * F)      /* already time-major */      \
        memcpy(dst, src, (size_t)(T_ * B * F) * sizeof(T));                   \
    else                                                                      \
    for (t = 0; t < T_; t++)                                                  \
        for (b = 0; b < B; b++) {                                             \
            const T *restrict s = src + b * sb + t * st;                      \
            T *restrict d = dst + (t * B + b) * F;                            \
            if (sf == 1) {                                                    \
                for (j = 0; j + CBPTT_SCAN_CHUNK <= F; j += CBPTT_SCAN_CHUNK) \
                    for (k = 0; k < CBPTT_SCAN_CHUNK; k++)                    \
                        d[j + k] = s[j + k];                                  \
                for (; j < F; j++) d[j] = s[j];                               \
            } else                                                            \
                for (j = 0; j < F; j++) d[j] = s[j * sf];                     \
        }                                                                     \
    if (cm != 0) cbptt_colmax_##S##_##SUF(T_ * B, F, dst, cm, bad);           \
}

CBPTT_DEFINE_SCAN(float, f, base, )
CBPTT_DEFINE_SCAN(double, d, base, )
#ifdef CBPTT_X86_DISPATCH
CBPTT_DEFINE_SCAN(float, f, avx2, CBPTT_SCAN_ATTR_AVX2)
CBPTT_DEFINE_SCAN(double, d, avx2, CBPTT_SCAN_ATTR_AVX2)
CBPTT_DEFINE_SCAN(float, f, avx512, CBPTT_SCAN_ATTR_AVX512)
CBPTT_DEFINE_SCAN(double, d, avx512, CBPTT_SCAN_ATTR_AVX512)
#endif

#define CBPTT_DEFINE_SCAN_DISPATCH(T, S)                                      \
static inline int cbptt_all_finite_##S(long n, const T *a)                    \
{                                                                             \
    CBPTT_DISPATCH_RET(cbptt_all_finite_##S, (n, a))                          \
}                                                                             \
static inline int cbptt_copy_finite_##S(long n, const T *src, T *dst)         \
{                                                                             \
    CBPTT_DISPATCH_RET(cbptt_copy_finite_##S, (n, src, dst))                  \
}                                                                             \
static inline void cbptt_colmax_##S(long rows, long n, const T *a, T *cm,     \
                                    T *bad)                                   \
{                                                                             \
    CBPTT_DISPATCH(cbptt_colmax_##S, (rows, n, a, cm, bad))                   \
}                                                                             \
static inline void cbptt_time_major_##S(long B, long T_, long F,              \
                                        const T *src, long sb, long st,       \
                                        long sf, T *dst, T *cm, T *bad)       \
{                                                                             \
    CBPTT_DISPATCH(cbptt_time_major_##S,                                      \
                   (B, T_, F, src, sb, st, sf, dst, cm, bad))                 \
}                                                                             \
static void cbptt_colmax_finish_##S(long n, const T *cm, const T *bad,        \
                                    double *out)                              \
{                                                                             \
    long j;                                                                   \
    for (j = 0; j < n; j++)                                                   \
        out[j] = bad[j] == 0 ? (double)cm[j] : __builtin_nan("");             \
}

CBPTT_DEFINE_SCAN_DISPATCH(float, f)
CBPTT_DEFINE_SCAN_DISPATCH(double, d)

#endif /* CBPTT_SCAN_H */
