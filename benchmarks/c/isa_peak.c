/* isa_peak.c: one core's floating-point peak and the per-step products'
 * rate, for every instruction-set level this CPU runs (src/cbptt_isa.h).
 *
 * peak: the kernels' own operation, acc += a * w on the level's vectors
 *   (16 bytes at the baseline, 32 with AVX2, 64 with AVX-512), in NACC
 *   independent chains (enough to cover the latency of every FP pipe), so
 *   the loop runs at the FP units' throughput: fused multiply-adds with
 *   AVX2/AVX-512, a multiply and an add at the x86-64 baseline (SSE2 has no
 *   FMA; NEON's fmla on aarch64). flops = 2 x lanes x chains x iterations.
 * products: the Elman forward's per-step product through the dispatched
 *   kernel at that level, T = 100 chained steps of
 *       net(t) += h(t-1) W_hh^T      (m x H) = (m x H)(H x H), W packed
 *   for H = 16, 64, 256 and m = 32 rows (a mini-batch on one thread).
 * Each figure is the best of `reps` timings (each at least 5 ms of this
 * thread's CPU time), one core.
 *
 *   gcc -O3 -DNDEBUG -fno-math-errno -fno-trapping-math -Isrc \
 *       -o /tmp/isa_peak benchmarks/c/isa_peak.c
 *   /tmp/isa_peak 20             # reps; prints one line per figure:
 *   peak <level> <float|double> <GFLOP/s>
 *   mm <level> <float|double> <H> <m> <GFLOP/s>
 * benchmarks/isa_peak.py builds and runs it and writes the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cbptt_simd.h"

/* This thread's CPU time: on a machine shared with other work, the time
 * the thread was descheduled does not count (wall time did: on 2 cores at
 * load 5, a 20 ms timing of the peak loop came out at half the rate). */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* NACC chains of acc = acc * x + y; returns the seconds of `iters`
 * iterations and leaves the sum in *sink (so nothing is optimised away). */
#define DEFINE_PEAK(T, S, SUF, ATTR, VBYTES, NACC)                            \
ATTR __attribute__((noinline)) static double peak_##S##_##SUF(               \
    long iters, volatile T *sink)                                             \
{                                                                             \
    typedef T V __attribute__((vector_size(VBYTES)));                         \
    V acc[NACC], x, y, s = {0};                                               \
    volatile T xs = (T)0.999999, ys = (T)1e-6;                                \
    double t0;                                                                \
    long i;                                                                   \
    int j;                                                                    \
    x = (V){0} + xs;                                                          \
    y = (V){0} + ys;                                                          \
    for (j = 0; j < NACC; j++) acc[j] = (V){0} + (T)(j + 1);                 \
    t0 = now();                                                               \
    for (i = 0; i < iters; i++) {                                             \
        /* unrolled, so the chains live in registers (GCC kept 24 AVX-512 */  \
        /* chains in memory: a load and a store around every FMA) */          \
        _Pragma("GCC unroll 64")                                              \
        for (j = 0; j < NACC; j++) acc[j] = acc[j] * x + y;                   \
    }                                                                         \
    t0 = now() - t0;                                                          \
    for (j = 0; j < NACC; j++) s += acc[j];                                   \
    *sink = s[0];                                                             \
    return t0;                                                                \
}

#define PEAK_CHAINS 12
DEFINE_PEAK(float, f, base, , 16, PEAK_CHAINS)
DEFINE_PEAK(double, d, base, , 16, PEAK_CHAINS)
#ifdef CBPTT_X86_DISPATCH
DEFINE_PEAK(float, f, avx2, CBPTT_ATTR_AVX2, 32, PEAK_CHAINS)
DEFINE_PEAK(double, d, avx2, CBPTT_ATTR_AVX2, 32, PEAK_CHAINS)
DEFINE_PEAK(float, f, avx512, CBPTT_ATTR_AVX512, 64, 2 * PEAK_CHAINS)
DEFINE_PEAK(double, d, avx512, CBPTT_ATTR_AVX512, 64, 2 * PEAK_CHAINS)
#endif

typedef double (*peak_fn_f)(long, volatile float *);
typedef double (*peak_fn_d)(long, volatile double *);

static const char *const level_names[] = {"baseline", "avx2", "avx512"};

