/*
 * The bfloat16 op with the AVX512-BF16 conversion instruction (VCVTNE2PS2BF16,
 * 256-bit form): instruction-set level 3 (cpu.h), chosen at run time on CPUs
 * that have it (AVX512-BF16 with AVX-512 F/BW/VL). Included once, by
 * dispatch.h, after the AVX2 copy, whose kernels it falls back to.
 *
 * The instruction rounds two vectors of float32 to sixteen bfloat16 values,
 * to nearest even, in one step where the AVX2 copy spends about ten integer
 * instructions. It differs from qdq's conversion (qdq_f32_to_bf16) in two
 * ways, and this kernel only uses it where neither can show:
 *   - NaN keeps its payload (0x7fc1 stays 0x7fc1; qdq gives 0x7fc0): a group
 *     of 16 inputs holding a NaN goes to the AVX2 kernel. With s finite and
 *     nonzero and inv finite, a value that is not NaN stays not NaN through
 *     the op (clamp, times s, the roundings, times inv).
 *   - subnormal inputs become zero of the same sign. The first rounding (of
 *     y = v * s, and of y + 0.5 for HALF_UP) is followed by rint or floor,
 *     which turn such a y into the same zero either way (and y + 0.5, with y a
 *     bfloat16 value, is never subnormal). The last rounding (of r * inv, r an
 *     integer) never sees a subnormal when |inv| >= FLT_MIN: the call goes to
 *     the AVX2 kernel otherwise.
 * The groups are laid out so that no lane permute is needed for HALF_TO_EVEN:
 * the 16 bfloat16 values p[0:16] widen to v0 = p[0:4, 8:12], v1 = p[4:8, 12:16]
 * (the two 128-bit halves interleaved with zeros); rounding (v1, v0) packs
 * them as p[0:4, 8:12 | 4:8, 12:16], which widens to w0 = p[0:8], w1 = p[8:16];
 * packing (w1, w0) writes p[0:16] in order. HALF_UP rounds once more and
 * restores the order with one 64-bit lane permute.
 * With stream, the stores are non-temporal from the first 32-byte boundary of
 * the output on (qdq_apply_nt, for outputs larger than the last-level cache):
 * this loop is fast enough for the memory to be its limit.
 */
#if QDQ_X86_DISPATCH && QDQ_CPU_BF16
#  define QDQ_HAVE_BF16_AVX512 1
#  define QDQ_BF16_TARGET QDQ_TARGET_AVX512BF16

/* The 16 bfloat16 values at p[0:16] (two halves interleaved with zeros), rounded. */
#  define QDQ_BF16_LO(p) ((__m256)_mm256_unpacklo_epi16(_mm256_setzero_si256(), (p)))
#  define QDQ_BF16_HI(p) ((__m256)_mm256_unpackhi_epi16(_mm256_setzero_si256(), (p)))
#  define QDQ_BF16_PACK(hi, lo) ((__m256i)_mm256_cvtne2ps_pbh((hi), (lo)))

/* The op on 16 values widened as above (v0, v1: no NaN), each half with its own
 * parameters (the column kernel's; the per-tensor kernel passes the same twice): clamp
 * (as vf_clamp), times s, the rounding of mode, times inv, packed in order. */
