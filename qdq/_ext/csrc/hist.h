/*
 * The calibration histogram's kernel (qdq._calibrate.histogram): one pass
 * over a chunk bins every element x of a channel into bin floor(x / 2^k) of
 * that channel's signed histogram (bins counts for the bin indices
 * [-bins/2, bins/2)), counts NaN, +inf and -inf apart, and tracks the exact
 * NaN-ignoring minimum and maximum (-0.0 below +0.0). When an element does
 * not fit (|x| >= bins/2 * 2^k) the channel's k grows to the smallest exponent
 * that fits it and the counts so far are summed in groups of 2^d adjacent
 * bins (exact, since bins nest). Per tensor, each thread fills a private
 * histogram over its share of the elements; the histograms are brought to the
 * largest k and summed at the end, so the counts are exact integers
 * independent of the thread count. Per channel, threads own disjoint
 * channels.
 *
 * Included once, by histogram.pyx. The loops have a copy per
 * instruction-set level (cpu.h): the portable loops here (level 0, and
 * float64 at level 1 compiled for AVX2), the AVX2 and AVX-512 loops of
 * hist_isa.h (levels 1 and 2; level 3 runs level 2's). Every level gives the
 * same counts, exponents and min/max bits.
 */
#ifndef QDQ_HIST_H
#define QDQ_HIST_H

#include "cpu.h"
#include "pool.h"
#include "hist_block.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { HK_F16 = 0, HK_BF16 = 1, HK_F32 = 2, HK_F64 = 3 };

/* The state of one channel's histogram. */
typedef struct {
    double lim, s1, s2;      /* bins/2 * 2^k; 2^-k = s1 * s2 (two factors: 2^1074 overflows) */
    float fs1, fs2;          /* 2^-k = fs1 * fs2 as float32 factors (|k| <= 252) */
    int k;
    uint64_t *cnt;           /* bins counts; cnt[h + j] is bin j */
    uint64_t nan, pinf, ninf;
    double mn, mx;
    int woff;                /* blocks left to bin without the window */
} hk_chan;

/* Smallest k >= kfloor with a < h * 2^k (a finite, >= 0; h >= 1; kfloor >= -1074). With
   2^(e-1) <= a < 2^e and 2^(len-1) <= h < 2^len, k = e - len does not fit below (h 2^(k-1) <
   2^(e-1)) and top = e - len + 1 fits (h 2^top >= 2^e). Each product tried in between is
   below 2^e and a multiple of 2^-1074: exact, so the answer does not depend on the
   rounding mode (the loop once relied on an overflow to infinity to stop, and rounded
   toward -inf never did). */
static int hk_kfor(double a, int64_t h, int kfloor) {
    int e, len = 0, k, top;
    int64_t t;
    if (!(a > 0.0)) return kfloor;
    (void)frexp(a, &e);
    for (t = h; t > 0; t >>= 1) len++;
    top = e - len + 1;
    k = e - len;
    if (k < kfloor) k = kfloor;
    if (top < kfloor) top = kfloor;
    while (k < top && !(a < ldexp((double)h, k))) k++;
    return k;
}

static void hk_set_k(hk_chan *c, int64_t h, int k) {
    c->k = k;
    c->lim = ldexp((double)h, k);
    if (-k > 1000) { c->s1 = ldexp(1.0, 1000); c->s2 = ldexp(1.0, -k - 1000); }
    else { c->s1 = ldexp(1.0, -k); c->s2 = 1.0; }
    if (k < -126) { c->fs1 = ldexpf(1.0f, 126); c->fs2 = ldexpf(1.0f, -k - 126); }
    else if (k > 126) { c->fs1 = ldexpf(1.0f, -126); c->fs2 = ldexpf(1.0f, -k + 126); }
    else { c->fs1 = ldexpf(1.0f, -k); c->fs2 = 1.0f; }
}

/* Sum groups of 2^d adjacent bins: bin j goes to floor(j / 2^d). */
static int hk_coarsen(uint64_t *cnt, int64_t bins, int d) {
    int64_t h = bins / 2, i;
    uint64_t *tmp;
    if (d <= 0) return 0;
    tmp = (uint64_t *)calloc((size_t)bins, sizeof(uint64_t));
    if (!tmp) return -1;
    for (i = 0; i < bins; i++) {
        int64_t j = i - h, jj;
        if (!cnt[i]) continue;
        if (d >= 62) jj = j < 0 ? -1 : 0;
        else jj = j >= 0 ? (j >> d) : -(((-j - 1) >> d) + 1);
        tmp[h + jj] += cnt[i];
    }
    memcpy(cnt, tmp, (size_t)bins * sizeof(uint64_t));
    free(tmp);
    return 0;
}

