/*
 * The x86-64 loops of the calibration histogram (hist.h): the fused pass over
 * a block (the four reductions of the bit patterns and the bin indices, with
 * the central bins counted in registers) at level 1 (AVX2 + F16C: float32,
 * float64, and float16/bfloat16 binned from their bit patterns through the byte
 * window) and level 2 (AVX-512 F/BW/VL: float32, float64, and float16/bfloat16
 * widened in registers). Included once, by hist.h,
 * on x86-64 with GCC or Clang (QDQ_CPU_X86); the functions carry the target
 * attributes of their level (cpu.h), and hist.h calls them only at that level
 * or above. They give the bits of the portable loops of hist.h.
 */
#ifndef QDQ_HIST_ISA_H
#define QDQ_HIST_ISA_H

#include "fpenv.h"
#include "hist_block.h"

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
/* 8 indices t (an lvalue) of the AVX2 fused passes: with window, those in the window
   counted, the others packed to the front; written at idx + n. */
#define HK_WIN8_STEP(t)                                                                 \
    do {                                                                                \
        unsigned out = 0xffu;                                                           \
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
    } while (0)
/* The state of the AVX2 window. */
#define HK_WIN8_SETUP                                                                   \
    __m256i half = _mm256_set1_epi32(8), last = _mm256_set1_epi32(15);                  \
    __m256i tab = _mm256_setr_epi32(1, 1 << 4, 1 << 8, 1 << 12, 1 << 16, 1 << 20, 1 << 24, \
                                    1 << 28);                                           \
    __m256i low16 = _mm256_set1_epi32(0x000f000f), nib0 = _mm256_setzero_si256(), nib1 = nib0; \
    __m256i acc[8];                                                                     \
    int j, steps = 0;                                                                   \
    for (j = 0; j < 8; j++) acc[j] = nib0
/* The window's counts into wc: 16-bit counter s of acc[4 h + r] (lanes summed: below
   2^16) holds bin 8 h + r + 4 s. */
#define HK_WIN8_COUNTS                                                                  \
    if (window) {                                                                       \
        HK_NIB_FLUSH8;                                                                  \
        for (j = 0; j < 8; j++) {                                                       \
            int32_t l8[8], r;                                                           \
            uint32_t sum = 0;                                                           \
            _mm256_storeu_si256((__m256i *)l8, acc[j]);                                 \
            for (r = 0; r < 8; r++) sum += (uint32_t)l8[r];                             \
            wc[8 * (j >> 2) + (j & 3)] = sum & 0xffffu;                                 \
            wc[8 * (j >> 2) + (j & 3) + 4] = sum >> 16;                                 \
        }                                                                               \
    }
/* The byte window (level 1): when 2^k, 2^(k+1) and 2^(k+2) are normal numbers of the
   format, an element's bin in the window [-8, 8) follows from its bit pattern alone, with
   no floating-point arithmetic. For a magnitude pattern a (a - 1 for a negative element
   other than -0.0, so that the half-open bins of the negative side close at the same
   patterns), q = (a - P + 2^s) >> s, with P the pattern of 2^k and s the format's
   mantissa bits less two, is <= 0 below 2^k (bin 0, or -1 when negative), 1..4 in
   [2^k, 2^(k+1)) (bin 1), 5..8 in the next binade (bins 2, 3 by the top mantissa bit),
   9..12 in the one after (bins 4..7 by the top two), and >= 13 from 8 * 2^k on (outside
   the window). The q of 32 elements, saturated to bytes, are looked up as w = bin + 8
   (w ^ 15 for a negative element: -1 - bin), bit 7 set outside; the window's counts are
   then taken from the bytes, two bins to a byte table (4-bit counters, flushed every
   HK_NIB_STEPS vectors into 64-bit sums of absolute differences). The elements outside
   are gathered from the groups of 32 that hold any (the main loop keeps a list of them:
   the others cost nothing after it; one by one while the groups hold 2.5 or fewer on
   average, else eight at a time, packed: many when the histogram's exponent still lags
   behind the data's), widened to float32 and given their indices eight at a time, as in
   hk_fuse_f32_avx2. The min and max come from the signed min and max of the order keys (the pattern with its magnitude
   bits flipped when negative: the total order of the values, -0.0 below +0.0, NaN beyond
   the infinities), handed back in red as HK_BLOCK reads the four reductions. */
