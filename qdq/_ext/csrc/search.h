/*
 * The calibration searches over a signed power-of-two histogram (see
 * qdq/_calibrate/histogram.py for the bins and qdq/_calibrate/methods.py for
 * the methods): "mse" and "entropy", one channel per call, channels spread over
 * OpenMP threads. Included once, by search.pyx.
 *
 * Every result is bit-identical to the NumPy formulation they replace (kept as
 * the tests' oracle, tests/calibrate/search_reference.py): the same float64
 * (and, for the op's parameters, float32/T) operations on the same operands in
 * the same order. Where that formulation reduces with a NumPy primitive whose
 * order is NumPy's own, the same order is used here:
 *
 * - the MSE of a block of (at most 128) candidates is a matrix-vector product,
 *   which NumPy hands to its BLAS (an order that depends on the BLAS and the
 *   CPU); it is computed here by calling NumPy's own matmul inner loop on the
 *   same matrix, so it is the same product;
 * - the logarithms of the KL divergence are NumPy's (its SIMD log differs from
 *   the C library's in the last bit for some arguments), through NumPy's own
 *   log inner loop;
 * - the row sums of the KL divergence are NumPy's pairwise summation of rows
 *   padded with zeros to a block's width, reproduced exactly (qdq_pw_sparse).
 *
 * The two inner loops are passed in as function pointers (qdq_loop); they run
 * without the GIL, as NumPy itself runs them.
 *
 * The vectorisable loops have a copy per instruction-set level (search_isa.h,
 * included once per level; cpu.h): the baseline, and on x86-64 level 1 (AVX2)
 * and level 2 (AVX-512F; level 3 runs it). A search runs the copy of the level
 * in use when it is called (qdq_get_isa, the level the kernels module owns).
 * Every copy gives the same bits.
 *
 * FMA contraction must stay off (-ffp-contract=off, as for every qdq kernel).
 */
#ifndef QDQ_SEARCH_H
#define QDQ_SEARCH_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "cpu.h"
#include "fpenv.h"
#include "scalar.h"

/* A NumPy ufunc inner loop (PyUFuncGenericFunction; npy_intp is intptr_t) and its data. */
typedef void (*qdq_loop_fn)(char **args, const intptr_t *dims, const intptr_t *steps,
                            void *data);
typedef struct {
    qdq_loop_fn fn;
    void *data;
} qdq_loop;

#define QDQ_TWO52 4503599627370496.0

/* rint in the default rounding mode (ties to even), as (|v| + 2^52) - 2^52 with the sign put
 * back: exact for |v| < 2^52, and every larger double (and inf, NaN) is its own rint. Written
 * without a libm call so that the loops over the edges vectorise on any target. */
static inline double qdq_rint_d(double v)
{
    double a = fabs(v);
    double r = copysign((a + QDQ_TWO52) - QDQ_TWO52, v);
    return a < QDQ_TWO52 ? r : v;
}

/* NumPy's int64 floor division for a positive divisor. */
static inline int64_t qdq_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && (a < 0)) q -= 1;
    return q;
}

/* NumPy's int64 product and negation: two's complement, wrapping silently. */
static inline int64_t qdq_wrapmul(int64_t a, int64_t b)
{
    return (int64_t)((uint64_t)a * (uint64_t)b);
}
static inline int64_t qdq_wrapneg(int64_t a) { return (int64_t)(0u - (uint64_t)a); }

/* ------------------------------------------------------------------------ */
/* MSE                                                                       */
/* ------------------------------------------------------------------------ */

#define QDQ_CAND_BLOCK 128
#define QDQ_COARSE 128

/* The candidates of one channel: two families (hi sets the scale: lo = -(i * -qmin) // qmax,
 * i = 1..nA; lo sets it: hi = (j * qmax) // -qmin, j = 1..nB), or one candidate. */
typedef struct {
    int fmt;
    int64_t qmin, qmax, k, neg_ext, pos_ext;
    int64_t nA, nB, n;  /* family sizes (0 when absent) and the number of candidates */
    int single;          /* neither family: the one candidate (neg_ext, pos_ext) */
} qdq_mse_cands;

/* One candidate's range and the quantizer its parameters give, in units of the bin width. */
typedef struct {
    double lo_t, hi_t;                 /* the range, values of the data's type */
    double d, clo, chi, qlo, qhi;      /* step, clamp bounds, their quantized values */
    int ok;
} qdq_cand;

static void qdq_cand_ints(const qdq_mse_cands *s, int64_t c, int64_t *lo, int64_t *hi)
{
    if (s->single) {
        *lo = s->neg_ext;
        *hi = s->pos_ext;
    } else if (c < s->nA) {                     /* hi = i sets the scale */
        int64_t i = c + 1, l;
        *hi = i;
        if (s->qmin < 0) {
            l = qdq_wrapneg(qdq_floordiv(qdq_wrapmul(i, -s->qmin), s->qmax));
            *lo = l > s->neg_ext ? l : s->neg_ext;
        } else {
            *lo = 0;
        }
    } else {                                    /* lo = -j sets the scale */
        int64_t j = c - s->nA + 1, h;
        *lo = -j;
        if (s->qmax > 0) {
            h = qdq_floordiv(qdq_wrapmul(j, s->qmax), -s->qmin);
            *hi = h < s->pos_ext ? h : s->pos_ext;
        } else {
            *hi = s->pos_ext;
        }
    }
}

