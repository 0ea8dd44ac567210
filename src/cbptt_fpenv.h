/* cbptt_fpenv.h: flush-to-zero / denormals-are-zero around a kernel.
 *
 * Gradients that decay through many time steps end in subnormal numbers,
 * which cost 10-100x per operation on x86. Kernels call
 * cbptt_ftz_enter() on entry and cbptt_ftz_leave(saved) on exit: the
 * setting is per thread and is always restored, so the caller's floating
 * point environment is never changed (unlike linking with -ffast-math).
 * x86-64: MXCSR's FTZ (bit 15) and DAZ (bit 6). aarch64: FPCR's FZ (bit 24),
 * which flushes subnormal inputs and results alike, in float and double
 * (NEON and scalar). Other architectures: both are no-ops (subnormals are
 * computed in full, only slower; results stay within the stated accuracy).
 * Worker threads (OpenMP) do not inherit the caller's setting: each one
 * enters and leaves on its own.
 */
#ifndef CBPTT_FPENV_H
#define CBPTT_FPENV_H

#if defined(__SSE__) || defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>
static inline unsigned int cbptt_ftz_enter(void)
{
    unsigned int saved = _mm_getcsr();
    _mm_setcsr(saved | 0x8040u); /* FTZ (bit 15) | DAZ (bit 6) */
    return saved;
}
static inline void cbptt_ftz_leave(unsigned int saved) { _mm_setcsr(saved); }
#elif defined(__aarch64__) && defined(__GNUC__)
/* FPCR is 64 bits wide; its bits 32-63 are reserved (zero), so the saved
 * value fits the unsigned int the callers keep. */
static inline unsigned int cbptt_ftz_enter(void)
{
    unsigned long fpcr;
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(fpcr));
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr | (1ul << 24))
                         : "memory");
    return (unsigned int)fpcr;
}
static inline void cbptt_ftz_leave(unsigned int saved)
{
    unsigned long fpcr = saved;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(fpcr) : "memory");
}
#else
static inline unsigned int cbptt_ftz_enter(void) { return 0u; }
static inline void cbptt_ftz_leave(unsigned int saved) { (void)saved; }
#endif

/* The threads a kernel may use: OpenMP's current limit (which threadpoolctl
 * and OMP_NUM_THREADS set), 1 in a build without OpenMP, and 1 in a process
 * forked from one that had loaded the module.
 *
 * Fork safety: GNU OpenMP is not fork-safe. Once the parent has run a
 * parallel region, its pool's threads do not exist in a forked child, and
 * the child's first parallel region waits for them forever (multiprocessing's
 * "fork" start method, the default on Linux up to Python 3.13). A child
 * therefore never enters a parallel region: every kernel has a one-thread
 * path that takes no OpenMP call, and the results do not depend on the
 * number of threads. cbptt_fork_guard() registers the child handler once
 * per module (each compiled module has its own copy of the flag); a module
 * imported only in the child (forkserver, spawn) is not affected. */
#ifdef _OPENMP
#include <omp.h>
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define CBPTT_HAVE_ATFORK 1
#endif
static int cbptt_in_forked_child = 0;
#ifdef CBPTT_HAVE_ATFORK
static void cbptt_after_fork_in_child(void) { cbptt_in_forked_child = 1; }
#endif
static inline int cbptt_fork_guard(void)
{
#ifdef CBPTT_HAVE_ATFORK
    static int registered = 0;
    if (!registered && pthread_atfork(0, 0, cbptt_after_fork_in_child) == 0)
        registered = 1;
    return registered;
#else
    return 0;
#endif
}
static inline int cbptt_max_threads(void)
{
    return cbptt_in_forked_child ? 1 : omp_get_max_threads();
}
static inline int cbptt_forked(void) { return cbptt_in_forked_child; }
#else
static inline int cbptt_fork_guard(void) { return 1; }
static inline int cbptt_max_threads(void) { return 1; }
static inline int cbptt_forked(void) { return 0; }
#endif

#endif /* CBPTT_FPENV_H */
