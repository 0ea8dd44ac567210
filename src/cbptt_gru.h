/* cbptt_gru.h: the GRU cell step, forward and backward, as fused loops
 * compiled for three x86 instruction sets and chosen at run time.
 *
 * Contract
 * --------
 * PyTorch's GRU (torch.nn.GRU): gates packed per row as r, z, n, each block
 * H wide, so a row of pre-activations or of their errors is 3H elements; the
 * recurrent side is kept apart from the input side because b_hn stays
 * inside r * (W_hn h + b_hn). The (rows x H) arrays have row stride H. An
 * array a call writes overlaps no other array of the call (arrays it only
 * reads may coincide).
 *
 * - cbptt_gru_fwd_rows_{f,d}(m, H, z, zh, b_ih, b_hh, h_prev, hn, h), for m
 *   rows, with z = W_ih x and zh = W_hh h_prev (3H each):
 *       r = logistic(z_r + b_ir + zh_r + b_hr)
 *       u = logistic(z_z + b_iz + zh_z + b_hz)           (PyTorch's z gate)
 *       hn = zh_n + b_hn,   n = tanh(z_n + b_in + r hn)
 *       h = (1 - u) n + u h_prev = n + u (h_prev - n)
 *   z is overwritten with the activated gates r, u, n; hn is stored for the
 *   backward step. One pass over each row for r, u and n's argument, then
 *   one for n and h (so that a row's tanh does not wait for its logistic).
 * - cbptt_gru_bwd_rows_{f,d}(m, H, carry, gates, hn, h_prev, grad_h,
 *   carry_h, delta, delta_hh, delta_hn), for m rows:
 *       dh = grad_h + (carry ? carry_h : 0)
 *       delta_n = dh (1 - u) (1 - n^2)
 *       delta_z = dh (h_prev - n) u (1 - u)
 *       delta_r = delta_n hn r (1 - r)
 *       delta    = [delta_r, delta_z, delta_n]       (dL/d(W_ih x + b_ih))
 *       delta_hh = [delta_r, delta_z, r delta_n]     (dL/d(W_hh h + b_hh))
 *       delta_hn = r delta_n   (rows H apart; only when delta_hn != NULL)
 *       carry_h  = u dh   (in place: the direct part of dL/dh_prev; the
 *                          driver adds delta_hh W_hh)
 *   delta_hh differs from delta only in its n block, so the driver keeps
 *   delta_hh for one step (the carried product) and, for the weight
 *   gradients summed after the time loop, only its n block delta_hn.
 *
 * Every loop runs over the H units of one row with no branch in its body
 * (the carry is hoisted out as a constant), so GCC and Clang vectorise it,
 * tanh and logistic included (src/cbptt_vmath.h). Results do not depend on
 * how rows are split among threads; they can differ between instruction
 * sets (FMA or not), never between runs.
 */
#ifndef CBPTT_GRU_H
#define CBPTT_GRU_H

#include "cbptt_simd.h"

#ifndef CBPTT_ALWAYS_INLINE
#define CBPTT_ALWAYS_INLINE static inline __attribute__((always_inline))
#endif

/* The pieces for one element type; the per-ISA functions below inline them
 * (a target-neutral inline function takes on its caller's instruction set). */
#define CBPTT_DEFINE_GRU_CELL(T, S, TANH, LOGISTIC)                           \
CBPTT_ALWAYS_INLINE void cbptt_gru_gates_row_##S(                             \
    int H, T *__restrict z, const T *__restrict zh, const T *__restrict bi,   \
    const T *__restrict bh, T *__restrict hn)                                 \
{                                                                             \
    const long H2 = 2 * (long)H;                                              \
    int j;                                                                    \
    for (j = 0; j < H; j++) {                                                 \
        T r = LOGISTIC(z[j] + bi[j] + (zh[j] + bh[j]));                       \
        T u = LOGISTIC(z[H + j] + bi[H + j] + (zh[H + j] + bh[H + j]));       \
        T a = zh[H2 + j] + bh[H2 + j];                                        \
        z[j] = r;                                                             \
        z[H + j] = u;                                                         \
        z[H2 + j] = z[H2 + j] + bi[H2 + j] + r * a;  /* n's argument */       \
        hn[j] = a;                                                            \
    }                                                                         \
}                                                                             \
                                                                              \
CBPTT_ALWAYS_INLINE void cbptt_gru_out_row_##S(                               \
    int H, const T *__restrict u, T *__restrict n, const T *__restrict hp,    \
    T *__restrict h)                                                          \
{                                                                             \
    int j;                                                                    \
    for (j = 0; j < H; j++) {                                                 \
        T nn = TANH(n[j]);                                                    \
        n[j] = nn;                                                            \
        h[j] = nn + u[j] * (hp[j] - nn);                                      \
    }                                                                         \
}                                                                             \
                                                                              \
CBPTT_ALWAYS_INLINE void cbptt_gru_fwd_rows_##S##_impl(                       \
    int m, int H, T *z, const T *zh, const T *b_ih, const T *b_hh,            \
    const T *h_prev, T *hn, T *h)                                             \
{                                                                             \
    const long G = 3 * (long)H;                                               \
    int r;                                                                    \
    for (r = 0; r < m; r++)                                                   \
        cbptt_gru_gates_row_##S(H, z + r * G, zh + r * G, b_ih, b_hh,         \
                                hn + (long)r * H);                            \
    for (r = 0; r < m; r++) {                                                 \
        T *zr = z + r * G;                                                    \
        cbptt_gru_out_row_##S(H, zr + H, zr + 2 * (long)H,                    \
                              h_prev + (long)r * H, h + (long)r * H);         \
    }                                                                         \
}                                                                             \
                                                                              \
