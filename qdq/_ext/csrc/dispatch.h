/*
 * The entry points of qdq's element kernels (qdq_minmax, qdq_apply,
 * qdq_rows_op, qdq_quantize, ...), which choose an instruction-set copy at
 * run time.
 * Included once, by kernels.pyx. It includes cpu.h (the probe and the level
 * in use) and scalar.h, then isa_copy.h once per instruction set: the
 * baseline copy (level 0), and on x86-64 the AVX2 copy (levels 1 and 2); then
 * bf16_avx2.h, the AVX2 bfloat16 op sixteen values at a time, and bf16_avx512.h, the
 * bfloat16 op of level 3 (AVX512-BF16 conversions).
 *
 * The kernels: NaN-ignoring min/max reductions and the
 * clamp-scale-round-rescale transform, for float16 and bfloat16 (as uint16
 * bit patterns, computed in float32 and rounded to the storage type after
 * every operation), float32 and float64, and the integer codes and gradient.
 *
 * The loops are written with GCC/Clang vector extensions so that they
 * vectorise on any target without -ffast-math: the baseline build uses
 * 16-byte vectors (SSE2 on x86-64, NEON on aarch64); on x86-64 a second copy
 * compiled for AVX2 (+F16C for float16 conversions) is chosen at run time.
 * Compilers without vector extensions get the scalar loops only. FMA is never
 * enabled: every multiply and add rounds on its own, as TensorFlow's kernel
 * does (the build also passes -ffp-contract=off).
 *
 * Rounding: the AVX2 copy uses the round instructions (to nearest even, and
 * toward -inf); the baseline computes rint as (|y| + 2^p) - 2^p with the sign
 * put back, which is IEEE round-half-to-even in the default rounding mode, and
 * floor as rint(t) - (rint(t) > t). All are exact and give the same bits.
 *
 * Min/max: NaN is ignored, and -0.0 counts as smaller than +0.0, so the
 * result does not depend on the order of the reduction (threads, chunks).
 */
#ifndef QDQ_DISPATCH_H
#define QDQ_DISPATCH_H

#include <float.h>
#include <stdio.h>
#include <unistd.h>

#include "cpu.h"
#include "scalar.h"

/* ------------------------------------------------------------------------ */
/* Vector kernels, one copy per instruction set.                             */
/* ------------------------------------------------------------------------ */

#if (defined(__GNUC__) || defined(__clang__)) && defined(__has_builtin)
#  if __has_builtin(__builtin_convertvector) && !defined(QDQ_NO_SIMD)
#    define QDQ_HAVE_VEC 1
#  endif
#endif
#ifndef QDQ_HAVE_VEC
#  define QDQ_HAVE_VEC 0
#endif

/* Two-vector shuffles with constant lane indices (Clang; GCC 12 has both forms). */
#if QDQ_HAVE_VEC
#  if __has_builtin(__builtin_shufflevector)
#    define QDQ_SHUF2(M, a, b, ...) __builtin_shufflevector((a), (b), __VA_ARGS__)
#  else
#    define QDQ_SHUF2(M, a, b, ...) __builtin_shuffle((a), (b), (M){__VA_ARGS__})
#  endif
#endif

#if QDQ_HAVE_VEC && QDQ_CPU_X86
#  define QDQ_X86_DISPATCH 1
#else
#  define QDQ_X86_DISPATCH 0
#endif

#define QDQ_VB 16
#define QDQ_SFX(name) name##_base
#define QDQ_TARGET
#define QDQ_F16C 0
#include "isa_copy.h"
#undef QDQ_VB
#undef QDQ_SFX
#undef QDQ_TARGET
#undef QDQ_F16C

#if QDQ_X86_DISPATCH
#  define QDQ_VB 32
#  define QDQ_SFX(name) name##_avx2
#  define QDQ_TARGET QDQ_TARGET_AVX2
#  define QDQ_F16C 1
#  include "isa_copy.h"
#  undef QDQ_VB
#  undef QDQ_SFX
#  undef QDQ_TARGET
#  undef QDQ_F16C
#endif

#include "bf16_avx2.h"
#include "bf16_avx512.h"

/* ------------------------------------------------------------------------ */
/* Dispatch.                                                                 */
/* ------------------------------------------------------------------------ */

/* The copy each kernel of this module runs at a level (cpu.h): kernel 0 the
 * op and the other element kernels (range, codes, gradient), 1 the bfloat16
 * op, 2 the error statistics (error_stats.h). NULL past the last kernel. */