/* The op's parameters for one range, SPEC step 3, as qdq._ext.kernels.params computes them
 * (in T: float rounded to the format after every operation, or double). */
static void qdq_params_f(int fmt, float a, float b, int64_t qmin, int64_t qmax, double *p)
{
    float qminT = qdq_rnd_float((float)qmin, fmt), qmaxT = qdq_rnd_float((float)qmax, fmt);
    float big = fmt == QDQ_F16 ? 65504.0f : fmt == QDQ_BF16 ? 3.3895313892515355e38f : FLT_MAX;
    float s_min = qdq_rnd_float(qminT * a, fmt) > 0 ? qdq_rnd_float(qminT / a, fmt) : big;
    float s_max = qdq_rnd_float(qmaxT * b, fmt) > 0 ? qdq_rnd_float(qmaxT / b, fmt) : big;
    float inv;
    if (s_min < s_max) {
        inv = qdq_rnd_float(a / qminT, fmt);
        p[0] = s_min; p[1] = inv; p[2] = a; p[3] = qdq_rnd_float(qmaxT * inv, fmt);
    } else {
        inv = qdq_rnd_float(b / qmaxT, fmt);
        p[0] = s_max; p[1] = inv; p[2] = qdq_rnd_float(qminT * inv, fmt); p[3] = b;
    }
}

static void qdq_params_d(double a, double b, int64_t qmin, int64_t qmax, double *p)
{
    double qminT = (double)qmin, qmaxT = (double)qmax, big = DBL_MAX;
    double s_min = qminT * a > 0 ? qminT / a : big;
    double s_max = qmaxT * b > 0 ? qmaxT / b : big;
    double inv;
    if (s_min < s_max) {
        inv = a / qminT;
        p[0] = s_min; p[1] = inv; p[2] = a; p[3] = qmaxT * inv;
    } else {
        inv = b / qmaxT;
        p[0] = s_max; p[1] = inv; p[2] = qminT * inv; p[3] = b;
    }
}

static void qdq_cand_get(const qdq_mse_cands *s, int64_t c, qdq_cand *o)
{
    int64_t lo, hi;
    double p[4], scale, inv, lo_adj, hi_adj;
    int ik = (int)s->k;
    qdq_cand_ints(s, c, &lo, &hi);
    o->lo_t = qdq_round_value(s->fmt, ldexp((double)lo, ik));
    o->hi_t = qdq_round_value(s->fmt, ldexp((double)hi, ik));
    if (s->fmt == QDQ_F64) qdq_params_d(o->lo_t, o->hi_t, s->qmin, s->qmax, p);
    else qdq_params_f(s->fmt, (float)o->lo_t, (float)o->hi_t, s->qmin, s->qmax, p);
    scale = p[0]; inv = p[1]; lo_adj = p[2]; hi_adj = p[3];
    o->d = ldexp(inv, -ik);
    o->clo = ldexp(lo_adj, -ik);
    o->chi = ldexp(hi_adj, -ik);
    o->qlo = qdq_rint_d(lo_adj * scale) * o->d;
    o->qhi = qdq_rint_d(hi_adj * scale) * o->d;
    o->ok = isfinite(o->d) && o->d > 0 && isfinite(o->clo) && isfinite(o->chi);
}

/* The constants of one candidate's G (every one computed as the reference computes it for
 * each element). */
typedef struct {
    double d, clo, chi, d3, d3_8, d3_24, hi_gap, lo_gap, hg3, lg3;
    double z_hi, z_lo;  /* the hi (lo) term of an edge that is not above chi (below clo) */
} qdq_gconst;

/* The inner part of G at xc = clip(x): (u^3 + d^3/8)/3 + q d^3/12 - d^3/24. */
static inline double qdq_g_inner(const qdq_gconst *k, double xc)
{
    double q = qdq_rint_d(xc / k->d), u = xc - q * k->d;
    return (u * u * u + k->d3_8) / 3.0 + q * k->d3 / 12.0 - k->d3_24;
}

/* The rint(x / d) of G's inner part, without the division: t = x * (1/d) differs from
 * x / d, and from its float64 rounding, by less than |t| 2^-51 (three roundings), so when t
 * lies further than |t| 2^-50 from the half-integer floor(t) + 1/2 (and |t| < 2^50),
 * rint(x / d) is rint(t). The elements closer to a half-integer (at 2^-50, rare) are flagged,
 * and the caller computes them again with the division. */
#define QDQ_NEAR_HALF(t, r) \
    (((fabs((t) - ((r) > (t) ? (r) - 1.0 : (r)) - 0.5) > fabs(t) * 0x1p-50) \
      & (fabs(t) < 0x1p50)) ^ 1)

/* G again, with the division, at the elements qdq_g_within flagged. */
static void qdq_g_within_fix(const qdq_gconst *k, const double *x, int64_t n, double *g)
{
    const double invd = 1.0 / k->d;
    int64_t e;
    for (e = 0; e < n; e++) {
        double t = x[e] * invd, q = qdq_rint_d(t);
        if (QDQ_NEAR_HALF(t, q)) g[e] = (qdq_g_inner(k, x[e]) + k->z_hi) + k->z_lo;
    }
}

/* The loops with a copy per instruction-set level (search_isa.h; cpu.h): the lanes are
 * independent elements, so every copy gives the same bits. */
