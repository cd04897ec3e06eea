/*
 * One instruction-set copy of the qdq kernels: its vector types and helpers,
 * then the kernels of every float format and code type. Included by
 * dispatch.h once per instruction set (twice on x86-64: baseline and AVX2;
 * once elsewhere), with
 *   QDQ_VB        vector width in bytes (16 or 32)
 *   QDQ_SFX(name) the suffix of this copy (name_base, name_avx2)
 *   QDQ_TARGET    the function attribute that selects the instruction set
 *   QDQ_F16C      1 in the AVX2 copy: F16C conversions and AVX rounding instructions
 * It includes format_kernels.h once per float format (4 times) and
 * int_codes.h once per (compute type, integer type) pair (16 times).
 */

#define QDQ_FN static inline __attribute__((always_inline)) QDQ_TARGET

#if QDQ_HAVE_VEC
typedef float    QDQ_SFX(qdq_vf) __attribute__((vector_size(QDQ_VB)));
typedef int32_t  QDQ_SFX(qdq_vi) __attribute__((vector_size(QDQ_VB)));
typedef uint32_t QDQ_SFX(qdq_vu) __attribute__((vector_size(QDQ_VB)));
typedef double   QDQ_SFX(qdq_vd) __attribute__((vector_size(QDQ_VB)));
typedef int64_t  QDQ_SFX(qdq_vl) __attribute__((vector_size(QDQ_VB)));
typedef uint16_t QDQ_SFX(qdq_vh) __attribute__((vector_size(QDQ_VB / 2)));

#define vf QDQ_SFX(qdq_vf)
#define vi QDQ_SFX(qdq_vi)
#define vu QDQ_SFX(qdq_vu)
#define vd QDQ_SFX(qdq_vd)
#define vl QDQ_SFX(qdq_vl)
#define vh QDQ_SFX(qdq_vh)

/* --- float32 lanes ------------------------------------------------------ */
/* Broadcast by filling the lanes: adding a to a zero vector would turn -0.0 into +0.0. */
QDQ_FN vf QDQ_SFX(vf_splat)(float a)
{
    vf v;
    size_t k;
    for (k = 0; k < sizeof v / sizeof a; k++) v[k] = a;
    return v;
}
QDQ_FN vf QDQ_SFX(vf_load)(const float *p) { vf v; memcpy(&v, p, sizeof v); return v; }
QDQ_FN void QDQ_SFX(vf_store)(float *p, vf v) { memcpy(p, &v, sizeof v); }
QDQ_FN vf QDQ_SFX(vf_sel)(vi m, vf a, vf b) { return (vf)((m & (vi)a) | (~m & (vi)b)); }
/* The clamp of the op: (hi < v ? hi : v), then (v < lo ? lo : v), so a NaN v
 * stays NaN; the AVX2 min and max instructions are exactly these selects. */
QDQ_FN vf QDQ_SFX(vf_clamp)(vf v, vf lo, vf hi)
{
#if QDQ_F16C
    v = (vf)_mm256_min_ps((__m256)hi, (__m256)v);
    return (vf)_mm256_max_ps((__m256)lo, (__m256)v);
#else
    v = QDQ_SFX(vf_sel)(hi < v, hi, v);
    return QDQ_SFX(vf_sel)(v < lo, lo, v);
#endif
}

