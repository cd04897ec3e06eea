/*
 * The error the op introduced, in one pass over an input block and the op's
 * output block: the statistics of qdq._core.stats.ErrorStats.
 *
 * For every pair (x, y) of values (float16 and bfloat16 as their uint16 bit
 * patterns, float32, float64), taken exactly as float64:
 *   elements       every pair
 *   nan            x is NaN
 *   clipped        x < lo or x > hi (bounds of the compute type; +-inf: none)
 *   nonfinite_out  x finite, y not
 *   finite_pairs   x and y finite; over these pairs only, in float64:
 *   max_abs        the largest |y - x|
 *   signal, noise  the sums of x * x and of (y - x) * (y - x)
 *
 * The order of the sums is fixed by the element's position alone, so the
 * result does not depend on the instruction set or the thread count: the
 * block is cut into pieces of QDQ_ES_PIECE elements from its start; in a
 * piece, element i goes to lane i % 8 of eight float64 accumulators (vector
 * lanes in the vector copies, an array in the scalar loop: the same sums in
 * the same order); a piece's lanes are added in a fixed tree, and the
 * pieces' sums in piece order. Counts and the maximum are exact anyway.
 *
 * Included by kernels.pyx after dispatch.h; it includes error_stats_isa.h
 * once per instruction-set copy, with the macros dispatch.h gives
 * isa_copy.h, and uses that copy's converters (F16C in the AVX2 copy).
 */
#ifndef QDQ_ERROR_STATS_H
#define QDQ_ERROR_STATS_H

#include "dispatch.h"
#include "pool.h"

#include <float.h>
#include <stdlib.h>

/* Elements per piece: a multiple of the 8 lanes, small enough that the
 * 32-bit per-lane counts of a piece cannot overflow. */
#define QDQ_ES_PIECE 32768
#define QDQ_ES_LANES 8

typedef struct {
    double signal, noise, max_abs;
    int64_t nan, clipped, nonfinite_out, finite_pairs;
} qdq_es_t;

/* Eight lanes of sums and maxima, and the piece's counts. */
typedef struct {
    double s[QDQ_ES_LANES], e[QDQ_ES_LANES], m[QDQ_ES_LANES];
    int64_t nan, clipped, nonfinite_out, finite_pairs;
} qdq_es_lanes_t;

static inline void qdq_es_lanes_init(qdq_es_lanes_t *a)
{
    memset(a, 0, sizeof *a);
}

/* A piece's lanes, added in a fixed tree. */
static inline void qdq_es_piece_done(const qdq_es_lanes_t *a, qdq_es_t *piece)
{
    const double *s = a->s, *e = a->e, *m = a->m;
    double mx = 0.0;
    int k;
    piece->signal = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    piece->noise = ((e[0] + e[1]) + (e[2] + e[3])) + ((e[4] + e[5]) + (e[6] + e[7]));
    for (k = 0; k < QDQ_ES_LANES; k++)
        if (m[k] > mx) mx = m[k];
    piece->max_abs = mx;
    piece->nan = a->nan;
    piece->clipped = a->clipped;
    piece->nonfinite_out = a->nonfinite_out;
    piece->finite_pairs = a->finite_pairs;
}

static inline void qdq_es_add(qdq_es_t *total, const qdq_es_t *piece)
{
    total->signal += piece->signal;
    total->noise += piece->noise;
    if (piece->max_abs > total->max_abs) total->max_abs = piece->max_abs;
    total->nan += piece->nan;
    total->clipped += piece->clipped;
    total->nonfinite_out += piece->nonfinite_out;
    total->finite_pairs += piece->finite_pairs;
}

/* One pair into lane k: the scalar step (the whole loop without vectors). */
static inline void qdq_es_pair(qdq_es_lanes_t *a, int k, double x, double y, double lo,
                               double hi)
{
    const int fx = fabs(x) <= DBL_MAX, fy = fabs(y) <= DBL_MAX;
    a->nan += x != x;
    a->clipped += (x < lo) | (x > hi);
    a->nonfinite_out += fx & !fy;
    if (fx & fy) {
        const double d = fabs(y - x);
        a->finite_pairs += 1;
        a->s[k] += x * x;
        a->e[k] += d * d;
        if (d > a->m[k]) a->m[k] = d;
    }
}