typedef struct {
    void (*g_below)(const qdq_gconst *k, const double *x, int64_t n, double *g);
    int (*g_within)(const qdq_gconst *k, const double *x, int64_t n, double *g);
    void (*g_above)(const qdq_gconst *k, const double *x, int64_t n, double *g);
    void (*diff)(const double *g, int64_t n, double *out);
    double (*pw_dense)(const double *a, int64_t n);
    void (*div)(const double *num, const double *den, int64_t n, double *q);
    void (*group_index)(const double *nzd, int64_t m, double fi, double fnb, int bounds,
                        int32_t *gidx, int32_t *fidx, int32_t *lidx);
    void (*group_bounds)(int64_t nb, double fi, double fnb, int32_t *bound);
    int64_t (*count_nonpositive)(const double *q, int64_t m);
    void (*kl_ratio)(const double *pn, const double *q, double sq, int64_t m, double *ratio);
} qdq_search_loops;

#define QDQ_SFX(name) name##_base
#define QDQ_TARGET
#include "search_isa.h"
#undef QDQ_SFX
#undef QDQ_TARGET

#if QDQ_CPU_X86
#  define QDQ_SFX(name) name##_avx2
#  define QDQ_TARGET QDQ_TARGET_AVX2
#  include "search_isa.h"
#  undef QDQ_SFX
#  undef QDQ_TARGET
/* (AVX-512F alone, as the histogram's float64 loops: these loops use nothing else) */
#  define QDQ_SFX(name) name##_avx512
#  define QDQ_TARGET QDQ_TARGET_AVX512F
#  include "search_isa.h"
#  undef QDQ_SFX
#  undef QDQ_TARGET
#endif

/* The copy of the loops that runs at a level: the highest at or below it (level 3 runs
 * level 2's). */
static const qdq_search_loops *qdq_search_loops_at(int level)
{
#if QDQ_CPU_X86
    if (level >= QDQ_ISA_AVX512) return &qdq_search_loops_avx512;
    if (level >= QDQ_ISA_AVX2) return &qdq_search_loops_avx2;
#endif
    (void)level;
    return &qdq_search_loops_base;
}

/* The instruction set of that copy (what qdq_kernel_isa says of the other kernels). */
static inline const char *qdq_search_kernel_isa(int level)
{
#if QDQ_CPU_X86
    if (level >= QDQ_ISA_AVX512) return qdq_isa_name(QDQ_ISA_AVX512);
    if (level >= QDQ_ISA_AVX2) return qdq_isa_name(QDQ_ISA_AVX2);
#endif
    (void)level;
    return qdq_isa_name(QDQ_ISA_BASELINE);
}

static void qdq_mse_g(const qdq_search_loops *L, const qdq_cand *p, const double *x,
                      int64_t n, double *g)
{
    qdq_gconst k;
    double a0, b0;
    int64_t e1, e2, e;
    k.d = p->d; k.clo = p->clo; k.chi = p->chi;
    k.d3 = k.d * k.d * k.d; k.d3_8 = k.d3 / 8.0; k.d3_24 = k.d3 / 24.0;
    k.hi_gap = p->chi - p->qhi; k.lo_gap = p->clo - p->qlo;
    k.hg3 = k.hi_gap * k.hi_gap * k.hi_gap; k.lg3 = k.lo_gap * k.lo_gap * k.lo_gap;
    a0 = k.hi_gap + 0.0;
    b0 = k.lo_gap + 0.0;
    k.z_hi = (a0 * a0 * a0 - k.hg3) / 3.0;
    k.z_lo = (b0 * b0 * b0 - k.lg3) / 3.0;
    if (!(k.clo <= k.chi)) {
        /* (never for a candidate of the searches, but as the reference would do it) */
        for (e = 0; e < n; e++) {
            double v = x[e], xc, r, a, b, dx;
            xc = v < k.clo ? k.clo : v;
            xc = xc > k.chi ? k.chi : xc;
            r = qdq_g_inner(&k, xc);
            dx = v - k.chi;
            a = k.hi_gap + (dx > 0.0 ? dx : 0.0);
            dx = v - k.clo;
            b = k.lo_gap + (dx < 0.0 ? dx : 0.0);
            r = r + (a * a * a - k.hg3) / 3.0;
            g[e] = r + (b * b * b - k.lg3) / 3.0;
        }
        return;
    }
    for (e1 = 0; e1 < n && x[e1] < k.clo; e1++) {}
    for (e2 = n; e2 > e1 && x[e2 - 1] > k.chi; e2--) {}
    L->g_below(&k, x, e1, g);
    if (L->g_within(&k, x + e1, e2 - e1, g + e1)) qdq_g_within_fix(&k, x + e1, e2 - e1, g + e1);
    L->g_above(&k, x + e2, n - e2, g + e2);
}

/* One thread's buffers for the MSE search of a channel. */
typedef struct {
    const qdq_search_loops *L;  /* the loops of the level in use */
    int64_t cap_mat;    /* rows of mat allocated: QDQ_CAND_BLOCK * cap_mat doubles */
    double *x;          /* distinct edges of the non-empty bins (their lower and upper) */
    int64_t *run;       /* runs of adjacent non-empty bins: (first bin, its lower edge in x) */
    double *w;          /* counts of the non-empty bins */
    double *g;          /* G at the edges, one candidate */
    double *mat;        /* (rows, nnz) differences G(upper) - G(lower) */
    double *e;          /* the block's errors */
    double *err;        /* every candidate's error (inf: not evaluated) */
    int64_t rows[QDQ_CAND_BLOCK];   /* the candidates of a block */
    qdq_cand pc[QDQ_CAND_BLOCK];    /* and their parameters */
} qdq_mse_buf;