QDQ_FN vf QDQ_SFX(vf_rint)(vf y)
{
#if QDQ_F16C   /* the AVX2 copy: one instruction, the same result */
    return (vf)_mm256_round_ps((__m256)y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    const vf c = QDQ_SFX(vf_splat)(8388608.0f);       /* 2^23 */
    vi sign = (vi)y & (int32_t)0x80000000u;
    vf a = (vf)((vi)y & 0x7fffffff);
    vf t = (a + c) - c;
    return (vf)((vi)QDQ_SFX(vf_sel)(a < c, t, a) | sign);
#endif
}

QDQ_FN vf QDQ_SFX(vf_floor)(vf t)
{
#if QDQ_F16C
    return (vf)_mm256_round_ps((__m256)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#else
    vf r = QDQ_SFX(vf_rint)(t);
    return QDQ_SFX(vf_sel)(r > t, r - 1.0f, r);
#endif
}

QDQ_FN void QDQ_SFX(vf_minmax)(vf v, vf *mn, vf *mx)
{
    vi lt = v < *mn, eq = v == *mn;
    vi gt = v > *mx, eq2 = v == *mx;
    *mn = (vf)((lt & (vi)v) | (~lt & ((vi)*mn | ((vi)v & eq))));
    *mx = (vf)((gt & (vi)v) | (~gt & ((vi)*mx & ((vi)v | ~eq2))));
}

/* The reduction's steps with NaN-free accumulators: acc = min(acc, v) with a NaN v
 * ignored (the min/max instructions return their second operand when either is NaN),
 * and -0.0 and +0.0 counted as equal; the zeros are tracked apart (zn: a lane saw -0.0,
 * zp: +0.0) and vf_fix_zeros puts them in order: a lane that saw -0.0 has a minimum of
 * -0.0 or below, one that saw +0.0 a maximum of +0.0 or above. Cheaper than vf_minmax. */
QDQ_FN vf QDQ_SFX(vf_min_nn)(vf v, vf acc)
{
#if QDQ_F16C
    return (vf)_mm256_min_ps((__m256)v, (__m256)acc);
#else
    return QDQ_SFX(vf_sel)(v < acc, v, acc);
#endif
}
QDQ_FN vf QDQ_SFX(vf_max_nn)(vf v, vf acc)
{
#if QDQ_F16C
    return (vf)_mm256_max_ps((__m256)v, (__m256)acc);
#else
    return QDQ_SFX(vf_sel)(v > acc, v, acc);
#endif
}
QDQ_FN void QDQ_SFX(vf_zeros)(vf v, vi *zn, vi *zp)
{
    *zn |= (vi)v == (int32_t)0x80000000u;
    *zp |= (vi)v == 0;
}
QDQ_FN void QDQ_SFX(vf_fix_zeros)(vf *mn, vf *mx, vi zn, vi zp)
{
    *mn = (vf)((vi)*mn | (zn & (int32_t)0x80000000u));
    *mx = (vf)((vi)*mx & ~(zp & (int32_t)0x80000000u));
}

/* --- float64 lanes ------------------------------------------------------ */
QDQ_FN vd QDQ_SFX(vd_splat)(double a)
{
    vd v;
    size_t k;
    for (k = 0; k < sizeof v / sizeof a; k++) v[k] = a;
    return v;
}
QDQ_FN vd QDQ_SFX(vd_load)(const double *p) { vd v; memcpy(&v, p, sizeof v); return v; }
QDQ_FN void QDQ_SFX(vd_store)(double *p, vd v) { memcpy(p, &v, sizeof v); }
QDQ_FN vd QDQ_SFX(vd_sel)(vl m, vd a, vd b) { return (vd)((m & (vl)a) | (~m & (vl)b)); }
QDQ_FN vd QDQ_SFX(vd_clamp)(vd v, vd lo, vd hi)
{
#if QDQ_F16C
    v = (vd)_mm256_min_pd((__m256d)hi, (__m256d)v);
    return (vd)_mm256_max_pd((__m256d)lo, (__m256d)v);
#else
    v = QDQ_SFX(vd_sel)(hi < v, hi, v);
    return QDQ_SFX(vd_sel)(v < lo, lo, v);
#endif
}

QDQ_FN vd QDQ_SFX(vd_rint)(vd y)
{
#if QDQ_F16C
    return (vd)_mm256_round_pd((__m256d)y, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
#else
    const vd c = QDQ_SFX(vd_splat)(4503599627370496.0);  /* 2^52 */
    vl sign = (vl)y & (int64_t)0x8000000000000000ull;
    vd a = (vd)((vl)y & 0x7fffffffffffffffll);
    vd t = (a + c) - c;
    return (vd)((vl)QDQ_SFX(vd_sel)(a < c, t, a) | sign);
#endif
}

QDQ_FN vd QDQ_SFX(vd_floor)(vd t)
{
#if QDQ_F16C
    return (vd)_mm256_round_pd((__m256d)t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
#else
    vd r = QDQ_SFX(vd_rint)(t);
    return QDQ_SFX(vd_sel)(r > t, r - 1.0, r);
#endif
}

QDQ_FN void QDQ_SFX(vd_minmax)(vd v, vd *mn, vd *mx)
{
    vl lt = v < *mn, eq = v == *mn;
    vl gt = v > *mx, eq2 = v == *mx;
    *mn = (vd)((lt & (vl)v) | (~lt & ((vl)*mn | ((vl)v & eq))));
    *mx = (vd)((gt & (vl)v) | (~gt & ((vl)*mx & ((vl)v | ~eq2))));
}

QDQ_FN vd QDQ_SFX(vd_min_nn)(vd v, vd acc)
{
#if QDQ_F16C
    return (vd)_mm256_min_pd((__m256d)v, (__m256d)acc);
#else
    return QDQ_SFX(vd_sel)(v < acc, v, acc);
#endif
}
QDQ_FN vd QDQ_SFX(vd_max_nn)(vd v, vd acc)
{
#if QDQ_F16C
    return (vd)_mm256_max_pd((__m256d)v, (__m256d)acc);
#else
    return QDQ_SFX(vd_sel)(v > acc, v, acc);
#endif
}
QDQ_FN void QDQ_SFX(vd_zeros)(vd v, vl *zn, vl *zp)
{
    *zn |= (vl)v == (int64_t)0x8000000000000000ull;
    *zp |= (vl)v == 0;
}
QDQ_FN void QDQ_SFX(vd_fix_zeros)(vd *mn, vd *mx, vl zn, vl zp)
{
    *mn = (vd)((vl)*mn | (zn & (int64_t)0x8000000000000000ull));
    *mx = (vd)((vl)*mx & ~(zp & (int64_t)0x8000000000000000ull));
}

/* --- 16-bit formats, computed in float32 lanes ---------------------------- */
QDQ_FN vh QDQ_SFX(vh_load)(const uint16_t *p) { vh v; memcpy(&v, p, sizeof v); return v; }
QDQ_FN void QDQ_SFX(vh_store)(uint16_t *p, vh v) { memcpy(p, &v, sizeof v); }

QDQ_FN vf QDQ_SFX(f16_widen)(vh h)
{
#if QDQ_F16C
    return (vf)_mm256_cvtph_ps((__m128i)h);
#else
    vu u = __builtin_convertvector(h, vu);
    vu o = (u & 0x7fffu) << 13;
    vu e = o & 0x0f800000u;
    vi infnan = (vi)(e == 0x0f800000u);
    vi zero_sub = (vi)(e == 0u);
    vu oz;
    o += (uint32_t)(127 - 15) << 23;
    o += (vu)(infnan & (int32_t)((uint32_t)(128 - 16) << 23));
    oz = (vu)((vf)(o + (1u << 23)) - QDQ_SFX(vf_splat)(6.103515625e-05f));  /* 2^-14 */
    o = (vu)((zero_sub & (vi)oz) | (~zero_sub & (vi)o));
    return (vf)(o | ((u & 0x8000u) << 16));
#endif
}

QDQ_FN vh QDQ_SFX(f16_narrow)(vf v)
{
#if QDQ_F16C
    return (vh)_mm256_cvtps_ph((__m256)v, _MM_FROUND_TO_NEAREST_INT);
#else
    vu f = (vu)v;
    vu sign = (f >> 16) & 0x8000u;
    vu m, onan, obig, osmall, onorm, o;
    vi big, nan, small;
    f &= 0x7fffffffu;  /* from here on f is non-negative as a signed int: signed compares */
    big = (vi)f >= (int32_t)(143u << 23);
    nan = (vi)f > (int32_t)0x7f800000u;
    small = (vi)f < (int32_t)(113u << 23);
    m = (f >> 13) & 0x3ffu;
    onan = 0x7c00u | m | (vu)((vi)(m == 0u) & 1);
    obig = (vu)((nan & (vi)onan) | (~nan & 0x7c00));
    osmall = (vu)((vf)f + 0.5f) - 0x3f000000u;
    onorm = (f + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((f >> 13) & 1u)) >> 13;
    o = (vu)((small & (vi)osmall) | (~small & (vi)onorm));
    o = (vu)((big & (vi)obig) | (~big & (vi)o));
    return __builtin_convertvector(o | sign, vh);
#endif
}

/* v rounded to the nearest float16 value (ties to even), kept in float32. */
QDQ_FN vf QDQ_SFX(f16_round)(vf v)
{
#if QDQ_F16C
    return QDQ_SFX(f16_widen)(QDQ_SFX(f16_narrow)(v));
#else
    vi f = (vi)v;
    vi sign = f & (int32_t)0x80000000u;
    vi a = f & 0x7fffffff;
    /* normal range: round the 23-bit fraction to 10 bits (a carry bumps the exponent) */
    vi rn = (a + 0xfff + ((a >> 13) & 1)) & (int32_t)0xffffe000u;
    /* below 2^-14: round to a multiple of 2^-24 by adding and removing 0.5 */
    vi sub = (vi)(((vf)a + 0.5f) - 0.5f);
    vi small = a < (int32_t)(113u << 23);
    vi big = a >= 0x477ff000;                     /* 65520: rounds to inf */
    vi nan = v != v;
    vi r = (small & sub) | (~small & rn);
    r = (big & 0x7f800000) | (~big & r);
    r = (nan & a) | (~nan & r);
    return (vf)(r | sign);
#endif
}

/* bfloat16: the upper half of a float32. Narrowing rounds to nearest even by
 * adding 0x7fff plus the lowest kept bit; NaN becomes the quiet NaN 0x7fc0
 * with its sign (qdq_f32_to_bf16). The AVX2 copy writes the same steps with
 * intrinsics, so that widening and narrowing are one byte shuffle each (plus a
 * lane permute to narrow); the generic conversions cost several instructions. */
#if QDQ_F16C
/* Each 128-bit lane shuffles its four values into the upper halves of its
 * 32-bit lanes (-1 bytes become zero); the source is the 8 values in both lanes. */
QDQ_FN vf QDQ_SFX(bf16_widen)(vh h)
{
    const __m256i up = _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7,
                                        -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
    return (vf)_mm256_shuffle_epi8(_mm256_broadcastsi128_si256((__m128i)h), up);
}

/* f + 0x7fff + (bit 16 of f): its upper half is f rounded to nearest even
 * (f not NaN; no carry into the sign). */
QDQ_FN __m256i QDQ_SFX(bf16_add_half)(__m256i f)
{
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(f, 16), _mm256_set1_epi32(1));
    return _mm256_add_epi32(f, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff)));
}

QDQ_FN vh QDQ_SFX(bf16_narrow)(vf v)
{
    const __m256i f = (__m256i)v;
    const __m256 nan = _mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q);
    const __m256i q = _mm256_or_si256(_mm256_and_si256(f, _mm256_set1_epi32((int)0x80000000u)),
                                      _mm256_set1_epi32(0x7fc00000));
    const __m256i down = _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                          2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1);
    __m256i r = (__m256i)_mm256_blendv_ps((__m256)QDQ_SFX(bf16_add_half)(f), (__m256)q, nan);
    /* the upper halves: to the low 8 bytes of each 128-bit lane, then the two lanes together */
    r = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(r, down), 0x08);
    return (vh)_mm256_castsi256_si128(r);
}