#define HK_WB_CAP 13
/* hk_wb_tab[g][w] (w < 16, in both 128-bit halves): 1 for w = 2g, 16 for w = 2g + 1 */
static uint8_t hk_wb_tab[8][32] __attribute__((aligned(32)));
/* The element of its group of 32 that byte b of the packed bytes holds (two vectors of
   16-bit elements packed within 128-bit lanes). */
static uint8_t hk_wb_elem16[32];
static void hk_wb_init(void) {
    int g, w, b;
    for (g = 0; g < 8; g++)
        for (w = 0; w < 32; w++)
            hk_wb_tab[g][w] = (uint8_t)((w & 15) == 2 * g ? 1 : (w & 15) == 2 * g + 1 ? 16 : 0);
    for (b = 0; b < 32; b++) hk_wb_elem16[b] = (uint8_t)((b >> 4) * 8 + (b & 7) + (b & 8) * 2);
}
/* The window's counts wc[w] from the bytes wb of m32 elements (a multiple of 32). */
QDQ_TARGET_AVX2
static void hk_wb_count(const uint8_t *wb, int64_t m32, uint32_t *wc) {
    const __m256i zero = _mm256_setzero_si256(), low4 = _mm256_set1_epi8(0x0f);
    __m256i nib[8], sum[16];
    int64_t i, r;
    int g;
    for (g = 0; g < 8; g++) nib[g] = zero;
    for (g = 0; g < 16; g++) sum[g] = zero;
    for (i = 0; i < m32; i += 32 * HK_NIB_STEPS) {
        const int64_t e = i + 32 * HK_NIB_STEPS < m32 ? i + 32 * HK_NIB_STEPS : m32;
        for (r = i; r < e; r += 32) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)(wb + r));
            for (g = 0; g < 8; g++)
                nib[g] = _mm256_add_epi8(nib[g], _mm256_shuffle_epi8(
                    _mm256_load_si256((const __m256i *)hk_wb_tab[g]), w));
        }
        for (g = 0; g < 8; g++) {
            sum[2 * g] = _mm256_add_epi64(sum[2 * g], _mm256_sad_epu8(
                _mm256_and_si256(nib[g], low4), zero));
            sum[2 * g + 1] = _mm256_add_epi64(sum[2 * g + 1], _mm256_sad_epu8(
                _mm256_and_si256(_mm256_srli_epi16(nib[g], 4), low4), zero));
            nib[g] = zero;
        }
    }
    for (g = 0; g < 16; g++) {
        int64_t l64[4];
        _mm256_storeu_si256((__m256i *)l64, sum[g]);
        wc[g] = (uint32_t)(l64[0] + l64[1] + l64[2] + l64[3]);
    }
}

/* The bit patterns of the elements of p outside the window, from the masks of the ng
   groups of 32 that hold any (outs[t], the group starting at element base[t]; elem: the
   element each byte holds). A group rarely holds more than two: the first two are taken
   without a branch (a loop per group would mispredict its end on most groups), a loop
   takes the rest. Returns how many. */
static int64_t hk_wb_gather(const uint32_t *outs, const uint16_t *base, int64_t ng,
                            const uint8_t *elem, const uint16_t *p, uint16_t *pat) {
    int64_t total = 0, t;
#define HK_WB_POS(o, b)                                                                 \
    do {                                                                                \
        pat[total] = p[(b) + elem[__builtin_ctz((o) | 0x80000000u)]];                   \
        total += (o) != 0;                                                              \
        (o) &= (o) - 1;                                                                 \
    } while (0)
    for (t = 0; t < ng; t++) {
        uint32_t o = outs[t];
        const unsigned b = base[t];
        HK_WB_POS(o, b);
        HK_WB_POS(o, b);
        while (o) HK_WB_POS(o, b);
    }
#undef HK_WB_POS
    return total;
}

/* Eight float16 or bfloat16 (fmt) patterns h widened exactly to float32 (as bits). */
static inline __attribute__((always_inline)) QDQ_TARGET_AVX2 __m256i hk_widen8(__m128i h,
                                                                               int fmt) {
    return fmt == HK_F16 ? _mm256_castps_si256(_mm256_cvtph_ps(h))
                         : _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
}

