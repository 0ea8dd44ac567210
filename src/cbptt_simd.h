/* cbptt_simd.h: per-step building blocks of the recurrent layers, compiled
 * for three x86 instruction sets and chosen at run time.
 *
 * Contract
 * --------
 * - cbptt_pack_{f,d}(n, k, w, rs, cs, packed): W[kk, j] = w[kk*rs + j*cs]
 *   (k x n; rs, cs strides, so W or its transpose) into `packed` (k*n
 *   elements) in the panel layout of this process's instruction set.
 * - cbptt_mm_{f,d}(m, n, k, a, lda, ak, w, ldw, c, ldc, accumulate):
 *       C[0:m, 0:n] (+)= A[0:m, 0:k] W[0:k, 0:n], with A[r, kk] at
 *   a[r*lda + kk*ak] (so A or a transpose), C row-major with row stride ldc,
 *   W packed by cbptt_pack (ldw = 0) or row-major with row stride ldw > 0
 *   (streamed once, e.g. the all-steps weight gradients, K = T*B).
 *   The small per-step product (m = rows
 *   of a batch, n, k <= a few hundred), where a BLAS call costs more than
 *   its arithmetic. "axpy form": every output row is a sum over k of
 *   a[r, k] * (row k of W), so the loops run over a contiguous output row
 *   and vectorise without reassociation (no -ffast-math).
 * - cbptt_col_sums_{f,d}(rows, n, a, lda, out, accumulate):
 *       out[0:n] (+)= sum over r of a[r*lda + 0:n]   (a bias gradient)
 *   in 8 interleaved partial sums (rows 8q + i, i < 8, then the last rows
 *   into the first), added pairwise: a one-accumulator sum waits for each
 *   addition's latency. Columns past the last full vector: the same sums,
 *   lane by lane, so a column's value does not depend on its position.
 * - cbptt_bias_act_rows_{f,d}(act, m, n, z, ldz, b):  z[r, :] = f(z[r, :] + b)
 *   (z + b rounded first, then f: the same values whatever the loop shape)
 * - cbptt_delta_rows_{f,d}(act, len, d, y, g, carry):
 *       d = f'(y) * (g + (carry ? d : 0))   (d holds the carried error on entry)
 *
 * Determinism: every output element is computed by the same sequence of
 * operations (its initial value, then one multiply-add per k in increasing
 * k) whichever tile, row block or thread computes it, so results do not
 * depend on how rows are split among threads. They can differ between
 * instruction sets (FMA or not), i.e. between machines, never between runs.
 *
 * Dispatch (src/cbptt_isa.h): cbptt_isa() picks 2 (AVX-512: F, DQ, BW, VL),
 * 1 (AVX2 + FMA) or 0 (the compiler's baseline: 16-byte vectors, SSE2 on
 * x86-64, NEON on aarch64); the environment variable CBPTT_ISA lowers it,
 * cbptt_isa_limit and cbptt.set_isa set it (tests run every path).
 * Elsewhere than x86-64 with GCC/Clang only the baseline exists.
 */
#ifndef CBPTT_SIMD_H
#define CBPTT_SIMD_H

#include <stdlib.h>
#include "cbptt_isa.h"
#include "cbptt_math.h"
#include "cbptt_vmath.h"

/* Load/store a vector from/to any element-aligned address. */
#define CBPTT_LD(V, p) (*(const V *)(p))
#define CBPTT_ST(V, p, x) (*(V *)(p) = (x))

/* One register tile: rows r0..r0+RB-1 of C, columns jc..jc+NV*L-1 (column
 * jc of C is column pc of the panel wp, whose rows are ldw apart). */