static void qdq_mse_buf_free(qdq_mse_buf *b)
{
    free(b->x); free(b->run); free(b->w); free(b->g); free(b->mat); free(b->e);
    free(b->err);
    memset(b, 0, sizeof(*b));
}

static int qdq_mse_buf_init(qdq_mse_buf *b, int64_t bins)
{
    size_t nc = (size_t)bins + 2;
    memset(b, 0, sizeof(*b));
    b->x = (double *)malloc(nc * sizeof(double));
    b->run = (int64_t *)malloc(2 * nc * sizeof(int64_t));
    b->w = (double *)malloc(nc * sizeof(double));
    b->g = (double *)malloc(nc * sizeof(double));
    b->e = (double *)malloc(QDQ_CAND_BLOCK * sizeof(double));
    b->err = (double *)malloc(nc * sizeof(double));
    if (!b->x || !b->run || !b->w || !b->g || !b->e || !b->err) {
        qdq_mse_buf_free(b);
        return -1;
    }
    return 0;
}

/* The errors of the rows[0..R) (parameters pc[]): one NumPy matmul. The non-empty bins are
 * nruns runs: run r starts at bin run[2r] (of nnz), its lower edge x[run[2r + 1]]. */
static void qdq_mse_block(qdq_mse_buf *b, int64_t R, int64_t nx, int64_t nnz, int64_t nruns,
                          const qdq_loop *matmul)
{
    int64_t r, q;
    char *args[3];
    intptr_t dims[4], steps[9];
    for (r = 0; r < R; r++) {
        double *row = b->mat + r * nnz;
        qdq_mse_g(b->L, &b->pc[r], b->x, nx, b->g);
        for (q = 0; q < nruns; q++) {
            int64_t t0 = b->run[2 * q], t1 = q + 1 < nruns ? b->run[2 * q + 2] : nnz;
            b->L->diff(b->g + b->run[2 * q + 1], t1 - t0, row + t0);
        }
    }
    /* (R, nnz) @ (nnz,): the reference's (g_upper - g_lower) @ w */
    args[0] = (char *)b->mat; args[1] = (char *)b->w; args[2] = (char *)b->e;
    dims[0] = 1; dims[1] = R; dims[2] = nnz; dims[3] = 1;
    steps[0] = 0; steps[1] = 0; steps[2] = 0;
    steps[3] = (intptr_t)(nnz * (int64_t)sizeof(double)); steps[4] = sizeof(double);
    steps[5] = sizeof(double); steps[6] = 0;
    steps[7] = sizeof(double); steps[8] = 0;
    matmul->fn(args, dims, steps, matmul->data);
    for (r = 0; r < R; r++) {
        double e = b->e[r];
        b->err[b->rows[r]] = e != e ? INFINITY : e;
    }
}

/* The errors of the candidates first, first + step, ... (below end), then extra (if >= 0)
 * that are ok and not yet evaluated (err inf), in blocks of QDQ_CAND_BLOCK of them, as the
 * reference's evaluate(). */
static void qdq_mse_evaluate(const qdq_mse_cands *s, qdq_mse_buf *b, int64_t nx, int64_t nnz,
                             int64_t nruns, int64_t first, int64_t step, int64_t end,
                             int64_t extra, const qdq_loop *matmul)
{
    int64_t c = first, R = 0;
    for (;;) {
        if (c >= end) {
            if (extra < 0) break;
            c = extra;
            extra = -1;
            end = c + 1;
        }
        qdq_cand_get(s, c, &b->pc[R]);
        if (b->pc[R].ok && isinf(b->err[c])) {
            b->rows[R++] = c;
            if (R == QDQ_CAND_BLOCK) {
                qdq_mse_block(b, R, nx, nnz, nruns, matmul);
                R = 0;
            }
        }
        c += step;
    }
    if (R) qdq_mse_block(b, R, nx, nnz, nruns, matmul);
}

/* The MSE search of one channel (counts[0..bins), bin j at counts[h + j]): writes the range
 * (before the final rounding) to lo, hi. Returns -1 when a buffer cannot be allocated. */
