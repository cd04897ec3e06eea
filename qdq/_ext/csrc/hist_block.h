/*
 * The block shape of the calibration histogram's vector loops, shared by the
 * portable loops (hist.h) and the x86-64 loops (hist_isa.h): the block length,
 * the window of central bins counted in registers, and how far ahead the x86
 * loops prefetch. Included by both.
 */
#ifndef QDQ_HIST_BLOCK_H
#define QDQ_HIST_BLOCK_H

#include "cpu.h"

/* Elements per block of the fast path (see hist.h). */
#define HK_BLK 2048
/* The window: the bins [-HK_WIN/2, HK_WIN/2), counted in registers by the vector loops. */
#define HK_WIN 16
#if QDQ_CPU_X86
/* How far ahead (elements) the vector loops prefetch: the hardware prefetcher alone
   leaves the loops waiting for memory. */
#define HK_AHEAD 4096
#define HK_PREFETCH_AHEAD(q)                                                            \
    _mm_prefetch((const char *)((uintptr_t)(q) + HK_AHEAD * sizeof *(q)), _MM_HINT_T0)
#endif

#endif