/* bf16_narrow for v that holds no NaN. */
QDQ_FN vh QDQ_SFX(bf16_narrow_nn)(vf v)
{
    const __m256i down = _mm256_setr_epi8(2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                          2, 3, 6, 7, 10, 11, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m256i r = _mm256_shuffle_epi8(QDQ_SFX(bf16_add_half)((__m256i)v), down);
    return (vh)_mm256_castsi256_si128(_mm256_permute4x64_epi64(r, 0x08));
}

/* v rounded to the nearest bfloat16 value, kept in float32, for v that holds
 * no NaN (a NaN could become an infinity or a zero). */
QDQ_FN vf QDQ_SFX(bf16_round_nn)(vf v)
{
    return (vf)_mm256_and_si256(QDQ_SFX(bf16_add_half)((__m256i)v),
                                _mm256_set1_epi32((int)0xffff0000u));
}

/* v rounded to the nearest bfloat16 value, kept in float32; a NaN stays as it
 * is (the narrowing makes it the quiet NaN in the end). */
QDQ_FN vf QDQ_SFX(bf16_round)(vf v)
{
    return (vf)_mm256_blendv_ps((__m256)QDQ_SFX(bf16_round_nn)(v), (__m256)v,
                                _mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q));
}

/* Nonzero when a lane of a or of b is NaN. */
QDQ_FN int QDQ_SFX(vf_any_nan2)(vf a, vf b)
{
    return _mm256_movemask_ps(_mm256_cmp_ps((__m256)a, (__m256)b, _CMP_UNORD_Q));
}
#else
QDQ_FN vf QDQ_SFX(bf16_widen)(vh h) { return (vf)(__builtin_convertvector(h, vu) << 16); }