static int qdq_mse_channel(const uint64_t *counts, int64_t bins, int64_t k, int fmt,
                           int64_t qmin, int64_t qmax, const qdq_loop *matmul,
                           qdq_mse_buf *b, double *lo, double *hi)
{
    int64_t h = bins / 2, first = -1, last = -1, i, nnz = 0, nx = 0, nruns = 0, fam;
    int64_t fa[2], fb[2], nfam = 0, best;
    qdq_mse_cands s;
    qdq_cand p;
    for (i = 0; i < bins; i++) {
        if (counts[i]) {
            if (first < 0) first = i;
            last = i;
        }
    }
    if (first < 0) {
        *lo = NAN;
        *hi = NAN;
        return 0;
    }
    /* edges of the non-empty bins (in bin-width units), their counts, and runs */
    for (i = first; i <= last; i++) {
        if (!counts[i]) continue;
        if (nx == 0 || b->x[nx - 1] != (double)(i - h)) {
            b->x[nx++] = (double)(i - h);
            b->run[2 * nruns] = nnz;
            b->run[2 * nruns++ + 1] = nx - 1;
        }
        b->w[nnz++] = (double)counts[i];
        b->x[nx++] = (double)(i - h + 1);
    }
    if (nnz > b->cap_mat) {  /* (grown, never shrunk: no fresh pages for every channel) */
        free(b->mat);
        b->mat = (double *)malloc((size_t)QDQ_CAND_BLOCK * (size_t)nnz * sizeof(double));
        b->cap_mat = b->mat ? nnz : 0;
        if (!b->mat) return -1;
    }

    s.fmt = fmt; s.qmin = qmin; s.qmax = qmax; s.k = k;
    s.neg_ext = first - h < 0 ? first - h : 0;
    s.pos_ext = last - h + 1 > 0 ? last - h + 1 : 0;
    s.nA = qmax > 0 ? (s.pos_ext > 1 ? s.pos_ext : 1) : 0;
    s.nB = qmin < 0 ? (-s.neg_ext > 1 ? -s.neg_ext : 1) : 0;
    s.single = s.nA == 0 && s.nB == 0;
    s.n = s.single ? 1 : s.nA + s.nB;
    if (s.single) {
        fa[nfam] = 0; fb[nfam++] = 1;
    } else {
        if (s.nA) { fa[nfam] = 0; fb[nfam++] = s.nA; }
        if (s.nB) { fa[nfam] = s.nA; fb[nfam++] = s.nA + s.nB; }
    }
    for (i = 0; i < s.n; i++) b->err[i] = INFINITY;

    /* Each family is ordered by its step: a coarse pass, then every candidate around the
     * three best coarse ones. */
    for (fam = 0; fam < nfam; fam++) {
        int64_t a = fa[fam], e = fb[fam], n = e - a, stride = n / QDQ_COARSE, t, extra;
        int64_t best3[3], nbest = 0, q;
        if (stride < 1) stride = 1;
        /* coarse = np.unique(np.r_[np.arange(a, e, stride), e - 1]) */
        extra = (e - 1 - a) % stride ? e - 1 : -1;
        qdq_mse_evaluate(&s, b, nx, nnz, nruns, a, stride, e, extra, matmul);
        /* the first three of a stable sort of the coarse errors */
        for (t = a; t < e + stride; t += stride) {
            int64_t c = t < e ? t : extra, pos = nbest, u;
            double v;
            if (c < 0) break;
            v = b->err[c];
            while (pos > 0 && b->err[best3[pos - 1]] > v) pos--;
            if (pos >= 3) continue;
            for (u = (nbest < 3 ? nbest : 2); u > pos; u--) best3[u] = best3[u - 1];
            best3[pos] = c;
            if (nbest < 3) nbest++;
        }
        for (q = 0; q < nbest; q++) {
            int64_t c0 = best3[q], lo0 = c0 - stride > a ? c0 - stride : a;
            int64_t hi0 = c0 + stride + 1 < e ? c0 + stride + 1 : e;
            qdq_mse_evaluate(&s, b, nx, nnz, nruns, lo0, 1, hi0, -1, matmul);
        }
    }
    best = 0;  /* the first minimum: deterministic tie-break */
    for (i = 1; i < s.n; i++)
        if (b->err[i] < b->err[best]) best = i;
    if (!isfinite(b->err[best])) {
        *lo = ldexp((double)s.neg_ext, (int)k);
        *hi = ldexp((double)(last - h + 1), (int)k);
        return 0;
    }
    qdq_cand_get(&s, best, &p);
    *lo = p.lo_t;
    *hi = p.hi_t;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Entropy                                                                   */
/* ------------------------------------------------------------------------ */

#define QDQ_ENTROPY_ROWS 64

/* NumPy's pairwise summation (pairwise_sum in its loops_utils.h: blocks of at most 128
 * summed in 8 interleaved accumulators, longer spans halved at a multiple of 8) of the n
 * values at positions [lo, lo + n) of a row that is +0.0 except at the listed positions
 * pos[*cur..end) (increasing). The zeros need not be added: x + 0.0 == x for every x but
 * -0.0, and no partial sum here is -0.0 (the values are positive, or KL terms p*log(p/q)
 * that are never -0.0). */
static double qdq_pw_sparse(const int64_t *pos, const double *val, int64_t *cur, int64_t end,
                            int64_t lo, int64_t n)
{
    if (*cur >= end || pos[*cur] >= lo + n) return 0.0;
    if (n < 8) {
        double res = 0.0;
        while (*cur < end && pos[*cur] < lo + n) res += val[(*cur)++];
        return res;
    }
    if (n <= 128) {
        double r[8] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0}, res;
        int64_t main_end = lo + n - n % 8;
        while (*cur < end && pos[*cur] < main_end) {
            r[(pos[*cur] - lo) & 7] += val[*cur];
            (*cur)++;
        }
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        while (*cur < end && pos[*cur] < lo + n) res += val[(*cur)++];
        return res;
    } else {
        int64_t n2 = n / 2;
        double left;
        n2 -= n2 % 8;
        left = qdq_pw_sparse(pos, val, cur, end, lo, n2);
        return left + qdq_pw_sparse(pos, val, cur, end, lo + n2, n - n2);
    }
}

