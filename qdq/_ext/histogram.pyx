# cython: language_level=3
"""Histogram kernel of qdq's calibration (private).

One pass over a chunk bins every element ``x`` of a channel into bin
``floor(x / 2**k)`` of that channel's signed histogram (``bins`` counts for
bin indices ``[-bins/2, bins/2)``), counts NaN, +inf and -inf apart, and
tracks the exact NaN-ignoring minimum and maximum (-0.0 below +0.0). When an
element does not fit (``|x| >= bins/2 * 2**k``) the channel's ``k`` grows to
the smallest exponent that fits it and the counts so far are summed in groups
of ``2**d`` adjacent bins (exact, since bins nest). Per tensor, each thread
fills a private histogram over its share of the elements; the histograms are
brought to the largest ``k`` and summed at the end, so the counts are exact
integers independent of the thread count. Per channel, threads own disjoint
channels. The GIL is released throughout.
"""

from libc.stdint cimport int64_t, uint64_t

import numpy as np

cdef extern from *:
    """
    #include <float.h>
    #include <math.h>
    #include <stdint.h>
    #include <stdlib.h>
    #include <string.h>
    #ifdef _OPENMP
    #include <omp.h>
    #endif

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

    /* Smallest k >= kfloor with a < h * 2^k (a finite, >= 0). */
    static int hk_kfor(double a, int64_t h, int kfloor) {
        int e, k;
        if (!(a > 0.0)) return kfloor;
        (void)frexp(a, &e);                       /* a < 2^e */
        k = e;
        while (k > kfloor && a < ldexp((double)h, k - 1)) k--;
        while (!(a < ldexp((double)h, k))) k++;
        return k < kfloor ? kfloor : k;
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
       formats are widened to float32 exactly, in registers with AVX-512BW, else into a
       buffer first). One vectorised pass over a block gathers
       four reductions of the bit patterns (signed and unsigned min and max, which give
       the exact min/max with -0.0 below +0.0, the largest magnitude, and whether the block
       holds NaN or inf) and the bin indices at the current k; a block holding NaN or inf
       goes to the scalar path, and the indices are recomputed in the rare block that needs
       a larger k. The increments are then spread over four private sub-histograms
       (independent store chains when many elements share a bin) that are added into the
       uint64 counts. */
    #define HK_BLK 2048
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
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define HK_CLONES __attribute__((target_clones("avx2", "default")))
    #else
    #define HK_CLONES
    #endif
    #if defined(__GNUC__) && defined(__x86_64__)
    #define HK_X86 1
    #include <immintrin.h>
    /* How far ahead (elements) the vector loops prefetch: the hardware prefetcher alone
       leaves the loops waiting for memory. */
    #define HK_AHEAD 4096
    #define HK_PREFETCH_AHEAD(q)                                                            \
        _mm_prefetch((const char *)((uintptr_t)(q) + HK_AHEAD * sizeof *(q)), _MM_HINT_T0)
    #define HK_AVX2 __attribute__((target("avx2,f16c")))
    #define HK_AVX512 __attribute__((target("avx512f,popcnt")))
    #define HK_AVX512BW __attribute__((target("avx512f,avx512bw,popcnt,f16c")))
    #else
    #define HK_X86 0
    #endif
    #if defined(__GNUC__)
    #define HK_PREFETCH(a) __builtin_prefetch(a)
    #else
    #define HK_PREFETCH(a) ((void)0)
    #endif

    /* The instruction-set levels of the loops: 0 portable, 1 AVX2 + F16C (float32 and the
       widened 16-bit formats, with the window), 2 AVX-512F (float32/float64 with the window),
       3 AVX-512BW (float16/bfloat16 read as they are).
       hk_max_level is what the CPU has (set once by hk_init), the hk_use_* flags what runs. */
    static int hk_max_level = 0, hk_level = 0;
    static int hk_use_avx2 = 0, hk_use_avx512 = 0, hk_use_avx512bw = 0;
    static int hk_set_level(int level) {
        int was = hk_level;
        hk_level = level < 0 ? 0 : level > hk_max_level ? hk_max_level : level;
        hk_use_avx2 = hk_level >= 1;
        hk_use_avx512 = hk_level >= 2;
        hk_use_avx512bw = hk_level >= 3;
        return was;
    }
    #if HK_X86
    static void hk_pack8_init(void);
    #endif
    static void hk_init(void) {
    #if HK_X86
        hk_pack8_init();
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c")) {
            hk_max_level = 1;
            if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt")) {
                hk_max_level = 2;
                if (__builtin_cpu_supports("avx512bw")) hk_max_level = 3;
            }
        }
    #endif
        hk_set_level(hk_max_level);
    }

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
    #define HK_FUSE(NAME, T, UT, KT, KMIN, KMAX, ABS, SUF)                                  \
    HK_CLONES                                                                               \
    static void NAME(const T *p, int64_t m, T s1, T s2, int simple, UT limb, int32_t *idx,  \
                     UT *red) {                                                             \
        int64_t i;                                                                          \
        KT smax = KMIN, smin = KMAX;                                                        \
        UT umax = 0, umin = (UT)-1;                                                         \
        if (simple) { HK_FUSE_LOOP(T, UT, KT, ABS, hk_idx_simple_##SUF) }                   \
        else { HK_FUSE_LOOP(T, UT, KT, ABS, hk_idx_general_##SUF) }                         \
        red[0] = (UT)smax; red[1] = (UT)smin; red[2] = umax; red[3] = umin;                 \
    }
    HK_FUSE(hk_fuse_f32, float, uint32_t, int32_t, INT32_MIN, INT32_MAX, 0x7fffffffu, f32)
    HK_FUSE(hk_fuse_f64, double, uint64_t, int64_t, INT64_MIN, INT64_MAX, 0x7fffffffffffffffull,
            f64)

    #if HK_X86
    /* hk_fuse_f32 with AVX2: the floor in one instruction; with window, the elements in the
       bins [-8, 8) are counted in registers (as the AVX-512 window below: 4-bit counters,
       eight bins to a 32-bit lane, one table look-up per vector, flushed every HK_NIB_STEPS
       vectors, here into 16-bit counters, since a lane takes HK_BLK/8 elements of a block)
       and only the others' indices are written, packed with a table of permutations.
       Returns how many were written. */
    #define HK_NIB_STEPS 15
    static int32_t hk_pack8[256][8];  /* the lanes of mask q first, in order */
    static uint8_t hk_count8[256];
    static void hk_pack8_init(void) {
        int q, l, n;
        for (q = 0; q < 256; q++) {
            for (l = 0, n = 0; l < 8; l++) if (q >> l & 1) hk_pack8[q][n++] = l;
            hk_count8[q] = (uint8_t)n;
            for (; n < 8; n++) hk_pack8[q][n] = 0;
        }
    }
    #define HK_NIB_FLUSH8                                                                   \
        do {                                                                                \
            for (j = 0; j < 4; j++) {                                                       \
                acc[j] = _mm256_add_epi32(acc[j], _mm256_and_si256(                         \
                    _mm256_srli_epi32(nib0, 4 * j), low16));                                \
                acc[4 + j] = _mm256_add_epi32(acc[4 + j], _mm256_and_si256(                 \
                    _mm256_srli_epi32(nib1, 4 * j), low16));                                \
            }                                                                               \
            nib0 = nib1 = _mm256_setzero_si256();                                           \
        } while (0)
    #define HK_FUSE_AVX2_LOOP(INDEX)                                                        \
        for (i = 0; i + 8 <= m; i += 8) {                                                   \
            HK_PREFETCH_AHEAD(p + i);                                                       \
            __m256 v = _mm256_loadu_ps(p + i), y;                                           \
            __m256i b = _mm256_castps_si256(v), t;                                          \
            unsigned out = 0xffu;                                                           \
            smax = _mm256_max_epi32(smax, b);                                               \
            smin = _mm256_min_epi32(smin, b);                                               \
            umax = _mm256_max_epu32(umax, b);                                               \
            umin = _mm256_min_epu32(umin, b);                                               \
            INDEX                                                                           \
            if (window) {                                                                   \
                __m256i w = _mm256_add_epi32(t, half);                                      \
                __m256i in = _mm256_cmpeq_epi32(_mm256_min_epu32(w, last), w);              \
                __m256i inc = _mm256_and_si256(_mm256_permutevar8x32_epi32(tab, w), in);    \
                __m256i upper = _mm256_srai_epi32(_mm256_slli_epi32(w, 28), 31);            \
                nib0 = _mm256_add_epi32(nib0, _mm256_andnot_si256(upper, inc));             \
                nib1 = _mm256_add_epi32(nib1, _mm256_and_si256(upper, inc));                \
                if (++steps == HK_NIB_STEPS) { HK_NIB_FLUSH8; steps = 0; }                  \
                out = ~(unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(in)) & 0xffu;       \
                t = _mm256_permutevar8x32_epi32(                                            \
                    t, _mm256_loadu_si256((const __m256i *)hk_pack8[out]));                 \
            }                                                                               \
            _mm256_storeu_si256((__m256i *)(idx + n), t);                                   \
            n += hk_count8[out];                                                            \
        }
    #define HK_FLOOR_PS(y) _mm256_round_ps((y), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
    HK_AVX2
    static int64_t hk_fuse_f32_avx2(const float *p, int64_t m, float s1, float s2, int simple,
                                    uint32_t limb, int window, int32_t *idx, uint32_t *red,
                                    uint32_t *wc) {
        int64_t i, n = 0;
        __m256i smax = _mm256_set1_epi32(INT32_MIN), smin = _mm256_set1_epi32(INT32_MAX);
        __m256i umax = _mm256_setzero_si256(), umin = _mm256_set1_epi32(-1);
        __m256 vs1 = _mm256_set1_ps(s1), vs2 = _mm256_set1_ps(s2), zero = _mm256_setzero_ps();
        __m256i half = _mm256_set1_epi32(8), last = _mm256_set1_epi32(15);
        __m256i tab = _mm256_setr_epi32(1, 1 << 4, 1 << 8, 1 << 12, 1 << 16, 1 << 20, 1 << 24,
                                        1 << 28);
        __m256i low16 = _mm256_set1_epi32(0x000f000f), nib0 = _mm256_setzero_si256(), nib1 = nib0;
        __m256i acc[8];
        int32_t lane[4][8];
        int j, steps = 0;
        for (j = 0; j < 8; j++) acc[j] = nib0;
        if (simple) {
            HK_FUSE_AVX2_LOOP(y = _mm256_mul_ps(v, vs1);
                              t = _mm256_cvttps_epi32(HK_FLOOR_PS(y));)
        } else {
            HK_FUSE_AVX2_LOOP(y = _mm256_mul_ps(_mm256_mul_ps(v, vs1), vs2);
                              t = _mm256_add_epi32(_mm256_cvttps_epi32(HK_FLOOR_PS(y)),
                                  _mm256_castps_si256(_mm256_and_ps(
                                      _mm256_cmp_ps(y, zero, _CMP_EQ_OQ),
                                      _mm256_cmp_ps(v, zero, _CMP_LT_OQ))));)
        }
        if (window) {
            /* 16-bit counter s of acc[4 h + r] (lanes summed: below 2^16) holds bin
               8 h + r + 4 s */
            HK_NIB_FLUSH8;
            for (j = 0; j < 8; j++) {
                int32_t l8[8], r;
                uint32_t sum = 0;
                _mm256_storeu_si256((__m256i *)l8, acc[j]);
                for (r = 0; r < 8; r++) sum += (uint32_t)l8[r];
                wc[8 * (j >> 2) + (j & 3)] = sum & 0xffffu;
                wc[8 * (j >> 2) + (j & 3) + 4] = sum >> 16;
            }
        }
        _mm256_storeu_si256((__m256i *)lane[0], smax);
        _mm256_storeu_si256((__m256i *)lane[1], smin);
        _mm256_storeu_si256((__m256i *)lane[2], umax);
        _mm256_storeu_si256((__m256i *)lane[3], umin);
        {
            int32_t sx = INT32_MIN, sn = INT32_MAX;
            uint32_t ux = 0, un = (uint32_t)-1;
            for (j = 0; j < 8; j++) {
                sx = lane[0][j] > sx ? lane[0][j] : sx;
                sn = lane[1][j] < sn ? lane[1][j] : sn;
                ux = (uint32_t)lane[2][j] > ux ? (uint32_t)lane[2][j] : ux;
                un = (uint32_t)lane[3][j] < un ? (uint32_t)lane[3][j] : un;
            }
            for (; i < m; i++) {
                uint32_t b, bk; float v;
                memcpy(&b, &p[i], sizeof b);
                sx = (int32_t)b > sx ? (int32_t)b : sx;
                sn = (int32_t)b < sn ? (int32_t)b : sn;
                ux = b > ux ? b : ux;
                un = b < un ? b : un;
                bk = (b & 0x7fffffffu) < limb ? b : 0u;
                memcpy(&v, &bk, sizeof v);
                idx[n++] = simple ? hk_idx_simple_f32(v, s1, s2) : hk_idx_general_f32(v, s1, s2);
            }
            red[0] = (uint32_t)sx; red[1] = (uint32_t)sn; red[2] = ux; red[3] = un;
        }
        return n;
    }

    /* m <= HK_BLK 16-bit values widened exactly to float32. */
    HK_AVX2
    static void hk_widen_avx2(const uint16_t *u, int64_t m, int fmt, float *out) {
        int64_t i;
        for (i = 0; i + 8 <= m; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(u + i));
            HK_PREFETCH_AHEAD(u + i);
            __m256 f = fmt == HK_F16 ? _mm256_cvtph_ps(h)
                                     : _mm256_castsi256_ps(_mm256_slli_epi32(
                                           _mm256_cvtepu16_epi32(h), 16));
            _mm256_storeu_ps(out + i, f);
        }
        for (; i < m; i++) {
            if (fmt == HK_F16) out[i] = _cvtsh_ss(u[i]);
            else { uint32_t b = (uint32_t)u[i] << 16; memcpy(&out[i], &b, sizeof b); }
        }
    }
    #endif

    #if HK_X86
    /* The window: the bins [-HK_WIN/2, HK_WIN/2), where most elements of typical data fall,
       counted in registers, so that only the other elements are stored one by one. Two
       accumulators of 4-bit counters (eight bins to a 32-bit lane: bin w in nibble w % 8 of
       nib[w / 8]) take one table look-up each per vector; every HK_NIB_STEPS vectors, before a
       nibble could overflow, they are added into four accumulators of 8-bit counters (the even
       and the odd nibbles apart), which a block fills to at most HK_BLK/16 <= 255. */
    #define HK_WIN 16
    typedef char hk_window_bytes_fit[HK_BLK / 16 <= 255 ? 1 : -1];
    #define HK_FLOOR_PS512(y) _mm512_roundscale_ps((y), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
    #define HK_FLOOR_PD512(y) _mm512_roundscale_pd((y), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
    /* The state of the AVX-512 fused passes: the window's tables and counters, constants. */
    #define HK_WIN_SETUP                                                                    \
        int64_t i, n = 0;                                                                   \
        int j, r, steps = 0;                                                                \
        __m512i half = _mm512_set1_epi32(HK_WIN / 2), width = _mm512_set1_epi32(HK_WIN);    \
        __m512i one = _mm512_set1_epi32(1), nibs = _mm512_set1_epi32(0x0f0f0f0f);           \
        __m512i tab0, tab1, nib0 = _mm512_setzero_si512(), nib1 = nib0, acc[4];             \
        acc[0] = acc[1] = acc[2] = acc[3] = nib0;                                           \
        {  /* tab_j[w]: the increment of bin w's nibble if it lives in nib_j */             \
            int32_t tl[2][16];                                                              \
            for (r = 0; r < 16; r++) {                                                      \
                tl[0][r] = r < 8 ? (int32_t)(1u << (4 * r)) : 0;                            \
                tl[1][r] = r < 8 ? 0 : (int32_t)(1u << (4 * (r - 8)));                      \
            }                                                                               \
            tab0 = _mm512_loadu_si512((const void *)tl[0]);                                 \
            tab1 = _mm512_loadu_si512((const void *)tl[1]);                                 \
        }
    /* The nibble counters into the byte counters: acc[2 j] even nibbles, acc[2 j + 1] odd. */
    #define HK_NIB_FLUSH                                                                    \
        do {                                                                                \
            acc[0] = _mm512_add_epi32(acc[0], _mm512_and_si512(nib0, nibs));                \
            acc[1] = _mm512_add_epi32(acc[1], _mm512_and_si512(_mm512_srli_epi32(nib0, 4), nibs)); \
            acc[2] = _mm512_add_epi32(acc[2], _mm512_and_si512(nib1, nibs));                \
            acc[3] = _mm512_add_epi32(acc[3], _mm512_and_si512(_mm512_srli_epi32(nib1, 4), nibs)); \
            nib0 = nib1 = _mm512_setzero_si512();                                           \
        } while (0)
    /* 16 indices t_ of the lanes out_: those in the window counted, the others written. */
    #define HK_WIN_STEP(t_, out_)                                                           \
        do {                                                                                \
            if (window) {                                                                   \
                __m512i w_ = _mm512_add_epi32(t_, half);                                    \
                __mmask16 in_ = _mm512_cmplt_epu32_mask(w_, width) & out_;                  \
                nib0 = _mm512_add_epi32(nib0, _mm512_maskz_permutexvar_epi32(in_, w_, tab0)); \
                nib1 = _mm512_add_epi32(nib1, _mm512_maskz_permutexvar_epi32(in_, w_, tab1)); \
                if (++steps == HK_NIB_STEPS) { HK_NIB_FLUSH; steps = 0; }                   \
                out_ &= (__mmask16)~in_;                                                    \
            }                                                                               \
            _mm512_storeu_si512((void *)(idx + n), _mm512_maskz_compress_epi32(out_, t_));   \
            n += _mm_popcnt_u32((unsigned)out_);                                            \
        } while (0)
    /* The window's counts into wc: byte q of acc[2 j + o] holds bin 8 j + 2 q + o. Bytes 0 and
       2 (1 and 3) are summed over the lanes as 16-bit halves of one 32-bit sum: a block adds at
       most 16 * HK_BLK/16 < 2^16 to each. */
    #define HK_WIN_COUNTS                                                                   \
        if (window) {                                                                       \
            __m512i halves = _mm512_set1_epi32(0x00ff00ff);                                 \
            HK_NIB_FLUSH;                                                                   \
            for (j = 0; j < 4; j++) {                                                       \
                uint32_t s02 = (uint32_t)_mm512_reduce_add_epi32(                           \
                    _mm512_and_si512(acc[j], halves));                                      \
                uint32_t s13 = (uint32_t)_mm512_reduce_add_epi32(                           \
                    _mm512_and_si512(_mm512_srli_epi32(acc[j], 8), halves));                \
                r = 8 * (j >> 1) + (j & 1);                                                 \
                wc[r] = s02 & 0xffffu; wc[r + 2] = s13 & 0xffffu;                           \
                wc[r + 4] = s02 >> 16; wc[r + 6] = s13 >> 16;                               \
            }                                                                               \
        }

    /* One vector of 16 float32 (tm: the lanes in the block). */
    #define HK_FUSE512_STEP(tm)                                                             \
        do {                                                                                \
            __mmask16 out_ = (tm);                                                          \
            __m512 v_ = _mm512_mask_loadu_ps(first, out_, p + i), y_;                       \
            __m512i b_ = _mm512_castps_si512(v_), t_;                                       \
            smax = _mm512_max_epi32(smax, b_);                                              \
            smin = _mm512_min_epi32(smin, b_);                                              \
            umax = _mm512_max_epu32(umax, b_);                                              \
            umin = _mm512_min_epu32(umin, b_);                                              \
            if (simple) {                                                                   \
                y_ = _mm512_mul_ps(v_, vs1);                                                \
                t_ = _mm512_cvttps_epi32(HK_FLOOR_PS512(y_));                               \
            } else {                                                                        \
                y_ = _mm512_mul_ps(_mm512_mul_ps(v_, vs1), vs2);                            \
                t_ = _mm512_cvttps_epi32(HK_FLOOR_PS512(y_));                               \
                t_ = _mm512_mask_sub_epi32(t_, _mm512_cmp_ps_mask(y_, zero, _CMP_EQ_OQ)     \
                                           & _mm512_cmp_ps_mask(v_, zero, _CMP_LT_OQ), t_, one); \
            }                                                                               \
            HK_WIN_STEP(t_, out_);                                                          \
        } while (0)

    /* hk_fuse_f32 with AVX-512; with window, the elements in the window are counted in wc and
       only the others' indices are written (compressed) to idx. Returns how many were
       written. idx has room for m + 16. */
    HK_AVX512
    static int64_t hk_fuse_f32_avx512(const float *p, int64_t m, float s1, float s2, int simple,
                                      int window, int32_t *idx, uint32_t *red, uint32_t *wc) {
        __m512i smax = _mm512_set1_epi32(INT32_MIN), smin = _mm512_set1_epi32(INT32_MAX);
        __m512i umax = _mm512_setzero_si512(), umin = _mm512_set1_epi32(-1);
        __m512 vs1 = _mm512_set1_ps(s1), vs2 = _mm512_set1_ps(s2), zero = _mm512_setzero_ps();
        __m512 first = _mm512_set1_ps(p[0]);  /* fills the lanes past the end (min/max unchanged) */
        HK_WIN_SETUP;
        for (i = 0; i + 16 <= m; i += 16) {
            HK_PREFETCH_AHEAD(p + i);
            HK_FUSE512_STEP((__mmask16)0xffff);
        }
        if (i < m) HK_FUSE512_STEP((__mmask16)((1u << (m - i)) - 1));
        red[0] = (uint32_t)_mm512_reduce_max_epi32(smax);
        red[1] = (uint32_t)_mm512_reduce_min_epi32(smin);
        red[2] = _mm512_reduce_max_epu32(umax);
        red[3] = _mm512_reduce_min_epu32(umin);
        HK_WIN_COUNTS
        return n;
    }

    /* Two vectors of 8 float64 (tm: the lanes in the block), their 16 indices together. */
    #define HK_FUSE512D_HALF(v_, y_, tt_, mk_, fix_, q_)                                    \
        do {                                                                                \
            __m512i b_;                                                                     \
            v_ = _mm512_mask_loadu_pd(first, mk_, q_);                                      \
            b_ = _mm512_castpd_si512(v_);                                                   \
            smax = _mm512_max_epi64(smax, b_);                                              \
            smin = _mm512_min_epi64(smin, b_);                                              \
            umax = _mm512_max_epu64(umax, b_);                                              \
            umin = _mm512_min_epu64(umin, b_);                                              \
            y_ = simple ? _mm512_mul_pd(v_, vs1) : _mm512_mul_pd(_mm512_mul_pd(v_, vs1), vs2); \
            tt_ = _mm512_cvttpd_epi32(HK_FLOOR_PD512(y_));                                  \
            fix_ = simple ? (__mmask8)0 : (__mmask8)(_mm512_cmp_pd_mask(y_, zero, _CMP_EQ_OQ) \
                                                     & _mm512_cmp_pd_mask(v_, zero, _CMP_LT_OQ)); \
        } while (0)
    #define HK_FUSE512D_STEP(tm)                                                            \
        do {                                                                                \
            __mmask16 out_ = (tm);                                                          \
            __mmask8 k0_ = (__mmask8)out_, k1_ = (__mmask8)(out_ >> 8), f0_, f1_;           \
            __m512d v0_, v1_, y0_, y1_;                                                     \
            __m256i t0_, t1_;                                                               \
            __m512i t_;                                                                     \
            HK_FUSE512D_HALF(v0_, y0_, t0_, k0_, f0_, p + i);                               \
            HK_FUSE512D_HALF(v1_, y1_, t1_, k1_, f1_, p + i + (m - i > 8 ? 8 : 0));         \
            t_ = _mm512_inserti64x4(_mm512_castsi256_si512(t0_), t1_, 1);                   \
            t_ = _mm512_mask_sub_epi32(t_, (__mmask16)(f0_ | ((unsigned)f1_ << 8)), t_, one); \
            HK_WIN_STEP(t_, out_);                                                          \
        } while (0)

    /* hk_fuse_f64 with AVX-512, as hk_fuse_f32_avx512. */
    HK_AVX512
    static int64_t hk_fuse_f64_avx512(const double *p, int64_t m, double s1, double s2, int simple,
                                      int window, int32_t *idx, uint64_t *red, uint32_t *wc) {
        __m512i smax = _mm512_set1_epi64(INT64_MIN), smin = _mm512_set1_epi64(INT64_MAX);
        __m512i umax = _mm512_setzero_si512(), umin = _mm512_set1_epi64(-1);
        __m512d vs1 = _mm512_set1_pd(s1), vs2 = _mm512_set1_pd(s2), zero = _mm512_setzero_pd();
        __m512d first = _mm512_set1_pd(p[0]);
        HK_WIN_SETUP;
        for (i = 0; i + 16 <= m; i += 16) {
            HK_PREFETCH_AHEAD(p + i);
            HK_PREFETCH_AHEAD(p + i + 8);
            HK_FUSE512D_STEP((__mmask16)0xffff);
        }
        if (i < m) HK_FUSE512D_STEP((__mmask16)((1u << (m - i)) - 1));
        red[0] = (uint64_t)_mm512_reduce_max_epi64(smax);
        red[1] = (uint64_t)_mm512_reduce_min_epi64(smin);
        red[2] = _mm512_reduce_max_epu64(umax);
        red[3] = _mm512_reduce_min_epu64(umin);
        HK_WIN_COUNTS
        return n;
    }

    /* 16 float32 f_ of the lanes k_ (16-bit data widened in registers): their indices. */
    #define HK_FUSE16_HALF(f_, k_)                                                          \
        do {                                                                                \
            __mmask16 out_ = (k_);                                                          \
            __m512 y_ = simple ? _mm512_mul_ps(f_, vs1)                                     \
                               : _mm512_mul_ps(_mm512_mul_ps(f_, vs1), vs2);                \
            __m512i t_ = _mm512_cvt_roundps_epi32(y_, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC); \
            if (!simple)                                                                    \
                t_ = _mm512_mask_sub_epi32(t_, _mm512_cmp_ps_mask(y_, zero, _CMP_EQ_OQ)     \
                                           & _mm512_cmp_ps_mask(f_, zero, _CMP_LT_OQ), t_, one); \
            HK_WIN_STEP(t_, out_);                                                          \
        } while (0)
    /* The largest / smallest 16-bit lane of a, signed (S = epi) or unsigned (S = epu), as
       an unsigned 16-bit pattern. */
    #define HK_RED16(a, S, OP, CVT)                                                         \
        (uint16_t)_mm512_reduce_##OP##_##S##32(_mm512_##OP##_##S##32(                       \
            CVT(_mm512_castsi512_si256(a)), CVT(_mm512_extracti64x4_epi64(a, 1))))

    /* hk_fuse_f32_avx512 for float16/bfloat16 (fmt) read as they are: the reductions on the
       16-bit patterns (the order of the patterns is that of their float32 widenings, to which
       red is widened), 32 elements widened in registers at a time (bfloat16: by interleaving
       with zeros, which permutes the lanes within 128 bits; the counts do not care) and the
       floor in the conversion. */
    HK_AVX512BW
    static int64_t hk_fuse_h16_avx512(const uint16_t *p, int64_t m, int fmt, float s1, float s2,
                                      int simple, int window, int32_t *idx, uint32_t *red,
                                      uint32_t *wc) {
        __m512i smax = _mm512_set1_epi16(INT16_MIN), smin = _mm512_set1_epi16(INT16_MAX);
        __m512i umax = _mm512_setzero_si512(), umin = _mm512_set1_epi16(-1);
        __m512i z = _mm512_setzero_si512(), first = _mm512_set1_epi16((short)p[0]);
        __m512 vs1 = _mm512_set1_ps(s1), vs2 = _mm512_set1_ps(s2), zero = _mm512_setzero_ps();
        uint16_t r16[4];
        int q;
        HK_WIN_SETUP;
        for (i = 0; i < m; i += 32) {
            __mmask32 lm = m - i >= 32 ? (__mmask32)0xffffffffu
                                       : (__mmask32)((1u << (m - i)) - 1u);
            __m512i v = _mm512_mask_loadu_epi16(first, lm, p + i);
            __mmask16 k0 = (__mmask16)lm, k1 = (__mmask16)(lm >> 16);
            __m512 f0, f1;
            HK_PREFETCH_AHEAD(p + i);
            smax = _mm512_max_epi16(smax, v);
            smin = _mm512_min_epi16(smin, v);
            umax = _mm512_max_epu16(umax, v);
            umin = _mm512_min_epu16(umin, v);
            if (fmt == HK_BF16) {
                /* 32-bit lane 4L + q: element 8L + q (low half) or 8L + 4 + q (high half) */
                f0 = _mm512_castsi512_ps(_mm512_unpacklo_epi16(z, v));
                f1 = _mm512_castsi512_ps(_mm512_unpackhi_epi16(z, v));
                if (m - i < 32) {
                    k0 = k1 = 0;
                    for (q = 0; q < 16; q++) {
                        k0 |= (__mmask16)(((lm >> (8 * (q >> 2) + (q & 3))) & 1u) << q);
                        k1 |= (__mmask16)(((lm >> (8 * (q >> 2) + 4 + (q & 3))) & 1u) << q);
                    }
                }
            } else {
                f0 = _mm512_cvtph_ps(_mm512_castsi512_si256(v));
                f1 = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(v, 1));
            }
            HK_FUSE16_HALF(f0, k0);
            HK_FUSE16_HALF(f1, k1);
        }
        r16[0] = HK_RED16(smax, epi, max, _mm512_cvtepi16_epi32);
        r16[1] = HK_RED16(smin, epi, min, _mm512_cvtepi16_epi32);
        r16[2] = HK_RED16(umax, epu, max, _mm512_cvtepu16_epi32);
        r16[3] = HK_RED16(umin, epu, min, _mm512_cvtepu16_epi32);
        for (q = 0; q < 4; q++) {
            if (fmt == HK_BF16) red[q] = (uint32_t)r16[q] << 16;
            else { float f = _cvtsh_ss(r16[q]); memcpy(&red[q], &f, sizeof f); }
        }
        HK_WIN_COUNTS
        return n;
    }
    #define HK_WINDOW_AVX512 hk_use_avx512
    #define HK_WINDOW_AVX2 hk_use_avx2
    #else
    #define HK_WIN 16
    #define HK_WINDOW_AVX512 0
    #define HK_WINDOW_AVX2 0
    #endif
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
                    int64_t bins, int kfloor, hk_sub_t *sub, int64_t *pending) {            \
        int64_t h = bins / 2, i, n;                                                         \
        int32_t idx[HK_BLK + 16];                                                           \
        uint32_t wc[HK_WIN];                                                                \
        UT red[4], limb, bmax, bmin, amax, a2;                                              \
        T s1 = c->S1, s2 = c->S2, av;                                                       \
        int window = (WINDOW) && c->woff == 0;                                              \
        if (c->woff > 0) c->woff--;                                                         \
        HK_LIMBITS(T, UT, TMAX, INFBITS, c->lim, limb);                                     \
        n = FUSE(p, m, s1, s2, c->k <= 0 && s2 == (T)1, limb, window, idx, red, wc);        \
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
                     wc);  /* the new k fits every element */                               \
        }                                                                                   \
        memcpy(&av, &bmin, sizeof av);                                                      \
        if ((double)av < c->mn || ((double)av == c->mn && signbit(av))) c->mn = av;         \
        memcpy(&av, &bmax, sizeof av);                                                      \
        if ((double)av > c->mx || ((double)av == c->mx && !signbit(av))) c->mx = av;        \
        (void)fmt;                                                                          \
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
    /* The fused passes as FUSE: the number of indices written (all m without the window). */
    #if HK_X86
    #define HK_FUSE_F32(p, m, s1, s2, simple, limb, window, idx, red, wc)                   \
        (hk_use_avx512 ? hk_fuse_f32_avx512(p, m, s1, s2, simple, window, idx, red, wc)      \
         : hk_use_avx2 ? hk_fuse_f32_avx2(p, m, s1, s2, simple, limb, window, idx, red, wc)  \
         : (hk_fuse_f32(p, m, s1, s2, simple, limb, idx, red), m))
    #else
    #define HK_FUSE_F32(p, m, s1, s2, simple, limb, window, idx, red, wc)                   \
        (hk_fuse_f32(p, m, s1, s2, simple, limb, idx, red), m)
    #endif
    #if HK_X86
    #define HK_FUSE_F64(p, m, s1, s2, simple, limb, window, idx, red, wc)                   \
        (hk_use_avx512 ? hk_fuse_f64_avx512(p, m, s1, s2, simple, window, idx, red, wc)      \
         : (hk_fuse_f64(p, m, s1, s2, simple, limb, idx, red), m))
    #else
    #define HK_FUSE_F64(p, m, s1, s2, simple, limb, window, idx, red, wc)                   \
        (hk_fuse_f64(p, m, s1, s2, simple, limb, idx, red), m)
    #endif
    HK_BLOCK(hk_blk_f32, float, float, uint32_t, 31, 0x7fffffffu, 0x7f800000u, FLT_MAX, hk_run_f32,
             fs1, fs2, HK_FUSE_F32, HK_WINDOW_AVX2)
    HK_BLOCK(hk_blk_f64, double, double, uint64_t, 63, 0x7fffffffffffffffull, 0x7ff0000000000000ull,
             DBL_MAX, hk_run_f64, s1, s2, HK_FUSE_F64, HK_WINDOW_AVX512)
    #if HK_X86
    #define HK_FUSE_H16(p, m, s1, s2, simple, limb, window, idx, red, wc)                   \
        hk_fuse_h16_avx512(p, m, fmt, s1, s2, simple, window, idx, red, wc)
    /* float16/bfloat16 read as they are (only with AVX-512BW) */
    HK_BLOCK(hk_blk_h16, uint16_t, float, uint32_t, 31, 0x7fffffffu, 0x7f800000u, FLT_MAX,
             hk_run_h16, fs1, fs2, HK_FUSE_H16, 1)
    #endif


    /* One block of m <= HK_BLK elements of any format (16-bit ones widened to float32). */
    static int hk_block(const void *x, int64_t m, int fmt, const float *lut, hk_chan *c,
                        int64_t bins, int kfloor, hk_sub_t *sub, int64_t *pending) {
        if (fmt == HK_F32)
            return hk_blk_f32((const float *)x, m, fmt, lut, c, bins, kfloor, sub, pending);
        if (fmt == HK_F64)
            return hk_blk_f64((const double *)x, m, fmt, lut, c, bins, kfloor, sub, pending);
    #if HK_X86
        if (hk_use_avx512bw)
            return hk_blk_h16((const uint16_t *)x, m, fmt, lut, c, bins, kfloor, sub, pending);
    #endif
        {
            float buf[HK_BLK];
            const uint16_t *u = (const uint16_t *)x;
            int64_t i;
    #if HK_X86
            if (hk_use_avx2) hk_widen_avx2(u, m, fmt, buf);
            else
    #endif
            for (i = 0; i < m; i++) buf[i] = lut[u[i]];
            return hk_blk_f32(buf, m, HK_F32, lut, c, bins, kfloor, sub, pending);
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

    /* One tensor of n contiguous elements, split among nt threads. Returns -1 on failure. */
    static int hk_tensor(const void *x, int64_t n, int fmt, const float *lut, hk_chan *g,
                         int64_t bins, int kfloor, int nt) {
        int sz = hk_fmt_size(fmt), t, K, err = 0;
        hk_chan *loc;
        uint64_t *buf;
        if (nt < 1) nt = 1;
        if (n < ((int64_t)1 << 16)) nt = 1;
        if (nt == 1) {
            hk_sub_t *sub = hk_sub_alloc(bins);
            int r;
            r = hk_run_fast(x, n, fmt, lut, g, bins, kfloor, sub);
            free(sub);
            return r;
        }
        loc = (hk_chan *)calloc((size_t)nt, sizeof(hk_chan));
        buf = (uint64_t *)calloc((size_t)nt * (size_t)bins, sizeof(uint64_t));
        if (!loc || !buf) { free(loc); free(buf); return -1; }
        for (t = 0; t < nt; t++) {
            loc[t] = *g;
            loc[t].cnt = buf + (size_t)t * (size_t)bins;
            loc[t].nan = loc[t].pinf = loc[t].ninf = 0;
        }
        #ifdef _OPENMP
        #pragma omp parallel for num_threads(nt) schedule(static, 1) reduction(|:err)
        #endif
        for (t = 0; t < nt; t++) {
            int64_t a = n / nt * t + (t < n % nt ? t : n % nt);
            int64_t m = n / nt + (t < n % nt);
            hk_sub_t *sub = hk_sub_alloc(bins);
            err |= hk_run_fast((const char *)x + a * sz, m, fmt, lut, &loc[t], bins, kfloor, sub);
            free(sub);
        }
        K = g->k;
        for (t = 0; t < nt; t++) if (loc[t].k > K) K = loc[t].k;
        if (!err) err |= hk_coarsen(g->cnt, bins, K - g->k);
        for (t = 0; t < nt && !err; t++) {
            int64_t i;
            err |= hk_coarsen(loc[t].cnt, bins, K - loc[t].k);
            for (i = 0; i < bins; i++) g->cnt[i] += loc[t].cnt[i];
            g->nan += loc[t].nan; g->pinf += loc[t].pinf; g->ninf += loc[t].ninf;
            hk_merge_minmax(g, &loc[t]);
        }
        hk_set_k(g, bins / 2, K);
        free(loc); free(buf);
        return err ? -1 : 0;
    }

    /* Channels along the middle axis of a C-ordered (pre, C, post) array; threads own
       contiguous blocks of channels. */
    static int hk_channels(const void *x, int64_t pre, int64_t C, int64_t post, int fmt,
                           const float *lut, hk_chan *cs, int64_t bins, int kfloor, int nt) {
        int sz = hk_fmt_size(fmt), t, err = 0;
        if (nt < 1) nt = 1;
        if ((int64_t)nt > C) nt = (int)C;
        if (pre * C * post < ((int64_t)1 << 16)) nt = 1;
        #ifdef _OPENMP
        #pragma omp parallel for num_threads(nt) schedule(static, 1) reduction(|:err)
        #endif
        for (t = 0; t < nt; t++) {
            int64_t c0 = C / nt * t + (t < C % nt ? t : C % nt);
            int64_t c1 = c0 + C / nt + (t < C % nt);
            int64_t p, c, q;
            int64_t pending = 0;
            unsigned char buf[HK_BLK * 8];
            if (post >= HK_BLK) {
                /* long contiguous runs: block by block, straight into the counts */
                for (p = 0; p < pre && !err; p++)
                    for (c = c0; c < c1 && !err; c++)
                        for (q = 0; q < post && !err; q += HK_BLK)
                            err |= hk_block((const char *)x + ((p * C + c) * post + q) * sz,
                                            post - q < HK_BLK ? post - q : HK_BLK, fmt, lut,
                                            &cs[c], bins, kfloor, NULL, &pending);
            } else {
                /* short runs: gather a tile of rows of one channel into a block */
                int64_t rows = HK_BLK / post;
                for (p = 0; p < pre && !err; p += rows) {
                    int64_t r, nr = pre - p < rows ? pre - p : rows;
                    for (c = c0; c < c1 && !err; c++) {
                        if (post == 1) {
                            for (r = 0; r < nr; r++)
                                memcpy(buf + r * sz, (const char *)x + ((p + r) * C + c) * sz,
                                       (size_t)sz);
                        } else {
                            for (r = 0; r < nr; r++)
                                memcpy(buf + r * post * sz,
                                       (const char *)x + ((p + r) * C + c) * post * sz,
                                       (size_t)(post * sz));
                        }
                        err |= hk_block(buf, nr * post, fmt, lut, &cs[c], bins, kfloor, NULL,
                                        &pending);
                    }
                }
            }
        }
        return err ? -1 : 0;
    }
    """
    ctypedef struct hk_chan:
        double lim, s1, s2
        int k
        uint64_t *cnt
        uint64_t nan, pinf, ninf
        double mn, mx
    void hk_init() noexcept nogil
    int hk_set_level(int level) noexcept nogil
    int hk_max_level, hk_level
    int HK_BLK
    void hk_set_k(hk_chan *c, int64_t h, int k) noexcept nogil
    int hk_kfor(double a, int64_t h, int kfloor) noexcept nogil
    int hk_tensor(const void *x, int64_t n, int fmt, const float *lut, hk_chan *g,
                  int64_t bins, int kfloor, int nt) noexcept nogil
    int hk_channels(const void *x, int64_t pre, int64_t C, int64_t post, int fmt,
                    const float *lut, hk_chan *cs, int64_t bins, int kfloor, int nt) noexcept nogil

