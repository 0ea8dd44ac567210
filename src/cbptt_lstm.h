/* cbptt_lstm.h: the LSTM cell step, forward and backward, as fused loops
 * compiled for three x86 instruction sets and chosen at run time.
 *
 * Contract
 * --------
 * Gates are packed per row as i, f, g, o (forget-gate form, fg = 1, G = 4)
 * or i, g, o (1997 form, fg = 0, G = 3), each block H wide; a row of gates
 * or of gate errors is G*H elements. The (rows x H) arrays c, h, ... have
 * row stride H. An array a call writes overlaps no other array of the call
 * (arrays it only reads may coincide).
 *
 * - cbptt_lstm_fwd_rows_{f,d}(m, H, fg, z, b, c_prev, c, h), for m rows:
 *       i, f, o = logistic(z + b),  g = tanh(z + b)      (z in place)
 *       c = f c_prev + i g   (c = c_prev + i g without f),  h = o tanh(c)
 *   one pass over each row for the gate nonlinearities and the cell update,
 *   then one for h.
 * - cbptt_lstm_bwd_rows_{f,d}(m, H, fg, carry, gates, c, c_prev, h, grad_h,
 *   grad_c, carry_h, carry_c, delta, delta_c), for m rows:
 *       dh = grad_h + (carry ? carry_h : 0)
 *       dc = (carry ? carry_c : 0) + (grad_c ? grad_c : 0)
 *            + dh o (1 - tanh(c)^2)
 *       delta_i = dc g i (1-i), delta_f = dc c_prev f (1-f),
 *       delta_g = dc i (1-g^2), delta_o = dh tanh(c) o (1-o),
 *       delta_c = dc,  carry_c = f dc (dc without f)     (carry_c in place)
 *   with tanh(c) taken as h / o (an ulp from tanh(c)); a row with some
 *   o <= 1e-20 (where h / o loses accuracy) takes tanh(c) itself there.
 *   grad_c may be NULL (zero); carry_h is read only when carry.
 *
 * Every loop runs over the H units of one row with no branch in its body
 * (the form, the carry and grad_c are hoisted out as constants), so GCC and
 * Clang vectorise it, tanh and logistic included (src/cbptt_vmath.h).
 * Results do not depend on how rows are split among threads; they can differ
 * between instruction sets (FMA or not), never between runs.
 */
#ifndef CBPTT_LSTM_H
#define CBPTT_LSTM_H

#include "cbptt_simd.h"

#define CBPTT_ALWAYS_INLINE static inline __attribute__((always_inline))
#define CBPTT_LSTM_TINY_GATE 1e-20

/* The pieces for one element type; the per-ISA functions below inline them
 * (a target-neutral inline function takes on its caller's instruction set). */
#define CBPTT_DEFINE_LSTM_CELL(T, S, TANH, LOGISTIC)                          \
CBPTT_ALWAYS_INLINE void cbptt_lstm_fwd_row_##S(                              \
    int H, const int fg, T *__restrict zi, T *__restrict zf,                  \
    T *__restrict zg, T *__restrict zo, const T *__restrict bi,               \
    const T *__restrict bf, const T *__restrict bg, const T *__restrict bo,   \
    const T *__restrict cp, T *__restrict c)                                  \
{                                                                             \
    int j;                                                                    \
    for (j = 0; j < H; j++) {                                                 \
        T gi = LOGISTIC(zi[j] + bi[j]);                                       \
        T gg = TANH(zg[j] + bg[j]);                                           \
        T go = LOGISTIC(zo[j] + bo[j]);                                       \
        T cc;                                                                 \
        if (fg) {                                                             \
            T gf = LOGISTIC(zf[j] + bf[j]);                                   \
            zf[j] = gf;                                                       \
            cc = gf * cp[j] + gi * gg;                                        \
        } else {                                                              \
            cc = cp[j] + gi * gg;               /* the gated carousel */      \
        }                                                                     \
        zi[j] = gi;                                                           \
        zg[j] = gg;                                                           \
        zo[j] = go;                                                           \
        c[j] = cc;                                                            \
    }                                                                         \
}                                                                             \
                                                                              \
CBPTT_ALWAYS_INLINE void cbptt_lstm_out_row_##S(                              \
    int H, const T *__restrict go, const T *__restrict c, T *__restrict h)    \
{                                                                             \
    int j;                                                                    \
    for (j = 0; j < H; j++) h[j] = go[j] * TANH(c[j]);                        \
}                                                                             \
                                                                              \