/* numpy.sum of a width-wide row that is zero but at the m positions pos[] (increasing),
 * where it holds val[] (dense: the row itself, zero elsewhere). NumPy starts the sum from
 * its identity, 0.0. The sparse walk is for rows much wider than their non-zero count. */
static double qdq_row_sum(const qdq_search_loops *L, const int64_t *pos, const double *val,
                          int64_t m, const double *dense, int64_t width)
{
    int64_t cur = 0;
    if (dense) return 0.0 + L->pw_dense(dense, width);
    return 0.0 + qdq_pw_sparse(pos, val, &cur, m, 0, width);
}

typedef struct {
    const qdq_search_loops *L;  /* the loops of the level in use */
    int64_t cap;
    double *a, *cum, *cnzd, *tail, *nzd, *pnz, *prow, *qrow, *trow, *v;
    double *pval, *qval, *ratio, *lg, *tval, *num, *den;
    int64_t *nzpos;
    int32_t *gidx, *fidx, *lidx;
} qdq_ent_buf;

static void qdq_ent_buf_free(qdq_ent_buf *b)
{
    free(b->a); free(b->cum); free(b->cnzd); free(b->tail); free(b->nzd); free(b->pnz);
    free(b->prow); free(b->qrow); free(b->trow); free(b->v); free(b->pval); free(b->qval);
    free(b->ratio); free(b->lg); free(b->tval); free(b->num); free(b->den);
    free(b->nzpos); free(b->gidx); free(b->fidx); free(b->lidx);
    memset(b, 0, sizeof(*b));
}

static int qdq_ent_buf_init(qdq_ent_buf *b, int64_t h)
{
    size_t n = (size_t)h + 2;
    memset(b, 0, sizeof(*b));
    b->cap = h;
#define QDQ_ALLOC(f, T) (b->f = (T *)malloc(n * sizeof(T))) == NULL
    if (QDQ_ALLOC(a, double) || QDQ_ALLOC(cum, double) || QDQ_ALLOC(cnzd, double)
        || QDQ_ALLOC(tail, double) || QDQ_ALLOC(nzd, double) || QDQ_ALLOC(pnz, double)
        || QDQ_ALLOC(prow, double) || QDQ_ALLOC(qrow, double) || QDQ_ALLOC(trow, double)
        || QDQ_ALLOC(v, double) || QDQ_ALLOC(pval, double) || QDQ_ALLOC(qval, double)
        || QDQ_ALLOC(ratio, double) || QDQ_ALLOC(lg, double) || QDQ_ALLOC(tval, double)
        || QDQ_ALLOC(num, double) || QDQ_ALLOC(den, double) || QDQ_ALLOC(nzpos, int64_t)
        || QDQ_ALLOC(gidx, int32_t) || QDQ_ALLOC(fidx, int32_t) || QDQ_ALLOC(lidx, int32_t)) {
        qdq_ent_buf_free(b);
        return -1;
    }
#undef QDQ_ALLOC
    return 0;
}

/* The group averages q_j of the m non-empty bins j = nz[t] below i when those i bins are
 * merged into nb groups: bin j is in group g = floor(j * nb / i), which holds the bins
 * [first, last) = [ceil(g * i / nb), ceil((g + 1) * i / nb)), and q_j = (cum[last] -
 * cum[first]) / (cnz[last] - cnz[first]) (cnz: the non-empty bins before; exact integers in
 * float64).
 *
 * The reference computes g, first and last in float64, and gets the exact integers: the
 * products are integers below 2^46 (i, nb <= 2^23), and a quotient x = A / B of two of them
 * is rounded by at most x * 2^-53 <= 2^23 * 2^-53 < 1 / B, less than its distance to the
 * next integer when it is not one itself, so its floor and ceil are the exact ones. Here
 * they are computed exactly in integers: the bounds by a walk (i = Q nb + R), a bin's group
 * from a float64 estimate (off by at most one) corrected. */
static void qdq_group_avg(qdq_ent_buf *b, int64_t m, int64_t i, int64_t nb, double *q)
{
    const double *cum = b->cum, *cnzd = b->cnzd;
    const int64_t *nz = b->nzpos;
    double *num = b->num, *den = b->den;
    int64_t t, g;
    if (nb == i) {                                  /* every bin its own group */
        for (t = 0; t < m; t++) {
            int64_t j = nz[t];
            num[t] = cum[j + 1] - cum[j];
            den[t] = cnzd[j + 1] - cnzd[j];
        }
        b->L->div(num, den, m, q);
    } else if (nb <= m) {                           /* every group's average, then the bins' */
        int32_t *bound = b->fidx;
        b->L->group_bounds(nb, (double)i, (double)nb, bound);
        for (g = 0; g < nb; g++) {
            int32_t f = bound[g], l = bound[g + 1];
            double n = cnzd[l] - cnzd[f];
            num[g] = cum[l] - cum[f];
            den[g] = n > 0.0 ? n : 1.0;             /* (an empty group's: never read) */
        }
        b->L->div(num, den, nb, b->v);
        b->L->group_index(b->nzd, m, (double)i, (double)nb, 0, b->gidx, NULL, NULL);
        for (t = 0; t < m; t++) q[t] = b->v[b->gidx[t]];
    } else {                                        /* few bins among many groups */
        b->L->group_index(b->nzd, m, (double)i, (double)nb, 1, b->gidx, b->fidx, b->lidx);
        for (t = 0; t < m; t++) {
            int32_t f = b->fidx[t], l = b->lidx[t];
            num[t] = cum[l] - cum[f];
            den[t] = cnzd[l] - cnzd[f];
        }
        b->L->div(num, den, m, q);
    }
}