#define HK_LOAD_F32(p, i) ((double)((const float *)(p))[i])
#define HK_LOAD_F64(p, i) (((const double *)(p))[i])

/* The scalar path (blocks holding NaN or inf): bin n elements p[0], p[stride], ...
   into channel c. Returns -1 on allocation failure. */
#define HK_RUN(NAME, LOAD, UNDERFLOW)                                                   \
static int NAME(const void *p, int64_t n, int64_t stride, const float *lut,          \
                hk_chan *cs, int64_t bins, int kfloor) {                              \
    hk_chan c = *cs;                                                                  \
    int64_t h = bins / 2, i;                                                          \
    uint64_t *mid = c.cnt + h;                                                        \
    (void)lut;                                                                        \
    for (i = 0; i < n; i++) {                                                         \
        double v = LOAD(p, i * stride);                                               \
        double a = fabs(v), y;                                                        \
        int64_t t;                                                                    \
        if (!(a < c.lim)) {                                                           \
            if (v != v) { c.nan++; continue; }                                        \
            if (isinf(v)) {                                                           \
                if (v > 0) { c.pinf++; c.mx = v; } else { c.ninf++; c.mn = v; }       \
                continue;                                                             \
            }                                                                         \
            {                                                                         \
                int nk = hk_kfor(a, h, kfloor);                                       \
                if (hk_coarsen(c.cnt, bins, nk - c.k)) { *cs = c; return -1; }        \
                hk_set_k(&c, h, nk);                                                  \
            }                                                                         \
        }                                                                             \
        if (v <= c.mn) { if (v < c.mn || signbit(v)) c.mn = v; }                      \
        if (v >= c.mx) { if (v > c.mx || !signbit(v)) c.mx = v; }                     \
        y = (v * c.s1) * c.s2;                                                        \
        t = (int64_t)y;                                                               \
        t -= (double)t > y;                                                           \
        if (UNDERFLOW) t -= (y == 0.0) & (v < 0.0);                                   \
        mid[t]++;                                                                     \
    }                                                                                 \
    *cs = c;                                                                          \
    return 0;                                                                         \
}
#define HK_LOAD_H16(p, i) ((double)lut[((const uint16_t *)(p))[i]])
HK_RUN(hk_run_f32, HK_LOAD_F32, 0)
HK_RUN(hk_run_f64, HK_LOAD_F64, 1)
HK_RUN(hk_run_h16, HK_LOAD_H16, 0)

/* The fast path works on blocks of HK_BLK elements (float32 or float64; 16-bit
   formats are widened to float32 exactly: in registers at level 2, into a buffer at
   level 0, and at level 1 only when the byte window of hist_isa.h does not apply).
   One vectorised pass over a block gathers
   four reductions of the bit patterns (signed and unsigned min and max, which give
   the exact min/max with -0.0 below +0.0, the largest magnitude, and whether the block
   holds NaN or inf) and the bin indices at the current k; a block holding NaN or inf
   goes to the scalar path, and the indices are recomputed in the rare block that needs
   a larger k. The increments are then spread over four private sub-histograms
   (independent store chains when many elements share a bin) that are added into the
   uint64 counts. */
#define HK_FAST_MAX_BINS 65536
/* uint16 sub-histograms (4 x 2048 take 16 KiB, next to the block in L1), added into
   the counts at least every HK_SUB_LIMIT increments, before any could overflow. */
typedef uint16_t hk_sub_t;
#define HK_SUBS 4
/* One sub-histogram after another, 64 bytes apart beyond the bins: at a multiple of 4 KiB
   the same bin of two of them would alias in the load/store unit. */
#define HK_STRIDE(bins) ((bins) + 32)
#define HK_SUB_LIMIT ((int64_t)4 * 60000)
static hk_sub_t *hk_sub_alloc(int64_t bins) {
    if (bins > HK_FAST_MAX_BINS) return NULL;
    return (hk_sub_t *)calloc((size_t)(HK_SUBS * HK_STRIDE(bins)), sizeof(hk_sub_t));
}
#if defined(__GNUC__)
#define HK_PREFETCH(a) __builtin_prefetch(a)
#else
#define HK_PREFETCH(a) ((void)0)
#endif