hk_init()

#: Elements per block of the vectorised path (one pass over a block gives its min/max and
#: bin indices; the window's 8-bit counters hold a block's counts).
BLOCK = HK_BLK

#: Format codes of :func:`update`.
F16 = 0
BF16 = 1
F32 = 2
F64 = 3


def simd_level(level=None):
    """The instruction-set level of the loops; with ``level``, use that one (capped at the CPU's).

    0 portable, 1 AVX2 + F16C, 2 AVX-512F, 3 AVX-512BW (float16/bfloat16
    read as they are). Returns the level in use before the call. The tests
    check that every level gives the same bits.
    """
    if level is None:
        return hk_level
    return hk_set_level(level)


def max_simd_level():
    """The highest instruction-set level this CPU has (see :func:`simd_level`)."""
    return hk_max_level


def kfor(double a, int64_t h, int kfloor):
    """The smallest ``k >= kfloor`` with ``a < h * 2**k`` (``a`` finite, >= 0)."""
    return hk_kfor(a, h, kfloor)


# Per format code: the storage dtype, the exponent of the smallest subnormal, the largest value.
_FORMATS = {F16: (np.dtype(np.uint16), -24, 65504.0),
            BF16: (np.dtype(np.uint16), -133, 3.3895313892515355e38),
            F32: (np.dtype(np.float32), -149, float(np.finfo(np.float32).max)),
            F64: (np.dtype(np.float64), -1074, float(np.finfo(np.float64).max))}


