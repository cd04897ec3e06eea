/*
 * One instruction-set copy of the error statistics of a piece (see
 * error_stats.h), for each float format: qdq_es_piece_<T>_base/_avx2.
 * Included by error_stats.h with the macros of isa_copy.h (QDQ_VB,
 * QDQ_SFX, QDQ_TARGET, QDQ_F16C); it uses that copy's vector types and
 * converters, which isa_copy.h left defined.
 *
 * Eight elements per step: QDQ_ES_NF float32 vectors (8 / lanes), widened
 * to QDQ_ES_ND float64 vectors, whose lanes are the eight accumulators in
 * element order; the scalar tail goes on with the lane of its position.
 */

#define QDQ_ES_FN static QDQ_TARGET

#if QDQ_HAVE_VEC
#define vf QDQ_SFX(qdq_vf)
#define vi QDQ_SFX(qdq_vi)
#define vd QDQ_SFX(qdq_vd)
#define vl QDQ_SFX(qdq_vl)
#define hf QDQ_SFX(qdq_es_hf)
typedef float hf __attribute__((vector_size(QDQ_VB / 2)));
#define QDQ_ES_L (QDQ_VB / 4)              /* floats per vf */
#define QDQ_ES_D (QDQ_VB / 8)              /* doubles per vd */
#define QDQ_ES_NF (QDQ_ES_LANES / QDQ_ES_L)
#define QDQ_ES_ND (QDQ_ES_LANES / QDQ_ES_D)

/* Lanes of the sums, maxima and counts into the piece's accumulator. */
static inline __attribute__((always_inline)) QDQ_TARGET void
QDQ_SFX(qdq_es_store)(qdq_es_lanes_t *a, const vd *s, const vd *e, const vd *m)
{
    memcpy(a->s, s, sizeof a->s);
    memcpy(a->e, e, sizeof a->e);
    memcpy(a->m, m, sizeof a->m);
}

/* Half h (0: low, 1: high) of a float32 vector, widened to float64 exactly. */
static inline __attribute__((always_inline)) QDQ_TARGET vd
QDQ_SFX(qdq_es_widen)(vf v, int h)
{
#if QDQ_F16C
    return (vd)_mm256_cvtps_pd(h ? _mm256_extractf128_ps((__m256)v, 1)
                                 : _mm256_castps256_ps128((__m256)v));
#elif QDQ_X86_DISPATCH && QDQ_VB == 16   /* SSE2 */
    return (vd)_mm_cvtps_pd(h ? _mm_movehl_ps((__m128)v, (__m128)v) : (__m128)v);
#else
    hf half;
    memcpy(&half, (const char *)&v + h * (QDQ_VB / 2), QDQ_VB / 2);
    return __builtin_convertvector(half, vd);
#endif
}

/* The step of one vf of inputs and one of outputs, into two vd of sums. */
static inline __attribute__((always_inline)) QDQ_TARGET void
QDQ_SFX(qdq_es_step_f)(vf xv, vf yv, vf vlo, vf vhi, vi *cn, vi *cc, vi *co, vi *cp,
                       vd *s, vd *e, vd *m)
{
    const vf inf = QDQ_SFX(vf_splat)(INFINITY);
    const vi fx = (vf)((vi)xv & 0x7fffffff) < inf, fy = (vf)((vi)yv & 0x7fffffff) < inf;
    const vi ok = fx & fy;
    int h;
    *cn -= xv != xv;
    *cc -= (xv < vlo) | (xv > vhi);
    *co -= fx & ~fy;
    *cp -= ok;
    xv = (vf)(ok & (vi)xv);  /* pairs not both finite count as 0 - 0 */
    yv = (vf)(ok & (vi)yv);
    for (h = 0; h < 2; h++) {
        const vd xd = QDQ_SFX(qdq_es_widen)(xv, h);
        vd d = QDQ_SFX(qdq_es_widen)(yv, h) - xd;
        d = (vd)((vl)d & 0x7fffffffffffffffll);
        s[h] += xd * xd;
        e[h] += d * d;
        m[h] = QDQ_SFX(vd_sel)(d > m[h], d, m[h]);
    }
}

static inline __attribute__((always_inline)) QDQ_TARGET int64_t
QDQ_SFX(qdq_es_sum_i)(const vi *c)
{
    int64_t t = 0;
    int k, l;
    for (k = 0; k < QDQ_ES_NF; k++)
        for (l = 0; l < QDQ_ES_L; l++) t += c[k][l];
    return t;
}
#endif /* QDQ_HAVE_VEC */

/* float16, bfloat16, float32: float32 lanes, sums in float64 */
#if QDQ_HAVE_VEC
#  define QDQ_ES_VLOOP_F(VLOAD)                                                   \
    do {                                                                          \
        vd s[QDQ_ES_ND], e[QDQ_ES_ND], m[QDQ_ES_ND];                              \
        vi cn[QDQ_ES_NF], cc[QDQ_ES_NF], co[QDQ_ES_NF], cp[QDQ_ES_NF];            \
        const vf vlo = QDQ_SFX(vf_splat)(lo), vhi = QDQ_SFX(vf_splat)(hi);        \
        int k;                                                                    \
        for (k = 0; k < QDQ_ES_ND; k++) s[k] = e[k] = m[k] = QDQ_SFX(vd_splat)(0.0); \
        for (k = 0; k < QDQ_ES_NF; k++) cn[k] = cc[k] = co[k] = cp[k] = (vi){0};  \
        for (; i + QDQ_ES_LANES <= n; i += QDQ_ES_LANES)                          \
            for (k = 0; k < QDQ_ES_NF; k++)                                       \
                QDQ_SFX(qdq_es_step_f)(VLOAD(x + i + k * QDQ_ES_L),               \
                                       VLOAD(y + i + k * QDQ_ES_L), vlo, vhi,     \
                                       &cn[k], &cc[k], &co[k], &cp[k],            \
                                       &s[2 * k], &e[2 * k], &m[2 * k]);          \
        QDQ_SFX(qdq_es_store)(&a, s, e, m);                                       \
        a.nan = QDQ_SFX(qdq_es_sum_i)(cn);                                        \
        a.clipped = QDQ_SFX(qdq_es_sum_i)(cc);                                    \
        a.nonfinite_out = QDQ_SFX(qdq_es_sum_i)(co);                              \
        a.finite_pairs = QDQ_SFX(qdq_es_sum_i)(cp);                               \
    } while (0)