#define CBPTT_MM_TILE(T, V, L, RB, NV)                                        \
    do {                                                                      \
        V acc_[RB][NV];                                                       \
        int r_, v_;                                                           \
        long kk_;                                                             \
        for (r_ = 0; r_ < RB; r_++)                                           \
            for (v_ = 0; v_ < NV; v_++)                                       \
                acc_[r_][v_] = accumulate                                     \
                    ? CBPTT_LD(V, c + (long)(r0 + r_) * ldc + jc + v_ * L)    \
                    : zero_;                                                  \
        for (kk_ = 0; kk_ < k; kk_++) {                                       \
            const T *wr_ = wp + kk_ * ldw + pc;                               \
            V wv_[NV];                                                        \
            for (v_ = 0; v_ < NV; v_++) wv_[v_] = CBPTT_LD(V, wr_ + v_ * L);  \
            for (r_ = 0; r_ < RB; r_++) {                                     \
                T av_ = a[(long)(r0 + r_) * lda + kk_ * ak];                  \
                for (v_ = 0; v_ < NV; v_++) acc_[r_][v_] += av_ * wv_[v_];    \
            }                                                                 \
        }                                                                     \
        for (r_ = 0; r_ < RB; r_++)                                           \
            for (v_ = 0; v_ < NV; v_++)                                       \
                CBPTT_ST(V, c + (long)(r0 + r_) * ldc + jc + v_ * L,          \
                         acc_[r_][v_]);                                       \
    } while (0)

/* Everything one instruction set needs, for one element type.
 * Packed W: panels of P = NVP vectors (NVP * L columns), panel j0 at
 * packed + j0*k, stored k rows x its width (the last panel narrower),
 * contiguous: the tile streams its panel linearly (no cache-set conflicts
 * from a power-of-two row stride) and the panel stays in L1 while every row
 * block of A passes over it. Tiles: 4 rows x NVP vectors on full panels;
 * the last panel takes 4 x 2, 8 x 1 and scalar columns as they fit. */
#define CBPTT_DEFINE_SIMD(T, S, SUF, ATTR, VBYTES, NVP, TANH, LOGISTIC)       \
ATTR static void cbptt_pack_##S##_##SUF(                                      \
    int n, int k, const T *w, long rs, long cs, T *packed)                    \
{                                                                             \
    enum { P = NVP * (VBYTES / (int)sizeof(T)) };                             \
    int j0, j, kk;                                                            \
    for (j0 = 0; j0 < n; j0 += P) {                                           \
        int width = n - j0 < P ? n - j0 : P;                                  \
        T *panel = packed + (long)j0 * k;                                     \
        if (cs == 1)          /* rows of W contiguous: vectorised copies */   \
            for (kk = 0; kk < k; kk++) {                                      \
                const T *src = w + kk * rs + j0;                              \
                T *dst = panel + (long)kk * width;                            \
                for (j = 0; j < width; j++) dst[j] = src[j];                  \
            }                                                                 \
        else                                                                  \
            for (kk = 0; kk < k; kk++)                                        \
                for (j = 0; j < width; j++)                                   \
                    panel[(long)kk * width + j] = w[kk * rs + (j0 + j) * cs]; \
    }                                                                         \
}                                                                             \
                                                                              \
