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

static inline __attribute__((always_inline)) QDQ_BF16_TARGET void
qdq_apply_bf16_avx512_body(const uint16_t *x, uint16_t *o, size_t n, float s, float inv,
                           float lo, float hi, const int mode, const int stream)
{
    const __m256 vs = _mm256_set1_ps(s), vinv = _mm256_set1_ps(inv);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256 half = _mm256_set1_ps(0.5f);
    size_t i = 0;
    if (stream) {   /* to the first 32-byte boundary of o */
        i = (size_t)((32 - (uintptr_t)o % 32) % 32) / 2;
        if (i > n) i = n;
        qdq_apply_bf16_avx2(x, o, i, s, inv, lo, hi, mode);
    }
    for (; i + 16 <= n; i += 16) {
        __m256i p, b, r;
        __m256 v0, v1, w0, w1;
        memcpy(&p, x + i, sizeof p);
        v0 = QDQ_BF16_LO(p);
        v1 = QDQ_BF16_HI(p);
        if (_mm256_movemask_ps(_mm256_cmp_ps(v0, v1, _CMP_UNORD_Q))) {
            qdq_apply_bf16_avx2(x + i, o + i, 16, s, inv, lo, hi, mode);
            continue;
        }
        if (mode & QDQ_CLAMP) {   /* as vf_clamp: a NaN would stay NaN */
            v0 = _mm256_max_ps(vlo, _mm256_min_ps(vhi, v0));
            v1 = _mm256_max_ps(vlo, _mm256_min_ps(vhi, v1));
        }
        b = QDQ_BF16_PACK(_mm256_mul_ps(v1, vs), _mm256_mul_ps(v0, vs));
        w0 = QDQ_BF16_LO(b);
        w1 = QDQ_BF16_HI(b);
        if (mode & QDQ_HALF_UP) {
            b = QDQ_BF16_PACK(_mm256_add_ps(w1, half), _mm256_add_ps(w0, half));
            w0 = _mm256_round_ps(QDQ_BF16_LO(b), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            w1 = _mm256_round_ps(QDQ_BF16_HI(b), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            r = QDQ_BF16_PACK(_mm256_mul_ps(w1, vinv), _mm256_mul_ps(w0, vinv));
            r = _mm256_permute4x64_epi64(r, 0xd8);
        } else {
            w0 = _mm256_round_ps(w0, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            w1 = _mm256_round_ps(w1, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
            r = QDQ_BF16_PACK(_mm256_mul_ps(w1, vinv), _mm256_mul_ps(w0, vinv));
        }
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

#  undef QDQ_BF16_LO
#  undef QDQ_BF16_HI
#  undef QDQ_BF16_PACK
#else
#  define QDQ_HAVE_BF16_AVX512 0
#endif
