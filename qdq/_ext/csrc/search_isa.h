/*
 * One instruction-set copy of the calibration searches' loops (search.h):
 * qdq_g_below_<sfx>, ..., and the table qdq_search_loops_<sfx> of them.
 * Included by search.h once per level it has a copy for (cpu.h: the
 * baseline, and on x86-64 with GCC or Clang level 1 and level 2), with
 *   QDQ_SFX(name)  the suffix of this copy (name_base, name_avx2, name_avx512)
 *   QDQ_TARGET     cpu.h's target attribute of the level (empty for the baseline)
 * The loops are plain C that the compiler vectorises for the copy's
 * instruction set. Their lanes are independent elements (or, in the pairwise
 * sum, NumPy's 8 independent accumulators), and the build compiles every copy
 * with -ffp-contract=off, so every copy gives the same bits.
 */

#define QDQ_SX_FN static QDQ_TARGET

/* G(x) = integral from 0 to x of (t - Q(t))^2 dt for the clamped uniform quantizer, as the
 * reference's _g computes it for each element:
 *     xc = clip(x, clo, chi); q = rint(xc / d); u = xc - q d
 *     g = (u^3 + d^3/8)/3 + q d^3/12 - d^3/24
 *     g = g + ((hi_gap + max(x - chi, 0))^3 - hi_gap^3)/3
 *     g = g + ((lo_gap + min(x - clo, 0))^3 - lo_gap^3)/3
 * The edges are sorted, so (when clo <= chi) those below clo, those in [clo, chi] and those
 * above chi are three runs: below clo xc is clo and the hi term z_hi, in [clo, chi] both
 * terms are z_hi, z_lo, above chi xc is chi and the lo term z_lo; these constants are the
 * per-element values, computed with the same operations. Each run is a loop without
 * branches, which the compiler vectorises. */
QDQ_SX_FN void QDQ_SFX(qdq_g_below)(const qdq_gconst *k, const double *x, int64_t n, double *g)
{
    const double base = qdq_g_inner(k, k->clo) + k->z_hi, clo = k->clo, lo_gap = k->lo_gap;
    const double lg3 = k->lg3;
    int64_t e;
    for (e = 0; e < n; e++) {
        double b = lo_gap + (x[e] - clo);
        g[e] = base + (b * b * b - lg3) / 3.0;
    }
}

QDQ_SX_FN int QDQ_SFX(qdq_g_within)(const qdq_gconst *k, const double *x, int64_t n, double *g)
{
    const double d = k->d, d3 = k->d3, d3_8 = k->d3_8, d3_24 = k->d3_24, invd = 1.0 / k->d;
    const double z_hi = k->z_hi, z_lo = k->z_lo;
    int64_t e;
    int near = 0;
    for (e = 0; e < n; e++) {
        double xc = x[e], t = xc * invd, a = fabs(t), q, u, r;
        q = a < QDQ_TWO52 ? copysign((a + QDQ_TWO52) - QDQ_TWO52, t) : t;
        near |= QDQ_NEAR_HALF(t, q);
        u = xc - q * d;
        r = (u * u * u + d3_8) / 3.0 + q * d3 / 12.0 - d3_24;
        g[e] = (r + z_hi) + z_lo;
    }
    return near;
}

QDQ_SX_FN void QDQ_SFX(qdq_g_above)(const qdq_gconst *k, const double *x, int64_t n, double *g)
{
    const double base = qdq_g_inner(k, k->chi), chi = k->chi, hi_gap = k->hi_gap;
    const double hg3 = k->hg3, z_lo = k->z_lo;
    int64_t e;
    for (e = 0; e < n; e++) {
        double a = hi_gap + (x[e] - chi);
        g[e] = (base + (a * a * a - hg3) / 3.0) + z_lo;
    }
}

/* out[e] = g[e + 1] - g[e]: G's differences over one run of adjacent non-empty bins. */
QDQ_SX_FN void QDQ_SFX(qdq_diff)(const double *g, int64_t n, double *out)
{
    int64_t e;
    for (e = 0; e < n; e++) out[e] = g[e + 1] - g[e];
}

/* NumPy's pairwise summation of the n values a[0..n), as pairwise_sum does it (the 8
 * accumulators are independent, so a vectorised copy gives the same bits). */