/* Two passes: every row's gates and c, then every row's h = o tanh(c). In   \
 * one pass a row's tanh(c) waited for its gates (a chain of two             \
 * transcendentals, longer than the out-of-order window covers at H = 16);   \
 * the second pass's rows are independent (15% faster at H = 16). */        \
CBPTT_ALWAYS_INLINE void cbptt_lstm_fwd_rows_##S##_impl(                      \
    int m, int H, const int fg, T *z, const T *b, const T *c_prev, T *c,      \
    T *h)                                                                     \
{                                                                             \
    const long G = fg ? 4 : 3, og = (fg ? 2 : 1) * (long)H, oo = og + H;      \
    int r;                                                                    \
    for (r = 0; r < m; r++) {                                                 \
        T *zr = z + r * G * H;                                                \
        cbptt_lstm_fwd_row_##S(H, fg, zr, zr + H, zr + og, zr + oo, b, b + H, \
                               b + og, b + oo, c_prev + (long)r * H,          \
                               c + (long)r * H);                              \
    }                                                                         \
    for (r = 0; r < m; r++)                                                   \
        cbptt_lstm_out_row_##S(H, z + r * G * H + oo, c + (long)r * H,        \
                               h + (long)r * H);                              \
}                                                                             \
                                                                              \
/* One row of the backward step. exact: tanh(c) where o is tiny (else h/o). */ \
CBPTT_ALWAYS_INLINE void cbptt_lstm_bwd_row_##S(                              \
    int H, const int fg, const int carry, const int has_gc, const int exact,  \
    const T *__restrict ai, const T *__restrict af, const T *__restrict ag,   \
    const T *__restrict ao, const T *__restrict c, const T *__restrict cp,    \
    const T *__restrict h, const T *__restrict gh, const T *__restrict gc,    \
    const T *__restrict ch, T *__restrict cc, T *__restrict di,               \
    T *__restrict df, T *__restrict dg, T *__restrict dout,                   \
    T *__restrict dcell)                                                      \
{                                                                             \
    int j;                                                                    \
    for (j = 0; j < H; j++) {                                                 \
        T gi = ai[j], gg = ag[j], go = ao[j];                                 \
        T tc = exact ? (go > (T)CBPTT_LSTM_TINY_GATE ? h[j] / go : TANH(c[j])) \
                     : h[j] / go;                                             \
        T dh = carry ? gh[j] + ch[j] : gh[j];                                 \
        T dc = carry ? cc[j] : (T)0;                                          \
        if (has_gc) dc = dc + gc[j];                                          \
        dc = dc + dh * go * ((T)1 - tc * tc);                                 \
        dcell[j] = dc;                                                        \
        di[j] = dc * gg * gi * ((T)1 - gi);                                   \
        dg[j] = dc * gi * ((T)1 - gg * gg);                                   \
        dout[j] = dh * tc * go * ((T)1 - go);                                 \
        if (fg) {                                                             \
            T gf = af[j];                                                     \
            df[j] = dc * cp[j] * gf * ((T)1 - gf);                            \
            cc[j] = dc * gf;                                                  \
        } else {                                                              \
            cc[j] = dc;                         /* the carousel: unchanged */ \
        }                                                                     \
    }                                                                         \
}                                                                             \
                                                                              \
CBPTT_ALWAYS_INLINE int cbptt_lstm_tiny_gate_##S(int H, const T *o)           \
{                                                                             \
    int j, tiny = 0;                                                          \
    for (j = 0; j < H; j++) tiny |= o[j] <= (T)CBPTT_LSTM_TINY_GATE;          \
    return tiny;                                                              \
}

CBPTT_DEFINE_LSTM_CELL(float, f, cbptt_tanh_v_f, cbptt_logistic_v_f)
CBPTT_DEFINE_LSTM_CELL(double, d, cbptt_tanh_v_d, cbptt_logistic_v_d)

/* The row's arguments of cbptt_lstm_bwd_row for row r (inside the loop). */
#define CBPTT_LSTM_BWD_ROW_ARGS                                               \
    a, a + H, a + og, a + oo, c + rh, c_prev + rh, h + rh, grad_h + rh,      \
    grad_c ? grad_c + rh : 0, carry_h + rh, carry_c + rh, d, d + H, d + og,  \
    d + oo, delta_c + rh

