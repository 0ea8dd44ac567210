/* threads.c: what a second thread costs the first on this machine. The
 * Elman forward's time loop (products and tanh, float64, T = 100, 16 rows
 * a thread, src/cbptt_simd.h) timed per call, the variants interleaved:
 *   1thr private      one thread, its own (T, 16, H) array
 *   2thr private      two threads at once, each its own (T, 16, H) array
 *   2thr shared       two threads, each its half of every step of one
 *                     (T, 32, H) array (the kernels' layout)
 *   2thr shared+gap   the same with a 4 KiB gap after each half
 * Prints the median and 10th percentile of `reps` calls. Run it with
 * OMP_WAIT_POLICY=passive: otherwise the idle worker spins on the other CPU
 * while "1thr private" runs, and slows it as a busy thread would.
 *
 *   gcc -O3 -fopenmp -fno-math-errno -fno-trapping-math -Isrc \
 *       -o /tmp/threads benchmarks/c/threads.c
 *   OMP_WAIT_POLICY=passive /tmp/threads 64 400      # H, reps
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <omp.h>
#include "cbptt_simd.h"

enum { T = 100, M = 16, VARIANTS = 4 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* M rows whose step t starts at h + t * stride */
static void rows(long stride, int H, double *h, const double *wp,
                 const double *h0, const double *b)
{
    const double *hp = h0;
    for (int t = 0; t < T; t++) {
        double *ht = h + (long)t * stride;
        cbptt_mm_d(M, H, H, hp, H, 1, wp, 0, ht, H, 1);
        cbptt_bias_act_rows_d(CBPTT_TANH, M, H, ht, H, b);
        hp = ht;
    }
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double *filled(long n)
{
    double *p = aligned_alloc(4096, sizeof(double) * n);
    for (long i = 0; i < n; i++) p[i] = 0.01;
    return p;
}

int main(int argc, char **argv)
{
    static const char *name[VARIANTS] = {"1thr private", "2thr private",
                                         "2thr shared", "2thr shared+gap"};
    int H, reps, r, v;
    if (argc != 3) {
        fprintf(stderr, "usage: %s H reps\n", argv[0]);
        return 2;
    }
    H = atoi(argv[1]), reps = atoi(argv[2]);
    long half = (long)M * H, gap = 4096 / sizeof(double);
    double *w = malloc(sizeof(double) * H * H);
    double *wp = aligned_alloc(4096, sizeof(double) * H * H);
    double *h0 = calloc(2 * half, sizeof(double)), *b = calloc(H, sizeof(double));
    double *own[2] = {filled(T * half), filled(T * half)};
    double *shared = filled(T * 2 * half), *padded = filled(T * 2 * (half + gap));
    double *R[VARIANTS];
    for (long i = 0; i < (long)H * H; i++)
        w[i] = (rand() / (double)RAND_MAX - 0.5) * 0.3 / H;
    cbptt_pack_d(H, H, w, 1, H, wp);
    for (v = 0; v < VARIANTS; v++) R[v] = malloc(sizeof(double) * reps);
    for (r = 0; r < reps; r++) {
        double t0 = now();
        rows(half, H, own[0], wp, h0, b);
        R[0][r] = now() - t0;
        t0 = now();
#pragma omp parallel num_threads(2)
        rows(half, H, own[omp_get_thread_num()], wp, h0, b);
        R[1][r] = now() - t0;
        t0 = now();
#pragma omp parallel num_threads(2)
        rows(2 * half, H, shared + omp_get_thread_num() * half, wp, h0, b);
        R[2][r] = now() - t0;
        t0 = now();
#pragma omp parallel num_threads(2)
        rows(2 * (half + gap), H,
             padded + omp_get_thread_num() * (half + gap), wp, h0, b);
        R[3][r] = now() - t0;
    }
    for (v = 0; v < VARIANTS; v++) {
        qsort(R[v], reps, sizeof(double), cmp);
        printf("H=%d %-16s median %.0f us, 10th percentile %.0f us\n", H,
               name[v], R[v][reps / 2] * 1e6, R[v][reps / 10] * 1e6);
    }
    return 0;
}