QDQ_FN vh QDQ_SFX(bf16_narrow)(vf v)
{
    vu f = (vu)v;
    vi nan = v != v;
    vu r = (f + 0x7fffu + ((f >> 16) & 1u)) >> 16;
    vu q = ((f >> 16) & 0x8000u) | 0x7fc0u;
    r = (vu)((nan & (vi)q) | (~nan & (vi)r));
    return __builtin_convertvector(r, vh);
}

QDQ_FN vf QDQ_SFX(bf16_round)(vf v)
{
    vu f = (vu)v;
    vi nan = v != v;
    vu r = (f + 0x7fffu + ((f >> 16) & 1u)) & 0xffff0000u;
    return (vf)((nan & (vi)f) | (~nan & (vi)r));
}
#endif

#endif /* QDQ_HAVE_VEC */

/* --- the kernels, per element type --------------------------------------- */

/* float16: storage uint16, compute float32 */
#define QDQ_T f16
#define QDQ_ST uint16_t
#define QDQ_CT float
#define QDQ_FMT QDQ_F16
#define QDQ_SLOAD(p) qdq_f16_to_f32(*(p))
#define QDQ_SSTORE(p, v) (*(p) = qdq_f32_to_f16(v))
#define QDQ_SOP qdq_op1_f
#define QDQ_SMIN qdq_min1_f
#define QDQ_SMAX qdq_max1_f
#if QDQ_HAVE_VEC
#  define QDQ_V vf
#  define QDQ_VM vi
#  define QDQ_L (QDQ_VB / 4)
#  define QDQ_VLOAD(p) QDQ_SFX(f16_widen)(QDQ_SFX(vh_load)(p))
#  define QDQ_VSTORE(p, v) QDQ_SFX(vh_store)((p), QDQ_SFX(f16_narrow)(v))
#  define QDQ_VRND(v) QDQ_SFX(f16_round)(v)
#  if QDQ_F16C
#    define QDQ_VSTREAM(p, v) _mm_stream_si128((__m128i *)(p), (__m128i)QDQ_SFX(f16_narrow)(v))
#    define QDQ_VALIGN 16
#  endif
#  define QDQ_VP(name) QDQ_SFX(vf_##name)
#endif
#include "format_kernels.h"

