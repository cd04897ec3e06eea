/*
 * The kernels of one float format in one instruction-set copy. Included by
 * isa_copy.h once per format (float16, bfloat16, float32, float64: 4 times
 * per copy), which defines:
 *   QDQ_T, QDQ_ST, QDQ_CT, QDQ_FMT   type tag, storage type, compute type, format
 *   QDQ_SLOAD, QDQ_SSTORE, QDQ_SOP   scalar load (widen), store (round), element op
 *   QDQ_SMIN, QDQ_SMAX               scalar total-order min/max steps
 *   QDQ_V, QDQ_L, QDQ_VLOAD, QDQ_VSTORE, QDQ_VRND, QDQ_VP(name)
 *                                    the vector counterparts (with QDQ_HAVE_VEC)
 * and optionally, for a format whose NaN handling costs instructions,
 *   QDQ_VRND_NN, QDQ_VSTORE_NN       the same for vectors that hold no NaN
 *   QDQ_VANY_NAN2(a, b)              nonzero when a lane of a or b is NaN
 * and, where the copy streams this format's stores (AVX2: float16, float32,
 * float64; its bfloat16 loop measured slower with them),
 *   QDQ_VSTREAM(p, v), QDQ_VALIGN    a non-temporal QDQ_VSTORE to p aligned to QDQ_VALIGN
 *   QDQ_VSTREAM_NN(p, v)             the same for v that holds no NaN (optional)
 * and undefines them all at the end.
 */
#define QDQ_PASTE_(a, b) a##_##b
#define QDQ_PASTE(a, b) QDQ_PASTE_(a, b)
#define QDQ_NAME_(x) QDQ_SFX(x)
#define QDQ_NAME(k) QDQ_NAME_(QDQ_PASTE(k, QDQ_T))
#if QDQ_HAVE_VEC && !defined(QDQ_VANY_NAN2)
#  define QDQ_VRND_NN(v) QDQ_VRND(v)
#  define QDQ_VSTORE_NN(p, v) QDQ_VSTORE((p), (v))
#  define QDQ_VANY_NAN2(a, b) 0
#endif
#if QDQ_HAVE_VEC && !defined(QDQ_VSTREAM)
#  define QDQ_VSTREAM(p, v) QDQ_VSTORE((p), (v))
#  define QDQ_VALIGN 1
#endif
#if QDQ_HAVE_VEC && !defined(QDQ_VSTREAM_NN)
#  define QDQ_VSTREAM_NN(p, v) QDQ_VSTREAM((p), (v))
#endif

/* Merge the min and max of x[0:n] into *mn and *mx; beyond_cache: x is part of a block
 * larger than the last-level cache (dispatch.h). */
#ifndef QDQ_MINMAX_SPLIT
#  define QDQ_MINMAX_SPLIT 16384
#endif
static QDQ_TARGET void QDQ_NAME(qdq_minmax)(const QDQ_ST *x, size_t n, QDQ_CT *mn, QDQ_CT *mx,
                                            const int beyond_cache)
{
    size_t i = 0;
    QDQ_CT a = *mn, b = *mx;
#if QDQ_HAVE_VEC
    if (n >= 2 * QDQ_L) {
        QDQ_V mn0 = QDQ_VP(splat)(a), mx0 = QDQ_VP(splat)(b), mn1 = mn0, mx1 = mx0;
        int k;
        if (n >= QDQ_MINMAX_SPLIT) {
            /* Long runs: four quarters of x read side by side, each into its own chain
             * of accumulators (one stream of loads left the loop waiting for memory, at
             * about half the bandwidth of four), with the cheaper steps of min_nn/max_nn
             * and the zeros put in order at the end; min and max do not depend on the
             * order. Beyond the cache, each quarter prefetched ahead where cpu.h says. */
            const size_t q = n / 4 / QDQ_L * QDQ_L;
            const size_t ahead = beyond_cache ? qdq_prefetch_ahead(4) : 0;
            const QDQ_ST *x1 = x + q, *x2 = x + 2 * q, *x3 = x + 3 * q;
            QDQ_V a0 = mn0, b0 = mx0, a1 = mn0, b1 = mx0, a2 = mn0, b2 = mx0, a3 = mn0;
            QDQ_V b3 = mx0, t;
            QDQ_VM zn = (QDQ_VM)(a0 != a0), zp = zn;
            size_t j;
            for (j = 0; j < q; j += QDQ_L) {
                const QDQ_V v0 = QDQ_VLOAD(x + j), v1 = QDQ_VLOAD(x1 + j);
                const QDQ_V v2 = QDQ_VLOAD(x2 + j), v3 = QDQ_VLOAD(x3 + j);
                if (ahead) qdq_prefetch_rows(x + j, q * sizeof(QDQ_ST), 4, ahead);
                a0 = QDQ_VP(min_nn)(v0, a0);
                b0 = QDQ_VP(max_nn)(v0, b0);
                a1 = QDQ_VP(min_nn)(v1, a1);
                b1 = QDQ_VP(max_nn)(v1, b1);
                a2 = QDQ_VP(min_nn)(v2, a2);
                b2 = QDQ_VP(max_nn)(v2, b2);
                a3 = QDQ_VP(min_nn)(v3, a3);
                b3 = QDQ_VP(max_nn)(v3, b3);
                QDQ_VP(zeros)(v0, &zn, &zp);
                QDQ_VP(zeros)(v1, &zn, &zp);
                QDQ_VP(zeros)(v2, &zn, &zp);
                QDQ_VP(zeros)(v3, &zn, &zp);
            }
            a0 = QDQ_VP(min_nn)(a1, a0);
            b0 = QDQ_VP(max_nn)(b1, b0);
            a2 = QDQ_VP(min_nn)(a3, a2);
            b2 = QDQ_VP(max_nn)(b3, b2);
            a0 = QDQ_VP(min_nn)(a2, a0);
            b0 = QDQ_VP(max_nn)(b2, b0);
            QDQ_VP(fix_zeros)(&a0, &b0, zn, zp);
            /* merge into the first pair with the total-order rule */
            t = mx0;
            QDQ_VP(minmax)(a0, &mn0, &t);
            t = mn0;
            QDQ_VP(minmax)(b0, &t, &mx0);
            i = 4 * q;
        }
        for (; i + 2 * QDQ_L <= n; i += 2 * QDQ_L) {
            QDQ_VP(minmax)(QDQ_VLOAD(x + i), &mn0, &mx0);
            QDQ_VP(minmax)(QDQ_VLOAD(x + i + QDQ_L), &mn1, &mx1);
        }
        /* Merge the second pair of accumulators into the first with the vector
         * rule (neither holds NaN), then fold the lanes without branches: the
         * per-call cost matters for short rows (block-wise quantization). */
        {
            QDQ_V t = mx0;
            QDQ_VP(minmax)(mn1, &mn0, &t);
            t = mn0;
            QDQ_VP(minmax)(mx1, &t, &mx0);
        }
        for (k = 0; k < QDQ_L; k++) {
            QDQ_CT u = mn0[k], w = mx0[k];
            a = ((u < a) | ((u == a) & (signbit(u) != 0))) ? u : a;
            b = ((w > b) | ((w == b) & (signbit(w) == 0))) ? w : b;
        }
    }
#endif
    for (; i < n; i++) {
        QDQ_CT v = QDQ_SLOAD(x + i);
        QDQ_SMIN(v, &a);
        QDQ_SMAX(v, &b);
    }
    *mn = a;
    *mx = b;
}

