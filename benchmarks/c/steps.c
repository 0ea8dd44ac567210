/* steps.c: the Elman forward's per-step pieces, float64, one thread, with the
 * kernels' own code (src/cbptt_simd.h): T = 100 steps of
 *     net(t) += h(t-1) W_hh^T      (m x H) = (m x H)(H x H), packed W_hh
 * alone, then followed by h(t) = tanh(net(t) + b) over the step's rows.
 * Prints the best of `reps` runs and the products' GFLOP/s.
 *
 *   gcc -O3 -fno-math-errno -fno-trapping-math -Isrc \
 *       -o /tmp/steps benchmarks/c/steps.c
 *   /tmp/steps 16 32 400        # H, m (rows: 32, or 16 per thread), reps
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "cbptt_simd.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(int argc, char **argv)
{
    int H, m, reps, rep, t, T = 100;
    if (argc != 4) {
        fprintf(stderr, "usage: %s H m reps\n", argv[0]);
        return 2;
    }
    H = atoi(argv[1]), m = atoi(argv[2]), reps = atoi(argv[3]);
    double *h = aligned_alloc(4096, sizeof(double) * T * m * H);
    double *w = malloc(sizeof(double) * H * H);
    double *wp = aligned_alloc(4096, sizeof(double) * H * H);
    double *h0 = calloc((size_t)m * H, sizeof(double));
    double *b = calloc(H, sizeof(double));
    double best_mm = 1e9, best_step = 1e9;
    for (long i = 0; i < (long)H * H; i++)
        w[i] = (rand() / (double)RAND_MAX - 0.5) * 0.3 / H;
    for (long i = 0; i < (long)T * m * H; i++) h[i] = 0.01;
    cbptt_pack_d(H, H, w, 1, H, wp);
    for (rep = 0; rep < reps; rep++) {
        const double *hp = h0;
        double t0 = now(), t1;
        for (t = 0; t < T; t++) {
            double *ht = h + (long)t * m * H;
            cbptt_mm_d(m, H, H, hp, H, 1, wp, 0, ht, H, 1);
            hp = ht;
        }
        t1 = now();
        if (t1 - t0 < best_mm) best_mm = t1 - t0;
        hp = h0;
        t0 = now();
        for (t = 0; t < T; t++) {
            double *ht = h + (long)t * m * H;
            cbptt_mm_d(m, H, H, hp, H, 1, wp, 0, ht, H, 1);
            cbptt_bias_act_rows_d(CBPTT_TANH, m, H, ht, H, b);
            hp = ht;
        }
        t1 = now();
        if (t1 - t0 < best_step) best_step = t1 - t0;
    }
    printf("H=%d m=%d (ISA level %d): products %.1f us (%.1f GFLOP/s), "
           "products + tanh %.1f us (tanh %.2f ns per value)\n", H, m,
           cbptt_isa(), best_mm * 1e6, 2.0 * m * H * H * T / best_mm / 1e9,
           best_step * 1e6, (best_step - best_mm) * 1e9 / ((double)T * m * H));
    return 0;
}