QDQ_SX_FN double QDQ_SFX(qdq_pw_dense)(const double *a, int64_t n)
{
    if (n < 8) {
        double res = 0.0;
        int64_t i;
        for (i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8], res;
        int64_t i, k;
        for (k = 0; k < 8; k++) r[k] = a[k];
        for (i = 8; i < n - n % 8; i += 8)
            for (k = 0; k < 8; k++) r[k] += a[i + k];
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    } else {
        int64_t n2 = n / 2;
        double left;
        n2 -= n2 % 8;
        left = QDQ_SFX(qdq_pw_dense)(a, n2);
        return left + QDQ_SFX(qdq_pw_dense)(a + n2, n - n2);
    }
}

/* q = num / den, element by element. */
QDQ_SX_FN void QDQ_SFX(qdq_div)(const double *num, const double *den, int64_t n, double *q)
{
    int64_t t;
    for (t = 0; t < n; t++) q[t] = num[t] / den[t];
}

/* The group floor(j nb / i) of each bin j = nzd[t], and (bounds != 0) the group's bounds
 * ceil(g i / nb), ceil((g + 1) i / nb): the products are exact in float64, so an estimate
 * of each quotient, off by at most one, is corrected exactly. */
QDQ_SX_FN void QDQ_SFX(qdq_group_index)(const double *nzd, int64_t m, double fi, double fnb,
                                        int bounds, int32_t *gidx, int32_t *fidx, int32_t *lidx)
{
    const double r = fnb / fi, rnb = 1.0 / fnb;
    int64_t t;
    for (t = 0; t < m; t++) {
        double jn = nzd[t] * fnb, g = (double)(int32_t)(nzd[t] * r);
        g = g * fi > jn ? g - 1.0 : g;
        g = (g + 1.0) * fi <= jn ? g + 1.0 : g;
        gidx[t] = (int32_t)g;
    }
    if (!bounds) return;
    for (t = 0; t < m; t++) {
        double gi = (double)gidx[t] * fi, f, l;
        f = (double)(int32_t)(gi * rnb);               /* first = ceil(g i / nb) */
        f = f * fnb < gi ? f + 1.0 : f;
        f = (f - 1.0) * fnb >= gi ? f - 1.0 : f;
        gi = gi + fi;                                  /* last = ceil((g + 1) i / nb) */
        l = (double)(int32_t)(gi * rnb);
        l = l * fnb < gi ? l + 1.0 : l;
        l = (l - 1.0) * fnb >= gi ? l - 1.0 : l;
        fidx[t] = (int32_t)f;
        lidx[t] = (int32_t)l;
    }
}

/* bound[g] = ceil(g i / nb), the first bin of group g, for g = 0..nb (exactly, as above). */
QDQ_SX_FN void QDQ_SFX(qdq_group_bounds)(int64_t nb, double fi, double fnb, int32_t *bound)
{
    const double rnb = 1.0 / fnb;
    int64_t g;
    for (g = 0; g <= nb; g++) {
        double gi = (double)(int32_t)g * fi, f = (double)(int32_t)(gi * rnb);
        f = f * fnb < gi ? f + 1.0 : f;
        f = (f - 1.0) * fnb >= gi ? f - 1.0 : f;
        bound[g] = (int32_t)f;
    }
}

/* The number of q[0..m) that are <= 0 (a group without a count: KL is infinite). */
QDQ_SX_FN int64_t QDQ_SFX(qdq_count_nonpositive)(const double *q, int64_t m)
{
    int64_t t, n = 0;
    for (t = 0; t < m; t++) n += q[t] <= 0.0;
    return n;
}

/* The KL terms of one candidate: ratio = (p/sp) / (q/sq), then (after the log) t = pn * lg. */
QDQ_SX_FN void QDQ_SFX(qdq_kl_ratio)(const double *pn, const double *q, double sq, int64_t m,
                                     double *ratio)
{
    int64_t t;
    for (t = 0; t < m; t++) ratio[t] = pn[t] / (q[t] / sq);
}

/* This copy's loops, for the table of search.h. */
static const qdq_search_loops QDQ_SFX(qdq_search_loops) = {
    QDQ_SFX(qdq_g_below), QDQ_SFX(qdq_g_within), QDQ_SFX(qdq_g_above), QDQ_SFX(qdq_diff),
    QDQ_SFX(qdq_pw_dense), QDQ_SFX(qdq_div), QDQ_SFX(qdq_group_index),
    QDQ_SFX(qdq_group_bounds), QDQ_SFX(qdq_count_nonpositive), QDQ_SFX(qdq_kl_ratio)
};

#undef QDQ_SX_FN