/* mn[i] = min(mn[i], x[i]) and mx[i] = max(mx[i], x[i]) for i < n. */
static QDQ_TARGET void QDQ_NAME(qdq_minmax_lanes)(const QDQ_ST *x, size_t n, QDQ_CT *mn, QDQ_CT *mx)
{
    size_t i = 0;
#if QDQ_HAVE_VEC
    for (; i + QDQ_L <= n; i += QDQ_L) {
        QDQ_V a = QDQ_VP(load)(mn + i), b = QDQ_VP(load)(mx + i);
        QDQ_VP(minmax)(QDQ_VLOAD(x + i), &a, &b);
        QDQ_VP(store)(mn + i, a);
        QDQ_VP(store)(mx + i, b);
    }
#endif
    for (; i < n; i++) {
        QDQ_CT v = QDQ_SLOAD(x + i);
        QDQ_SMIN(v, mn + i);
        QDQ_SMAX(v, mx + i);
    }
}

#if QDQ_HAVE_VEC
/* The op on y = clamp?(v) * s: rounded to T, to an integer (half up or to
 * even), times inv. nn: the roundings for values that are not NaN. */
QDQ_FN QDQ_V QDQ_NAME(qdq_vop)(QDQ_V y, QDQ_V inv, const int mode, const int nn)
{
    QDQ_V r;
    y = nn ? QDQ_VRND_NN(y) : QDQ_VRND(y);
    if (mode & QDQ_HALF_UP) {
        y = y + (QDQ_CT)0.5;
        r = QDQ_VP(floor)(nn ? QDQ_VRND_NN(y) : QDQ_VRND(y));
    } else {
        r = QDQ_VP(rint)(y);
    }
    return r * inv;
}

/* Store the op on y to o: the roundings without NaN handling, redone with it
 * when y or the result holds a NaN (a y that is not NaN rounds to a value
 * that is not NaN, and adding 0.5 keeps it so: only y and the result need
 * the check). */
QDQ_FN void QDQ_NAME(qdq_vop_store)(QDQ_ST *o, QDQ_V y, QDQ_V inv, const int mode,
                                     const int stream)
{
    QDQ_V r = QDQ_NAME(qdq_vop)(y, inv, mode, 1);
    if (QDQ_VANY_NAN2(y, r)) {
        r = QDQ_NAME(qdq_vop)(y, inv, mode, 0);
        if (stream) QDQ_VSTREAM(o, r);
        else QDQ_VSTORE(o, r);
    } else if (stream) {
        QDQ_VSTREAM_NN(o, r);
    } else {
        QDQ_VSTORE_NN(o, r);
    }
}
#endif

/* The transform with one set of parameters; mode is a constant after
 * inlining, so each of the loops has no per-element branch. stream: with
 * non-temporal stores where the copy has them (from the first aligned
 * vector on; a store fence at the end), which do not read the output lines
 * first: for outputs larger than the last-level cache. */
QDQ_FN void QDQ_NAME(qdq_apply_body)(const QDQ_ST *x, QDQ_ST *o, size_t n, QDQ_CT s,
                                     QDQ_CT inv, QDQ_CT lo, QDQ_CT hi, const int mode,
                                     const int stream)
{
    size_t i = 0;
#if QDQ_HAVE_VEC
    const QDQ_V vs = QDQ_VP(splat)(s), vinv = QDQ_VP(splat)(inv);
    const QDQ_V vlo = QDQ_VP(splat)(lo), vhi = QDQ_VP(splat)(hi);
    if (stream)
        for (; i < n && ((uintptr_t)(o + i) & (QDQ_VALIGN - 1)) != 0; i++)
            QDQ_SSTORE(o + i, QDQ_SOP(QDQ_SLOAD(x + i), s, inv, lo, hi, mode, QDQ_FMT));
    for (; i + QDQ_L <= n; i += QDQ_L) {
        QDQ_V v = QDQ_VLOAD(x + i);
        if (mode & QDQ_CLAMP) v = QDQ_VP(clamp)(v, vlo, vhi);
        QDQ_NAME(qdq_vop_store)(o + i, v * vs, vinv, mode, stream);
    }
#  if QDQ_F16C && QDQ_VALIGN > 1
    if (stream) _mm_sfence();
#  endif
#else
    (void)stream;
#endif
    for (; i < n; i++)
        QDQ_SSTORE(o + i, QDQ_SOP(QDQ_SLOAD(x + i), s, inv, lo, hi, mode, QDQ_FMT));
}