ATTR static inline __attribute__((always_inline))                             \
void cbptt_mm_body_##S##_##SUF(                                               \
    int m, int n, int k, const T *a, long lda, long ak, const T *w,           \
    long ldw_plain, T *c, long ldc, int accumulate)                           \
{                                                                             \
    typedef T V __attribute__((vector_size(VBYTES), aligned(sizeof(T)),       \
                               may_alias));                                   \
    typedef T VH __attribute__((vector_size(VBYTES / 2), aligned(sizeof(T)),  \
                                may_alias));                                  \
    enum { L = VBYTES / (int)sizeof(T), P = NVP * L };                        \
    const V zero_ = {0};                                                      \
    int j0, r0;                                                               \
    for (j0 = 0; j0 < n; j0 += P) {                                           \
        const int width = n - j0 < P ? n - j0 : P;                            \
        const long ldw = ldw_plain > 0 ? ldw_plain : width;                   \
        const T *wp = ldw_plain > 0 ? w + j0 : w + (long)j0 * k;              \
        int pc = 0, jc = j0;                                                  \
        if (width == P) {                                                     \
            for (r0 = 0; r0 + 4 <= m; r0 += 4) CBPTT_MM_TILE(T, V, L, 4, NVP); \
            for (; r0 < m; r0++) CBPTT_MM_TILE(T, V, L, 1, NVP);              \
            continue;                                                         \
        }                                                                     \
        for (; width - pc >= 2 * L; pc += 2 * L, jc += 2 * L) {               \
            for (r0 = 0; r0 + 4 <= m; r0 += 4) CBPTT_MM_TILE(T, V, L, 4, 2);  \
            for (; r0 < m; r0++) CBPTT_MM_TILE(T, V, L, 1, 2);                \
        }                                                                     \
        if (width - pc >= L) {                                                \
            for (r0 = 0; r0 + 8 <= m; r0 += 8) CBPTT_MM_TILE(T, V, L, 8, 1);  \
            for (; r0 < m; r0++) CBPTT_MM_TILE(T, V, L, 1, 1);                \
            pc += L;                                                          \
            jc += L;                                                          \
        }                                                                     \
        if (L >= 4 && width - pc >= L / 2) {     /* a half vector */          \
            const VH zero_ = {0};                                             \
            for (r0 = 0; r0 + 8 <= m; r0 += 8) CBPTT_MM_TILE(T, VH, L / 2, 8, 1); \
            for (; r0 < m; r0++) CBPTT_MM_TILE(T, VH, L / 2, 1, 1);           \
            pc += L / 2;                                                      \
            jc += L / 2;                                                      \
        }                                                                     \
        if (pc < width) {             /* the last columns, one at a time */   \
            int r, j;                                                         \
            long kk;                                                          \
            for (r = 0; r < m; r++) {                                         \
                const T *ar = a + (long)r * lda;                              \
                T *cr = c + (long)r * ldc + j0;                               \
                for (j = pc; j < width; j++) {                                \
                    T s = accumulate ? cr[j] : (T)0;                          \
                    for (kk = 0; kk < k; kk++)                                \
                        s += ar[kk * ak] * wp[kk * ldw + j];                  \
                    cr[j] = s;                                                \
                }                                                             \
            }                                                                 \
        }                                                                     \
    }                                                                         \
}                                                                             \
                                                                              \
/* The body once generic and, in float, once for row-major A and packed W  \
 * (ak = 1, ldw = 0: the per-step products and the input projection), with \
 * the accumulate flag a constant too: the compiler then addresses A's     \
 * rows directly. Only in float: in double the specialisation measured    \
 * slower (BENCHMARKS.md, docs/performance.md). */                         \
ATTR static void cbptt_mm_##S##_##SUF(                                        \
    int m, int n, int k, const T *a, long lda, long ak, const T *w,           \
    long ldw_plain, T *c, long ldc, int accumulate)                           \
{                                                                             \
    if (sizeof(T) == 4 && ak == 1 && ldw_plain == 0) {                        \
        if (accumulate)                                                       \
            cbptt_mm_body_##S##_##SUF(m, n, k, a, lda, 1, w, 0, c, ldc, 1);   \
        else                                                                  \
            cbptt_mm_body_##S##_##SUF(m, n, k, a, lda, 1, w, 0, c, ldc, 0);   \
    } else                                                                    \
        cbptt_mm_body_##S##_##SUF(m, n, k, a, lda, ak, w, ldw_plain, c, ldc,  \
                                  accumulate);                                \
}                                                                             \
                                                                              \