static inline const char *qdq_kernel_isa(int kernel, int level)
{
    const int avx2 = QDQ_X86_DISPATCH && level >= QDQ_ISA_AVX2;
    switch (kernel) {
    case 0:
    case 2:
        return qdq_isa_name(avx2 ? QDQ_ISA_AVX2 : QDQ_ISA_BASELINE);
    case 1:
        if (QDQ_HAVE_BF16_AVX512 && level >= QDQ_ISA_AVX512BF16)
            return qdq_isa_name(QDQ_ISA_AVX512BF16);
        return qdq_isa_name(avx2 ? QDQ_ISA_AVX2 : QDQ_ISA_BASELINE);
    default:
        return NULL;
    }
}

#if QDQ_X86_DISPATCH
#  define QDQ_DISPATCH(call_base, call_avx2) \
    do { if (qdq_get_isa() >= QDQ_ISA_AVX2) { call_avx2; } else { call_base; } } while (0)
#else
#  define QDQ_DISPATCH(call_base, call_avx2) do { call_base; } while (0)
#endif

#define QDQ_DISPATCH_FMT(fn, args_16, args_bf, args_32, args_64)               \
    switch (fmt) {                                                             \
    case QDQ_F16: QDQ_DISPATCH(fn##_f16_base args_16, fn##_f16_avx2 args_16); break; \
    case QDQ_BF16: QDQ_DISPATCH(fn##_bf16_base args_bf, fn##_bf16_avx2 args_bf); break; \
    case QDQ_F32: QDQ_DISPATCH(fn##_f32_base args_32, fn##_f32_avx2 args_32); break; \
    default: QDQ_DISPATCH(fn##_f64_base args_64, fn##_f64_avx2 args_64); break; \
    }

/* Merge the min/max of x[0:n] into *mn, *mx (float for the 16-bit formats
 * and float32, double for float64). beyond_cache: x is part of a block larger than the
 * last-level cache (the kernel then prefetches where cpu.h's qdq_prefetch_ahead says). */
static void qdq_minmax(int fmt, const void *x, size_t n, void *mn, void *mx, int beyond_cache)
{
    QDQ_DISPATCH_FMT(qdq_minmax,
        ((const uint16_t *)x, n, (float *)mn, (float *)mx, beyond_cache),
        ((const uint16_t *)x, n, (float *)mn, (float *)mx, beyond_cache),
        ((const float *)x, n, (float *)mn, (float *)mx, beyond_cache),
        ((const double *)x, n, (double *)mn, (double *)mx, beyond_cache))
}

/* mn[i] = min(mn[i], x[i]), mx[i] = max(mx[i], x[i]) for i < n. */
static void qdq_minmax_lanes(int fmt, const void *x, size_t n, void *mn, void *mx)
{
    QDQ_DISPATCH_FMT(qdq_minmax_lanes,
        ((const uint16_t *)x, n, (float *)mn, (float *)mx),
        ((const uint16_t *)x, n, (float *)mn, (float *)mx),
        ((const float *)x, n, (float *)mn, (float *)mx),
        ((const double *)x, n, (double *)mn, (double *)mx))
}

/* o[i] = op(x[i]) with one set of parameters (values of T, passed as
 * double, which holds every one of them exactly). */
static void qdq_apply(int fmt, const void *x, void *o, size_t n, double s,
                      double inv, double lo, double hi, int mode)
{
#if QDQ_HAVE_BF16_AVX512
    if (fmt == QDQ_BF16 && qdq_get_isa() >= QDQ_ISA_AVX512BF16) {
        qdq_apply_bf16_avx512((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv,
                              (float)lo, (float)hi, mode, 0);
        return;
    }
#endif
#if QDQ_HAVE_BF16_AVX2_WIDE
    if (fmt == QDQ_BF16 && qdq_get_isa() >= QDQ_ISA_AVX2) {
        qdq_apply_bf16_avx2w((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv,
                             (float)lo, (float)hi, mode, 0);
        return;
    }
#endif
    QDQ_DISPATCH_FMT(qdq_apply,
        ((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv, (float)lo, (float)hi, mode),
        ((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv, (float)lo, (float)hi, mode),
        ((const float *)x, (float *)o, n, (float)s, (float)inv, (float)lo, (float)hi, mode),
        ((const double *)x, (double *)o, n, s, inv, lo, hi, mode))
}

/* o[i] = op(x[i]) with parameters s[i], inv[i], lo[i], hi[i]. */
static void qdq_apply_lanes(int fmt, const void *x, void *o, size_t n,
                            const void *s, const void *inv, const void *lo,
                            const void *hi, int mode)
{
    QDQ_DISPATCH_FMT(qdq_apply_lanes,
        ((const uint16_t *)x, (uint16_t *)o, n, (const float *)s, (const float *)inv,
         (const float *)lo, (const float *)hi, mode),
        ((const uint16_t *)x, (uint16_t *)o, n, (const float *)s, (const float *)inv,
         (const float *)lo, (const float *)hi, mode),
        ((const float *)x, (float *)o, n, (const float *)s, (const float *)inv,
         (const float *)lo, (const float *)hi, mode),
        ((const double *)x, (double *)o, n, (const double *)s, (const double *)inv,
         (const double *)lo, (const double *)hi, mode))
}

/* Columns [0, n) of a [rows, stride] block as channels (the channel axis last), in tiles
 * of QDQ_COL_TILE channels: a tile's min/max (or its four parameter arrays) stay in L1
 * while the rows go by. */
#ifndef QDQ_COL_TILE_BYTES
#define QDQ_COL_TILE_BYTES 65536
#endif

static inline size_t qdq_ct_size_of(int fmt) { return fmt == QDQ_F64 ? 8 : 4; }
static inline size_t qdq_st_size_of(int fmt) { return fmt == QDQ_F64 ? 8 : fmt == QDQ_F32 ? 4 : 2; }

/* mn[c] = min(mn[c], x[r * stride + c]) over r < rows, for c < n; likewise mx.
 * beyond_cache: these rows are part of a block larger than the last-level cache (the
 * kernels then prefetch where cpu.h's qdq_prefetch_ahead says; in cache it only costs). */
static void qdq_minmax_cols(int fmt, const void *x, size_t stride, size_t rows, size_t n,
                            void *mn, void *mx, int beyond_cache)
{
    const size_t isz = qdq_st_size_of(fmt), csz = qdq_ct_size_of(fmt);
    const size_t tile = QDQ_COL_TILE_BYTES / csz;
    size_t c, m;
    for (c = 0; c < n; c += m) {
        const char *xc = (const char *)x + c * isz;
        char *a = (char *)mn + c * csz, *b = (char *)mx + c * csz;
        m = n - c < tile ? n - c : tile;
        QDQ_DISPATCH_FMT(qdq_minmax_cols,
            ((const uint16_t *)xc, stride, rows, m, (float *)a, (float *)b, beyond_cache),
            ((const uint16_t *)xc, stride, rows, m, (float *)a, (float *)b, beyond_cache),
            ((const float *)xc, stride, rows, m, (float *)a, (float *)b, beyond_cache),
            ((const double *)xc, stride, rows, m, (double *)a, (double *)b, beyond_cache))
    }
}

/* The columns [c0, c1) of qdq_apply_cols, tile by tile. */
static void qdq_apply_cols_tiles(int fmt, const void *x, void *o, size_t stride, size_t rows,
                                 size_t c0, size_t c1, const void *s, const void *inv,
                                 const void *lo, const void *hi, int mode, int stream)
{
    const size_t isz = qdq_st_size_of(fmt), csz = qdq_ct_size_of(fmt);
    const size_t tile = QDQ_COL_TILE_BYTES / csz;
    size_t c, m;
    for (c = c0; c < c1; c += m) {
        const char *xc = (const char *)x + c * isz;
        char *oc = (char *)o + c * isz;
        const char *sc = (const char *)s + c * csz, *ic = (const char *)inv + c * csz;
        const char *lc = (const char *)lo + c * csz, *hc = (const char *)hi + c * csz;
        m = c1 - c < tile ? c1 - c : tile;
#if QDQ_HAVE_BF16_AVX512
        if (fmt == QDQ_BF16 && qdq_get_isa() >= QDQ_ISA_AVX512BF16) {
            qdq_apply_cols_bf16_avx512((const uint16_t *)xc, (uint16_t *)oc, stride, rows, m,
                                       (const float *)sc, (const float *)ic, (const float *)lc,
                                       (const float *)hc, mode, stream);
            continue;
        }
#endif
        QDQ_DISPATCH_FMT(qdq_apply_cols,
            ((const uint16_t *)xc, (uint16_t *)oc, stride, rows, m, (const float *)sc,
             (const float *)ic, (const float *)lc, (const float *)hc, mode, stream),
            ((const uint16_t *)xc, (uint16_t *)oc, stride, rows, m, (const float *)sc,
             (const float *)ic, (const float *)lc, (const float *)hc, mode, stream),
            ((const float *)xc, (float *)oc, stride, rows, m, (const float *)sc,
             (const float *)ic, (const float *)lc, (const float *)hc, mode, stream),
            ((const double *)xc, (double *)oc, stride, rows, m, (const double *)sc,
             (const double *)ic, (const double *)lc, (const double *)hc, mode, stream))
    }
}

/* o[r * stride + c] = op(x[r * stride + c]) with channel c's parameters s[c], inv[c], lo[c],
 * hi[c], for r < rows, c < n. stream: non-temporal stores where the copy has them, when
 * every row of o starts at the same offset from a 32-byte boundary (the rows' columns
 * before the first boundary go first, with ordinary stores). */
static void qdq_apply_cols(int fmt, const void *x, void *o, size_t stride, size_t rows,
                           size_t n, const void *s, const void *inv, const void *lo,
                           const void *hi, int mode, int stream)
{
    const size_t isz = qdq_st_size_of(fmt);
    size_t head = 0;
    if (stream && (stride * isz) % 32 == 0 && (uintptr_t)o % isz == 0) {
        head = ((32 - (uintptr_t)o % 32) % 32) / isz;
        if (head > n) head = n;
        if (head > 0)
            qdq_apply_cols_tiles(fmt, x, o, stride, rows, 0, head, s, inv, lo, hi, mode, 0);
    } else {
        stream = 0;
    }
    qdq_apply_cols_tiles(fmt, x, o, stride, rows, head, n, s, inv, lo, hi, mode, stream);
}

/* The op on each row of a [rows, len] block as its own channel, with its own
 * range (lo == NULL) or the range lo[r], hi[r] (compute type); qmin, qmax the
 * integer bounds and big the largest finite value, all values of T; prm (or
 * NULL) receives each row's parameters (qdq_rows in format_kernels.h). Returns
 * 1 when a row's minimum is negative, 0 if not, and -1 when this build has no
 * such kernel (no vector extensions): the caller then goes row by row. */
static int qdq_rows_op(int fmt, const void *x, void *o, size_t rows, size_t len,
                       const void *lo, const void *hi, double qmin, double qmax, double big,
                       int mode, void *prm, size_t pstride)
{
#if QDQ_HAVE_VEC
    int neg = 0;
    QDQ_DISPATCH_FMT(qdq_rows,
        ((const uint16_t *)x, (uint16_t *)o, rows, len, (const float *)lo, (const float *)hi,
         (float)qmin, (float)qmax, (float)big, mode, &neg, (float *)prm, pstride),
        ((const uint16_t *)x, (uint16_t *)o, rows, len, (const float *)lo, (const float *)hi,
         (float)qmin, (float)qmax, (float)big, mode, &neg, (float *)prm, pstride),
        ((const float *)x, (float *)o, rows, len, (const float *)lo, (const float *)hi,
         (float)qmin, (float)qmax, (float)big, mode, &neg, (float *)prm, pstride),
        ((const double *)x, (double *)o, rows, len, (const double *)lo, (const double *)hi,
         qmin, qmax, big, mode, &neg, (double *)prm, pstride))
    return neg;
#else
    (void)fmt; (void)x; (void)o; (void)rows; (void)len; (void)lo; (void)hi;
    (void)qmin; (void)qmax; (void)big; (void)mode; (void)prm; (void)pstride;
    return -1;
#endif
}

/* ------------------------------------------------------------------------ */
/* Integer codes and the gradient.                                           */
/* ------------------------------------------------------------------------ */

static inline size_t qdq_int_size(int itype) { return (size_t)1 << (itype >> 1); }
static inline size_t qdq_fmt_size(int fmt) { return fmt == QDQ_F64 ? 8 : fmt == QDQ_F32 ? 4 : 2; }
static inline size_t qdq_ct_size(int fmt) { return fmt == QDQ_F64 ? 8 : 4; }

/* Codes pass through a small buffer of compute-type values; it stays in cache. */
#define QDQ_CODE_BLOCK 2048

#define QDQ_INT_DISPATCH(fn, ct, args)                                          \
    switch (itype) {                                                            \
    case QDQ_I8: QDQ_DISPATCH(fn##_##ct##_i8_base args, fn##_##ct##_i8_avx2 args); break;   \
    case QDQ_U8: QDQ_DISPATCH(fn##_##ct##_u8_base args, fn##_##ct##_u8_avx2 args); break;   \
    case QDQ_I16: QDQ_DISPATCH(fn##_##ct##_i16_base args, fn##_##ct##_i16_avx2 args); break; \
    case QDQ_U16: QDQ_DISPATCH(fn##_##ct##_u16_base args, fn##_##ct##_u16_avx2 args); break; \
    case QDQ_I32: QDQ_DISPATCH(fn##_##ct##_i32_base args, fn##_##ct##_i32_avx2 args); break; \
    case QDQ_U32: QDQ_DISPATCH(fn##_##ct##_u32_base args, fn##_##ct##_u32_avx2 args); break; \
    case QDQ_I64: QDQ_DISPATCH(fn##_##ct##_i64_base args, fn##_##ct##_i64_avx2 args); break; \
    default: QDQ_DISPATCH(fn##_##ct##_u64_base args, fn##_##ct##_u64_avx2 args); break;     \
    }

/* codes[i] = round(clamp?(x[i]) * s) for i < n, as integer type itype, with
 * parameters s, lo, hi (compute type) per element when lanes, else one set.
 * When a code is NaN or outside itype, stats = {min, max, NaN seen} of the
 * codes of that block is merged (else stats is left as it is). */
static void qdq_quantize(int fmt, int itype, const void *x, void *codes, size_t n,
                         const void *s, const void *lo, const void *hi, int lanes, int mode,
                         double *stats)
{
    double buf[QDQ_CODE_BLOCK];
    const size_t isz = qdq_fmt_size(fmt), csz = qdq_ct_size(fmt), osz = qdq_int_size(itype);
    size_t i, m;
    for (i = 0; i < n; i += m) {
        const size_t off = lanes ? i * csz : 0;
        const char *xs = (const char *)x + i * isz;
        char *cs = (char *)codes + i * osz;
        m = n - i < QDQ_CODE_BLOCK ? n - i : QDQ_CODE_BLOCK;
        QDQ_DISPATCH_FMT(qdq_round,
            ((const uint16_t *)xs, (float *)buf, m, (const float *)((const char *)s + off),
             (const float *)((const char *)lo + off), (const float *)((const char *)hi + off),
             lanes, mode),
            ((const uint16_t *)xs, (float *)buf, m, (const float *)((const char *)s + off),
             (const float *)((const char *)lo + off), (const float *)((const char *)hi + off),
             lanes, mode),
            ((const float *)xs, (float *)buf, m, (const float *)((const char *)s + off),
             (const float *)((const char *)lo + off), (const float *)((const char *)hi + off),
             lanes, mode),
            ((const double *)xs, buf, m, (const double *)((const char *)s + off),
             (const double *)((const char *)lo + off), (const double *)((const char *)hi + off),
             lanes, mode))
        if (fmt == QDQ_F64) {
            QDQ_INT_DISPATCH(qdq_to, d, ((const double *)buf, (void *)cs, m, stats))
        } else {
            QDQ_INT_DISPATCH(qdq_to, f, ((const float *)buf, (void *)cs, m, stats))
        }
    }
}

/* o[i] = codes[i] * inv in T (inv per element when lanes). */
static void qdq_dequantize(int fmt, int itype, const void *codes, void *o, size_t n,
                           const void *inv, int lanes)
{
    double buf[QDQ_CODE_BLOCK];
    const size_t osz = qdq_fmt_size(fmt), csz = qdq_ct_size(fmt), isz = qdq_int_size(itype);
    size_t i, m;
    for (i = 0; i < n; i += m) {
        const char *cs = (const char *)codes + i * isz;
        char *os = (char *)o + i * osz;
        const char *iv = (const char *)inv + (lanes ? i * csz : 0);
        m = n - i < QDQ_CODE_BLOCK ? n - i : QDQ_CODE_BLOCK;
        if (fmt == QDQ_F64) {
            QDQ_INT_DISPATCH(qdq_from, d, ((const void *)cs, buf, m))
        } else {
            QDQ_INT_DISPATCH(qdq_from, f, ((const void *)cs, (float *)buf, m))
        }
        QDQ_DISPATCH_FMT(qdq_scale,
            ((const float *)buf, (uint16_t *)os, m, (const float *)iv, lanes),
            ((const float *)buf, (uint16_t *)os, m, (const float *)iv, lanes),
            ((const float *)buf, (float *)os, m, (const float *)iv, lanes),
            (buf, (double *)os, m, (const double *)iv, lanes))
    }
}

/* o[i] = g[i] * (lo <= x[i] <= hi) in T (lo, hi per element when lanes). */
static void qdq_gradient(int fmt, const void *g, const void *x, void *o, size_t n,
                         const void *lo, const void *hi, int lanes)
{
    QDQ_DISPATCH_FMT(qdq_grad,
        ((const uint16_t *)g, (const uint16_t *)x, (uint16_t *)o, n, (const float *)lo,
         (const float *)hi, lanes),
        ((const uint16_t *)g, (const uint16_t *)x, (uint16_t *)o, n, (const float *)lo,
         (const float *)hi, lanes),
        ((const float *)g, (const float *)x, (float *)o, n, (const float *)lo,
         (const float *)hi, lanes),
        ((const double *)g, (const double *)x, (double *)o, n, (const double *)lo,
         (const double *)hi, lanes))
}

/* ------------------------------------------------------------------------ */
/* Non-temporal stores for large outputs.                                    */
/* ------------------------------------------------------------------------ */

/* qdq_apply, with non-temporal stores when stream is nonzero, this
 * instruction set has them for the format and o is aligned to its element
 * size: the same bits, without reading each output line before writing it.
 * At levels 1 and 2 every format streams, bfloat16 through its 16-wide loop
 * (bf16_avx2.h): on an AVX2-only CPU (AMD Zen 3, level 1) the op on a 64 MiB
 * bfloat16 tensor went from 1.15-1.27 x the float16 op to 1.04-1.13 x with them and
 * its constants kept in registers (bench_level1_zen3_bf16_stream.txt). */
static void qdq_apply_nt(int fmt, const void *x, void *o, size_t n, double s, double inv,
                         double lo, double hi, int mode, int stream)
{
#if QDQ_HAVE_BF16_AVX512
    if (stream && fmt == QDQ_BF16 && qdq_get_isa() >= QDQ_ISA_AVX512BF16 && (uintptr_t)o % 2 == 0) {
        qdq_apply_bf16_avx512((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv,
                              (float)lo, (float)hi, mode, 1);
        return;
    }
#endif
#if QDQ_X86_DISPATCH
    if (stream && qdq_get_isa() >= QDQ_ISA_AVX2 && (uintptr_t)o % qdq_fmt_size(fmt) == 0) {
#if QDQ_HAVE_BF16_AVX2_WIDE
        if (fmt == QDQ_BF16) {
            qdq_apply_bf16_avx2w((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv,
                                 (float)lo, (float)hi, mode, 1);
            return;
        }
#endif
        if (fmt == QDQ_F32) {
            qdq_apply_stream_f32_avx2((const float *)x, (float *)o, n, (float)s, (float)inv,
                                      (float)lo, (float)hi, mode);
            return;
        }
        if (fmt == QDQ_F64) {
            qdq_apply_stream_f64_avx2((const double *)x, (double *)o, n, s, inv, lo, hi, mode);
            return;
        }
        if (fmt == QDQ_F16) {
            qdq_apply_stream_f16_avx2((const uint16_t *)x, (uint16_t *)o, n, (float)s, (float)inv,
                                      (float)lo, (float)hi, mode);
            return;
        }
    }
#endif
    (void)stream;
    qdq_apply(fmt, x, o, n, s, inv, lo, hi, mode);
}

/* Outputs larger than this many bytes are written with non-temporal stores:
 * the size of the last-level cache (sysfs, else sysconf), 32 MiB when unknown;
 * qdq_stream_min_bytes_set overrides it (the tests force the streaming loops so). */
static size_t qdq_stream_min_bytes_override = 0;

static inline void qdq_stream_min_bytes_set(size_t nbytes)
{
    qdq_stream_min_bytes_override = nbytes;
}

static size_t qdq_stream_min_bytes(void)
{
    static size_t cached = 0;
    size_t b = cached;
    if (qdq_stream_min_bytes_override != 0) return qdq_stream_min_bytes_override;
    if (b == 0) {
        unsigned long kb = 0;
        FILE *f = fopen("/sys/devices/system/cpu/cpu0/cache/index3/size", "r");
        if (f != NULL) {
            if (fscanf(f, "%luK", &kb) != 1) kb = 0;
            fclose(f);
        }
        b = (size_t)kb << 10;
#ifdef _SC_LEVEL3_CACHE_SIZE
        if (b == 0) {
            long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
            b = l3 > 0 ? (size_t)l3 : 0;
        }
#endif
        if (b == 0) b = (size_t)32 << 20;
        cached = b;
    }
    return b;
}

#endif /* QDQ_DISPATCH_H */