static void hk_flush(hk_chan *c, hk_sub_t *sub, int64_t bins) {
    int64_t i, s = HK_STRIDE(bins);
    for (i = 0; i < bins; i++) {
        c->cnt[i] += (uint64_t)sub[i] + sub[s + i] + sub[2 * s + i] + sub[3 * s + i];
    }
    memset(sub, 0, (size_t)(HK_SUBS * s) * sizeof(hk_sub_t));
}

/* floor(v * 2^-k) in T, for |v| below the bound (the callers pass 0 for the elements that
   do not fit, whose indices are not used: the conversion stays defined). "Simple" when
   2^-k = s1 >= 1 (s2 = 1): the product is exact. Else the product of two factors, whose
   truncation is corrected, and a negative product that underflowed to zero goes to bin -1. */
#define HK_IDX_FUNS(T, SUF)                                                             \
static inline int32_t hk_idx_simple_##SUF(T v, T s1, T s2) {                            \
    T y = v * s1;                                                                       \
    int32_t t = (int32_t)y;                                                             \
    (void)s2;                                                                           \
    return t - ((T)t > y);                                                              \
}                                                                                       \
static inline int32_t hk_idx_general_##SUF(T v, T s1, T s2) {                           \
    T y = (v * s1) * s2;                                                                \
    int32_t t = (int32_t)y;                                                             \
    return t - ((T)t > y) - ((y == (T)0) & (v < (T)0));                                 \
}
HK_IDX_FUNS(float, f32)
HK_IDX_FUNS(double, f64)

/* One pass over m elements: the reductions red = {signed max, signed min, unsigned max,
   unsigned min} of the bit patterns, and the bin indices at 2^-k = s1 * s2 of the
   elements whose magnitude bits are below limb. */
#define HK_FUSE_LOOP(T, UT, KT, ABS, IDX)                                               \
    for (i = 0; i < m; i++) {                                                           \
        UT b, bk; T v;                                                                  \
        memcpy(&b, &p[i], sizeof b);                                                    \
        smax = (KT)b > smax ? (KT)b : smax;                                             \
        smin = (KT)b < smin ? (KT)b : smin;                                             \
        umax = b > umax ? b : umax;                                                     \
        umin = b < umin ? b : umin;                                                     \
        bk = (KT)(b & (UT)ABS) < (KT)limb ? b : (UT)0;                                  \
        memcpy(&v, &bk, sizeof v);                                                      \
        idx[i] = IDX(v, s1, s2);                                                        \
    }