/* hk_wb_gather's elements as float32 values (fmt: float16 or bfloat16), for blocks with
   many elements outside the window (the loop above then mispredicts its end on most
   groups): each run of eight elements of a group (byte r of its mask: elements 0-7, 16-23,
   8-15, 24-31, as hk_wb_elem16 places them) is widened and packed with the table of
   permutations, with no branch per element, in the order hk_wb_gather takes them. vals
   has room for eight values past the last. Returns how many. */
QDQ_TARGET_AVX2
static int64_t hk_wb_gather_wide(const uint32_t *outs, const uint16_t *base, int64_t ng,
                                 const uint16_t *p, int fmt, float *vals) {
    int64_t total = 0, t;
    int r;
    for (t = 0; t < ng; t++) {
        const uint32_t o = outs[t];
        const uint16_t *q = p + base[t];
        for (r = 0; r < 4; r++) {
            const unsigned mk = (o >> (8 * r)) & 0xffu;
            const __m128i h =
                _mm_loadu_si128((const __m128i *)(q + (r & 1) * 16 + (r >> 1) * 8));
            _mm256_storeu_si256((__m256i *)(vals + total), _mm256_permutevar8x32_epi32(
                hk_widen8(h, fmt), _mm256_loadu_si256((const __m256i *)hk_pack8[mk])));
            total += hk_count8[mk];
        }
    }
    return total;
}

/* The index of one element (b: its bit pattern) as the vector loops compute it, for the
   elements the scalar tails of the AVX2 passes take one by one (0 for an element that does
   not fit, whose index is not used: the conversion stays defined). */
#define HK_ONE_INDEX(T, UT, ABS, SUF)                                                   \
static inline int32_t hk_one_index_##SUF(UT b, T s1, T s2, int simple, UT limb) {       \
    T v;                                                                                \
    const UT bk = (b & (UT)(ABS)) < limb ? b : (UT)0;                                   \
    memcpy(&v, &bk, sizeof v);                                                          \
    return simple ? hk_idx_simple_##SUF(v, s1, s2) : hk_idx_general_##SUF(v, s1, s2);   \
}
HK_ONE_INDEX(float, uint32_t, 0x7fffffffu, f32)
HK_ONE_INDEX(double, uint64_t, 0x7fffffffffffffffull, f64)

/* red (the four reductions HK_BLOCK reads) from the patterns of the max and the min (T:
   uint32_t or uint64_t): bmax = red[0] if positive else red[3]; bmin = red[2] if negative
   else red[3]. */
#define HK_RED_OF(T, mx, mn, red)                                                       \
    do {                                                                                \
        (red)[0] = (mx);                                                                \
        (red)[2] = (mn);                                                                \
        (red)[3] = ((mx) >> (8 * sizeof(T) - 1)) ? (mx) : (mn);                         \
    } while (0)

#define HK_KEY16(u) ((uint16_t)((u) ^ (((u) >> 15) ? 0x7fffu : 0u)))

/* The end of an AVX2 fused pass: the four reductions of its L lanes (stored in lane) and
   of the elements i..m-1 left over, whose indices are computed one by one. */
#define HK_AVX2_FINISH(UT, KT, KMIN, KMAX, L, SUF)                                      \
    do {                                                                                \
        KT sx = KMIN, sn = KMAX;                                                        \
        UT ux = 0, un = (UT)-1;                                                         \
        for (j = 0; j < (L); j++) {                                                     \
            sx = (KT)lane[0][j] > sx ? (KT)lane[0][j] : sx;                             \
            sn = (KT)lane[1][j] < sn ? (KT)lane[1][j] : sn;                             \
            ux = (UT)lane[2][j] > ux ? (UT)lane[2][j] : ux;                             \
            un = (UT)lane[3][j] < un ? (UT)lane[3][j] : un;                             \
        }                                                                               \
        for (; i < m; i++) {                                                            \
            UT b;                                                                       \
            memcpy(&b, &p[i], sizeof b);                                                \
            sx = (KT)b > sx ? (KT)b : sx;                                               \
            sn = (KT)b < sn ? (KT)b : sn;                                               \
            ux = b > ux ? b : ux;                                                       \
            un = b < un ? b : un;                                                       \
            idx[n++] = hk_one_index_##SUF(b, s1, s2, simple, limb);                     \
        }                                                                               \
        red[0] = (UT)sx; red[1] = (UT)sn; red[2] = ux; red[3] = un;                     \
    } while (0)