/* bfloat16: storage uint16, compute float32 */
#define QDQ_T bf16
#define QDQ_ST uint16_t
#define QDQ_CT float
#define QDQ_FMT QDQ_BF16
#define QDQ_SLOAD(p) qdq_bf16_to_f32(*(p))
#define QDQ_SSTORE(p, v) (*(p) = qdq_f32_to_bf16(v))
#define QDQ_SOP qdq_op1_f
#define QDQ_SMIN qdq_min1_f
#define QDQ_SMAX qdq_max1_f
#if QDQ_HAVE_VEC
#  define QDQ_V vf
#  define QDQ_VM vi
#  define QDQ_L (QDQ_VB / 4)
#  define QDQ_VLOAD(p) QDQ_SFX(bf16_widen)(QDQ_SFX(vh_load)(p))
#  define QDQ_VSTORE(p, v) QDQ_SFX(vh_store)((p), QDQ_SFX(bf16_narrow)(v))
#  define QDQ_VRND(v) QDQ_SFX(bf16_round)(v)
#  if QDQ_F16C
#    define QDQ_VRND_NN(v) QDQ_SFX(bf16_round_nn)(v)
#    define QDQ_VSTORE_NN(p, v) QDQ_SFX(vh_store)((p), QDQ_SFX(bf16_narrow_nn)(v))
#    define QDQ_VANY_NAN2(a, b) QDQ_SFX(vf_any_nan2)((a), (b))
#  endif
#  define QDQ_VP(name) QDQ_SFX(vf_##name)
#endif
#include "format_kernels.h"

