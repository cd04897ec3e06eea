/*
 * qdq's scalar element helpers: the format, mode and integer-type codes, bit
 * casts, the float16/bfloat16 converters (round to nearest even), rounding a
 * float64 value to a format, the total-order NaN-ignoring min/max steps and
 * the element transform of the op. They are the tail loops of every kernel
 * and the whole kernel where vector extensions are missing.
 *
 * Included once by dispatch.h (and so by kernels.pyx), and once by
 * testing.pyx, which exposes the converters to the exhaustive tests.
 */
#ifndef QDQ_SCALAR_H
#define QDQ_SCALAR_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum { QDQ_F16 = 0, QDQ_BF16 = 1, QDQ_F32 = 2, QDQ_F64 = 3 };
enum { QDQ_CLAMP = 1, QDQ_HALF_UP = 2 };
enum { QDQ_I8 = 0, QDQ_U8, QDQ_I16, QDQ_U16, QDQ_I32, QDQ_U32, QDQ_I64, QDQ_U64 };

static inline uint32_t qdq_fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float qdq_bitsf(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint64_t qdq_dbits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static inline double qdq_bitsd(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }

/* float16 bits -> float32, exact (NaN payloads kept). */
static inline float qdq_f16_to_f32(uint16_t h)
{
    uint32_t o = (uint32_t)(h & 0x7fffu) << 13;
    uint32_t e = o & 0x0f800000u;
    o += (uint32_t)(127 - 15) << 23;
    if (e == 0x0f800000u) {                       /* inf or NaN */
        o += (uint32_t)(128 - 16) << 23;
    } else if (e == 0) {                          /* zero or subnormal */
        o = qdq_fbits(qdq_bitsf(o + (1u << 23)) - qdq_bitsf(113u << 23));
    }
    return qdq_bitsf(o | ((uint32_t)(h & 0x8000u) << 16));
}

/* float32 -> float16 bits, round to nearest even; NaN as NumPy converts it. */
static inline uint16_t qdq_f32_to_f16(float v)
{
    uint32_t f = qdq_fbits(v);
    uint32_t sign = (f >> 16) & 0x8000u;
    uint32_t o;
    f &= 0x7fffffffu;
    if (f >= (143u << 23)) {                      /* >= 65536: inf, NaN */
        uint32_t m = (f >> 13) & 0x3ffu;
        o = (f > 0x7f800000u) ? (0x7c00u | m | (m == 0)) : 0x7c00u;
    } else if (f < (113u << 23)) {                /* < 2^-14: subnormal */
        o = qdq_fbits(qdq_bitsf(f) + 0.5f) - 0x3f000000u;
    } else {
        uint32_t odd = (f >> 13) & 1u;
        o = (f + ((uint32_t)(15 - 127) << 23) + 0xfffu + odd) >> 13;
    }
    return (uint16_t)(o | sign);
}

static inline float qdq_bf16_to_f32(uint16_t h) { return qdq_bitsf((uint32_t)h << 16); }

/* float32 -> bfloat16 bits, round to nearest even; NaN becomes the quiet
 * NaN 0x7fc0 with its sign, as ml_dtypes converts it. */
static inline uint16_t qdq_f32_to_bf16(float v)
{
    uint32_t f = qdq_fbits(v);
    if ((f & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)(((f >> 16) & 0x8000u) | 0x7fc0u);
    return (uint16_t)((f + 0x7fffu + ((f >> 16) & 1u)) >> 16);
}

static inline float qdq_round_f16(float v) { return qdq_f16_to_f32(qdq_f32_to_f16(v)); }
static inline float qdq_round_bf16(float v) { return qdq_bf16_to_f32(qdq_f32_to_bf16(v)); }

/* float64 -> float32 rounding to odd: truncate, then set the last bit when
 * inexact. Rounding that result to float16 or bfloat16 (which have fewer than
 * 24 - 2 bits) is then a correct single rounding of the float64 value. */
static inline float qdq_f64_to_f32_odd(double d)
{
    float f = (float)d;
    if (d != d || (double)f == d) return f;
    if (fabs((double)f) > fabs(d)) f = nextafterf(f, 0.0f);
    return qdq_bitsf(qdq_fbits(f) | 1u);
}

/* A float64 value rounded (once, to nearest even) to the format, returned
 * exactly as a double. */
static inline double qdq_round_value(int fmt, double d)
{
    switch (fmt) {
    case QDQ_F16: return qdq_round_f16(qdq_f64_to_f32_odd(d));
    case QDQ_BF16: return qdq_round_bf16(qdq_f64_to_f32_odd(d));
    case QDQ_F32: return (float)d;
    default: return d;
    }
}

/* Total-order, NaN-ignoring min/max steps (-0.0 < +0.0). */
static inline void qdq_min1_f(float v, float *mn) { if (v < *mn || (v == *mn && signbit(v))) *mn = v; }
static inline void qdq_max1_f(float v, float *mx) { if (v > *mx || (v == *mx && !signbit(v))) *mx = v; }
static inline void qdq_min1_d(double v, double *mn) { if (v < *mn || (v == *mn && signbit(v))) *mn = v; }
static inline void qdq_max1_d(double v, double *mx) { if (v > *mx || (v == *mx && !signbit(v))) *mx = v; }

/* The element transform of the op, in float (16-bit types round to T after
 * each operation through rnd) or in double. */
#define QDQ_DEFINE_SCALAR_OP(NAME, CT, RINT, FLOOR)                           \
    static inline CT NAME(CT v, CT s, CT inv, CT lo, CT hi, int mode,           \
                          int fmt)                                              \
    {                                                                           \
        CT y, r;                                                                \
        if (mode & QDQ_CLAMP) {                                                 \
            v = (hi < v) ? hi : v;                                              \
            v = (v < lo) ? lo : v;                                              \
        }                                                                       \
        y = qdq_rnd_##CT(v * s, fmt);                                           \
        if (mode & QDQ_HALF_UP) r = FLOOR(qdq_rnd_##CT(y + (CT)0.5, fmt));      \
        else r = RINT(y);                                                       \
        return r * inv;                                                         \
    }

static inline float qdq_rnd_float(float v, int fmt)
{
    return fmt == QDQ_F16 ? qdq_round_f16(v) : fmt == QDQ_BF16 ? qdq_round_bf16(v) : v;
}
static inline double qdq_rnd_double(double v, int fmt) { (void)fmt; return v; }

QDQ_DEFINE_SCALAR_OP(qdq_op1_f, float, rintf, floorf)
QDQ_DEFINE_SCALAR_OP(qdq_op1_d, double, rint, floor)

#endif /* QDQ_SCALAR_H */