#define HK_FUSE_AVX2_LOOP(INDEX)                                                        \
    for (i = 0; i + 8 <= m; i += 8) {                                                   \
        HK_PREFETCH_AHEAD(p + i);                                                       \
        __m256 v = _mm256_loadu_ps(p + i), y;                                           \
        __m256i b = _mm256_castps_si256(v), t;                                          \
        smax = _mm256_max_epi32(smax, b);                                               \
        smin = _mm256_min_epi32(smin, b);                                               \
        umax = _mm256_max_epu32(umax, b);                                               \
        umin = _mm256_min_epu32(umin, b);                                               \
        INDEX                                                                           \
        HK_WIN8_STEP(t);                                                                \
    }
#define HK_FLOOR_PS(y) _mm256_round_ps((y), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
/* The AVX2 passes of float32 and float64 give floor(y) in one conversion (AVX2 has no
   rounding in the instruction: a floor, then a truncating conversion, took three
   micro-ops): their loops run with the rounding of MXCSR set toward -inf, and the caller's
   MXCSR is back before the scalar tails. The products y = v 2^-k before it (the factors
   are powers of two) are exact, or underflow (|y| < 1: bin 0, or -1 when v < 0, either
   way; a negative product flushed to -0.0 gets the same correction) or overflow (no index
   either way): the indices are those of hk_idx_simple/general, bit for bit. The barriers
   keep the loops' loads and stores between the two writes of MXCSR. */
static inline unsigned hk_round_down(void) {
    const unsigned csr = _mm_getcsr();
    QDQ_FPENV_BARRIER();
    _mm_setcsr((csr & ~(unsigned)_MM_ROUND_MASK) | _MM_ROUND_DOWN);
    QDQ_FPENV_BARRIER();
    return csr;
}
static inline void hk_round_restore(unsigned csr) {
    QDQ_FPENV_BARRIER();
    _mm_setcsr(csr);
    QDQ_FPENV_BARRIER();
}
QDQ_TARGET_AVX2
static int64_t hk_fuse_f32_avx2(const float *p, int64_t m, float s1, float s2, int simple,
                                uint32_t limb, int window, int32_t *idx, uint32_t *red,
                                uint32_t *wc) {
    int64_t i, n = 0;
    __m256i smax = _mm256_set1_epi32(INT32_MIN), smin = _mm256_set1_epi32(INT32_MAX);
    __m256i umax = _mm256_setzero_si256(), umin = _mm256_set1_epi32(-1);
    __m256 vs1 = _mm256_set1_ps(s1), vs2 = _mm256_set1_ps(s2), zero = _mm256_setzero_ps();
    int32_t lane[4][8];
    unsigned csr;
    HK_WIN8_SETUP;
    csr = hk_round_down();
    if (simple) {
        HK_FUSE_AVX2_LOOP(y = _mm256_mul_ps(v, vs1);
                          t = _mm256_cvtps_epi32(y);)
    } else {
        HK_FUSE_AVX2_LOOP(y = _mm256_mul_ps(_mm256_mul_ps(v, vs1), vs2);
                          t = _mm256_add_epi32(_mm256_cvtps_epi32(y),
                              _mm256_castps_si256(_mm256_and_ps(
                                  _mm256_cmp_ps(y, zero, _CMP_EQ_OQ),
                                  _mm256_cmp_ps(v, zero, _CMP_LT_OQ))));)
    }
    hk_round_restore(csr);
    HK_WIN8_COUNTS
    _mm256_storeu_si256((__m256i *)lane[0], smax);
    _mm256_storeu_si256((__m256i *)lane[1], smin);
    _mm256_storeu_si256((__m256i *)lane[2], umax);
    _mm256_storeu_si256((__m256i *)lane[3], umin);
    HK_AVX2_FINISH(uint32_t, int32_t, INT32_MIN, INT32_MAX, 8, f32);
    return n;
}

/* The order key of a float64 pattern (the magnitude bits flipped when negative: as signed
   integers, the keys are in the order of the values, -0.0 below +0.0, NaN beyond the
   infinities); the key of a key is the pattern. */