/* TensorRT's KL-divergence search on the folded histogram of one channel; writes the range
 * in units of the bin width (before the scaling by 2^k) to lo, hi. As the reference, for
 * each candidate end i (in blocks of 64, padded to the block's last i = width):
 *     p = a[:i], its last bin plus the tail a[i:]; q = the group averages on a's non-empty
 *     bins below i; KL = sum(p/sp * log((p/sp) / (q/sq))) over p > 0, with sp = sum(p),
 *     sq = sum(q) (row sums of width elements), inf where p > 0 meets q <= 0
 * and the last smallest KL wins. When the counts' total is below 2^51, every partial sum of
 * the (integer) counts is exact: sum(p) is the total, whatever the order, and p/sp is the
 * same for every candidate. */
static int qdq_entropy_channel(const uint64_t *counts, int64_t bins, int num_bits,
                               int64_t qmin, const qdq_loop *logl, qdq_ent_buf *b,
                               double *lo, double *hi)
{
    const uint64_t big = (uint64_t)1 << 52;
    int64_t h = bins / 2, first = -1, last = -1, j, stop = 0, start, nbins, nnz = 0, i;
    int64_t best_i, bits, m = 0, t;
    uint64_t total = 0;
    int unsigned_ = qmin >= 0, exact;
    double best = INFINITY, amax, *a = b->a, sp = 0.0;
    for (j = 0; j < bins; j++) {
        if (counts[j]) {
            if (first < 0) first = j;
            last = j;
            total = counts[j] >= big || total >= big ? big : total + counts[j];
        }
    }
    if (first < 0) {
        *lo = NAN;
        *hi = NAN;
        return 0;
    }
    exact = total < big / 2;  /* (a[0] = a[1] below adds at most the total once more) */
    /* the histogram of |x|: bin -1 - j folded onto bin j */
    for (j = 0; j < h; j++) {
        a[j] = (double)counts[h + j] + (double)counts[h - 1 - j];
        if (a[j] != 0.0) stop = j + 1;
    }
    if (stop > 1) a[0] = a[1];  /* TensorRT's guard against a spike of zeros */
    b->tail[stop] = 0.0;
    b->tail[stop - 1] = a[stop - 1];
    for (j = stop - 2; j >= 0; j--) b->tail[j] = b->tail[j + 1] + a[j];
    b->cum[0] = 0.0;
    b->cum[1] = a[0];
    for (j = 1; j < stop; j++) b->cum[j + 1] = b->cum[j] + a[j];
    b->cnzd[0] = 0.0;
    for (j = 0; j < stop; j++) {
        b->cnzd[j + 1] = b->cnzd[j] + (a[j] != 0.0 ? 1.0 : 0.0);
        if (a[j] != 0.0) {
            b->nzpos[nnz] = j;
            b->nzd[nnz++] = (double)j;
        }
        b->prow[j] = b->qrow[j] = b->trow[j] = 0.0;
    }
    if (exact) {
        sp = b->tail[0];
        for (t = 0; t < nnz; t++) b->pnz[t] = a[b->nzpos[t]] / sp;
    }
    bits = num_bits - 1 + unsigned_;
    if (bits > 62) bits = 62;
    nbins = (int64_t)1 << bits;
    if (nbins > stop) nbins = stop;
    start = h / 8 > 1 ? h / 8 : 1;
    if (start > stop) start = stop;
    for (j = 0; j + 1 < start; j++) b->prow[j] = a[j];
    best_i = stop;
    for (i = start; i <= stop; i++) {
        int64_t width = start + ((i - start) / QDQ_ENTROPY_ROWS) * QDQ_ENTROPY_ROWS
                        + QDQ_ENTROPY_ROWS - 1;
        int64_t nb = nbins < i ? nbins : i;
        double plast, sq, kl, *pn;
        int bad, dense, last_nz;
        if (width > stop) width = stop;
        while (m < nnz && b->nzpos[m] < i) m++;  /* non-empty bins below i: nzpos[0..m) */
        dense = width <= 16 * m;
        last_nz = m > 0 && b->nzpos[m - 1] == i - 1;
        /* p: a[:i] with the tail a[i:] added to its last bin */
        plast = a[i - 1] + b->tail[i];
        if (!exact) {
            if (i >= 2) b->prow[i - 2] = a[i - 2];
            b->prow[i - 1] = plast;
            for (t = 0; t < m; t++) b->pval[t] = a[b->nzpos[t]];
            if (last_nz) b->pval[m - 1] = plast;
            /* (when plast is not at a non-empty bin, KL is infinite anyway) */
            if (plast != 0.0 && !last_nz)
                sp = qdq_row_sum(b->L, NULL, NULL, 0, b->prow, width);
            else
                sp = qdq_row_sum(b->L, b->nzpos, b->pval, m, dense ? b->prow : NULL, width);
        }
        /* q: the group averages on the non-empty bins, 0 elsewhere */
        qdq_group_avg(b, m, i, nb, b->qval);
        if (dense)
            for (t = 0; t < m; t++) b->qrow[b->nzpos[t]] = b->qval[t];
        sq = qdq_row_sum(b->L, b->nzpos, b->qval, m, dense ? b->qrow : NULL, width);
        /* p > 0 where q <= 0 (as where the last bin is empty but for the tail): KL is inf */
        bad = sp <= 0 || sq <= 0 || (plast > 0 && !last_nz);
        bad |= b->L->count_nonpositive(b->qval, m) > 0;
        if (bad) {
            kl = INFINITY;
        } else {
            /* Here p's non-zero bins are q's, nzpos[0..m). The terms p/sp * log((p/sp) /
             * (q/sq)), the logarithms NumPy's. */
            char *args[2];
            intptr_t dims[1], steps[2];
            double pl;  /* p/sp of the last bin, which holds the tail too */
            if (exact) {
                pn = b->pnz;
            } else {
                for (t = 0; t < m; t++) b->tval[t] = b->pval[t] / sp;
                pn = b->tval;
            }
            pl = last_nz ? plast / sp : pn[m - 1];
            b->L->kl_ratio(pn, b->qval, sq, m - 1, b->ratio);
            b->ratio[m - 1] = pl / (b->qval[m - 1] / sq);
            args[0] = (char *)b->ratio; args[1] = (char *)b->lg;
            dims[0] = m; steps[0] = sizeof(double); steps[1] = sizeof(double);
            logl->fn(args, dims, steps, logl->data);
            if (dense) {
                for (t = 0; t < m - 1; t++) b->trow[b->nzpos[t]] = pn[t] * b->lg[t];
                b->trow[b->nzpos[m - 1]] = pl * b->lg[m - 1];
            } else {
                for (t = 0; t < m - 1; t++) b->lg[t] = pn[t] * b->lg[t];
                b->lg[m - 1] = pl * b->lg[m - 1];
            }
            kl = qdq_row_sum(b->L, b->nzpos, b->lg, m, dense ? b->trow : NULL, width);
        }
        if (kl <= best) {  /* the last minimum, as TensorRT */
            best = kl;
            best_i = i;
        }
    }
    amax = (double)best_i;
    if (unsigned_) {
        *lo = 0.0;
        *hi = amax;
    } else {
        double l = (double)(first - h < 0 ? first - h : 0);
        double u = (double)(last - h + 1 > 0 ? last - h + 1 : 0);
        *lo = l > -amax ? l : -amax;
        *hi = u < amax ? u : amax;
    }
    if (*lo == 0.0 && *hi == 0.0) *hi = amax;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Over the channels                                                         */
/* ------------------------------------------------------------------------ */

enum { QDQ_SEARCH_MSE = 0, QDQ_SEARCH_ENTROPY = 1 };

/* The search of every channel of counts (C, bins): lo[c], hi[c] (MSE: the range, before the
 * final rounding to the format; entropy: the range scaled by 2^k[c]). Channels are spread
 * over nthreads threads. Returns 0, or -1 when a buffer could not be allocated. */
static int qdq_search(int method, const uint64_t *counts, int64_t C, int64_t bins,
                      const int64_t *k, int fmt, int64_t qmin, int64_t qmax, int num_bits,
                      const qdq_loop *matmul, const qdq_loop *logl, double *lo, double *hi,
                      int nthreads)
{
    int failed = 0;
    const qdq_search_loops *L = qdq_search_loops_at(qdq_get_isa());
    /* each thread's buffers (mse: at most the whole block matrix), at most 1 GiB in all */
    double per = method == QDQ_SEARCH_MSE ? ((double)QDQ_CAND_BLOCK + 8.0) * 8.0 * (double)bins
                                          : 24.0 * 8.0 * (double)(bins / 2 + 2);
    if (nthreads > C) nthreads = C > 0 ? (int)C : 1;
    while (nthreads > 1 && per * nthreads > 1073741824.0) nthreads--;
    if (nthreads < 1) nthreads = 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads) reduction(|: failed)
#endif
    {
        qdq_mse_buf mb;
        qdq_ent_buf eb;
        int64_t c;
        const qdq_fpenv env = qdq_fpenv_enter();  /* each thread: OpenMP's may be shared */
        int ok = method == QDQ_SEARCH_MSE ? qdq_mse_buf_init(&mb, bins) == 0
                                          : qdq_ent_buf_init(&eb, bins / 2) == 0;
        if (!ok) failed = 1;
        mb.L = L;
        eb.L = L;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (c = 0; c < C; c++) {
            const uint64_t *row = counts + c * bins;
            if (!ok) continue;
            if (method == QDQ_SEARCH_MSE) {
                if (qdq_mse_channel(row, bins, k[c], fmt, qmin, qmax, matmul, &mb, &lo[c],
                                    &hi[c]))
                    failed = 1;
            } else {
                double l, u;
                qdq_entropy_channel(row, bins, num_bits, qmin, logl, &eb, &l, &u);
                lo[c] = ldexp(l, (int)k[c]);
                hi[c] = ldexp(u, (int)k[c]);
            }
        }
        if (ok) {
            if (method == QDQ_SEARCH_MSE) qdq_mse_buf_free(&mb);
            else qdq_ent_buf_free(&eb);
        }
        qdq_fpenv_leave(env);
    }
    return failed ? -1 : 0;
}

#endif /* QDQ_SEARCH_H */