/* The transform with per-element parameters s[i], inv[i], lo[i], hi[i]. */
QDQ_FN void QDQ_NAME(qdq_apply_lanes_body)(const QDQ_ST *x, QDQ_ST *o, size_t n,
                                           const QDQ_CT *s, const QDQ_CT *inv,
                                           const QDQ_CT *lo, const QDQ_CT *hi, const int mode)
{
    size_t i = 0;
#if QDQ_HAVE_VEC
    for (; i + QDQ_L <= n; i += QDQ_L) {
        QDQ_V v = QDQ_VLOAD(x + i);
        if (mode & QDQ_CLAMP) v = QDQ_VP(clamp)(v, QDQ_VP(load)(lo + i), QDQ_VP(load)(hi + i));
        QDQ_NAME(qdq_vop_store)(o + i, v * QDQ_VP(load)(s + i), QDQ_VP(load)(inv + i), mode, 0);
    }
#endif
    for (; i < n; i++)
        QDQ_SSTORE(o + i, QDQ_SOP(QDQ_SLOAD(x + i), s[i], inv[i], lo[i], hi[i], mode, QDQ_FMT));
}

static QDQ_TARGET void QDQ_NAME(qdq_apply)(const QDQ_ST *x, QDQ_ST *o, size_t n, QDQ_CT s,
                                           QDQ_CT inv, QDQ_CT lo, QDQ_CT hi, int mode)
{
    switch (mode & 3) {
    case 0: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 0, 0); break;
    case 1: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 1, 0); break;
    case 2: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 2, 0); break;
    default: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 3, 0); break;
    }
}

#if QDQ_F16C && QDQ_VALIGN > 1
/* qdq_apply with non-temporal stores (o aligned to its element size). */
static QDQ_TARGET void QDQ_NAME(qdq_apply_stream)(const QDQ_ST *x, QDQ_ST *o, size_t n, QDQ_CT s,
                                                  QDQ_CT inv, QDQ_CT lo, QDQ_CT hi, int mode)
{
    switch (mode & 3) {
    case 0: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 0, 1); break;
    case 1: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 1, 1); break;
    case 2: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 2, 1); break;
    default: QDQ_NAME(qdq_apply_body)(x, o, n, s, inv, lo, hi, 3, 1); break;
    }
}
#endif

static QDQ_TARGET void QDQ_NAME(qdq_apply_lanes)(const QDQ_ST *x, QDQ_ST *o, size_t n,
                                                 const QDQ_CT *s, const QDQ_CT *inv,
                                                 const QDQ_CT *lo, const QDQ_CT *hi, int mode)
{
    switch (mode & 3) {
    case 0: QDQ_NAME(qdq_apply_lanes_body)(x, o, n, s, inv, lo, hi, 0); break;
    case 1: QDQ_NAME(qdq_apply_lanes_body)(x, o, n, s, inv, lo, hi, 1); break;
    case 2: QDQ_NAME(qdq_apply_lanes_body)(x, o, n, s, inv, lo, hi, 2); break;
    default: QDQ_NAME(qdq_apply_lanes_body)(x, o, n, s, inv, lo, hi, 3); break;
    }
}

/* ------------------------------------------------------------------------ */
/* Columns: the channel axis last (post == 1), a [rows, stride] block whose  */
/* columns [0, n) are channels (x points at the first). The caller cuts the  */
/* columns into tiles whose parameters stay in L1; rows go QDQ_ROWS at a     */
/* time, so each vector of parameters (or of min/max) is loaded once for     */
/* QDQ_ROWS rows. Four rows, not eight: with rows a power-of-two multiple of */
/* 4 KiB apart (8192 float64 columns) eight input and eight output rows at  */
/* once made the pass 2.5 x slower (cache-set conflicts), and four cost     */
/* nothing elsewhere. Rows of QDQ_BAND_BYTES or less: the rows of a group   */
/* are a band apart (rows r, r + q, r + 2q, r + 3q of a block of 4q rows),  */
/* not neighbours, so that each is a stream of its own through memory.      */
/* Neighbouring short rows (512 float32 channels: 2 KiB) put two or four    */
/* interleaved streams in each 4 KiB page, which the hardware prefetchers   */
/* follow badly: the passes took 1.2-1.35 x the per-tensor time on          */
/* (3, 3, 512, 512) float32, 1.02-1.09 x banded. Long rows stay neighbours  */
/* (banded, 4096 x 11008 float32 went from 0.90 to 0.99 x per tensor). The  */
/* min/max pass over short rows reads two neighbouring rows of each band at */
/* a time (eight rows per load and store of the min/max, still four        */
/* streams): with two threads on (3, 3, 512, 512), 2-7 % less CPU time per  */
/* call, with one 1-4 % more (bench_layouts_builds.py, 101 rounds). The     */
/* order does not change the bits (min/max and the op are per element).     */
/* ------------------------------------------------------------------------ */
#ifndef QDQ_ROWS
#  define QDQ_ROWS 4
#endif
#ifndef QDQ_APPLY_ROWS
#  define QDQ_APPLY_ROWS 4
#endif
#ifndef QDQ_BAND_BYTES
#  define QDQ_BAND_BYTES 4096
#endif

/* mn[i] = min(mn[i], x[r * stride + i]) and mx[i] likewise, over rows r < rows, i < n;
 * beyond_cache: the rows' block is larger than the last-level cache (dispatch.h). */