#define HK_KEY64(u) ((u) ^ (((u) >> 63) ? 0x7fffffffffffffffull : 0ull))
/* Four float64 at q into the max and min (vmax, vmin: the NaNs ignored, the zeros of
   either sign) and the lanes that saw a NaN (vnan); their four indices in t_ (a
   __m128i). */
#define HK_F64_AVX2_HALF(q, t_)                                                         \
    do {                                                                                \
        __m256d v_ = _mm256_loadu_pd(q), y_;                                            \
        vmax = _mm256_max_pd(v_, vmax);  /* a NaN v_ gives the second operand */        \
        vmin = _mm256_min_pd(v_, vmin);                                                 \
        vnan = _mm256_or_pd(vnan, _mm256_cmp_pd(v_, v_, _CMP_UNORD_Q));                 \
        y_ = simple ? _mm256_mul_pd(v_, vs1) : _mm256_mul_pd(_mm256_mul_pd(v_, vs1), vs2); \
        if (!simple)  /* a negative product flushed to zero: bin -1 */                  \
            y_ = _mm256_blendv_pd(y_, minus1, _mm256_and_pd(                            \
                _mm256_cmp_pd(y_, zero, _CMP_EQ_OQ), _mm256_cmp_pd(v_, zero, _CMP_LT_OQ))); \
        t_ = _mm256_cvtpd_epi32(y_);  /* rounded toward -inf (hk_round_down) */         \
    } while (0)
/* Whether p[0:n] (n a multiple of 4) holds +0.0 (*pos) and -0.0 (*neg). */
QDQ_TARGET_AVX2
static void hk_zeros_f64_avx2(const double *p, int64_t n, int *pos, int *neg) {
    const __m256i z = _mm256_setzero_si256(), nz = _mm256_set1_epi64x(INT64_MIN);
    __m256i a = z, b = z;
    int64_t i;
    for (i = 0; i < n; i += 4) {
        const __m256i v = _mm256_loadu_si256((const __m256i *)(p + i));
        a = _mm256_or_si256(a, _mm256_cmpeq_epi64(v, z));
        b = _mm256_or_si256(b, _mm256_cmpeq_epi64(v, nz));
    }
    *pos = !_mm256_testz_si256(a, a);
    *neg = !_mm256_testz_si256(b, b);
}
/* hk_fuse_f64 with AVX2, as hk_fuse_f32_avx2: eight elements at a time (two vectors of
   four), their eight indices through the same window. The min and max come from the
   floating-point min and max instructions (AVX2 has no 64-bit integer min/max: the order
   keys took a compare and a blend per step), which ignore NaN and do not order the zeros:
   a NaN seen makes the max a NaN (HK_BLOCK then takes the scalar path), and a max or min
   of zero is given its sign by a pass over the block for +0.0 and -0.0 (only then: data
   rarely have a zero for an extreme). Handed back in red, with the tail's, through the
   order keys, as HK_BLOCK reads the four reductions. */
