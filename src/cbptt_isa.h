/* cbptt_isa.h: which instruction set the kernels run, chosen at run time.
 *
 * Contract
 * --------
 * Levels: 0 baseline (the compiler's default target: SSE2 on x86-64, NEON
 * on aarch64, whatever the GCC/Clang vector extensions lower to elsewhere),
 * 1 AVX2 + FMA, 2 AVX-512 (F, DQ, BW, VL). Levels 1 and 2 exist only on
 * x86-64 with GCC or Clang (CBPTT_X86_DISPATCH); every kernel that a level
 * compiles (CBPTT_ATTR_AVX2, CBPTT_ATTR_AVX512) is called through
 * CBPTT_DISPATCH(name, (args)), which picks name_avx512, name_avx2 or
 * name_base by cbptt_isa().
 *
 * - cbptt_isa_cpu(): the best level this CPU runs (0 off x86-64).
 * - cbptt_isa_parse(s): the level a name spells ("0"/"baseline",
 *   "1"/"avx2", "2"/"avx512"), -1 for anything else (NULL included).
 * - cbptt_isa(): the level in use. At the first call: the CPU's best,
 *   lowered by the environment variable CBPTT_ISA when it names a level
 *   (an unknown value is ignored here; the Python package warns about it).
 * - cbptt_isa_limit(level): use min(level, the CPU's best) from now on
 *   (negative: 0); returns the level in use. Not while a kernel runs: the
 *   packed weights' panel width depends on the level.
 *
 * The level is a static variable: every compiled module (each .so includes
 * this header) has its own copy; cbptt.set_isa sets them all.
 */
#ifndef CBPTT_ISA_H
#define CBPTT_ISA_H

#include <stdlib.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CBPTT_X86_DISPATCH 1
#define CBPTT_ATTR_AVX512 __attribute__((target( \
    "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2,prefer-vector-width=512")))
#define CBPTT_ATTR_AVX2 __attribute__((target("avx2,fma,bmi,bmi2")))
#elif defined(__x86_64__) && defined(__clang__)
#define CBPTT_X86_DISPATCH 1
#define CBPTT_ATTR_AVX512 __attribute__((target( \
    "avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2")))
#define CBPTT_ATTR_AVX2 __attribute__((target("avx2,fma,bmi,bmi2")))
#endif

#define CBPTT_ISA_BASELINE 0
#define CBPTT_ISA_AVX2 1
#define CBPTT_ISA_AVX512 2

static inline int cbptt_isa_cpu(void)
{
#ifdef CBPTT_X86_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq")
            && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512vl"))
        return CBPTT_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return CBPTT_ISA_AVX2;
#endif
    return CBPTT_ISA_BASELINE;
}

/* Exact, case-sensitive match of one of the six spellings. */
static inline int cbptt_isa_parse(const char *s)
{
    static const char *const names[3][2] = {
        {"0", "baseline"}, {"1", "avx2"}, {"2", "avx512"}};
    int level, k;
    const char *p, *q;
    if (s == 0) return -1;
    for (level = 0; level < 3; level++)
        for (k = 0; k < 2; k++) {
            for (p = s, q = names[level][k]; *p && *p == *q; p++, q++) {}
            if (*p == 0 && *q == 0) return level;
        }
    return -1;
}

/* The CPU's best, lowered by CBPTT_ISA when it names a lower level. */
static inline int cbptt_isa_detect(void)
{
    int best = cbptt_isa_cpu();
    int env = cbptt_isa_parse(getenv("CBPTT_ISA"));
    return env >= 0 && env < best ? env : best;
}

static int cbptt_isa_level = -1;

static inline int cbptt_isa(void)
{
    if (cbptt_isa_level < 0)
        cbptt_isa_level = cbptt_isa_detect(); /* benign race: same value */
    return cbptt_isa_level;
}

static inline int cbptt_isa_limit(int level)
{
    int best = cbptt_isa_cpu();
    cbptt_isa_level = level < best ? (level < 0 ? 0 : level) : best;
    return cbptt_isa_level;
}

#ifdef CBPTT_X86_DISPATCH
#define CBPTT_DISPATCH(NAME, ARGS)                                            \
    switch (cbptt_isa()) {                                                    \
    case CBPTT_ISA_AVX512: NAME##_avx512 ARGS; break;                         \
    case CBPTT_ISA_AVX2: NAME##_avx2 ARGS; break;                             \
    default: NAME##_base ARGS;                                                \
    }
/* The same for a function that returns a value. */
#define CBPTT_DISPATCH_RET(NAME, ARGS)                                        \
    switch (cbptt_isa()) {                                                    \
    case CBPTT_ISA_AVX512: return NAME##_avx512 ARGS;                         \
    case CBPTT_ISA_AVX2: return NAME##_avx2 ARGS;                             \
    default: return NAME##_base ARGS;                                         \
    }
#else
#define CBPTT_DISPATCH(NAME, ARGS) NAME##_base ARGS;
#define CBPTT_DISPATCH_RET(NAME, ARGS) return NAME##_base ARGS;
#endif

#endif /* CBPTT_ISA_H */
