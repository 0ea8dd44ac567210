/* kernels_test.c: every building block of cbptt's C kernels (the headers of src/),
 * checked against naive loops and libm, in float and double, at every
 * instruction-set level this CPU runs (x86-64: baseline, AVX2+FMA, AVX-512;
 * elsewhere the baseline: NEON on aarch64).
 *
 * Checked, per level and type (kernels_test_body.h):
 *   pack + small product   C (+)= A W against a triple loop, A plain or
 *                          transposed, W packed (from W or W^T) or plain,
 *                          every tile and remainder shape; nothing written
 *                          past the row
 *   col_sums               against a plain sum, accumulate or not
 *   bias_act rows          f(z + b) for each activation, contiguous and
 *                          strided rows, against libm (cbptt_vmath.h's error)
 *   delta rows             f'(y) (g + carry) for each activation
 *   LSTM cell rows         forward and backward, both forms, carries, grad_c,
 *                          a tiny output gate, against the cell's equations
 *   vmath                  tanh, logistic, exp(-a) over the range, limits
 *   scans                  all_finite, copy_finite, time_major + colmax
 * and the flush-to-zero of cbptt_fpenv.h (x86-64 MXCSR, aarch64 FPCR; a
 * documented no-op elsewhere).
 *
 * Errors are relative to the sum of the magnitudes of each result's terms,
 * and the bound is the contract's (k + 1) eps for a sum of k products, the
 * stated vmath error for the transcendental functions.
 *
 * Build and run (tools/aarch64_check.sh does this natively and under qemu):
 *   gcc -O3 -DNDEBUG -fno-math-errno -fno-trapping-math -Wall -Wextra \
 *       -Isrc -o /tmp/kernels_test tests/c/kernels_test.c -lm
 *   /tmp/kernels_test            # every level this CPU runs
 *   /tmp/kernels_test avx2       # one level (baseline, avx2, avx512)
 * Exit status 0 when every check passed, 1 on a failure, 77 when the asked
 * level is above this CPU's.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cbptt_fpenv.h"
#include "cbptt_lstm.h"
#include "cbptt_scan.h"

static int failures, checks;

/* A fixed pseudo-random sequence in [-1, 1) (xorshift64*). */
static unsigned long long rng_state = 88172645463325252ull;
static double rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (double)((rng_state * 2685821657736338717ull) >> 11)
           / 4503599627370496.0 - 1.0;
}

static void check(int ok, const char *what, int a, int b, int c)
{
    checks++;
    if (!ok && failures++ < 20)
        fprintf(stderr, "FAIL: %s (%d, %d, %d)\n", what, a, b, c);
}

/* The largest error seen per named check, in units of eps. */
#define MAX_NOTES 32
static const char *note_names[MAX_NOTES];
static double note_worst[MAX_NOTES];
static int n_notes;

static void note(const char *name, double err_eps)
{
    int i;
    for (i = 0; i < n_notes && strcmp(note_names[i], name) != 0; i++) {}
    if (i == n_notes && n_notes < MAX_NOTES) note_names[n_notes++] = name;
    if (i < MAX_NOTES && err_eps > note_worst[i]) note_worst[i] = err_eps;
}

static void print_notes(const char *type)
{
    int i;
    printf("  %s:", type);
    for (i = 0; i < n_notes; i++)
        printf("%s %s %.2g", i ? "," : "", note_names[i], note_worst[i]);
    printf(" (largest error, eps)\n");
    n_notes = 0;
    memset(note_worst, 0, sizeof note_worst);
}

#define T float
#define S f
#define EPS FLT_EPSILON
#define VTOL 4e-7
#include "kernels_test_body.h"
#undef T
#undef S
#undef EPS
#undef VTOL

#define T double
#define S d
#define EPS DBL_EPSILON
#define VTOL 1e-15
#include "kernels_test_body.h"
#undef T
#undef S
#undef EPS
#undef VTOL

/* A product whose exact result is subnormal: flushed to zero between
 * cbptt_ftz_enter and cbptt_ftz_leave, kept outside. */
static int check_ftz(void)
{
    volatile float tiny = FLT_MIN, half = 0.5f;
    volatile double dtiny = DBL_MIN, dhalf = 0.5;
    float before = tiny * half, inside, after;
    double dinside;
    unsigned int saved = cbptt_ftz_enter();
    inside = tiny * half;
    dinside = dtiny * dhalf;
    cbptt_ftz_leave(saved);
    after = tiny * half;
    check(before > 0 && after == before, "subnormals kept outside", 0, 0, 0);
#if defined(__SSE__) || defined(__x86_64__) || defined(__aarch64__)
    check(inside == 0 && dinside == 0, "flush-to-zero inside", 0, 0, 0);
    return 1;
#else
    (void)inside;
    (void)dinside;
    return 0;               /* a no-op here, by contract */
#endif
}

static const char *const level_names[] = {"baseline", "avx2", "avx512"};

int main(int argc, char **argv)
{
    int best = cbptt_isa_cpu(), lo = 0, hi = best, level, ftz;
    if (argc > 1) {
        lo = hi = cbptt_isa_parse(argv[1]);
        if (lo < 0) {
            fprintf(stderr, "usage: %s [baseline|avx2|avx512]\n", argv[0]);
            return 2;
        }
        if (lo > best) {
            printf("level %s: not run by this CPU (best %s)\n", argv[1],
                   level_names[best]);
            return 77;
        }
    }
#if defined(__aarch64__)
    printf("aarch64 (NEON baseline)\n");
#elif defined(__x86_64__)
    printf("x86-64, best level %s\n", level_names[best]);
#else
    printf("baseline only (vector extensions)\n");
#endif
    for (level = lo; level <= hi; level++) {
        int before = failures, used = cbptt_isa_limit(level);
        if (used != level) {
            check(0, "cbptt_isa_limit did not take the level", level, used, 0);
            continue;
        }
        printf("level %s:\n", level_names[level]);
        check_all_f();
        print_notes("float");
        check_all_d();
        print_notes("double");
        printf("  %s\n", failures == before ? "ok" : "FAILED");
    }
    ftz = check_ftz();
    printf("flush-to-zero: %s\n", ftz ? "checked" : "a no-op on this CPU");
    printf("%d checks, %d failed\n", checks, failures);
    return failures ? 1 : 0;
}