QDQ_TARGET_AVX2
static int64_t hk_fuse_f64_avx2w(const double *p, int64_t m, double s1, double s2, int simple,
                                 uint64_t limb, int window, int32_t *idx, uint64_t *red,
                                 uint32_t *wc) {
    int64_t i, n = 0, kx = INT64_MIN, kn = INT64_MAX;
    __m256d vs1 = _mm256_set1_pd(s1), vs2 = _mm256_set1_pd(s2), zero = _mm256_setzero_pd();
    __m256d minus1 = _mm256_set1_pd(-1.0), vnan = zero;
    __m256d vmax = _mm256_set1_pd(-INFINITY), vmin = _mm256_set1_pd(INFINITY);
    unsigned csr;
    HK_WIN8_SETUP;
    csr = hk_round_down();
    for (i = 0; i + 8 <= m; i += 8) {
        __m128i t0, t1;
        __m256i t;
        HK_PREFETCH_AHEAD(p + i);
        HK_F64_AVX2_HALF(p + i, t0);
        HK_F64_AVX2_HALF(p + i + 4, t1);
        t = _mm256_inserti128_si256(_mm256_castsi128_si256(t0), t1, 1);
        HK_WIN8_STEP(t);
    }
    hk_round_restore(csr);
    HK_WIN8_COUNTS
    if (i > 0) {
        double dx[4], dn[4], mxv, mnv;
        uint64_t bx, bn;
        _mm256_storeu_pd(dx, vmax);
        _mm256_storeu_pd(dn, vmin);
        mxv = dx[0];
        mnv = dn[0];
        for (j = 1; j < 4; j++) {
            mxv = dx[j] > mxv ? dx[j] : mxv;
            mnv = dn[j] < mnv ? dn[j] : mnv;
        }
        if (mxv == 0.0 || mnv == 0.0) {
            int pos, neg;
            hk_zeros_f64_avx2(p, i, &pos, &neg);
            if (mxv == 0.0) mxv = pos ? 0.0 : -0.0;
            if (mnv == 0.0) mnv = neg ? -0.0 : 0.0;
        }
        memcpy(&bx, &mxv, sizeof bx);
        memcpy(&bn, &mnv, sizeof bn);
        if (_mm256_movemask_pd(vnan)) bx = 0x7ff8000000000000ull;
        kx = (int64_t)HK_KEY64(bx);
        kn = (int64_t)HK_KEY64(bn);
    }
    for (; i < m; i++) {  /* the elements left over, one by one */
        uint64_t b;
        int64_t kk;
        memcpy(&b, &p[i], sizeof b);
        kk = (int64_t)HK_KEY64(b);
        kx = kk > kx ? kk : kx;
        kn = kk < kn ? kk : kn;
        idx[n++] = hk_one_index_f64(b, s1, s2, simple, limb);
    }
    {
        const uint64_t mx = HK_KEY64((uint64_t)kx), mn = HK_KEY64((uint64_t)kn);
        HK_RED_OF(uint64_t, mx, mn, red);
    }
    return n;
}

/* The float32 bits of a float16 or bfloat16 (fmt) pattern, exactly. */
QDQ_TARGET_AVX2
static inline uint32_t hk_widen1(uint16_t u, int fmt) {
    uint32_t b = (uint32_t)u << 16;
    if (fmt == HK_F16) {
        const float f = _cvtsh_ss(u);
        memcpy(&b, &f, sizeof b);
    }
    return b;
}

/* m <= HK_BLK 16-bit values widened exactly to float32. */
QDQ_TARGET_AVX2
static void hk_widen_avx2(const uint16_t *u, int64_t m, int fmt, float *out) {
    int64_t i;
    for (i = 0; i + 8 <= m; i += 8) {
        HK_PREFETCH_AHEAD(u + i);
        _mm256_storeu_si256((__m256i *)(out + i),
                            hk_widen8(_mm_loadu_si128((const __m128i *)(u + i)), fmt));
    }
    for (; i < m; i++) {
        const uint32_t b = hk_widen1(u[i], fmt);
        memcpy(&out[i], &b, sizeof b);
    }
}

/* The indices of n float32 values v (a multiple of 8) of elements outside the byte window,
   as hk_one_index_f32 gives them: such a value has |v| >= 8 * 2^k, so no product underflows to
   zero (the general path needs no correction), and one that does not fit gets an index that
   is never used (the block is binned again at a larger k; the vector conversion is defined
   for any input). */
QDQ_TARGET_AVX2
static void hk_idx_f32_avx2(const float *v, int64_t n, float s1, float s2, int simple,
                            int32_t *idx) {
    const __m256 vs1 = _mm256_set1_ps(s1), vs2 = _mm256_set1_ps(s2);
    int64_t i;
    for (i = 0; i < n; i += 8) {
        const __m256 x = _mm256_loadu_ps(v + i);
        const __m256 y = simple ? _mm256_mul_ps(x, vs1) : _mm256_mul_ps(_mm256_mul_ps(x, vs1), vs2);
        _mm256_storeu_si256((__m256i *)(idx + i), _mm256_cvttps_epi32(HK_FLOOR_PS(y)));
    }
}

/* hk_fuse_f32_avx2 for float16/bfloat16 (fmt) read as they are, through the byte window
   (16 to a vector); other exponents, and the window off, through hk_fuse_f32_avx2 on the
   widened values. */