/* Scalar loop over elements [i0, i1) of a piece starting at `start`. */
#define QDQ_ES_SCALAR(LOAD, X, Y, start, i0, i1, a, lo, hi)                      \
    do {                                                                         \
        size_t i_;                                                               \
        for (i_ = (i0); i_ < (i1); i_++)                                         \
            qdq_es_pair((a), (int)((i_ - (start)) % QDQ_ES_LANES),               \
                        (double)LOAD((X) + i_), (double)LOAD((Y) + i_), (lo), (hi)); \
    } while (0)

#define QDQ_ES_LOAD_F16(p) qdq_f16_to_f32(*(p))
#define QDQ_ES_LOAD_BF16(p) qdq_bf16_to_f32(*(p))
#define QDQ_ES_LOAD_F32(p) (*(p))
#define QDQ_ES_LOAD_F64(p) (*(p))

#define QDQ_VB 16
#define QDQ_SFX(name) name##_base
#define QDQ_TARGET
#define QDQ_F16C 0
#include "error_stats_isa.h"
#undef QDQ_VB
#undef QDQ_SFX
#undef QDQ_TARGET
#undef QDQ_F16C

#if QDQ_X86_DISPATCH
#  define QDQ_VB 32
#  define QDQ_SFX(name) name##_avx2
#  define QDQ_TARGET QDQ_TARGET_AVX2
#  define QDQ_F16C 1
#  include "error_stats_isa.h"
#  undef QDQ_VB
#  undef QDQ_SFX
#  undef QDQ_TARGET
#  undef QDQ_F16C
#endif

/* The statistics of one piece (n <= QDQ_ES_PIECE elements from x, y). */
static void qdq_es_piece(int fmt, const void *x, const void *y, size_t n, double lo, double hi,
                         qdq_es_t *piece)
{
    QDQ_DISPATCH_FMT(qdq_es_piece,
        ((const uint16_t *)x, (const uint16_t *)y, n, (float)lo, (float)hi, piece),
        ((const uint16_t *)x, (const uint16_t *)y, n, (float)lo, (float)hi, piece),
        ((const float *)x, (const float *)y, n, (float)lo, (float)hi, piece),
        ((const double *)x, (const double *)y, n, lo, hi, piece))
}

typedef struct {
    int fmt;
    const char *x, *y;
    size_t n;
    double lo, hi;
    qdq_es_t *parts;
} qdq_es_job_t;

static void qdq_es_piece_job(void *ctx, size_t q, int worker)
{
    const qdq_es_job_t *j = (const qdq_es_job_t *)ctx;
    const size_t isz = qdq_fmt_size(j->fmt), start = q * QDQ_ES_PIECE;
    const size_t m = j->n - start < QDQ_ES_PIECE ? j->n - start : QDQ_ES_PIECE;
    (void)worker;
    qdq_es_piece(j->fmt, j->x + start * isz, j->y + start * isz, m, j->lo, j->hi, &j->parts[q]);
}

/* Add the statistics of n pairs from x, y (storage type of fmt) to *total,
 * on up to nthreads threads (pool.h; the result is the same for any count).
 * Returns -1 when out of memory (then *total is unchanged), else 0. */
static int qdq_error_stats(int fmt, const void *x, const void *y, size_t n, double lo,
                           double hi, int nthreads, qdq_es_t *total)
{
    const size_t isz = qdq_fmt_size(fmt), pieces = (n + QDQ_ES_PIECE - 1) / QDQ_ES_PIECE;
    const char *xc = (const char *)x, *yc = (const char *)y;
    qdq_es_t *parts, one;
    qdq_es_job_t job;
    size_t p;
    if (nthreads <= 1 || pieces <= 1) {
        for (p = 0; p < pieces; p++) {
            const size_t start = p * QDQ_ES_PIECE;
            const size_t m = n - start < QDQ_ES_PIECE ? n - start : QDQ_ES_PIECE;
            qdq_es_piece(fmt, xc + start * isz, yc + start * isz, m, lo, hi, &one);
            qdq_es_add(total, &one);
        }
        return 0;
    }
    parts = (qdq_es_t *)malloc(pieces * sizeof *parts);
    if (parts == NULL) return -1;
    job.fmt = fmt;
    job.x = xc;
    job.y = yc;
    job.n = n;
    job.lo = lo;
    job.hi = hi;
    job.parts = parts;
    qdq_parallel(pieces, nthreads, qdq_es_piece_job, &job);
    for (p = 0; p < pieces; p++) qdq_es_add(total, &parts[p]);
    free(parts);
    return 0;
}

#endif /* QDQ_ERROR_STATS_H */