static QDQ_TARGET void QDQ_NAME(qdq_minmax_cols)(const QDQ_ST *x, size_t stride, size_t rows,
                                                 size_t n, QDQ_CT *mn, QDQ_CT *mx,
                                                 const int beyond_cache)
{
    /* q groups of QDQ_ROWS x d rows: d neighbouring rows in each of QDQ_ROWS streams bs
     * apart (for short rows the streams are bands of q d rows, above, and d = 2: the
     * min/max are loaded and stored once for eight rows), the groups step apart; the
     * last rows one by one */
    const int band = stride * sizeof(QDQ_ST) <= QDQ_BAND_BYTES;
    const size_t d = band ? 2 : 1, q = rows / (QDQ_ROWS * d);
    const size_t bs = band ? q * d * stride : stride;
    const size_t step = band ? d * stride : QDQ_ROWS * stride;
    const size_t ahead = beyond_cache ? qdq_prefetch_ahead(QDQ_ROWS * d) : 0;  /* cpu.h */
    size_t r = 0, i, k, e;
    (void)ahead;  /* without vector loops */
    for (; r < q; r++) {
        const QDQ_ST *xr = x + r * step;
        i = 0;
#if QDQ_HAVE_VEC
        for (; i + QDQ_L <= n; i += QDQ_L) {
            /* the cheaper steps of min_nn/max_nn (the stored mn, mx hold no NaN), the
             * zeros put in order at the end */
            QDQ_V a = QDQ_VP(load)(mn + i), b = QDQ_VP(load)(mx + i);
            QDQ_VM zn = (QDQ_VM)(a != a), zp = zn;
            if (ahead)
                for (e = 0; e < d; e++)
                    qdq_prefetch_rows(xr + e * stride + i, bs * sizeof(QDQ_ST), QDQ_ROWS, ahead);
            for (k = 0; k < QDQ_ROWS; k++)
                for (e = 0; e < d; e++) {
                    const QDQ_V v = QDQ_VLOAD(xr + k * bs + e * stride + i);
                    a = QDQ_VP(min_nn)(v, a);
                    b = QDQ_VP(max_nn)(v, b);
                    QDQ_VP(zeros)(v, &zn, &zp);
                }
            QDQ_VP(fix_zeros)(&a, &b, zn, zp);
            QDQ_VP(store)(mn + i, a);
            QDQ_VP(store)(mx + i, b);
        }
#endif
        for (; i < n; i++)
            for (k = 0; k < QDQ_ROWS; k++)
                for (e = 0; e < d; e++) {
                    QDQ_CT v = QDQ_SLOAD(xr + k * bs + e * stride + i);
                    QDQ_SMIN(v, mn + i);
                    QDQ_SMAX(v, mx + i);
                }
    }
    for (r = q * QDQ_ROWS * d; r < rows; r++)
        QDQ_NAME(qdq_minmax_lanes)(x + r * stride, n, mn, mx);
}

/* o[k * rs + i] = op(x[k * rs + i]) with channel i's parameters, for the g rows k < g
 * (QDQ_APPLY_ROWS at most) rs elements apart and the columns i < n. stream: non-temporal
 * stores where the copy has them, every row's output aligned to QDQ_VALIGN (the caller
 * checks). ahead: each row's input prefetched so many bytes ahead, or not (0; cpu.h's
 * qdq_prefetch_ahead). */
QDQ_FN void QDQ_NAME(qdq_apply_cols_group)(const QDQ_ST *xr, QDQ_ST *orow, size_t rs,
                                           const size_t g, size_t n, const QDQ_CT *s,
                                           const QDQ_CT *inv, const QDQ_CT *lo,
                                           const QDQ_CT *hi, const int mode, const int stream,
                                           const size_t ahead)
{
    size_t i = 0, k;
#if QDQ_HAVE_VEC
    for (; i + QDQ_L <= n; i += QDQ_L) {
        const QDQ_V vs = QDQ_VP(load)(s + i), vinv = QDQ_VP(load)(inv + i);
        const QDQ_V vlo = QDQ_VP(load)(lo + i), vhi = QDQ_VP(load)(hi + i);
        if (ahead) qdq_prefetch_rows(xr + i, rs * sizeof(QDQ_ST), g, ahead);
        for (k = 0; k < g; k++) {
            QDQ_V v = QDQ_VLOAD(xr + k * rs + i);
            if (mode & QDQ_CLAMP) v = QDQ_VP(clamp)(v, vlo, vhi);
            QDQ_NAME(qdq_vop_store)(orow + k * rs + i, v * vs, vinv, mode, stream);
        }
    }
#else
    (void)stream;
    (void)ahead;
#endif
    for (; i < n; i++)
        for (k = 0; k < g; k++)
            QDQ_SSTORE(orow + k * rs + i, QDQ_SOP(QDQ_SLOAD(xr + k * rs + i), s[i], inv[i],
                                                  lo[i], hi[i], mode, QDQ_FMT));
}

/* o[r * stride + i] = op(x[r * stride + i]) with channel i's parameters, r < rows, i < n:
 * groups of QDQ_APPLY_ROWS rows (for short rows a band of q rows apart, above), then the
 * last rows; with non-temporal stores to rows a multiple of 4 KiB apart, on AMD, one row
 * after another instead (qdq_stream_row_by_row). beyond_cache: the output is larger than
 * the last-level cache (stream implies it; a copy without non-temporal stores gets it
 * alone), and the input is then prefetched where cpu.h's qdq_prefetch_ahead says. */
QDQ_FN void QDQ_NAME(qdq_apply_cols_body)(const QDQ_ST *x, QDQ_ST *o, size_t stride,
                                          size_t rows, size_t n, const QDQ_CT *s,
                                          const QDQ_CT *inv, const QDQ_CT *lo,
                                          const QDQ_CT *hi, const int mode, const int stream,
                                          const int beyond_cache)
{
    const int band = stride * sizeof(QDQ_ST) <= QDQ_BAND_BYTES;
    const size_t q = rows / QDQ_APPLY_ROWS, r1 = q * QDQ_APPLY_ROWS;
    const size_t rs = band ? q * stride : stride, step = band ? stride : QDQ_APPLY_ROWS * stride;
    size_t r, ahead;
    if (stream && qdq_stream_row_by_row(rs * sizeof(QDQ_ST))) {
        ahead = qdq_prefetch_ahead(1);
        for (r = 0; r < rows; r++)
            QDQ_NAME(qdq_apply_cols_group)(x + r * stride, o + r * stride, stride, 1, n, s,
                                           inv, lo, hi, mode, stream, ahead);
    } else {
        ahead = beyond_cache ? qdq_prefetch_ahead(QDQ_APPLY_ROWS) : 0;
        for (r = 0; r < q; r++)
            QDQ_NAME(qdq_apply_cols_group)(x + r * step, o + r * step, rs, QDQ_APPLY_ROWS, n,
                                           s, inv, lo, hi, mode, stream, ahead);
        if (r1 < rows)
            QDQ_NAME(qdq_apply_cols_group)(x + r1 * stride, o + r1 * stride, stride, rows - r1,
                                           n, s, inv, lo, hi, mode, stream, ahead);
    }
#if QDQ_HAVE_VEC && QDQ_F16C && QDQ_VALIGN > 1
    if (stream) _mm_sfence();
#else
    (void)stream;
#endif
}