QDQ_TARGET_AVX2
static int64_t hk_fuse_h16_avx2(const uint16_t *p, int64_t m, int fmt,
                                int k, float s1, float s2, int simple, uint32_t limb,
                                int window, int32_t *idx, uint32_t *red, uint32_t *wc) {
    const int mant = fmt == HK_F16 ? 10 : 7, ek = k + (fmt == HK_F16 ? 15 : 127);
    const int emax = fmt == HK_F16 ? 30 : 254;
    const int64_t m32 = m & ~(int64_t)31;
    int64_t i, n;
    int16_t kmax = INT16_MIN, kmin = INT16_MAX;
    if (!window || ek < 1 || ek + 2 > emax) {
        float buf[HK_BLK];
        hk_widen_avx2(p, m, fmt, buf);
        return hk_fuse_f32_avx2(buf, m, s1, s2, simple, limb, window, idx, red, wc);
    }
    {
        const __m256i zero = _mm256_setzero_si256();
        const __m256i cap = _mm256_set1_epi8(HK_WB_CAP), f15 = _mm256_set1_epi8(15);
        /* q (0..13) -> w = bin + 8 for a positive element; 13: outside (bit 7 set) */
        const __m256i cls = _mm256_setr_epi8(8, 9, 9, 9, 9, 10, 10, 11, 11, 12, 13, 14, 15,
                                             -128, -128, -128, 8, 9, 9, 9, 9, 10, 10, 11,
                                             11, 12, 13, 14, 15, -128, -128, -128);
        const __m256i mabs = _mm256_set1_epi16(0x7fff);
        const __m256i pk = _mm256_set1_epi16((short)((ek << mant) - (1 << (mant - 2))));
        const __m128i sh = _mm_cvtsi32_si128(mant - 2);
        __m256i smax = _mm256_set1_epi16(INT16_MIN), smin = _mm256_set1_epi16(INT16_MAX);
        int16_t l16[2][16];
        uint8_t wb[HK_BLK];              /* the window byte of every element */
        uint32_t outs[HK_BLK / 32];      /* per group of 32 holding any: its bytes outside */
        uint16_t base[HK_BLK / 32];      /* and its first element */
        int64_t ng = 0;
        uint16_t pat[HK_BLK + 8];        /* the patterns of the elements outside it */
        float vals[HK_BLK + 8];          /* and their float32 values */
        int g;
        for (i = 0; i < m32; i += 32) {
            const __m256i v0 = _mm256_loadu_si256((const __m256i *)(p + i));
            const __m256i v1 = _mm256_loadu_si256((const __m256i *)(p + i + 16));
            const __m256i a0 = _mm256_and_si256(v0, mabs), a1 = _mm256_and_si256(v1, mabs);
            __m256i sg0 = _mm256_srai_epi16(v0, 15), sg1 = _mm256_srai_epi16(v1, 15);
            const __m256i k0 = _mm256_xor_si256(v0, _mm256_srli_epi16(sg0, 1));
            const __m256i k1 = _mm256_xor_si256(v1, _mm256_srli_epi16(sg1, 1));
            __m256i q0, q1, w;
            HK_PREFETCH_AHEAD(p + i);
            smax = _mm256_max_epi16(smax, _mm256_max_epi16(k0, k1));
            smin = _mm256_min_epi16(smin, _mm256_min_epi16(k0, k1));
            sg0 = _mm256_and_si256(sg0, _mm256_cmpgt_epi16(a0, zero));  /* negative, not -0 */
            sg1 = _mm256_and_si256(sg1, _mm256_cmpgt_epi16(a1, zero));
            q0 = _mm256_sra_epi16(_mm256_sub_epi16(_mm256_add_epi16(a0, sg0), pk), sh);
            q1 = _mm256_sra_epi16(_mm256_sub_epi16(_mm256_add_epi16(a1, sg1), pk), sh);
            /* the window bytes (w ^ 15 for the negative elements other than -0.0): byte b
               of the 32 holds element hk_wb_elem16[b] */
            w = _mm256_xor_si256(
                _mm256_shuffle_epi8(cls, _mm256_min_epu8(_mm256_packus_epi16(q0, q1), cap)),
                _mm256_and_si256(_mm256_packs_epi16(sg0, sg1), f15));
            _mm256_storeu_si256((__m256i *)(wb + i), w);
            {  /* kept only when the group holds an element outside */
                const uint32_t o = (uint32_t)_mm256_movemask_epi8(w);
                outs[ng] = o;
                base[ng] = (uint16_t)i;
                ng += o != 0;
            }
        }
        hk_wb_count(wb, m32, wc);
        for (g = 0, n = 0; g < ng; g++) n += __builtin_popcount(outs[g]);
        if (2 * n > 5 * ng) {  /* more than 2.5 a group: no branch per element */
            n = hk_wb_gather_wide(outs, base, ng, p, fmt, vals);
            memset(vals + n, 0, 8 * sizeof *vals);  /* zeros up to a multiple of 8 */
        } else {
            n = hk_wb_gather(outs, base, ng, hk_wb_elem16, p, pat);
            memset(pat + n, 0, 8 * sizeof *pat);
            hk_widen_avx2(pat, (n + 7) & ~(int64_t)7, fmt, vals);
        }
        hk_idx_f32_avx2(vals, (n + 7) & ~(int64_t)7, s1, s2, simple, idx);
        _mm256_storeu_si256((__m256i *)l16[0], smax);
        _mm256_storeu_si256((__m256i *)l16[1], smin);
        for (g = 0; g < 16; g++) {
            kmax = l16[0][g] > kmax ? l16[0][g] : kmax;
            kmin = l16[1][g] < kmin ? l16[1][g] : kmin;
        }
    }
    for (i = m32; i < m; i++) {  /* the tail: every element's index */
        const int16_t kk = (int16_t)HK_KEY16(p[i]);
        kmax = kk > kmax ? kk : kmax;
        kmin = kk < kmin ? kk : kmin;
        idx[n++] = hk_one_index_f32(hk_widen1(p[i], fmt), s1, s2, simple, limb);
    }
    {
        /* the extremes widened here, not looked up in the table of every pattern's value:
           its lines for the extremes of heavy-tailed float16 data (1,024 patterns to a
           binade) fall out of the caches as the data stream through, and two misses a
           block cost a fifth of the pass */
        const uint32_t bx = hk_widen1(HK_KEY16((uint16_t)kmax), fmt);
        const uint32_t bn = hk_widen1(HK_KEY16((uint16_t)kmin), fmt);
        HK_RED_OF(uint32_t, bx, bn, red);
    }
    return n;
}

