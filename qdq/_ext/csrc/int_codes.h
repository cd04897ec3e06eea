/*
 * Integer codes <-> compute-type values for one (compute type, integer type)
 * pair. Included by isa_copy.h once per pair (float and double, times the 8
 * integer types: 16 times per copy), with
 *   QDQ_CT, QDQ_CTAG                              the compute type and its name
 *   QDQ_V, QDQ_VM, QDQ_L, QDQ_VP(name)            its vectors (with QDQ_HAVE_VEC)
 *   QDQ_IT, QDQ_ITAG                              the integer type and its name
 *   QDQ_ILO, QDQ_IHI                              the integer range as compute-type values
 *                                                 (the largest below it where inexact)
 *   QDQ_WIDE32                                    1 when every code fits int32
 * Conversions of values outside the integer type are clamped first (so they
 * are defined); the caller learns of them from the tracked min, max and NaN.
 */
#define QDQ_IPASTE_(a, b, c) a##_##b##_##c
#define QDQ_IPASTE(a, b, c) QDQ_IPASTE_(a, b, c)
#define QDQ_INAME_(x) QDQ_SFX(x)
#define QDQ_INAME(k) QDQ_INAME_(QDQ_IPASTE(k, QDQ_CTAG, QDQ_ITAG))

#if QDQ_HAVE_VEC
typedef QDQ_IT QDQ_INAME(qdq_vint) __attribute__((vector_size(sizeof(QDQ_IT) * QDQ_L)));
typedef int32_t QDQ_INAME(qdq_v32) __attribute__((vector_size(4 * QDQ_L)));
#endif

/* The exact {min, max, any NaN} of r[0:n], merged into stats (the slow path). */
static QDQ_TARGET void QDQ_INAME(qdq_codes_stats)(const QDQ_CT *r, size_t n, double *stats)
{
    size_t i;
    for (i = 0; i < n; i++) {
        const QDQ_CT v = r[i];
        if (v != v) stats[2] = 1;
        else {
            if (v < stats[0]) stats[0] = v;
            if (v > stats[1]) stats[1] = v;
        }
    }
}

/* codes[i] = r[i] (integral values). Values outside the integer type are
 * clamped (so the conversion is defined) and NaN stored as 0; when any occur,
 * stats = {min, max, any NaN} of r is merged exactly, so that the caller can
 * refuse the codes. With QDQ_WIDE32 the vector loop converts to int32 lanes
 * (one instruction) and a plain loop narrows them (which the compiler
 * vectorises); otherwise the clamped values convert one by one (the rare
 * 64-bit and uint32 codes). */
static QDQ_TARGET void QDQ_INAME(qdq_to)(const QDQ_CT *r, QDQ_IT *codes, size_t n, double *stats)
{
    size_t i = 0;
    int bad = 0;
    const QDQ_CT lo = QDQ_ILO, hi = QDQ_IHI;
#if QDQ_HAVE_VEC
    if (n >= QDQ_L) {
        const QDQ_V vlo = QDQ_VP(splat)(lo), vhi = QDQ_VP(splat)(hi), zero = QDQ_VP(splat)(0);
        QDQ_VM vbad = (QDQ_VM)(zero != zero);
#if QDQ_WIDE32
        int32_t w[QDQ_L * 64];
#endif
        int k;
        while (i + QDQ_L <= n) {
            size_t m = n - i < (size_t)(QDQ_L * 64) ? (n - i) / QDQ_L * QDQ_L : QDQ_L * 64, j;
            for (j = 0; j < m; j += QDQ_L) {
                QDQ_V v = QDQ_VP(load)(r + i + j), c;
                QDQ_VM isnan = v != v, below = v < vlo, above = v > vhi;
                vbad |= isnan | below | above;
                c = QDQ_VP(sel)(below, vlo, v);
                c = QDQ_VP(sel)(above, vhi, c);
                c = QDQ_VP(sel)(isnan, zero, c);
#if QDQ_WIDE32
                {
                    QDQ_INAME(qdq_v32) q = __builtin_convertvector(c, QDQ_INAME(qdq_v32));
                    memcpy(w + j, &q, sizeof q);
                }
#else
                for (k = 0; k < QDQ_L; k++)
                    codes[i + j + k] = (QDQ_IT)c[k];
#endif
            }
#if QDQ_WIDE32
            for (j = 0; j < m; j++)
                codes[i + j] = (QDQ_IT)w[j];
#endif
            i += m;
        }
        for (k = 0; k < QDQ_L; k++)
            bad |= vbad[k] != 0;
    }
#endif
    for (; i < n; i++) {
        const QDQ_CT v = r[i];
        if (v != v) {
            bad = 1;
            codes[i] = 0;
            continue;
        }
        if (v < lo || v > hi) bad = 1;
        codes[i] = (QDQ_IT)(v < lo ? lo : (v > hi ? hi : v));
    }
    if (bad) QDQ_INAME(qdq_codes_stats)(r, n, stats);
}

/* r[i] = codes[i] converted to the compute type (round to nearest). A plain
 * loop: the compiler vectorises these widening conversions well by itself. */
static QDQ_TARGET void QDQ_INAME(qdq_from)(const QDQ_IT *codes, QDQ_CT *r, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        r[i] = (QDQ_CT)codes[i];
}

#undef QDQ_INAME
#undef QDQ_INAME_
#undef QDQ_IPASTE
#undef QDQ_IPASTE_
#undef QDQ_IT
#undef QDQ_ITAG
#undef QDQ_ILO
#undef QDQ_IHI
#undef QDQ_WIDE32