ATTR static void cbptt_col_sums_##S##_##SUF(                                 \
    long rows, int n, const T *a, long lda, T *out, int accumulate)           \
{                                                                             \
    typedef T V __attribute__((vector_size(VBYTES), aligned(sizeof(T)),       \
                               may_alias));                                   \
    enum { L = VBYTES / (int)sizeof(T) };                                     \
    int j;                                                                    \
    long r;                                                                   \
    for (j = 0; j + L <= n; j += L) {                                         \
        const T *aj = a + j;                                                  \
        V p0 = {0}, p1 = {0}, p2 = {0}, p3 = {0};                             \
        V p4 = {0}, p5 = {0}, p6 = {0}, p7 = {0};                             \
        for (r = 0; r + 8 <= rows; r += 8, aj += 8 * lda) {                   \
            p0 += CBPTT_LD(V, aj);                                            \
            p1 += CBPTT_LD(V, aj + lda);                                      \
            p2 += CBPTT_LD(V, aj + 2 * lda);                                  \
            p3 += CBPTT_LD(V, aj + 3 * lda);                                  \
            p4 += CBPTT_LD(V, aj + 4 * lda);                                  \
            p5 += CBPTT_LD(V, aj + 5 * lda);                                  \
            p6 += CBPTT_LD(V, aj + 6 * lda);                                  \
            p7 += CBPTT_LD(V, aj + 7 * lda);                                  \
        }                                                                     \
        for (; r < rows; r++, aj += lda) p0 += CBPTT_LD(V, aj);               \
        p0 = ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7));               \
        if (accumulate) p0 = CBPTT_LD(V, out + j) + p0;                       \
        CBPTT_ST(V, out + j, p0);                                             \
    }                                                                         \
    for (; j < n; j++) {                                                      \
        /* the last columns in the vectors' order, lane by lane: a column's  \
         * sum is then the same wherever it falls in [0, n), so splitting    \
         * the columns among threads cannot change it */                      \
        const T *aj = a + j;                                                  \
        T q0 = 0, q1 = 0, q2 = 0, q3 = 0, q4 = 0, q5 = 0, q6 = 0, q7 = 0;     \
        for (r = 0; r + 8 <= rows; r += 8, aj += 8 * lda) {                   \
            q0 += aj[0];                                                      \
            q1 += aj[lda];                                                    \
            q2 += aj[2 * lda];                                                \
            q3 += aj[3 * lda];                                                \
            q4 += aj[4 * lda];                                                \
            q5 += aj[5 * lda];                                                \
            q6 += aj[6 * lda];                                                \
            q7 += aj[7 * lda];                                                \
        }                                                                     \
        for (; r < rows; r++, aj += lda) q0 += aj[0];                         \
        q0 = ((q0 + q1) + (q2 + q3)) + ((q4 + q5) + (q6 + q7));               \
        out[j] = accumulate ? out[j] + q0 : q0;                               \
    }                                                                         \
}                                                                             \
                                                                              \
ATTR static void cbptt_bias_act_rows_##S##_##SUF(                             \
    int act, int m, int n, T *z, long ldz, const T *b)                        \
{                                                                             \
    int r, j;                                                                 \
    if (ldz == n && (act == CBPTT_LOGISTIC || act == CBPTT_TANH)) {           \
        /* contiguous rows: the bias row by row, then f in one flat loop     \
         * (at n = 16 floats, one vector a row, a loop per row would pay its  \
         * start and its remainder once per vector) */                        \
        const long len = (long)m * n;                                         \
        long i;                                                               \
        for (r = 0; r < m; r++) {                                             \
            T *zr = z + (long)r * n;                                          \
            for (j = 0; j < n; j++) zr[j] += b[j];                            \
        }                                                                     \
        if (act == CBPTT_TANH)                                                \
            for (i = 0; i < len; i++) z[i] = TANH(z[i]);                      \
        else                                                                  \
            for (i = 0; i < len; i++) z[i] = LOGISTIC(z[i]);                  \
        return;                                                               \
    }                                                                         \
    for (r = 0; r < m; r++) {                                                 \
        T *zr = z + (long)r * ldz;                                            \
        switch (act) {                                                        \
        case CBPTT_LOGISTIC:                                                  \
            for (j = 0; j < n; j++) zr[j] = LOGISTIC(zr[j] + b[j]);           \
            break;                                                            \
        case CBPTT_TANH:                                                      \
            for (j = 0; j < n; j++) zr[j] = TANH(zr[j] + b[j]);               \
            break;                                                            \
        case CBPTT_RELU:                                                      \
            for (j = 0; j < n; j++) {                                         \
                T v = zr[j] + b[j];                                           \
                zr[j] = v > (T)0 ? v : (T)0;                                  \
            }                                                                 \
            break;                                                            \
        default:                                                              \
            for (j = 0; j < n; j++) zr[j] += b[j];                            \
        }                                                                     \
    }                                                                         \
}                                                                             \
                                                                              \