#define HK_FUSE(NAME, TARGET, T, UT, KT, KMIN, KMAX, ABS, SUF)                          \
TARGET                                                                                  \
static void NAME(const T *p, int64_t m, T s1, T s2, int simple, UT limb, int32_t *idx,  \
                 UT *red) {                                                             \
    int64_t i;                                                                          \
    KT smax = KMIN, smin = KMAX;                                                        \
    UT umax = 0, umin = (UT)-1;                                                         \
    if (simple) { HK_FUSE_LOOP(T, UT, KT, ABS, hk_idx_simple_##SUF) }                   \
    else { HK_FUSE_LOOP(T, UT, KT, ABS, hk_idx_general_##SUF) }                         \
    red[0] = (UT)smax; red[1] = (UT)smin; red[2] = umax; red[3] = umin;                 \
}
/* The portable copies (level 0). */
#define HK_NO_TARGET
HK_FUSE(hk_fuse_f32_base, HK_NO_TARGET, float, uint32_t, int32_t, INT32_MIN, INT32_MAX,
        0x7fffffffu, f32)
HK_FUSE(hk_fuse_f64_base, HK_NO_TARGET, double, uint64_t, int64_t, INT64_MIN, INT64_MAX,
        0x7fffffffffffffffull, f64)
#if QDQ_CPU_X86
#include "hist_isa.h"
#endif

/* One-time set-up of the module's tables. */
static void hk_init(void) {
#if QDQ_CPU_X86
    hk_pack8_init();
    hk_wb_init();
#endif
}

/* The copy of the histogram loops that runs at a level (cpu.h). */
static inline const char *hk_kernel_isa(int level) {
#if QDQ_CPU_X86
    if (level >= QDQ_ISA_AVX512) return qdq_isa_name(QDQ_ISA_AVX512);
    if (level >= QDQ_ISA_AVX2) return qdq_isa_name(QDQ_ISA_AVX2);
#endif
    (void)level;
    return qdq_isa_name(QDQ_ISA_BASELINE);
}

/* The bit pattern of the bound lim = bins/2 * 2^k in type T, or INFBITS when every finite
   value fits: a magnitude is below lim exactly when its bits are below these. */
#define HK_LIMBITS(T, UT, TMAX, INFBITS, lim, out)                                      \
    do {                                                                                \
        if (!((lim) <= (double)(TMAX))) (out) = (UT)(INFBITS);                          \
        else { T l_ = (T)(lim); memcpy(&(out), &l_, sizeof l_); }                       \
    } while (0)

/* One block of m <= HK_BLK elements of channel c. With sub, the increments go to the
   four sub-histograms (the caller flushes them at the end of its run); without, straight
   into the channel's counts. With WINDOW, FUSE counts the window's bins apart; a block
   with most elements outside it turns the window off for the next 32 blocks. */
#define HK_BLOCK(NAME, PT, T, UT, SHIFT, ABSMASK, INFBITS, TMAX, SCALAR, S1, S2, FUSE,  \
                 WINDOW)                                                                \
static int NAME(const PT *p, int64_t m, int fmt, const float *lut, hk_chan *c,          \
                int64_t bins, int kfloor, hk_sub_t *sub, int64_t *pending, int isa) {   \
    int64_t h = bins / 2, i, n;                                                         \
    int32_t idx[HK_BLK + 16];                                                           \
    uint32_t wc[HK_WIN];                                                                \
    UT red[4], limb, bmax, bmin, amax, a2;                                              \
    T s1 = c->S1, s2 = c->S2, av;                                                       \
    int window = (WINDOW) && c->woff == 0;                                              \
    if (c->woff > 0) c->woff--;                                                         \
    HK_LIMBITS(T, UT, TMAX, INFBITS, c->lim, limb);                                     \
    n = FUSE(p, m, s1, s2, c->k <= 0 && s2 == (T)1, limb, window, idx, red, wc, isa);   \
    /* the max: the largest signed pattern if it is positive, else (all negative) the   \
       smallest unsigned; the min: the largest unsigned if negative, else the smallest */ \
    bmax = (red[0] >> SHIFT) ? red[3] : red[0];                                         \
    bmin = (red[2] >> SHIFT) ? red[2] : red[3];                                         \
    amax = bmax & (UT)ABSMASK; a2 = bmin & (UT)ABSMASK;                                 \
    amax = a2 > amax ? a2 : amax;                                                       \
    if (amax >= (UT)INFBITS) {  /* NaN or inf: the scalar path */                       \
        if (sub) { hk_flush(c, sub, bins); *pending = 0; }                              \
        return SCALAR(p, m, 1, lut, c, bins, kfloor);                                   \
    }                                                                                   \
    if (amax >= limb) {                                                                 \
        int nk;                                                                         \
        memcpy(&av, &amax, sizeof av);                                                  \
        nk = hk_kfor((double)av, h, kfloor);                                            \
        if (sub) { hk_flush(c, sub, bins); *pending = 0; }                              \
        if (hk_coarsen(c->cnt, bins, nk - c->k)) return -1;                             \
        hk_set_k(c, h, nk);                                                             \
        s1 = c->S1; s2 = c->S2;                                                         \
        n = FUSE(p, m, s1, s2, c->k <= 0 && s2 == (T)1, (UT)INFBITS, window, idx, red,  \
                 wc, isa);  /* the new k fits every element */                          \
    }                                                                                   \
    memcpy(&av, &bmin, sizeof av);                                                      \
    if ((double)av < c->mn || ((double)av == c->mn && signbit(av))) c->mn = av;         \
    memcpy(&av, &bmax, sizeof av);                                                      \
    if ((double)av > c->mx || ((double)av == c->mx && !signbit(av))) c->mx = av;        \
    (void)fmt; (void)isa;                                                               \
    if (window) {                                                                       \
        for (i = 0; i < HK_WIN; i++) c->cnt[h - HK_WIN / 2 + i] += wc[i];               \
        if (2 * n > m) c->woff = 32;                                                    \
    }                                                                                   \
    if (!sub) {                                                                         \
        uint64_t *mid = c->cnt + h;                                                     \
        for (i = 0; i < n; i++) mid[idx[i]]++;                                          \
        return 0;                                                                       \
    }                                                                                   \
    {                                                                                   \
        int64_t st_ = HK_STRIDE(bins);                                                  \
        hk_sub_t *q0 = sub + h, *q1 = sub + st_ + h;                                    \
        hk_sub_t *q2 = sub + 2 * st_ + h, *q3 = sub + 3 * st_ + h;                      \
        for (i = 0; i + 4 <= n; i += 4) {                                               \
            if (!(i & 15)) HK_PREFETCH((const void *)((uintptr_t)(p + m) + i * sizeof(PT))); \
            q0[idx[i]]++;                                                               \
            q1[idx[i + 1]]++;                                                           \
            q2[idx[i + 2]]++;                                                           \
            q3[idx[i + 3]]++;                                                           \
        }                                                                               \
        for (; i < n; i++) q0[idx[i]]++;                                                \
    }                                                                                   \
    *pending += n;                                                                      \
    if (*pending > HK_SUB_LIMIT) { hk_flush(c, sub, bins); *pending = 0; }              \
    return 0;                                                                           \
}
/* The fused passes as FUSE, the copy of the level isa: the number of indices written (all
   m without the window, which only the vector copies have). */
#if QDQ_CPU_X86
#define HK_FUSE_F32(p, m, s1, s2, simple, limb, window, idx, red, wc, isa)              \
    ((isa) >= QDQ_ISA_AVX512 ? hk_fuse_f32_avx512(p, m, s1, s2, simple, window, idx, red, wc) \
     : (isa) >= QDQ_ISA_AVX2 ? hk_fuse_f32_avx2(p, m, s1, s2, simple, limb, window, idx, red, wc) \
     : (hk_fuse_f32_base(p, m, s1, s2, simple, limb, idx, red), m))
#define HK_FUSE_F64(p, m, s1, s2, simple, limb, window, idx, red, wc, isa)              \
    ((isa) >= QDQ_ISA_AVX512 ? hk_fuse_f64_avx512(p, m, s1, s2, simple, window, idx, red, wc) \
     : (isa) >= QDQ_ISA_AVX2 ? hk_fuse_f64_avx2w(p, m, s1, s2, simple, limb, window, idx, red, wc) \
     : (hk_fuse_f64_base(p, m, s1, s2, simple, limb, idx, red), m))
#define HK_WINDOW_F32 (isa >= QDQ_ISA_AVX2)
#define HK_WINDOW_F64 (isa >= QDQ_ISA_AVX2)
#else
#define HK_FUSE_F32(p, m, s1, s2, simple, limb, window, idx, red, wc, isa)              \
    (hk_fuse_f32_base(p, m, s1, s2, simple, limb, idx, red), m)
#define HK_FUSE_F64(p, m, s1, s2, simple, limb, window, idx, red, wc, isa)              \
    (hk_fuse_f64_base(p, m, s1, s2, simple, limb, idx, red), m)
#define HK_WINDOW_F32 0
#define HK_WINDOW_F64 0
#endif
HK_BLOCK(hk_blk_f32, float, float, uint32_t, 31, 0x7fffffffu, 0x7f800000u, FLT_MAX, hk_run_f32,
         fs1, fs2, HK_FUSE_F32, HK_WINDOW_F32)
HK_BLOCK(hk_blk_f64, double, double, uint64_t, 63, 0x7fffffffffffffffull, 0x7ff0000000000000ull,
         DBL_MAX, hk_run_f64, s1, s2, HK_FUSE_F64, HK_WINDOW_F64)
#if QDQ_CPU_X86
#define HK_FUSE_H16(p, m, s1, s2, simple, limb, window, idx, red, wc, isa)              \
    hk_fuse_h16_avx512(p, m, fmt, s1, s2, simple, window, idx, red, wc)
/* float16/bfloat16 read as they are (level 2) */
HK_BLOCK(hk_blk_h16, uint16_t, float, uint32_t, 31, 0x7fffffffu, 0x7f800000u, FLT_MAX,
         hk_run_h16, fs1, fs2, HK_FUSE_H16, 1)
#define HK_FUSE_H16_AVX2(p, m, s1, s2, simple, limb, window, idx, red, wc, isa)         \
    hk_fuse_h16_avx2(p, m, fmt, c->k, s1, s2, simple, limb, window, idx, red, wc)
/* float16/bfloat16 read as they are (level 1) */
HK_BLOCK(hk_blk_h16_avx2, uint16_t, float, uint32_t, 31, 0x7fffffffu, 0x7f800000u, FLT_MAX,
         hk_run_h16, fs1, fs2, HK_FUSE_H16_AVX2, 1)
#endif

/* One block of m <= HK_BLK elements of any format (16-bit ones widened to float32 at
   level 0), with the loops of the level in use. */
static int hk_block(const void *x, int64_t m, int fmt, const float *lut, hk_chan *c,
                    int64_t bins, int kfloor, hk_sub_t *sub, int64_t *pending) {
    const int isa = qdq_get_isa();
    if (fmt == HK_F32)
        return hk_blk_f32((const float *)x, m, fmt, lut, c, bins, kfloor, sub, pending, isa);
    if (fmt == HK_F64)
        return hk_blk_f64((const double *)x, m, fmt, lut, c, bins, kfloor, sub, pending, isa);
#if QDQ_CPU_X86
    if (isa >= QDQ_ISA_AVX512)
        return hk_blk_h16((const uint16_t *)x, m, fmt, lut, c, bins, kfloor, sub, pending, isa);
    if (isa >= QDQ_ISA_AVX2)
        return hk_blk_h16_avx2((const uint16_t *)x, m, fmt, lut, c, bins, kfloor, sub, pending,
                               isa);
#endif
    {
        float buf[HK_BLK];
        const uint16_t *u = (const uint16_t *)x;
        int64_t i;
        for (i = 0; i < m; i++) buf[i] = lut[u[i]];
        return hk_blk_f32(buf, m, HK_F32, lut, c, bins, kfloor, sub, pending, isa);
    }
}

/* A contiguous run of n elements of one channel, block by block. */
static int hk_run_fast(const void *x, int64_t n, int fmt, const float *lut, hk_chan *c,
                       int64_t bins, int kfloor, hk_sub_t *sub) {
    int sz = fmt == HK_F64 ? 8 : fmt == HK_F32 ? 4 : 2;
    int64_t done = 0, pending = 0;
    while (done < n) {  /* without sub (bins > HK_FAST_MAX_BINS): straight increments */
        int64_t m = n - done < HK_BLK ? n - done : HK_BLK;
        if (hk_block((const char *)x + done * sz, m, fmt, lut, c, bins, kfloor, sub,
                     &pending)) return -1;
        done += m;
    }
    if (sub) hk_flush(c, sub, bins);
    return 0;
}

static int hk_fmt_size(int fmt) { return fmt == HK_F64 ? 8 : fmt == HK_F32 ? 4 : 2; }

static void hk_merge_minmax(hk_chan *into, const hk_chan *c) {
    if (c->mn < into->mn || (c->mn == into->mn && signbit(c->mn))) into->mn = c->mn;
    if (c->mx > into->mx || (c->mx == into->mx && !signbit(c->mx))) into->mx = c->mx;
}

/* The pieces of a tensor (hk_tensor) or of its channels (hk_channels), for qdq_parallel. */
typedef struct {
    const void *x;
    int64_t n, pre, C, post, k, bins;
    int fmt, kfloor;
    const float *lut;
    hk_chan *cs;       /* hk_tensor: one histogram per piece; hk_channels: the channels' */
    int *err;          /* per piece */
    int kseen;         /* hk_tensor: the largest k a piece has finished at (atomic) */
} hk_job_t;

/* The exponent a piece of hk_tensor starts at: the largest k a finished piece reached.
   Every such k is at most the tensor's final k (the largest over the pieces), and a
   histogram started at any k up to its final one ends with the same counts (bins nest),
   so the counts do not depend on which pieces finished first; a piece that starts warm
   skips the fine bins that the first elements of a cold piece fill and then coarsen. */
#if defined(__GNUC__) || defined(__clang__)
#define HK_KSEEN_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define HK_KSEEN_RAISE(p, k)                                                            \
    do {                                                                                \
        int o_ = __atomic_load_n((p), __ATOMIC_RELAXED);                                \
        while (o_ < (k) && !__atomic_compare_exchange_n((p), &o_, (k), 1,               \
                                                         __ATOMIC_RELAXED, __ATOMIC_RELAXED)) \
            ;                                                                           \
    } while (0)
#else  /* no shared exponent: every piece starts at the tensor's */
#define HK_KSEEN_LOAD(p) INT32_MIN
#define HK_KSEEN_RAISE(p, k) ((void)(p), (void)(k))
#endif

static void hk_tensor_piece(void *ctx, size_t piece, int worker) {
    const hk_job_t *j = (const hk_job_t *)ctx;
    const int64_t t = (int64_t)piece, k = j->k;
    const int64_t a = j->n / k * t + (t < j->n % k ? t : j->n % k);
    const int64_t m = j->n / k + (t < j->n % k);
    hk_sub_t *sub = hk_sub_alloc(j->bins);
    hk_chan *c = &j->cs[t];
    const int k0 = HK_KSEEN_LOAD(&((hk_job_t *)ctx)->kseen);
    (void)worker;
    if (k0 > c->k) hk_set_k(c, j->bins / 2, k0);  /* the counts are all zero yet */
    j->err[t] = hk_run_fast((const char *)j->x + a * hk_fmt_size(j->fmt), m, j->fmt, j->lut,
                            c, j->bins, j->kfloor, sub);
    HK_KSEEN_RAISE(&((hk_job_t *)ctx)->kseen, c->k);
    free(sub);
}

/* One tensor of n contiguous elements, in pieces (of 1 Mi elements, 4 to 16 per thread:
   a thread that gets no CPU holds up at most one) with a histogram each,
   brought to the largest k and added in piece order at the end: the counts are exact and
   do not depend on the thread count. Returns -1 on failure. */
static int hk_tensor(const void *x, int64_t n, int fmt, const float *lut, hk_chan *g,
                     int64_t bins, int kfloor, int nt) {
    int64_t t, k;
    int K, err = 0;
    hk_chan *loc;
    uint64_t *buf;
    int *errs;
    hk_job_t job;
    if (nt < 1) nt = 1;
    if (n < ((int64_t)1 << 16)) nt = 1;
    if (nt == 1) {
        hk_sub_t *sub = hk_sub_alloc(bins);
        int r;
        r = hk_run_fast(x, n, fmt, lut, g, bins, kfloor, sub);
        free(sub);
        return r;
    }
    k = n >> 20;                 /* pieces of 1 Mi elements, 4 to 16 per thread */
    if (k > 16 * (int64_t)nt) k = 16 * (int64_t)nt;
    if (k < 4 * (int64_t)nt) k = 4 * (int64_t)nt;
    if (k > n >> 12) k = n >> 12;
    loc = (hk_chan *)calloc((size_t)k, sizeof(hk_chan));
    buf = (uint64_t *)calloc((size_t)k * (size_t)bins, sizeof(uint64_t));
    errs = (int *)calloc((size_t)k, sizeof(int));
    if (!loc || !buf || !errs) { free(loc); free(buf); free(errs); return -1; }
    for (t = 0; t < k; t++) {
        loc[t] = *g;
        loc[t].cnt = buf + (size_t)t * (size_t)bins;
        loc[t].nan = loc[t].pinf = loc[t].ninf = 0;
    }
    job.x = x; job.n = n; job.k = k; job.bins = bins; job.fmt = fmt; job.kfloor = kfloor;
    job.lut = lut; job.cs = loc; job.err = errs; job.kseen = g->k;
    qdq_parallel((size_t)k, nt, hk_tensor_piece, &job);
    for (t = 0; t < k; t++) err |= errs[t];
    K = g->k;
    for (t = 0; t < k; t++) if (loc[t].k > K) K = loc[t].k;
    if (!err) err |= hk_coarsen(g->cnt, bins, K - g->k);
    for (t = 0; t < k && !err; t++) {
        int64_t i;
        err |= hk_coarsen(loc[t].cnt, bins, K - loc[t].k);
        for (i = 0; i < bins; i++) g->cnt[i] += loc[t].cnt[i];
        g->nan += loc[t].nan; g->pinf += loc[t].pinf; g->ninf += loc[t].ninf;
        hk_merge_minmax(g, &loc[t]);
    }
    hk_set_k(g, bins / 2, K);
    free(loc); free(buf); free(errs);
    return err ? -1 : 0;
}

/* hk_channels_piece with short runs: the bytes of each row a group of channels spans, and
   the bytes of the tile its rows are copied to. */
#define HK_GROUP_BYTES 128
#define HK_TILE_BYTES 32768
static void hk_channels_piece(void *ctx, size_t piece, int worker) {
    const hk_job_t *j = (const hk_job_t *)ctx;
    const int64_t t = (int64_t)piece, C = j->C, pre = j->pre, post = j->post, k = j->k;
    const int64_t c0 = C / k * t + (t < C % k ? t : C % k);
    const int64_t c1 = c0 + C / k + (t < C % k);
    const int sz = hk_fmt_size(j->fmt);
    int64_t p, c, q;
    int64_t pending = 0;
    int err = 0;
    (void)worker;
    if (post >= HK_BLK) {
        /* long contiguous runs: block by block, straight into the counts */
        for (p = 0; p < pre && !err; p++)
            for (c = c0; c < c1 && !err; c++)
                for (q = 0; q < post && !err; q += HK_BLK)
                    err |= hk_block((const char *)j->x + ((p * C + c) * post + q) * sz,
                                    post - q < HK_BLK ? post - q : HK_BLK, j->fmt, j->lut,
                                    &j->cs[c], j->bins, j->kfloor, NULL, &pending);
    } else {
        /* short runs: a group of g channels (HK_GROUP_BYTES of each row) at a time. The
           group's part of HK_TILE_BYTES / HK_GROUP_BYTES rows at a time is copied into a
           tile (in L1), then each channel's runs are gathered from the tile to the end of
           its block; full blocks are binned. Every line of x is read once. (Gathering one
           channel at a time from x instead, a row stride of a power of two puts a block's
           rows in a few cache sets, which evict each other before the next channel reads
           them: 2.6 x the time on 4096 x 4096 float32.) */
        const int64_t rows = HK_BLK / post, run = post * sz;
        const int64_t G = HK_GROUP_BYTES / run > 1 ? HK_GROUP_BYTES / run : 1;
        const int64_t tr = HK_TILE_BYTES / (G * run) > 1 ? HK_TILE_BYTES / (G * run) : 1;
        const int64_t bs = HK_BLK * sz + 64;  /* blocks 64 bytes off 4 KiB apart (cache sets) */
        const int64_t tile_bytes = G > 1 ? tr * G * run : 0;
        unsigned char *blocks = (unsigned char *)malloc((size_t)(G * bs + tile_bytes)), *tile;
        if (!blocks) { j->err[t] = -1; return; }
        tile = blocks + G * bs;
        for (p = 0; p < pre && !err; p += rows) {
            const int64_t nr = pre - p < rows ? pre - p : rows;
            for (c = c0; c < c1 && !err; c += G) {
                const int64_t g = c1 - c < G ? c1 - c : G;
                int64_t r0, r;
                for (r0 = 0; r0 < nr; r0 += tr) {
                    const int64_t m = nr - r0 < tr ? nr - r0 : tr;
                    const unsigned char *src =
                        (const unsigned char *)j->x + ((p + r0) * C + c) * run;
                    if (G == 1) {  /* runs of a group's size or more: no tile */
                        for (r = 0; r < m; r++)
                            memcpy(blocks + (r0 + r) * run, src + r * C * run, (size_t)run);
                        continue;
                    }
                    if (g * run == HK_GROUP_BYTES)  /* a constant size: inlined */
                        for (r = 0; r < m; r++)
                            memcpy(tile + r * HK_GROUP_BYTES, src + r * C * run,
                                   HK_GROUP_BYTES);
                    else
                        for (r = 0; r < m; r++)
                            memcpy(tile + r * g * run, src + r * C * run, (size_t)(g * run));
                    for (q = 0; q < g; q++) {
                        unsigned char *b = blocks + q * bs + r0 * run;
                        const unsigned char *f = tile + q * run;
                        if (run == 4)
                            for (r = 0; r < m; r++) memcpy(b + r * 4, f + r * g * 4, 4);
                        else if (run == 2)
                            for (r = 0; r < m; r++) memcpy(b + r * 2, f + r * g * 2, 2);
                        else
                            for (r = 0; r < m; r++)
                                memcpy(b + r * run, f + r * g * run, (size_t)run);
                    }
                }
                for (q = 0; q < g && !err; q++)
                    err |= hk_block(blocks + q * bs, nr * post, j->fmt, j->lut,
                                    &j->cs[c + q], j->bins, j->kfloor, NULL, &pending);
            }
        }
        free(blocks);
    }
    j->err[t] = err;
}

/* Channels along the middle axis of a C-ordered (pre, C, post) array, in pieces of
   contiguous channels (four per thread), each piece owning its channels. */
static int hk_channels(const void *x, int64_t pre, int64_t C, int64_t post, int fmt,
                       const float *lut, hk_chan *cs, int64_t bins, int kfloor, int nt) {
    int64_t t, k;
    int err = 0;
    int *errs;
    hk_job_t job;
    if (nt < 1) nt = 1;
    if (pre * C * post < ((int64_t)1 << 16)) nt = 1;
    k = nt == 1 ? 1 : 4 * (int64_t)nt;
    if (k > C) k = C;
    errs = (int *)calloc((size_t)k, sizeof(int));
    if (!errs) return -1;
    job.x = x; job.pre = pre; job.C = C; job.post = post; job.k = k; job.bins = bins;
    job.fmt = fmt; job.kfloor = kfloor; job.lut = lut; job.cs = cs; job.err = errs;
    job.kseen = 0;  /* unused: channels own their exponents */
    qdq_parallel((size_t)k, nt, hk_channels_piece, &job);
    for (t = 0; t < k; t++) err |= errs[t];
    free(errs);
    return err ? -1 : 0;
}

#endif /* QDQ_HIST_H */