/* Best GFLOP/s of the peak loop at `level` in type T. */
#define DEFINE_PEAK_RATE(T, S)                                                \
static double peak_rate_##S(int level, int reps)                             \
{                                                                             \
    double (*fn)(long, volatile T *) = peak_##S##_base;                       \
    int lanes = 16 / (int)sizeof(T), chains = PEAK_CHAINS, r;                 \
    long iters = 1000;                                                        \
    double best = 0;                                                          \
    volatile T sink;                                                          \
    if (level == 1) { IF_X86(fn = peak_##S##_avx2; lanes *= 2;) }            \
    if (level == 2) {                                                         \
        IF_X86(fn = peak_##S##_avx512; lanes *= 4; chains *= 2;)              \
    }                                                                         \
    while (fn(iters, &sink) < 0.005) iters *= 2;                              \
    for (r = 0; r < reps; r++) {                                              \
        double t = fn(iters, &sink);                                          \
        double g = 2.0 * lanes * chains * (double)iters / t / 1e9;            \
        if (g > best) best = g;                                               \
    }                                                                         \
    return best;                                                              \
}

#ifdef CBPTT_X86_DISPATCH
#define IF_X86(x) x
#else
#define IF_X86(x)
#endif
DEFINE_PEAK_RATE(float, f)
DEFINE_PEAK_RATE(double, d)

/* Best GFLOP/s of T = 100 chained per-step products at the level in use. */
#define DEFINE_MM_RATE(T, S)                                                  \
static double mm_rate_##S(int H, int m, int reps)                            \
{                                                                             \
    enum { STEPS = 100 };                                                     \
    T *h = aligned_alloc(4096, sizeof(T) * ((size_t)STEPS * m * H + 1024));   \
    T *w = malloc(sizeof(T) * H * H);                                         \
    T *wp = aligned_alloc(4096, sizeof(T) * ((size_t)H * H + 1024));          \
    T *h0 = calloc((size_t)m * H, sizeof(T));                                 \
    double best = 1e30;                                                       \
    long i, calls = 1;                                                        \
    int r, t;                                                                 \
    for (i = 0; i < (long)H * H; i++)                                         \
        w[i] = (T)((rand() / (double)RAND_MAX - 0.5) * 0.3 / H);              \
    for (i = 0; i < (long)m * H; i++) h0[i] = (T)0.01;                        \
    cbptt_pack_##S(H, H, w, 1, H, wp);                                        \
    for (r = -1; r < reps; r++) {                                             \
        double t0, el;                                                        \
        long c;                                                               \
        for (i = 0; i < (long)STEPS * m * H; i++) h[i] = (T)0.01;             \
        t0 = now();                                                           \
        for (c = 0; c < calls; c++) {                                         \
            const T *hp = h0;                                                 \
            for (t = 0; t < STEPS; t++) {                                     \
                T *ht = h + (long)t * m * H;                                  \
                cbptt_mm_##S(m, H, H, hp, H, 1, wp, 0, ht, H, 1);             \
                hp = ht;                                                      \
            }                                                                 \
        }                                                                     \
        el = (now() - t0) / calls;                                            \
        if (r < 0) {           /* calibration: at least 5 ms a timing */      \
            while (el * calls < 0.005) calls *= 2;                             \
            continue;                                                         \
        }                                                                     \
        if (el < best) best = el;                                             \
    }                                                                         \
    free(h); free(w); free(wp); free(h0);                                     \
    return 2.0 * m * H * H * STEPS / best / 1e9;                              \
}

DEFINE_MM_RATE(float, f)
DEFINE_MM_RATE(double, d)

int main(int argc, char **argv)
{
    static const int Hs[] = {16, 64, 256};
    const int m = 32;
    int reps = argc > 1 ? atoi(argv[1]) : 20, level, k;
    if (reps < 1) {
        fprintf(stderr, "usage: %s [reps >= 1]\n", argv[0]);
        return 2;
    }
    for (level = 0; level <= cbptt_isa_cpu(); level++) {
        const char *name = level_names[level];
        cbptt_isa_limit(level);
        printf("peak %s float %.2f\n", name, peak_rate_f(level, reps));
        printf("peak %s double %.2f\n", name, peak_rate_d(level, reps));
        for (k = 0; k < 3; k++) {
            printf("mm %s float %d %d %.2f\n", name, Hs[k], m,
                   mm_rate_f(Hs[k], m, reps));
            printf("mm %s double %d %d %.2f\n", name, Hs[k], m,
                   mm_rate_d(Hs[k], m, reps));
        }
        fflush(stdout);
    }
    return 0;
}
