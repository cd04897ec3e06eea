/*
 * The bfloat16 op with one set of parameters at levels 1 and 2 (AVX2), sixteen values
 * at a time: qdq_apply_bf16_avx2's results with fewer instructions. Included once, by
 * dispatch.h, after the AVX2 copy (isa_copy.h), whose kernel it falls back to.
 *
 * The 16 bfloat16 values p[0:16] of a 256-bit load widen with one unpack each (with
 * zeros) to v0 = p[0:4, 8:12] and v1 = p[4:8, 12:16]; the results narrow with one
 * unsigned pack of the two vectors' upper halves, which puts p[0:16] back in order (both
 * work within 128-bit lanes): no shuffle across lanes, unlike the 8-wide loop. The
 * roundings to bfloat16 are the integer steps of qdq_f32_to_bf16 (add 0x7fff and the
 * lowest kept bit, keep the upper half: round to nearest even for every value that is
 * not NaN). A group whose products (clamp?(v) * s) hold a NaN is redone by the 8-wide
 * kernel, which quiets NaN as qdq does (the integer steps could turn a NaN into an
 * infinity). With stream (qdq_apply_nt: outputs beyond the last-level cache), the
 * stores from the first 32-byte boundary of o are non-temporal.
 */
#if QDQ_X86_DISPATCH
#  define QDQ_HAVE_BF16_AVX2_WIDE 1

#  define QDQ_BF16W_LO(p) ((__m256)_mm256_unpacklo_epi16(_mm256_setzero_si256(), (p)))
#  define QDQ_BF16W_HI(p) ((__m256)_mm256_unpackhi_epi16(_mm256_setzero_si256(), (p)))

/* The constants of the integer roundings to bfloat16 below, held in registers by the
 * loop (GCC otherwise built two of them again in every iteration). */
typedef struct { __m256i k7fff, one, upper; } qdq_bf16w_consts;

/* f rounded to the nearest bfloat16 value (ties to even), kept in float32; f not NaN. */
static inline __attribute__((always_inline)) QDQ_TARGET_AVX2 __m256
qdq_bf16w_round(__m256 f, const qdq_bf16w_consts *c)
{
    const __m256i b = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), c->one);
    const __m256i r = _mm256_add_epi32(_mm256_add_epi32(b, c->k7fff), lsb);
    return _mm256_castsi256_ps(_mm256_and_si256(r, c->upper));
}

/* The bfloat16 bits of f (upper halves, in the low 16 bits of each lane); f not NaN. */
static inline __attribute__((always_inline)) QDQ_TARGET_AVX2 __m256i
qdq_bf16w_bits(__m256 f, const qdq_bf16w_consts *c)
{
    const __m256i b = _mm256_castps_si256(f);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), c->one);
    const __m256i r = _mm256_add_epi32(_mm256_add_epi32(b, c->k7fff), lsb);
    return _mm256_srli_epi32(r, 16);
}

static inline __attribute__((always_inline)) QDQ_TARGET_AVX2 void
qdq_apply_bf16w_body(const uint16_t *x, uint16_t *o, size_t n, float s, float inv, float lo,
                     float hi, const int mode, const int stream)
{
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(inv);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256 half = _mm256_set1_ps(0.5f);
    qdq_bf16w_consts c;
    size_t i = 0, w16 = 16;
    /* 16, hidden from the optimizer: the 8-wide calls below with a constant count are
     * cloned with it, and GCC then warns about their (dead) scalar tails */
    __asm__("" : "+r"(w16));
    if ((uintptr_t)o % 2 == 0) {   /* to the first 32-byte boundary of o: no store (and,
                                    * for arrays at the same offset, no load) splits a line */
        i = (size_t)((32 - (uintptr_t)o % 32) % 32) / 2;
        if (i > n) i = n;
        qdq_apply_bf16_avx2(x, o, i, s, inv, lo, hi, mode);
    }
    c.k7fff = _mm256_set1_epi32(0x7fff);
    c.one = _mm256_set1_epi32(1);
    c.upper = _mm256_set1_epi32((int)0xffff0000u);
    for (; i + 16 <= n; i += 16) {
        __m256i p;
        __m256 v0, v1, y0, y1, r0, r1;
        __asm__("" : "+x"(c.k7fff), "+x"(c.one), "+x"(c.upper));  /* kept in registers */
        memcpy(&p, x + i, sizeof p);
        v0 = QDQ_BF16W_LO(p);
        v1 = QDQ_BF16W_HI(p);
        if (mode & QDQ_CLAMP) {   /* as vf_clamp: a NaN stays NaN */
            v0 = _mm256_max_ps(vlo, _mm256_min_ps(vhi, v0));
            v1 = _mm256_max_ps(vlo, _mm256_min_ps(vhi, v1));
        }
        y0 = _mm256_mul_ps(v0, vs);
        y1 = _mm256_mul_ps(v1, vs);
        if (_mm256_movemask_ps(_mm256_cmp_ps(y0, y1, _CMP_UNORD_Q))) {
            qdq_apply_bf16_avx2(x + i, o + i, w16, s, inv, lo, hi, mode);
            continue;
        }
        y0 = qdq_bf16w_round(y0, &c);
        y1 = qdq_bf16w_round(y1, &c);
        if (mode & QDQ_HALF_UP) {
            r0 = _mm256_round_ps(qdq_bf16w_round(_mm256_add_ps(y0, half), &c),
                                 _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            r1 = _mm256_round_ps(qdq_bf16w_round(_mm256_add_ps(y1, half), &c),
                                 _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
        } else {
            r0 = _mm256_round_ps(y0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r1 = _mm256_round_ps(y1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        }
        r0 = _mm256_mul_ps(r0, vinv);
        r1 = _mm256_mul_ps(r1, vinv);
        p = _mm256_packus_epi32(qdq_bf16w_bits(r0, &c), qdq_bf16w_bits(r1, &c));
        if (stream) _mm256_stream_si256((__m256i *)(o + i), p);
        else memcpy(o + i, &p, sizeof p);
    }
    if (stream) _mm_sfence();
    if (i < n) qdq_apply_bf16_avx2(x + i, o + i, n - i, s, inv, lo, hi, mode);
}

/* qdq_apply_bf16_avx2's results, sixteen values at a time, for an inverse scale that is
 * finite and nonzero (else the 8-wide kernel): then a product y that is not NaN rounds to
 * an integer that is not NaN, whose product with inv is not NaN either, so only the
 * products y need the check. */
static QDQ_TARGET_AVX2 void qdq_apply_bf16_avx2w(const uint16_t *x, uint16_t *o, size_t n,
                                                 float s, float inv, float lo, float hi,
                                                 int mode, int stream)
{
    if (!(isfinite(inv) && inv != 0.0f)) {
        qdq_apply_bf16_avx2(x, o, n, s, inv, lo, hi, mode);
        return;
    }
    switch ((mode & 3) | (stream ? 4 : 0)) {
    case 0: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 0, 0); break;
    case 1: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 1, 0); break;
    case 2: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 2, 0); break;
    case 3: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 3, 0); break;
    case 4: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 0, 1); break;
    case 5: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 1, 1); break;
    case 6: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 2, 1); break;
    default: qdq_apply_bf16w_body(x, o, n, s, inv, lo, hi, 3, 1); break;
    }
}

#  undef QDQ_BF16W_LO
#  undef QDQ_BF16W_HI
#else
#  define QDQ_HAVE_BF16_AVX2_WIDE 0
#endif