#  define QDQ_ES_VLOAD_F16(p) QDQ_SFX(f16_widen)(QDQ_SFX(vh_load)(p))
#  define QDQ_ES_VLOAD_BF16(p) QDQ_SFX(bf16_widen)(QDQ_SFX(vh_load)(p))
#  define QDQ_ES_VLOAD_F32(p) QDQ_SFX(vf_load)(p)
#else
#  define QDQ_ES_VLOOP_F(VLOAD) do { } while (0)
#endif

#define QDQ_ES_DEFINE_F(T, ST, VLOAD, SLOAD)                                       \
    QDQ_ES_FN void QDQ_SFX(qdq_es_piece_##T)(const ST *x, const ST *y, size_t n,    \
                                             float lo, float hi, qdq_es_t *piece)  \
    {                                                                              \
        qdq_es_lanes_t a;                                                          \
        size_t i = 0;                                                              \
        qdq_es_lanes_init(&a);                                                     \
        QDQ_ES_VLOOP_F(VLOAD);                                                     \
        QDQ_ES_SCALAR(SLOAD, x, y, 0, i, n, &a, (double)lo, (double)hi);           \
        qdq_es_piece_done(&a, piece);                                              \
    }

QDQ_ES_DEFINE_F(f16, uint16_t, QDQ_ES_VLOAD_F16, QDQ_ES_LOAD_F16)
QDQ_ES_DEFINE_F(bf16, uint16_t, QDQ_ES_VLOAD_BF16, QDQ_ES_LOAD_BF16)
QDQ_ES_DEFINE_F(f32, float, QDQ_ES_VLOAD_F32, QDQ_ES_LOAD_F32)

/* float64: float64 lanes throughout */
QDQ_ES_FN void QDQ_SFX(qdq_es_piece_f64)(const double *x, const double *y, size_t n,
                                         double lo, double hi, qdq_es_t *piece)
{
    qdq_es_lanes_t a;
    size_t i = 0;
    qdq_es_lanes_init(&a);
#if QDQ_HAVE_VEC
    {
        vd s[QDQ_ES_ND], e[QDQ_ES_ND], m[QDQ_ES_ND];
        vl cn[QDQ_ES_ND], cc[QDQ_ES_ND], co[QDQ_ES_ND], cp[QDQ_ES_ND];
        const vd vlo = QDQ_SFX(vd_splat)(lo), vhi = QDQ_SFX(vd_splat)(hi);
        const vd inf = QDQ_SFX(vd_splat)(INFINITY);
        int k, l;
        for (k = 0; k < QDQ_ES_ND; k++) {
            s[k] = e[k] = m[k] = QDQ_SFX(vd_splat)(0.0);
            cn[k] = cc[k] = co[k] = cp[k] = (vl){0};
        }
        for (; i + QDQ_ES_LANES <= n; i += QDQ_ES_LANES) {
            for (k = 0; k < QDQ_ES_ND; k++) {
                vd xv = QDQ_SFX(vd_load)(x + i + k * QDQ_ES_D);
                vd yv = QDQ_SFX(vd_load)(y + i + k * QDQ_ES_D);
                const vl fx = (vd)((vl)xv & 0x7fffffffffffffffll) < inf;
                const vl fy = (vd)((vl)yv & 0x7fffffffffffffffll) < inf;
                const vl ok = fx & fy;
                vd d;
                cn[k] -= xv != xv;
                cc[k] -= (xv < vlo) | (xv > vhi);
                co[k] -= fx & ~fy;
                cp[k] -= ok;
                xv = (vd)(ok & (vl)xv);
                yv = (vd)(ok & (vl)yv);
                d = (vd)((vl)(yv - xv) & 0x7fffffffffffffffll);
                s[k] += xv * xv;
                e[k] += d * d;
                m[k] = QDQ_SFX(vd_sel)(d > m[k], d, m[k]);
            }
        }
        QDQ_SFX(qdq_es_store)(&a, s, e, m);
        for (k = 0; k < QDQ_ES_ND; k++)
            for (l = 0; l < QDQ_ES_D; l++) {
                a.nan += cn[k][l];
                a.clipped += cc[k][l];
                a.nonfinite_out += co[k][l];
                a.finite_pairs += cp[k][l];
            }
    }
#endif
    QDQ_ES_SCALAR(QDQ_ES_LOAD_F64, x, y, 0, i, n, &a, lo, hi);
    qdq_es_piece_done(&a, piece);
}

#undef QDQ_ES_DEFINE_F
#undef QDQ_ES_VLOOP_F
#undef QDQ_ES_FN
#if QDQ_HAVE_VEC
#undef QDQ_ES_VLOAD_F16
#undef QDQ_ES_VLOAD_BF16
#undef QDQ_ES_VLOAD_F32
#undef QDQ_ES_L
#undef QDQ_ES_D
#undef QDQ_ES_NF
#undef QDQ_ES_ND
#undef vf
#undef vi
#undef vd
#undef vl
#undef hf
#endif