/* float32 */
#define QDQ_T f32
#define QDQ_ST float
#define QDQ_CT float
#define QDQ_FMT QDQ_F32
#define QDQ_SLOAD(p) (*(p))
#define QDQ_SSTORE(p, v) (*(p) = (v))
#define QDQ_SOP qdq_op1_f
#define QDQ_SMIN qdq_min1_f
#define QDQ_SMAX qdq_max1_f
#if QDQ_HAVE_VEC
#  define QDQ_V vf
#  define QDQ_VM vi
#  define QDQ_L (QDQ_VB / 4)
#  define QDQ_VLOAD(p) QDQ_SFX(vf_load)(p)
#  define QDQ_VSTORE(p, v) QDQ_SFX(vf_store)((p), (v))
#  define QDQ_VRND(v) (v)
#  if QDQ_F16C
#    define QDQ_VSTREAM(p, v) _mm256_stream_ps((p), (__m256)(v))
#    define QDQ_VALIGN 32
#  endif
#  define QDQ_VP(name) QDQ_SFX(vf_##name)
#endif
#include "format_kernels.h"

/* float64 */
#define QDQ_T f64
#define QDQ_ST double
#define QDQ_CT double
#define QDQ_FMT QDQ_F64
#define QDQ_SLOAD(p) (*(p))
#define QDQ_SSTORE(p, v) (*(p) = (v))
#define QDQ_SOP qdq_op1_d
#define QDQ_SMIN qdq_min1_d
#define QDQ_SMAX qdq_max1_d
#if QDQ_HAVE_VEC
#  define QDQ_V vd
#  define QDQ_VM vl
#  define QDQ_L (QDQ_VB / 8)
#  define QDQ_VLOAD(p) QDQ_SFX(vd_load)(p)
#  define QDQ_VSTORE(p, v) QDQ_SFX(vd_store)((p), (v))
#  define QDQ_VRND(v) (v)
#  if QDQ_F16C
#    define QDQ_VSTREAM(p, v) _mm256_stream_pd((p), (__m256d)(v))
#    define QDQ_VALIGN 32
#  endif
#  define QDQ_VP(name) QDQ_SFX(vd_##name)
#endif
#include "format_kernels.h"

/* integer codes: every integer type, for the float and the double compute type; the
 * bounds are the integer range as the compute type holds it (rounded down where inexact) */