static QDQ_TARGET void QDQ_NAME(qdq_apply_cols)(const QDQ_ST *x, QDQ_ST *o, size_t stride,
                                                size_t rows, size_t n, const QDQ_CT *s,
                                                const QDQ_CT *inv, const QDQ_CT *lo,
                                                const QDQ_CT *hi, int mode, int stream)
{
#if QDQ_HAVE_VEC && QDQ_F16C && QDQ_VALIGN > 1
    if (stream) {
#  define QDQ_COLS_CASE(m) \
        QDQ_NAME(qdq_apply_cols_body)(x, o, stride, rows, n, s, inv, lo, hi, m, 1, 1)
        switch (mode & 3) {
        case 0: QDQ_COLS_CASE(0); break;
        case 1: QDQ_COLS_CASE(1); break;
        case 2: QDQ_COLS_CASE(2); break;
        default: QDQ_COLS_CASE(3); break;
        }
#  undef QDQ_COLS_CASE
        return;
    }
#endif
    /* stream here: beyond the cache, in a copy without non-temporal stores */
#define QDQ_COLS_CASE(m) \
    QDQ_NAME(qdq_apply_cols_body)(x, o, stride, rows, n, s, inv, lo, hi, m, 0, stream)
    switch (mode & 3) {
    case 0: QDQ_COLS_CASE(0); break;
    case 1: QDQ_COLS_CASE(1); break;
    case 2: QDQ_COLS_CASE(2); break;
    default: QDQ_COLS_CASE(3); break;
    }
#undef QDQ_COLS_CASE
}

/* r[i] = round(clamp?(x[i]) * s) in T, kept in the compute type: the integer
 * code before rescaling (lanes: per-element s, lo, hi). */
QDQ_FN void QDQ_NAME(qdq_round_body)(const QDQ_ST *x, QDQ_CT *r, size_t n, const QDQ_CT *s,
                                     const QDQ_CT *lo, const QDQ_CT *hi, const int lanes,
                                     const int mode)
{
    size_t i = 0;
#if QDQ_HAVE_VEC
    const QDQ_V vs0 = QDQ_VP(splat)(s[0]), vlo0 = QDQ_VP(splat)(lo[0]), vhi0 = QDQ_VP(splat)(hi[0]);
    for (; i + QDQ_L <= n; i += QDQ_L) {
        QDQ_V v = QDQ_VLOAD(x + i), y, q;
        if (mode & QDQ_CLAMP) {
            const QDQ_V vlo = lanes ? QDQ_VP(load)(lo + i) : vlo0;
            const QDQ_V vhi = lanes ? QDQ_VP(load)(hi + i) : vhi0;
            v = QDQ_VP(sel)(vhi < v, vhi, v);
            v = QDQ_VP(sel)(v < vlo, vlo, v);
        }
        y = QDQ_VRND(v * (lanes ? QDQ_VP(load)(s + i) : vs0));
        if (mode & QDQ_HALF_UP) q = QDQ_VP(floor)(QDQ_VRND(y + (QDQ_CT)0.5));
        else q = QDQ_VP(rint)(y);
        QDQ_VP(store)(r + i, q);
    }
#endif
    for (; i < n; i++) {
        size_t k = lanes ? i : 0;
        /* the op with inverse 1: exactly the rounded code */
        r[i] = QDQ_SOP(QDQ_SLOAD(x + i), s[k], (QDQ_CT)1, lo[k], hi[k], mode, QDQ_FMT);
    }
}

static QDQ_TARGET void QDQ_NAME(qdq_round)(const QDQ_ST *x, QDQ_CT *r, size_t n, const QDQ_CT *s,
                                           const QDQ_CT *lo, const QDQ_CT *hi, int lanes, int mode)
{
    switch ((mode & 3) | (lanes ? 4 : 0)) {
    case 0: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 0, 0); break;
    case 1: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 0, 1); break;
    case 2: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 0, 2); break;
    case 3: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 0, 3); break;
    case 4: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 1, 0); break;
    case 5: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 1, 1); break;
    case 6: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 1, 2); break;
    default: QDQ_NAME(qdq_round_body)(x, r, n, s, lo, hi, 1, 3); break;
    }
}

/* o[i] = r[i] * inv in T (r in the compute type: integer codes). */
static QDQ_TARGET void QDQ_NAME(qdq_scale)(const QDQ_CT *r, QDQ_ST *o, size_t n,
                                           const QDQ_CT *inv, int lanes)
{
    size_t i = 0;
#if QDQ_HAVE_VEC
    const QDQ_V vinv0 = QDQ_VP(splat)(inv[0]);
    if (lanes) {
        for (; i + QDQ_L <= n; i += QDQ_L)
            QDQ_VSTORE(o + i, QDQ_VP(load)(r + i) * QDQ_VP(load)(inv + i));
    } else {
        for (; i + QDQ_L <= n; i += QDQ_L)
            QDQ_VSTORE(o + i, QDQ_VP(load)(r + i) * vinv0);
    }
#endif
    for (; i < n; i++)
        QDQ_SSTORE(o + i, r[i] * inv[lanes ? i : 0]);
}

/* The straight-through gradient: o[i] = g[i] * (lo <= x[i] <= hi), a multiply
 * in T (so an inf or NaN gradient outside the range gives NaN, as in TF). */