#define CBPTT_DEFINE_LSTM_ISA(T, S, SUF, ATTR)                                \
ATTR static void cbptt_lstm_fwd_rows_##S##_##SUF(                             \
    int m, int H, int fg, T *z, const T *b, const T *c_prev, T *c, T *h)      \
{                                                                             \
    if (fg)                                                                   \
        cbptt_lstm_fwd_rows_##S##_impl(m, H, 1, z, b, c_prev, c, h);          \
    else                                                                      \
        cbptt_lstm_fwd_rows_##S##_impl(m, H, 0, z, b, c_prev, c, h);          \
}                                                                             \
                                                                              \
ATTR static void cbptt_lstm_bwd_rows_##S##_##SUF(                             \
    int m, int H, int fg, int carry, const T *gates, const T *c,              \
    const T *c_prev, const T *h, const T *grad_h, const T *grad_c,            \
    const T *carry_h, T *carry_c, T *delta, T *delta_c)                       \
{                                                                             \
    const long GH = (fg ? 4L : 3L) * H, og = (fg ? 2 : 1) * (long)H;          \
    const long oo = og + H;                                                   \
    const int has_gc = grad_c != 0;                                           \
    int r;                                                                    \
    for (r = 0; r < m; r++) {                                                 \
        const T *a = gates + r * GH;                                          \
        T *d = delta + r * GH;                                                \
        const long rh = (long)r * H;                                          \
        if (cbptt_lstm_tiny_gate_##S(H, a + oo)) {                            \
            cbptt_lstm_bwd_row_##S(H, fg, carry, has_gc, 1,                   \
                                   CBPTT_LSTM_BWD_ROW_ARGS);                  \
            continue;                                                         \
        }                                                                     \
        switch ((fg ? 4 : 0) + (carry ? 2 : 0) + has_gc) {                    \
        case 7: cbptt_lstm_bwd_row_##S(H, 1, 1, 1, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        case 6: cbptt_lstm_bwd_row_##S(H, 1, 1, 0, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        case 5: cbptt_lstm_bwd_row_##S(H, 1, 0, 1, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        case 4: cbptt_lstm_bwd_row_##S(H, 1, 0, 0, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        case 3: cbptt_lstm_bwd_row_##S(H, 0, 1, 1, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        case 2: cbptt_lstm_bwd_row_##S(H, 0, 1, 0, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        case 1: cbptt_lstm_bwd_row_##S(H, 0, 0, 1, 0, CBPTT_LSTM_BWD_ROW_ARGS); break; \
        default: cbptt_lstm_bwd_row_##S(H, 0, 0, 0, 0, CBPTT_LSTM_BWD_ROW_ARGS); \
        }                                                                     \
    }                                                                         \
}

#define CBPTT_DEFINE_LSTM_ISA_BOTH(SUF, ATTR)                                 \
CBPTT_DEFINE_LSTM_ISA(float, f, SUF, ATTR)                                    \
CBPTT_DEFINE_LSTM_ISA(double, d, SUF, ATTR)

CBPTT_DEFINE_LSTM_ISA_BOTH(base, )
#ifdef CBPTT_X86_DISPATCH
CBPTT_DEFINE_LSTM_ISA_BOTH(avx2, CBPTT_ATTR_AVX2)
CBPTT_DEFINE_LSTM_ISA_BOTH(avx512, CBPTT_ATTR_AVX512)
#endif

#define CBPTT_DEFINE_LSTM_DISPATCH(T, S)                                      \
static inline void cbptt_lstm_fwd_rows_##S(int m, int H, int fg, T *z,        \
                                           const T *b, const T *c_prev,       \
                                           T *c, T *h)                        \
{                                                                             \
    CBPTT_DISPATCH(cbptt_lstm_fwd_rows_##S, (m, H, fg, z, b, c_prev, c, h))   \
}                                                                             \
static inline void cbptt_lstm_bwd_rows_##S(                                   \
    int m, int H, int fg, int carry, const T *gates, const T *c,              \
    const T *c_prev, const T *h, const T *grad_h, const T *grad_c,            \
    const T *carry_h, T *carry_c, T *delta, T *delta_c)                       \
{                                                                             \
    CBPTT_DISPATCH(cbptt_lstm_bwd_rows_##S,                                   \
                   (m, H, fg, carry, gates, c, c_prev, h, grad_h, grad_c,     \
                    carry_h, carry_c, delta, delta_c))                        \
}

CBPTT_DEFINE_LSTM_DISPATCH(float, f)
CBPTT_DEFINE_LSTM_DISPATCH(double, d)

#endif /* CBPTT_LSTM_H */
