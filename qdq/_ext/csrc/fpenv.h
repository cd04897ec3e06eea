/*
 * The floating-point environment the compiled kernels run in: IEEE 754's default, whatever
 * the caller's. A caller may have set flush-to-zero and denormals-are-zero (torch's
 * set_flush_denormal(True) does) or another rounding mode (fesetround); the kernels' bits
 * would then change with it, and differ between instruction-set levels, since some loops
 * work on bit patterns and others in floating point.
 *
 * qdq_fpenv_enter() saves the calling thread's environment and, when it is not the
 * default, sets the default: on x86-64 the MXCSR register with every exception masked,
 * rounding to nearest, FTZ and DAZ clear; elsewhere the rounding mode (fenv.h) to
 * nearest. qdq_fpenv_leave(saved) puts the caller's control bits back and keeps the
 * exception flags raised meanwhile, as if the work had run in the caller's environment.
 * Each compiled entry point brackets its work with the two, on the calling thread and on
 * every thread that runs a piece of it (the pool's workers, OpenMP threads); the process's
 * floating-point mode, as anyone else sees it, never changes. The common case (the
 * default already) costs one read of the register.
 */
#ifndef QDQ_FPENV_H
#define QDQ_FPENV_H

#if defined(__x86_64__) || defined(_M_X64)
#include <xmmintrin.h>

typedef unsigned int qdq_fpenv;

/* MXCSR: bits 0-5 the exception flags, 6 DAZ, 7-12 the exception masks, 13-14 the
   rounding, 15 FTZ. */
#define QDQ_MXCSR_CONTROL 0xffc0u
#define QDQ_MXCSR_DEFAULT 0x1f80u

#if defined(__GNUC__) || defined(__clang__)
/* keeps the compiler from moving memory accesses (the kernels' loads and stores) across
   the register's writes */
#define QDQ_FPENV_BARRIER() __asm__ __volatile__("" ::: "memory")
#else
#define QDQ_FPENV_BARRIER() ((void)0)
#endif

static inline qdq_fpenv qdq_fpenv_enter(void)
{
    const unsigned int csr = _mm_getcsr();
    if ((csr & QDQ_MXCSR_CONTROL) != QDQ_MXCSR_DEFAULT) {
        QDQ_FPENV_BARRIER();
        _mm_setcsr((csr & ~QDQ_MXCSR_CONTROL) | QDQ_MXCSR_DEFAULT);
        QDQ_FPENV_BARRIER();
    }
    return csr;
}

static inline void qdq_fpenv_leave(qdq_fpenv saved)
{
    if ((saved & QDQ_MXCSR_CONTROL) != QDQ_MXCSR_DEFAULT) {
        QDQ_FPENV_BARRIER();
        _mm_setcsr((saved & QDQ_MXCSR_CONTROL) | (_mm_getcsr() & ~QDQ_MXCSR_CONTROL));
        QDQ_FPENV_BARRIER();
    }
}

#else  /* the rounding mode alone */
#include <fenv.h>

typedef int qdq_fpenv;

static inline qdq_fpenv qdq_fpenv_enter(void)
{
#ifdef FE_TONEAREST
    const int r = fegetround();
    if (r >= 0 && r != FE_TONEAREST) fesetround(FE_TONEAREST);
    return r;
#else
    return 0;
#endif
}

static inline void qdq_fpenv_leave(qdq_fpenv saved)
{
#ifdef FE_TONEAREST
    if (saved >= 0 && saved != FE_TONEAREST) fesetround(saved);
#else
    (void)saved;
#endif
}

#endif

#endif /* QDQ_FPENV_H */