static QDQ_TARGET void QDQ_NAME(qdq_grad)(const QDQ_ST *g, const QDQ_ST *x, QDQ_ST *o, size_t n,
                                          const QDQ_CT *lo, const QDQ_CT *hi, int lanes)
{
    size_t i = 0;
#if QDQ_HAVE_VEC
    const QDQ_V one = QDQ_VP(splat)((QDQ_CT)1), zero = QDQ_VP(splat)((QDQ_CT)0);
    const QDQ_V vlo0 = QDQ_VP(splat)(lo[0]), vhi0 = QDQ_VP(splat)(hi[0]);
    for (; i + QDQ_L <= n; i += QDQ_L) {
        QDQ_V v = QDQ_VLOAD(x + i);
        QDQ_V vlo = lanes ? QDQ_VP(load)(lo + i) : vlo0;
        QDQ_V vhi = lanes ? QDQ_VP(load)(hi + i) : vhi0;
        QDQ_V m = QDQ_VP(sel)((v >= vlo) & (v <= vhi), one, zero);
        QDQ_VSTORE(o + i, QDQ_VLOAD(g + i) * m);
    }
#endif
    for (; i < n; i++) {
        size_t k = lanes ? i : 0;
        QDQ_CT v = QDQ_SLOAD(x + i);
        QDQ_CT m = (v >= lo[k] && v <= hi[k]) ? (QDQ_CT)1 : (QDQ_CT)0;
        QDQ_SSTORE(o + i, QDQ_SLOAD(g + i) * m);
    }
}

#if QDQ_HAVE_VEC
/* ------------------------------------------------------------------------ */
/* Rows: each row of a [rows, len] block is one channel (block-wise         */
/* quantization), with no per-row call or scalar step. Rows go in groups of */
/* QDQ_L: each row's min/max is reduced to one vector, the group's vectors  */
/* are folded so that lane k holds row k's min/max, the parameters of the   */
/* QDQ_L rows are computed in the lanes, then each row is transformed with  */
/* its own while the group is in cache. Rows whose length divides QDQ_L go  */
/* QDQ_L / len to a vector instead, each with its parameters in its lanes.  */
/* ------------------------------------------------------------------------ */

/* The total-order min (is_max 0) or max (is_max 1) of two vectors that hold
 * no NaN, lane by lane (-0.0 < +0.0): the accumulator rule of vf_minmax. */
QDQ_FN QDQ_V QDQ_NAME(qdq_comb)(QDQ_V a, QDQ_V b, const int is_max)
{
    QDQ_V m = b, M = b;
    QDQ_VP(minmax)(a, &m, &M);
    return is_max ? M : m;
}

/* Fold v[0:QDQ_L] (overwritten) into one vector whose lane k is the
 * min/max of the lanes of v[rev(k)], rev reversing the bits of the lane
 * index (the order this halving tree leaves the rows in). Each level pairs
 * the lower and the upper halves of the groups of lanes of two vectors. */
QDQ_FN QDQ_V QDQ_NAME(qdq_fold_rows)(QDQ_V *v, const int is_max)
{
    int i;
#if QDQ_L == 8
    for (i = 0; i < 4; i++)
        v[i] = QDQ_NAME(qdq_comb)(
            QDQ_SHUF2(QDQ_VM, v[2 * i], v[2 * i + 1], 0, 1, 2, 3, 8, 9, 10, 11),
            QDQ_SHUF2(QDQ_VM, v[2 * i], v[2 * i + 1], 4, 5, 6, 7, 12, 13, 14, 15), is_max);
    for (i = 0; i < 2; i++)
        v[i] = QDQ_NAME(qdq_comb)(
            QDQ_SHUF2(QDQ_VM, v[2 * i], v[2 * i + 1], 0, 1, 8, 9, 4, 5, 12, 13),
            QDQ_SHUF2(QDQ_VM, v[2 * i], v[2 * i + 1], 2, 3, 10, 11, 6, 7, 14, 15), is_max);
    return QDQ_NAME(qdq_comb)(QDQ_SHUF2(QDQ_VM, v[0], v[1], 0, 8, 2, 10, 4, 12, 6, 14),
                              QDQ_SHUF2(QDQ_VM, v[0], v[1], 1, 9, 3, 11, 5, 13, 7, 15), is_max);
#elif QDQ_L == 4
    for (i = 0; i < 2; i++)
        v[i] = QDQ_NAME(qdq_comb)(QDQ_SHUF2(QDQ_VM, v[2 * i], v[2 * i + 1], 0, 1, 4, 5),
                                  QDQ_SHUF2(QDQ_VM, v[2 * i], v[2 * i + 1], 2, 3, 6, 7), is_max);
    return QDQ_NAME(qdq_comb)(QDQ_SHUF2(QDQ_VM, v[0], v[1], 0, 4, 2, 6),
                              QDQ_SHUF2(QDQ_VM, v[0], v[1], 1, 5, 3, 7), is_max);
#elif QDQ_L == 2
    (void)i;
    return QDQ_NAME(qdq_comb)(QDQ_SHUF2(QDQ_VM, v[0], v[1], 0, 2),
                              QDQ_SHUF2(QDQ_VM, v[0], v[1], 1, 3), is_max);
#else
#  error "qdq: unsupported vector length"
#endif
}

/* Reverse the bits of a lane index k < QDQ_L. */
QDQ_FN int QDQ_NAME(qdq_lane_rev)(int k)
{
#if QDQ_L == 8
    return ((k & 1) << 2) | (k & 2) | ((k >> 2) & 1);
#elif QDQ_L == 4
    return ((k & 1) << 1) | ((k >> 1) & 1);
#else
    return k;
#endif
}

/* The parameters of the rows in the lanes of a (min) and b (max): those of
 * the per-channel rule (_params in kernels.pyx), with the same operations
 * in the same order, lane by lane. s_min = rnd(qmin / a) if rnd(qmin * a) > 0
 * else big, s_max likewise; the side with the smaller scale sets the inverse
 * and the other end of the range. */