cdef _check_array(str name, a, dtype, tuple shape):
    if (not isinstance(a, np.ndarray) or a.dtype != dtype or a.shape != shape
            or not a.flags.c_contiguous or not a.flags.aligned):
        got = (f"{a.dtype} {a.shape}" if isinstance(a, np.ndarray) else type(a).__name__)
        raise ValueError(f"histogram kernel: {name} must be a C-contiguous aligned {dtype} "
                         f"array of shape {shape}, got {got}")


cdef _check_update(x, int fmt, lut, int64_t pre, int64_t C, int64_t post,
                   k, counts, special, mn, mx, int kfloor, int nthreads):
    """Every argument of :func:`update` against the others (ValueError): defence in depth."""
    if fmt not in _FORMATS:
        raise ValueError(f"histogram kernel: unknown format code {fmt}")
    storage, floor, top = _FORMATS[fmt]
    if kfloor != floor:
        raise ValueError(f"histogram kernel: kfloor must be {floor} for format {fmt}")
    if nthreads < 1:
        raise ValueError(f"histogram kernel: nthreads must be at least 1, got {nthreads}")
    if not isinstance(x, np.ndarray):
        raise ValueError(f"histogram kernel: x must be an array, got {type(x).__name__}")
    if pre < 0 or C < 0 or post < 0 or int(pre) * int(C) * int(post) != x.size:
        raise ValueError(f"histogram kernel: shape ({pre}, {C}, {post}) does not hold the "
                         f"{x.size} elements of x")
    _check_array("x", x, storage, x.shape)
    if not isinstance(counts, np.ndarray) or counts.ndim != 2:
        raise ValueError("histogram kernel: counts must be a 2-D array")
    bins = counts.shape[1]
    if bins < 16 or bins % 2 or bins > (1 << 24):
        raise ValueError(f"histogram kernel: bins must be even in [16, 2**24], got {bins}")
    _check_array("counts", counts, np.dtype(np.uint64), (C, bins))
    _check_array("k", k, np.dtype(np.int64), (C,))
    _check_array("special", special, np.dtype(np.uint64), (C, 3))
    _check_array("mn", mn, np.dtype(np.float64), (C,))
    _check_array("mx", mx, np.dtype(np.float64), (C,))
    if fmt == F16 or fmt == BF16:
        _check_array("lut", lut, np.dtype(np.float32), (1 << 16,))
    for a in (counts, k, special, mn, mx):
        if not a.flags.writeable:
            raise ValueError("histogram kernel: the histogram arrays must be writeable")
    kmax = hk_kfor(top, bins // 2, floor)
    if C and (k.min() < floor or k.max() > kmax):
        raise ValueError(f"histogram kernel: k must be in [{floor}, {kmax}], got "
                         f"[{k.min()}, {k.max()}]")


def update(x, int fmt, lut, int64_t pre, int64_t C, int64_t post,
           k, counts, special, mn, mx, int kfloor, int nthreads):
    """Bin the C-contiguous ``x`` (storage type of ``fmt``) of C-order shape (pre, C, post).

    Per tensor ``C == 1`` (and ``pre == 1``). ``k`` (int64, C), ``counts``
    (uint64, (C, bins)), ``special`` (uint64, (C, 3): NaN, +inf, -inf), ``mn``
    and ``mx`` (float64, C) are updated in place; all must be C-contiguous.
    ``lut`` is the float32 value of every 16-bit pattern for float16/bfloat16.
    Every shape, dtype, layout and ``k`` is checked first (ValueError).
    """
    _check_update(x, fmt, lut, pre, C, post, k, counts, special, mn, mx, kfloor, nthreads)
    cdef int64_t bins = counts.shape[1], c, n = x.size
    cdef int64_t[::1] kv = k
    cdef uint64_t[:, ::1] cv = counts
    cdef uint64_t[:, ::1] sv = special
    cdef double[::1] mnv = mn, mxv = mx
    cdef const float[::1] lv
    cdef const float *lp = NULL
    cdef int err = 0
    cdef hk_chan *cs
    cdef const unsigned char[::1] xb
    cdef unsigned char[::1] av
    cdef const void *xp
    if fmt == F16 or fmt == BF16:
        lv = lut
        lp = &lv[0]
    if C == 0 or n == 0:
        return
    xb = x.reshape(-1).view(np.uint8)
    xp = <const void *> &xb[0]
    arr = np.zeros(C * sizeof(hk_chan), np.uint8)
    av = arr
    cs = <hk_chan *> &av[0]
    for c in range(C):
        hk_set_k(&cs[c], bins // 2, <int>kv[c])
        cs[c].cnt = &cv[c, 0]
        cs[c].nan = sv[c, 0]
        cs[c].pinf = sv[c, 1]
        cs[c].ninf = sv[c, 2]
        cs[c].mn = mnv[c]
        cs[c].mx = mxv[c]
    with nogil:
        if C == 1:
            err = hk_tensor(xp, n, fmt, lp, &cs[0], bins, kfloor, nthreads)
        else:
            err = hk_channels(xp, pre, C, post, fmt, lp, cs, bins, kfloor, nthreads)
    for c in range(C):
        kv[c] = cs[c].k
        sv[c, 0] = cs[c].nan
        sv[c, 1] = cs[c].pinf
        sv[c, 2] = cs[c].ninf
        mnv[c] = cs[c].mn
        mxv[c] = cs[c].mx
    if err:
        raise MemoryError("histogram kernel: out of memory")