/* One row of the backward step. */                                           \
CBPTT_ALWAYS_INLINE void cbptt_gru_bwd_row_##S(                               \
    int H, const int carry, const int keep_n, const T *__restrict g,          \
    const T *__restrict hn, const T *__restrict hp, const T *__restrict gh,   \
    T *__restrict ch, T *__restrict d, T *__restrict dd, T *__restrict dnh)   \
{                                                                             \
    const long H2 = 2 * (long)H;                                              \
    int j;                                                                    \
    for (j = 0; j < H; j++) {                                                 \
        T r = g[j], u = g[H + j], n = g[H2 + j];                              \
        T dh = carry ? gh[j] + ch[j] : gh[j];                                 \
        T dn = dh * ((T)1 - u) * ((T)1 - n * n);                              \
        T du = dh * (hp[j] - n) * u * ((T)1 - u);                             \
        T dr = dn * hn[j] * r * ((T)1 - r);                                   \
        T rdn = r * dn;                                                       \
        d[j] = dr;                                                            \
        d[H + j] = du;                                                        \
        d[H2 + j] = dn;                                                       \
        dd[j] = dr;                                                           \
        dd[H + j] = du;                                                       \
        dd[H2 + j] = rdn;                                                     \
        if (keep_n)                                                           \
            dnh[j] = rdn;                                                     \
        ch[j] = u * dh;                         /* the direct path */         \
    }                                                                         \
}

/* The row loop with its two flags as constants, so that neither is a branch
 * in the loop's body: ARGS names them CARRY and KEEP. */
#define CBPTT_GRU_BWD_ROW_CASES(S, carry, keep, ARGS)                         \
    if (carry && keep) {                                                      \
        enum { CARRY = 1, KEEP = 1 }; cbptt_gru_bwd_row_##S ARGS;             \
    } else if (carry) {                                                       \
        enum { CARRY = 1, KEEP = 0 }; cbptt_gru_bwd_row_##S ARGS;             \
    } else if (keep) {                                                        \
        enum { CARRY = 0, KEEP = 1 }; cbptt_gru_bwd_row_##S ARGS;             \
    } else {                                                                  \
        enum { CARRY = 0, KEEP = 0 }; cbptt_gru_bwd_row_##S ARGS;             \
    }

CBPTT_DEFINE_GRU_CELL(float, f, cbptt_tanh_v_f, cbptt_logistic_v_f)
CBPTT_DEFINE_GRU_CELL(double, d, cbptt_tanh_v_d, cbptt_logistic_v_d)

#define CBPTT_DEFINE_GRU_ISA(T, S, SUF, ATTR)                                 \
ATTR static void cbptt_gru_fwd_rows_##S##_##SUF(                              \
    int m, int H, T *z, const T *zh, const T *b_ih, const T *b_hh,            \
    const T *h_prev, T *hn, T *h)                                             \
{                                                                             \
    cbptt_gru_fwd_rows_##S##_impl(m, H, z, zh, b_ih, b_hh, h_prev, hn, h);    \
}                                                                             \
                                                                              \
ATTR static void cbptt_gru_bwd_rows_##S##_##SUF(                              \
    int m, int H, int carry, const T *gates, const T *hn, const T *h_prev,    \
    const T *grad_h, T *carry_h, T *delta, T *delta_hh, T *delta_hn)          \
{                                                                             \
    const long G = 3 * (long)H;                                               \
    int r;                                                                    \
    for (r = 0; r < m; r++) {                                                 \
        const long rh = (long)r * H;                                          \
        T *dnh = delta_hn ? delta_hn + rh : delta_hn;                         \
        CBPTT_GRU_BWD_ROW_CASES(S, carry, delta_hn != 0,                      \
            (H, CARRY, KEEP, gates + r * G, hn + rh, h_prev + rh,             \
             grad_h + rh, carry_h + rh, delta + r * G, delta_hh + r * G,      \
             dnh))                                                            \
    }                                                                         \
}

#define CBPTT_DEFINE_GRU_ISA_BOTH(SUF, ATTR)                                  \
CBPTT_DEFINE_GRU_ISA(float, f, SUF, ATTR)                                     \
CBPTT_DEFINE_GRU_ISA(double, d, SUF, ATTR)

CBPTT_DEFINE_GRU_ISA_BOTH(base, )
#ifdef CBPTT_X86_DISPATCH
CBPTT_DEFINE_GRU_ISA_BOTH(avx2, CBPTT_ATTR_AVX2)
CBPTT_DEFINE_GRU_ISA_BOTH(avx512, CBPTT_ATTR_AVX512)
#endif

#define CBPTT_DEFINE_GRU_DISPATCH(T, S)                                       \
static inline void cbptt_gru_fwd_rows_##S(                                    \
    int m, int H, T *z, const T *zh, const T *b_ih, const T *b_hh,            \
    const T *h_prev, T *hn, T *h)                                             \
{                                                                             \
    CBPTT_DISPATCH(cbptt_gru_fwd_rows_##S,                                    \
                   (m, H, z, zh, b_ih, b_hh, h_prev, hn, h))                  \
}                                                                             \
static inline void cbptt_gru_bwd_rows_##S(                                    \
    int m, int H, int carry, const T *gates, const T *hn, const T *h_prev,    \
    const T *grad_h, T *carry_h, T *delta, T *delta_hh, T *delta_hn)          \
{                                                                             \
    CBPTT_DISPATCH(cbptt_gru_bwd_rows_##S,                                    \
                   (m, H, carry, gates, hn, h_prev, grad_h, carry_h, delta,   \
                    delta_hh, delta_hn))                                      \
}

CBPTT_DEFINE_GRU_DISPATCH(float, f)
CBPTT_DEFINE_GRU_DISPATCH(double, d)

#endif /* CBPTT_GRU_H */