QDQ_FN void QDQ_NAME(qdq_row_params)(QDQ_V a, QDQ_V b, QDQ_V vqmin, QDQ_V vqmax, QDQ_V vbig,
                                     QDQ_V *s, QDQ_V *inv, QDQ_V *lo, QDQ_V *hi)
{
    const QDQ_V zero = QDQ_VP(splat)((QDQ_CT)0);
    QDQ_V smin = QDQ_VP(sel)(QDQ_VRND(vqmin * a) > zero, QDQ_VRND(vqmin / a), vbig);
    QDQ_V smax = QDQ_VP(sel)(QDQ_VRND(vqmax * b) > zero, QDQ_VRND(vqmax / b), vbig);
    QDQ_VM usemin = smin < smax;
    QDQ_V invmin = QDQ_VRND(a / vqmin), invmax = QDQ_VRND(b / vqmax);
    *s = QDQ_VP(sel)(usemin, smin, smax);
    *inv = QDQ_VP(sel)(usemin, invmin, invmax);
    *lo = QDQ_VP(sel)(usemin, a, QDQ_VRND(vqmin * invmax));
    *hi = QDQ_VP(sel)(usemin, QDQ_VRND(vqmax * invmin), b);
}

/* The min/max (is_max) of every aligned run of len lanes of v (len a power
 * of two below QDQ_L; v holds no NaN), in each lane of the run: lanes
 * k ^ h are combined for h = 1, 2, ... < len. */
QDQ_FN QDQ_V QDQ_NAME(qdq_fold_runs)(QDQ_V v, size_t len, const int is_max)
{
#if QDQ_L == 8
    if (len > 1)
        v = QDQ_NAME(qdq_comb)(v, QDQ_SHUF2(QDQ_VM, v, v, 1, 0, 3, 2, 5, 4, 7, 6), is_max);
    if (len > 2)
        v = QDQ_NAME(qdq_comb)(v, QDQ_SHUF2(QDQ_VM, v, v, 2, 3, 0, 1, 6, 7, 4, 5), is_max);
    if (len > 4)
        v = QDQ_NAME(qdq_comb)(v, QDQ_SHUF2(QDQ_VM, v, v, 4, 5, 6, 7, 0, 1, 2, 3), is_max);
#elif QDQ_L == 4
    if (len > 1)
        v = QDQ_NAME(qdq_comb)(v, QDQ_SHUF2(QDQ_VM, v, v, 1, 0, 3, 2), is_max);
    if (len > 2)
        v = QDQ_NAME(qdq_comb)(v, QDQ_SHUF2(QDQ_VM, v, v, 2, 3, 0, 1), is_max);
#else
    if (len > 1)
        v = QDQ_NAME(qdq_comb)(v, QDQ_SHUF2(QDQ_VM, v, v, 1, 0), is_max);
#endif
    return v;
}

/* Rows shorter than a vector whose length divides QDQ_L: one vector holds
 * QDQ_L / len whole rows. Each row's min/max is folded into its own lanes,
 * the parameters are computed in every lane and the vector transformed with
 * them (as qdq_apply_lanes). Does the whole vectors' rows; returns how many,
 * and merges "a row's minimum is negative" into *neg. */
QDQ_FN size_t QDQ_NAME(qdq_short_rows)(const QDQ_ST *x, QDQ_ST *o, size_t rows, size_t len,
                                       const QDQ_CT *lo, const QDQ_CT *hi, QDQ_V vqmin,
                                       QDQ_V vqmax, QDQ_V vbig, QDQ_VM *neg, const int mode,
                                       QDQ_CT *prm, size_t pstride)
{
    const QDQ_V zero = QDQ_VP(splat)((QDQ_CT)0);
    const size_t per = QDQ_L / len, nvec = rows / per;
    QDQ_CT t0[QDQ_L], t1[QDQ_L], t2[QDQ_L], t3[QDQ_L];
    size_t i;
    int k;
    for (i = 0; i < nvec; i++) {
        QDQ_V v = QDQ_VLOAD(x + i * QDQ_L), a, b, s, inv, vlo, vhi, y, r;
        if (lo != NULL) {
            for (k = 0; k < QDQ_L; k++) {
                t0[k] = lo[i * per + (size_t)k / len];
                t1[k] = hi[i * per + (size_t)k / len];
            }
            a = QDQ_VP(load)(t0);
            b = QDQ_VP(load)(t1);
        } else {
            a = QDQ_VP(splat)((QDQ_CT)INFINITY);
            b = QDQ_VP(splat)((QDQ_CT)-INFINITY);
            QDQ_VP(minmax)(v, &a, &b);
            a = QDQ_NAME(qdq_fold_runs)(a, len, 0);
            b = QDQ_NAME(qdq_fold_runs)(b, len, 1);
        }
        *neg |= a < zero;
        QDQ_NAME(qdq_row_params)(a, b, vqmin, vqmax, vbig, &s, &inv, &vlo, &vhi);
        if (prm != NULL) {   /* row i * per + k: lanes k * len ... */
            QDQ_VP(store)(t0, s);
            QDQ_VP(store)(t1, inv);
            QDQ_VP(store)(t2, vlo);
            QDQ_VP(store)(t3, vhi);
            for (k = 0; (size_t)k < per; k++) {
                const size_t row = i * per + (size_t)k, lane = (size_t)k * len;
                prm[row] = t0[lane];
                prm[pstride + row] = t1[lane];
                prm[2 * pstride + row] = t2[lane];
                prm[3 * pstride + row] = t3[lane];
            }
        }
        if (mode & QDQ_CLAMP) {
            v = QDQ_VP(sel)(vhi < v, vhi, v);
            v = QDQ_VP(sel)(v < vlo, vlo, v);
        }
        y = QDQ_VRND(v * s);
        if (mode & QDQ_HALF_UP) r = QDQ_VP(floor)(QDQ_VRND(y + (QDQ_CT)0.5));
        else r = QDQ_VP(rint)(y);
        QDQ_VSTORE(o + i * QDQ_L, r * inv);
    }
    return nvec * per;
}

/* The op on rows [0, rows) of a [rows, len] block, each row one channel
 * whose range is its own (lo == NULL) or lo[r], hi[r]. qmin, qmax are the
 * integer bounds as values of T, big the largest finite T (the parameters:
 * qdq_row_params). Returns 1 when a row's minimum is negative. */