static inline __attribute__((always_inline)) QDQ_BF16_TARGET __m256i
qdq_bf16_round16(__m256 v0, __m256 v1, __m256 vs0, __m256 vs1, __m256 vinv0, __m256 vinv1,
                 __m256 vlo0, __m256 vlo1, __m256 vhi0, __m256 vhi1, const int mode)
{
    const __m256 half = _mm256_set1_ps(0.5f);
    __m256i b, r;
    __m256 w0, w1;
    if (mode & QDQ_CLAMP) {
        v0 = _mm256_max_ps(vlo0, _mm256_min_ps(vhi0, v0));
        v1 = _mm256_max_ps(vlo1, _mm256_min_ps(vhi1, v1));
    }
    b = QDQ_BF16_PACK(_mm256_mul_ps(v1, vs1), _mm256_mul_ps(v0, vs0));
    w0 = QDQ_BF16_LO(b);
    w1 = QDQ_BF16_HI(b);
    if (mode & QDQ_HALF_UP) {
        b = QDQ_BF16_PACK(_mm256_add_ps(w1, half), _mm256_add_ps(w0, half));
        w0 = _mm256_round_ps(QDQ_BF16_LO(b), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        w1 = _mm256_round_ps(QDQ_BF16_HI(b), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        r = QDQ_BF16_PACK(_mm256_mul_ps(w1, vinv1), _mm256_mul_ps(w0, vinv0));
        return _mm256_permute4x64_epi64(r, 0xd8);
    }
    w0 = _mm256_round_ps(w0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    w1 = _mm256_round_ps(w1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return QDQ_BF16_PACK(_mm256_mul_ps(w1, vinv1), _mm256_mul_ps(w0, vinv0));
}

static inline __attribute__((always_inline)) QDQ_BF16_TARGET void
qdq_apply_bf16_avx512_body(const uint16_t *x, uint16_t *o, size_t n, float s, float inv,
                           float lo, float hi, const int mode, const int stream)
{
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(inv);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    size_t i = 0;
    if (stream) {   /* to the first 32-byte boundary of o */
        i = (size_t)((32 - (uintptr_t)o % 32) % 32) / 2;
        if (i > n) i = n;
        qdq_apply_bf16_avx2(x, o, i, s, inv, lo, hi, mode);
    }
    for (; i + 16 <= n; i += 16) {
        __m256i p, r;
        __m256 v0, v1;
        memcpy(&p, x + i, sizeof p);
        v0 = QDQ_BF16_LO(p);
        v1 = QDQ_BF16_HI(p);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q))) {
            qdq_apply_bf16_avx2(x + i, o + i, 16, s, inv, lo, hi, mode);
            continue;
        }
        r = qdq_bf16_round16(v0, v1, vs, vs, vinv, vinv, vlo, vlo, vhi, vhi, mode);
        if (stream) _mm256_stream_si256((__m256i *)(o + i), r);
        else memcpy(o + i, &r, sizeof r);
    }
    if (stream) _mm_sfence();
    if (i < n) qdq_apply_bf16_avx2(x + i, o + i, n - i, s, inv, lo, hi, mode);
}

/* qdq_apply_bf16_avx2's results, faster where the parameters allow (above). */
static QDQ_BF16_TARGET void qdq_apply_bf16_avx512(const uint16_t *x, uint16_t *o, size_t n,
                                                  float s, float inv, float lo, float hi,
                                                  int mode, int stream)
{
    if (!(isfinite(s) && s != 0.0f && isfinite(inv) && fabsf(inv) >= FLT_MIN)) {
        qdq_apply_bf16_avx2(x, o, n, s, inv, lo, hi, mode);
        return;
    }
    switch (mode & 3) {
    case 0: qdq_apply_bf16_avx512_body(x, o, n, s, inv, lo, hi, 0, stream); break;
    case 1: qdq_apply_bf16_avx512_body(x, o, n, s, inv, lo, hi, 1, stream); break;
    case 2: qdq_apply_bf16_avx512_body(x, o, n, s, inv, lo, hi, 2, stream); break;
    default: qdq_apply_bf16_avx512_body(x, o, n, s, inv, lo, hi, 3, stream); break;
    }
}

/* Whether every lane's parameters allow the conversion instruction (as above: s finite
 * and nonzero, inv finite with |inv| >= FLT_MIN), for the 8 lanes of s and inv. */
static inline __attribute__((always_inline)) QDQ_BF16_TARGET int
qdq_bf16_params_ok(__m256 s, __m256 inv)
{
    const __m256 inf = _mm256_set1_ps(INFINITY), tiny = _mm256_set1_ps(FLT_MIN);
    const __m256 abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 as = _mm256_and_ps(s, abs), ai = _mm256_and_ps(inv, abs);
    __m256 ok = _mm256_and_ps(_mm256_cmp_ps(as, inf, _CMP_LT_OQ),
                              _mm256_cmp_ps(as, _mm256_setzero_ps(), _CMP_GT_OQ));
    ok = _mm256_and_ps(ok, _mm256_cmp_ps(ai, inf, _CMP_LT_OQ));
    ok = _mm256_and_ps(ok, _mm256_cmp_ps(ai, tiny, _CMP_GE_OQ));
    return _mm256_movemask_ps(ok) == 0xff;
}

/* The lanes of p[0:16] as the widened halves hold them: p[0:4, 8:12] and p[4:8, 12:16]. */
#  define QDQ_BF16_SPLIT0(a, b) _mm256_permute2f128_ps((a), (b), 0x20)
#  define QDQ_BF16_SPLIT1(a, b) _mm256_permute2f128_ps((a), (b), 0x31)

/* The bfloat16 op on columns (qdq_apply_cols_bf16_avx2's results): per 16 columns, the
 * parameters in the lanes in the order each step needs them (s, lo, hi and, for
 * HALF_UP, inv in the order of the widened halves; inv in order for HALF_TO_EVEN), loaded
 * once for QDQ_APPLY_ROWS rows. Columns whose parameters do not allow the instruction,
 * groups holding a NaN and the last n % 16 columns go to the AVX2 kernels. */
static inline __attribute__((always_inline)) QDQ_BF16_TARGET void
qdq_apply_cols_bf16_avx512_body(const uint16_t *x, uint16_t *o, size_t stride, size_t rows,
                                size_t n, const float *s, const float *inv, const float *lo,
                                const float *hi, const int mode, const int stream)
{
    /* groups of QDQ_APPLY_ROWS rows rs apart (for short rows a band of q rows: see the
     * column kernels in format_kernels.h), then the last rows; or, streaming to rows a
     * multiple of 4 KiB apart on AMD, one row after another (qdq_stream_row_by_row) */
    const int band = stride * sizeof(uint16_t) <= QDQ_BAND_BYTES;
    const size_t q = rows / QDQ_APPLY_ROWS;
    const int by_row =
        stream && qdq_stream_row_by_row((band ? q * stride : stride) * sizeof(uint16_t));
    const size_t groups = by_row ? rows : q;
    const size_t ahead = stream ? qdq_prefetch_ahead(by_row ? 1 : QDQ_APPLY_ROWS) : 0;  /* cpu.h */
    size_t r, i, k, g, rs, n16 = n / 16 * 16, w16 = 16;
    int all_ok = 1;
    /* 16, hidden from the optimizer: the AVX2 calls below with a constant 16 columns are
     * cloned with it, and GCC then warns about their (dead) scalar tails */
    __asm__("" : "+r"(w16));
    /* whether every column's parameters allow the instruction, checked once for all rows
     * instead of per row and 16 columns (row by row, 8192 x 8192 with the range given, one
     * thread on a Zen 4: 23.2 -> 17.8 ms); if not, per 16 columns as before */
    for (i = 0; i < n16 && all_ok; i += 8)
        all_ok = qdq_bf16_params_ok(_mm256_loadu_ps(s + i), _mm256_loadu_ps(inv + i));
    for (r = 0; r <= groups; r++) {
        size_t first;
        const uint16_t *xr;
        uint16_t *orow;
        if (by_row) {
            if (r == rows) break;
            g = 1;
            rs = stride;
            first = r;
        } else if (r < q) {
            g = QDQ_APPLY_ROWS;
            rs = band ? q * stride : stride;
            first = band ? r : r * QDQ_APPLY_ROWS;
        } else {
            g = rows - q * QDQ_APPLY_ROWS;
            if (g == 0) break;
            rs = stride;
            first = q * QDQ_APPLY_ROWS;
        }
        xr = x + first * stride;
        orow = o + first * stride;
        for (i = 0; i < n16; i += 16) {
            const __m256 s0 = _mm256_loadu_ps(s + i), s1 = _mm256_loadu_ps(s + i + 8);
            const __m256 i0 = _mm256_loadu_ps(inv + i), i1 = _mm256_loadu_ps(inv + i + 8);
            __m256 vs0, vs1, vlo0, vlo1, vhi0, vhi1, vinv0, vinv1;
            if (ahead) qdq_prefetch_rows(xr + i, rs * sizeof(uint16_t), g, ahead);
            if (!all_ok && !(qdq_bf16_params_ok(s0, i0) && qdq_bf16_params_ok(s1, i1))) {
                qdq_apply_cols_bf16_avx2(xr + i, orow + i, rs, g, w16, s + i, inv + i,
                                         lo + i, hi + i, mode, 0);
                continue;
            }
            vs0 = QDQ_BF16_SPLIT0(s0, s1);
            vs1 = QDQ_BF16_SPLIT1(s0, s1);
            vlo0 = vlo1 = vhi0 = vhi1 = vs0;
            if (mode & QDQ_CLAMP) {
                const __m256 l0 = _mm256_loadu_ps(lo + i), l1 = _mm256_loadu_ps(lo + i + 8);
                const __m256 h0 = _mm256_loadu_ps(hi + i), h1 = _mm256_loadu_ps(hi + i + 8);
                vlo0 = QDQ_BF16_SPLIT0(l0, l1);
                vlo1 = QDQ_BF16_SPLIT1(l0, l1);
                vhi0 = QDQ_BF16_SPLIT0(h0, h1);
                vhi1 = QDQ_BF16_SPLIT1(h0, h1);
            }
            if (mode & QDQ_HALF_UP) {
                vinv0 = QDQ_BF16_SPLIT0(i0, i1);
                vinv1 = QDQ_BF16_SPLIT1(i0, i1);
            } else {
                vinv0 = i0;
                vinv1 = i1;
            }
            for (k = 0; k < g; k++) {
                __m256i p, res;
                __m256 v0, v1;
                memcpy(&p, xr + k * rs + i, sizeof p);
                v0 = QDQ_BF16_LO(p);
                v1 = QDQ_BF16_HI(p);
                if (_mm256_movemask_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q))) {
                    qdq_apply_cols_bf16_avx2(xr + k * rs + i, orow + k * rs + i, rs, 1, w16,
                                             s + i, inv + i, lo + i, hi + i, mode, 0);
                    continue;
                }
                res = qdq_bf16_round16(v0, v1, vs0, vs1, vinv0, vinv1, vlo0, vlo1, vhi0, vhi1,
                                       mode);
                if (stream) _mm256_stream_si256((__m256i *)(orow + k * rs + i), res);
                else memcpy(orow + k * rs + i, &res, sizeof res);
            }
        }
        if (n16 < n)
            qdq_apply_cols_bf16_avx2(xr + n16, orow + n16, rs, g, n - n16, s + n16,
                                     inv + n16, lo + n16, hi + n16, mode, 0);
    }
    if (stream) _mm_sfence();
}

/* qdq_apply_cols_bf16_avx2's results, faster (above); stream: o's rows 32-byte aligned. */
static QDQ_BF16_TARGET void qdq_apply_cols_bf16_avx512(const uint16_t *x, uint16_t *o,
                                                       size_t stride, size_t rows, size_t n,
                                                       const float *s, const float *inv,
                                                       const float *lo, const float *hi,
                                                       int mode, int stream)
{
    switch ((mode & 3) | (stream ? 4 : 0)) {
    case 0: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 0, 0); break;
    case 1: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 1, 0); break;
    case 2: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 2, 0); break;
    case 3: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 3, 0); break;
    case 4: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 0, 1); break;
    case 5: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 1, 1); break;
    case 6: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 2, 1); break;
    default: qdq_apply_cols_bf16_avx512_body(x, o, stride, rows, n, s, inv, lo, hi, 3, 1); break;
    }
}

#  undef QDQ_BF16_SPLIT0
#  undef QDQ_BF16_SPLIT1
#  undef QDQ_BF16_LO
#  undef QDQ_BF16_HI
#  undef QDQ_BF16_PACK
#else
#  define QDQ_HAVE_BF16_AVX512 0
#endif