/* The window: the bins [-HK_WIN/2, HK_WIN/2), where most elements of typical data fall,
   counted in registers, so that only the other elements are stored one by one. Two
   accumulators of 4-bit counters (eight bins to a 32-bit lane: bin w in nibble w % 8 of
   nib[w / 8]) take one table look-up each per vector; every HK_NIB_STEPS vectors, before a
   nibble could overflow, they are added into four accumulators of 8-bit counters (the even
   and the odd nibbles apart), which a block fills to at most HK_BLK/16 <= 255. */
typedef char hk_window_bytes_fit[HK_BLK / 16 <= 255 ? 1 : -1];
/* floor(y) as int32 in one conversion, rounding toward -inf (embedded: MXCSR untouched). */
#define HK_FLOOR_CVT_PS512(y)                                                           \
    _mm512_cvt_roundps_epi32((y), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
#define HK_FLOOR_CVT_PD512(y)                                                           \
    _mm512_cvt_roundpd_epi32((y), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC)
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
            t_ = HK_FLOOR_CVT_PS512(y_);                                                \
        } else {                                                                        \
            y_ = _mm512_mul_ps(_mm512_mul_ps(v_, vs1), vs2);                            \
            t_ = HK_FLOOR_CVT_PS512(y_);                                                \
            t_ = _mm512_mask_sub_epi32(t_, _mm512_cmp_ps_mask(y_, zero, _CMP_EQ_OQ)     \
                                       & _mm512_cmp_ps_mask(v_, zero, _CMP_LT_OQ), t_, one); \
        }                                                                               \
        HK_WIN_STEP(t_, out_);                                                          \
    } while (0)

/* hk_fuse_f32 with AVX-512; with window, the elements in the window are counted in wc and
   only the others' indices are written (compressed) to idx. Returns how many were
   written. idx has room for m + 16. */
QDQ_TARGET_AVX512F
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
        tt_ = HK_FLOOR_CVT_PD512(y_);                                                   \
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
QDQ_TARGET_AVX512F
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
        __m512i t_ = HK_FLOOR_CVT_PS512(y_);                                           \
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
QDQ_TARGET_AVX512
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
    for (q = 0; q < 4; q++) red[q] = hk_widen1(r16[q], fmt);
    HK_WIN_COUNTS
    return n;
}

#endif /* QDQ_HIST_ISA_H */