QDQ_FN int QDQ_NAME(qdq_rows_body)(const QDQ_ST *x, QDQ_ST *o, size_t rows, size_t len,
                                   const QDQ_CT *lo, const QDQ_CT *hi, QDQ_CT qmin,
                                   QDQ_CT qmax, QDQ_CT big, const int mode, QDQ_CT *prm,
                                   size_t pstride)
{
    const QDQ_V zero = QDQ_VP(splat)((QDQ_CT)0), vbig = QDQ_VP(splat)(big);
    const QDQ_V vqmin = QDQ_VP(splat)(qmin), vqmax = QDQ_VP(splat)(qmax);
    const QDQ_V pinf = QDQ_VP(splat)((QDQ_CT)INFINITY), ninf = QDQ_VP(splat)((QDQ_CT)-INFINITY);
    QDQ_CT ps[QDQ_L], pinv[QDQ_L], plo[QDQ_L], phi[QDQ_L];
    QDQ_VM neg = (QDQ_VM)(zero != zero);
    size_t r0 = 0, g, r, j;
    int i, k;
    if (len < QDQ_L && QDQ_L % len == 0)
        r0 = QDQ_NAME(qdq_short_rows)(x, o, rows, len, lo, hi, vqmin, vqmax, vbig, &neg, mode,
                                      prm, pstride);
    for (; r0 < rows; r0 += g) {
        const QDQ_ST *xg = x + r0 * len;
        QDQ_ST *og = o + r0 * len;
        QDQ_V a, b, vs, vinv, vlo, vhi;
        g = rows - r0 < QDQ_L ? rows - r0 : QDQ_L;
        if (lo != NULL) {
            for (k = 0; k < QDQ_L; k++) {
                ps[k] = (size_t)k < g ? lo[r0 + k] : (QDQ_CT)0;
                pinv[k] = (size_t)k < g ? hi[r0 + k] : (QDQ_CT)0;
            }
            a = QDQ_VP(load)(ps);
            b = QDQ_VP(load)(pinv);
        } else {
            QDQ_V amn[QDQ_L], amx[QDQ_L];
            for (i = 0; i < QDQ_L; i++) {
                const QDQ_ST *xr;
                QDQ_V mn = pinf, mx = ninf;
                r = (size_t)QDQ_NAME(qdq_lane_rev)(i);
                if (r >= g) {
                    amn[i] = amx[i] = zero;
                    continue;
                }
                xr = xg + r * len;
                for (j = 0; j + QDQ_L <= len; j += QDQ_L)
                    QDQ_VP(minmax)(QDQ_VLOAD(xr + j), &mn, &mx);
                for (; j < len; j++)
                    QDQ_VP(minmax)(QDQ_VP(splat)(QDQ_SLOAD(xr + j)), &mn, &mx);
                amn[i] = mn;
                amx[i] = mx;
            }
            a = QDQ_NAME(qdq_fold_rows)(amn, 0);
            b = QDQ_NAME(qdq_fold_rows)(amx, 1);
        }
        neg |= a < zero;
        QDQ_NAME(qdq_row_params)(a, b, vqmin, vqmax, vbig, &vs, &vinv, &vlo, &vhi);
        QDQ_VP(store)(ps, vs);
        QDQ_VP(store)(pinv, vinv);
        QDQ_VP(store)(plo, vlo);
        QDQ_VP(store)(phi, vhi);
        if (prm != NULL)
            for (r = 0; r < g; r++) {
                prm[r0 + r] = ps[r];
                prm[pstride + r0 + r] = pinv[r];
                prm[2 * pstride + r0 + r] = plo[r];
                prm[3 * pstride + r0 + r] = phi[r];
            }
        for (r = 0; r < g; r++)
            QDQ_NAME(qdq_apply_body)(xg + r * len, og + r * len, len, ps[r], pinv[r], plo[r],
                                     phi[r], mode, 0);
    }
    for (k = 0; k < QDQ_L; k++)
        if (neg[k]) return 1;
    return 0;
}

/* prm (or NULL): the rows' parameters out, scale[r] at prm[r], inverse scale, adjusted min
 * and max pstride values further each. */
static QDQ_TARGET void QDQ_NAME(qdq_rows)(const QDQ_ST *x, QDQ_ST *o, size_t rows, size_t len,
                                          const QDQ_CT *lo, const QDQ_CT *hi, QDQ_CT qmin,
                                          QDQ_CT qmax, QDQ_CT big, int mode, int *negative,
                                          QDQ_CT *prm, size_t pstride)
{
    int n;
    switch (mode & 3) {
    case 0: n = QDQ_NAME(qdq_rows_body)(x, o, rows, len, lo, hi, qmin, qmax, big, 0, prm,
                                        pstride); break;
    case 1: n = QDQ_NAME(qdq_rows_body)(x, o, rows, len, lo, hi, qmin, qmax, big, 1, prm,
                                        pstride); break;
    case 2: n = QDQ_NAME(qdq_rows_body)(x, o, rows, len, lo, hi, qmin, qmax, big, 2, prm,
                                        pstride); break;
    default: n = QDQ_NAME(qdq_rows_body)(x, o, rows, len, lo, hi, qmin, qmax, big, 3, prm,
                                         pstride); break;
    }
    *negative = n;
}
#endif /* QDQ_HAVE_VEC */

#undef QDQ_NAME
#undef QDQ_NAME_
#undef QDQ_PASTE
#undef QDQ_PASTE_
#undef QDQ_T
#undef QDQ_ST
#undef QDQ_CT
#undef QDQ_FMT
#undef QDQ_SLOAD
#undef QDQ_SSTORE
#undef QDQ_SOP
#undef QDQ_SMIN
#undef QDQ_SMAX
#if QDQ_HAVE_VEC
#undef QDQ_V
#undef QDQ_VM
#undef QDQ_L
#undef QDQ_VLOAD
#undef QDQ_VSTORE
#undef QDQ_VRND
#undef QDQ_VRND_NN
#undef QDQ_VSTORE_NN
#undef QDQ_VANY_NAN2
#undef QDQ_VSTREAM
#undef QDQ_VSTREAM_NN
#undef QDQ_VALIGN
#undef QDQ_VP
#endif
