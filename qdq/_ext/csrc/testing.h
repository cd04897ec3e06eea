/*
 * Test-only helpers, compiled into qdq._ext.testing (qdq never imports it): the MXCSR
 * register of the threads of an OpenMP team, for the floating-point environment's test
 * (tests/ext/test_fpenv.py).
 */
#ifndef QDQ_TESTING_H
#define QDQ_TESTING_H

#if defined(__x86_64__) || defined(_M_X64)
#  include <xmmintrin.h>
#  define QDQ_TESTING_MXCSR 1
#else
#  define QDQ_TESTING_MXCSR 0
#endif
#ifdef _OPENMP
#  include <omp.h>
#endif
/* On each thread of an OpenMP team of nt (the calling thread is thread 0): its MXCSR
   into got[thread], then value written unless it is 0. The team's size, 0 without
   MXCSR. */
static int qdq_testing_team_mxcsr(int nt, unsigned value, unsigned *got)
{
    int size = 0;
#if QDQ_TESTING_MXCSR
#  ifdef _OPENMP
#    pragma omp parallel num_threads(nt)
    {
        const int t = omp_get_thread_num();
        got[t] = _mm_getcsr();
        if (value) _mm_setcsr(value);
        if (t == 0) size = omp_get_num_threads();
    }
#  else
    (void)nt;
    got[0] = _mm_getcsr();
    if (value) _mm_setcsr(value);
    size = 1;
#  endif
#else
    (void)nt; (void)value; (void)got;
#endif
    return size;
}

#endif