#define QDQ_CT float
#define QDQ_CTAG f
#if QDQ_HAVE_VEC
#  define QDQ_V vf
#  define QDQ_VM vi
#  define QDQ_L (QDQ_VB / 4)
#  define QDQ_VP(name) QDQ_SFX(vf_##name)
#endif
#define QDQ_IT int8_t
#define QDQ_ITAG i8
#define QDQ_ILO ((float)-128)
#define QDQ_IHI ((float)127)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT uint8_t
#define QDQ_ITAG u8
#define QDQ_ILO ((float)0)
#define QDQ_IHI ((float)255)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT int16_t
#define QDQ_ITAG i16
#define QDQ_ILO ((float)-32768)
#define QDQ_IHI ((float)32767)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT uint16_t
#define QDQ_ITAG u16
#define QDQ_ILO ((float)0)
#define QDQ_IHI ((float)65535)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT int32_t
#define QDQ_ITAG i32
#define QDQ_ILO ((float)-2147483648.0f)
#define QDQ_IHI ((float)2147483520.0f)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT uint32_t
#define QDQ_ITAG u32
#define QDQ_ILO ((float)0.0f)
#define QDQ_IHI ((float)4294967040.0f)
#define QDQ_WIDE32 0
#include "int_codes.h"
#define QDQ_IT int64_t
#define QDQ_ITAG i64
#define QDQ_ILO ((float)-9223372036854775808.0f)
#define QDQ_IHI ((float)9223371487098961920.0f)
#define QDQ_WIDE32 0
#include "int_codes.h"
#define QDQ_IT uint64_t
#define QDQ_ITAG u64
#define QDQ_ILO ((float)0.0f)
#define QDQ_IHI ((float)18446742974197923840.0f)
#define QDQ_WIDE32 0
#include "int_codes.h"
#undef QDQ_CT
#undef QDQ_CTAG
#if QDQ_HAVE_VEC
#  undef QDQ_V
#  undef QDQ_VM
#  undef QDQ_L
#  undef QDQ_VP
#endif
#define QDQ_CT double
#define QDQ_CTAG d
#if QDQ_HAVE_VEC
#  define QDQ_V vd
#  define QDQ_VM vl
#  define QDQ_L (QDQ_VB / 8)
#  define QDQ_VP(name) QDQ_SFX(vd_##name)
#endif
#define QDQ_IT int8_t
#define QDQ_ITAG i8
#define QDQ_ILO ((double)-128)
#define QDQ_IHI ((double)127)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT uint8_t
#define QDQ_ITAG u8
#define QDQ_ILO ((double)0)
#define QDQ_IHI ((double)255)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT int16_t
#define QDQ_ITAG i16
#define QDQ_ILO ((double)-32768)
#define QDQ_IHI ((double)32767)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT uint16_t
#define QDQ_ITAG u16
#define QDQ_ILO ((double)0)
#define QDQ_IHI ((double)65535)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT int32_t
#define QDQ_ITAG i32
#define QDQ_ILO ((double)-2147483648.0)
#define QDQ_IHI ((double)2147483647.0)
#define QDQ_WIDE32 1
#include "int_codes.h"
#define QDQ_IT uint32_t
#define QDQ_ITAG u32
#define QDQ_ILO ((double)0.0)
#define QDQ_IHI ((double)4294967295.0)
#define QDQ_WIDE32 0
#include "int_codes.h"
#define QDQ_IT int64_t
#define QDQ_ITAG i64
#define QDQ_ILO ((double)-9223372036854775808.0)
#define QDQ_IHI ((double)9223372036854774784.0)
#define QDQ_WIDE32 0
#include "int_codes.h"
#define QDQ_IT uint64_t
#define QDQ_ITAG u64
#define QDQ_ILO ((double)0.0)
#define QDQ_IHI ((double)18446744073709549568.0)
#define QDQ_WIDE32 0
#include "int_codes.h"
#undef QDQ_CT
#undef QDQ_CTAG
#if QDQ_HAVE_VEC
#  undef QDQ_V
#  undef QDQ_VM
#  undef QDQ_L
#  undef QDQ_VP
#endif

#if QDQ_HAVE_VEC
#undef vf
#undef vi
#undef vu
#undef vd
#undef vl
#undef vh
#endif
#undef QDQ_FN