ATTR static void cbptt_delta_rows_##S##_##SUF(                                \
    int act, long len, T *d, const T *y, const T *g, int carry)               \
{                                                                             \
    cbptt_delta_##S(act, d, y, g, carry ? d : 0, len);                        \
}

/* VBYTES: vector width; NVP: vectors per panel (4 x NVP accumulators must
 * fit the register file: 16 of 32 zmm; 8 of 16 ymm/xmm). */
#define CBPTT_DEFINE_SIMD_BOTH(SUF, ATTR, VBYTES, NVP)                        \
CBPTT_DEFINE_SIMD(float, f, SUF, ATTR, VBYTES, NVP, cbptt_tanh_v_f,           \
                  cbptt_logistic_v_f)                                         \
CBPTT_DEFINE_SIMD(double, d, SUF, ATTR, VBYTES, NVP, cbptt_tanh_v_d,          \
                  cbptt_logistic_v_d)

CBPTT_DEFINE_SIMD_BOTH(base, , 16, 2)
#ifdef CBPTT_X86_DISPATCH
CBPTT_DEFINE_SIMD_BOTH(avx2, CBPTT_ATTR_AVX2, 32, 2)
CBPTT_DEFINE_SIMD_BOTH(avx512, CBPTT_ATTR_AVX512, 64, 4)
#endif

#define CBPTT_DEFINE_DISPATCH(T, S)                                           \
static inline void cbptt_pack_##S(int n, int k, const T *w, long rs, long cs, \
                                  T *packed)                                  \
{                                                                             \
    CBPTT_DISPATCH(cbptt_pack_##S, (n, k, w, rs, cs, packed))                 \
}                                                                             \
static inline void cbptt_mm_##S(int m, int n, int k, const T *a, long lda,    \
                                long ak, const T *w, long ldw, T *c,          \
                                long ldc, int accumulate)                     \
{                                                                             \
    if (m <= 0 || n <= 0) return;                                             \
    CBPTT_DISPATCH(cbptt_mm_##S,                                              \
                   (m, n, k, a, lda, ak, w, ldw, c, ldc, accumulate))         \
}                                                                             \
static inline void cbptt_col_sums_##S(long rows, int n, const T *a, long lda, \
                                      T *out, int accumulate)                 \
{                                                                             \
    CBPTT_DISPATCH(cbptt_col_sums_##S, (rows, n, a, lda, out, accumulate))    \
}                                                                             \
static inline void cbptt_bias_act_rows_##S(int act, int m, int n, T *z,       \
                                           long ldz, const T *b)              \
{                                                                             \
    CBPTT_DISPATCH(cbptt_bias_act_rows_##S, (act, m, n, z, ldz, b))           \
}                                                                             \
static inline void cbptt_delta_rows_##S(int act, long len, T *d, const T *y,  \
                                        const T *g, int carry)                \
{                                                                             \
    CBPTT_DISPATCH(cbptt_delta_rows_##S, (act, len, d, y, g, carry))          \
}

CBPTT_DEFINE_DISPATCH(float, f)
CBPTT_DEFINE_DISPATCH(double, d)

#endif /* CBPTT_SIMD_H */
