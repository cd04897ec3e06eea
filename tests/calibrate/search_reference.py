"""Today's calibration searches in NumPy: the oracle of the compiled ones.

This is :mod:`qdq._calibrate.methods` as it was before the searches were
compiled (``qdq/_ext/search.pyx``), kept verbatim: ``histogram_range`` runs
``_mse``, ``_entropy`` and ``_percentile`` channel by channel over a thread
pool. The tests compare the compiled searches with it bit for bit; the
calibration benchmark times it as the old code path.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from qdq._calibrate.methods import check_method
from qdq._core.engine import compute_params
from qdq._core.formats import Format, round_to
from qdq._core.threads import get_num_threads
from qdq._core.validate import OpArgs

_CAND_BLOCK = 128
_COARSE = 128
_ENTROPY_ROWS = 64


# ---------------------------------------------------------------------------
# One channel, in units of the bin width (edges are the integers -h..h)
# ---------------------------------------------------------------------------

def _extent(counts: np.ndarray, h: int) -> tuple[int, int] | None:
    """(lowest, highest) non-empty bin index j, or None."""
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return None
    return int(nz[0]) - h, int(nz[-1]) - h


def _percentile(counts: np.ndarray, h: int, p: float) -> tuple[float, float]:
    ext = _extent(counts, h)
    if ext is None:
        return math.nan, math.nan
    n = int(counts.sum(dtype=np.uint64))
    q = p / 100.0
    # np.quantile's (linear) value lies between the order statistics of ranks
    # floor(r) and ceil(r): take the far edge of the bin of the nearer one.
    r_hi = min(n - 1, math.floor(q * (n - 1)))
    r_lo = max(0, min(n - 1, math.ceil((1.0 - q) * (n - 1))))
    cum = np.cumsum(counts, dtype=np.uint64)
    b_hi = int(np.searchsorted(cum, np.uint64(r_hi), side="right"))
    b_lo = int(np.searchsorted(cum, np.uint64(r_lo), side="right"))
    return float(b_lo - h), float(b_hi + 1 - h)


def _g(x: np.ndarray, d, clo, chi, qlo, qhi) -> np.ndarray:
    """G(x) = integral from 0 to x of (t - Q(t))**2 dt for the clamped uniform quantizer.

    Q(t) = d * rint(t / d) on [clo, chi]; qlo, qhi below clo, above chi.
    """
    xc = np.clip(x, clo, chi)
    q = np.rint(xc / d)
    u = xc - q * d
    d3 = d * d * d
    g = (u * u * u + d3 / 8.0) / 3.0 + q * d3 / 12.0 - d3 / 24.0
    # cubes as products: ``** 3`` calls pow, several times slower
    hi_gap, lo_gap = chi - qhi, clo - qlo
    a = hi_gap + np.maximum(x - chi, 0.0)
    b = lo_gap + np.minimum(x - clo, 0.0)
    g = g + (a * a * a - hi_gap * hi_gap * hi_gap) / 3.0
    g = g + (b * b * b - lo_gap * lo_gap * lo_gap) / 3.0
    return g


def _candidates(j_lo: int, j_hi: int, qmin: int,
                qmax: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
    """Candidate (lo, hi) edge pairs, one per dominant edge; the other side as wide as it
    can be without taking over the scale, and within the data's extent."""
    neg_ext, pos_ext = min(0, j_lo), max(0, j_hi + 1)
    los, his = [], []
    if qmax > 0:
        i = np.arange(1, max(1, pos_ext) + 1, dtype=np.int64)
        if qmin < 0:
            lo = np.maximum(-((i * -qmin) // qmax), neg_ext)
        else:
            lo = np.zeros_like(i)
        los.append(lo)
        his.append(i)
    if qmin < 0:
        j = np.arange(1, max(1, -neg_ext) + 1, dtype=np.int64)
        hi = np.minimum((j * max(qmax, 0)) // -qmin, pos_ext) if qmax > 0 else np.full_like(
            j, pos_ext)
        los.append(-j)
        his.append(hi)
    if not los:
        return np.array([neg_ext], np.float64), np.array([pos_ext], np.float64), [(0, 1)]
    sizes = np.cumsum([0] + [v.size for v in los])
    families = [(int(sizes[i]), int(sizes[i + 1])) for i in range(len(los))]
    return (np.concatenate(los).astype(np.float64), np.concatenate(his).astype(np.float64),
            families)


def _mse(counts: np.ndarray, h: int, k: int, fmt: Format, args: OpArgs) -> tuple[float, float]:
    ext = _extent(counts, h)
    if ext is None:
        return math.nan, math.nan
    j_lo, j_hi = ext
    lo_u, hi_u, families = _candidates(j_lo, j_hi, args.qmin, args.qmax)
    # candidate ranges as values of the data's type, and the op's parameters for them
    lo_t = round_to(np.ldexp(lo_u, k), fmt)
    hi_t = round_to(np.ldexp(hi_u, k), fmt)
    p = compute_params(lo_t, hi_t, fmt, args.qmin, args.qmax).astype(np.float64)
    scale, inv, lo_adj, hi_adj = p
    with np.errstate(all="ignore"):
        d = np.ldexp(inv, -k)
        clo, chi = np.ldexp(lo_adj, -k), np.ldexp(hi_adj, -k)
        qlo, qhi = np.rint(lo_adj * scale) * d, np.rint(hi_adj * scale) * d
        ok = np.isfinite(d) & (d > 0) & np.isfinite(clo) & np.isfinite(chi)
    # G at the edges of the non-empty bins only
    nz = np.flatnonzero(counts[j_lo + h:j_hi + 1 + h]) + j_lo
    edges = np.concatenate([nz, nz + 1]).astype(np.float64)
    w = counts[nz + h].astype(np.float64)
    err = np.full(lo_u.shape[0], np.inf)

    def evaluate(cands: np.ndarray) -> None:
        cands = cands[ok[cands] & np.isinf(err[cands])]
        for s in range(0, cands.size, _CAND_BLOCK):
            c = cands[s:s + _CAND_BLOCK, None]
            with np.errstate(all="ignore"):
                g = _g(edges[None, :], d[c], clo[c], chi[c], qlo[c], qhi[c])
                e = (g[:, nz.size:] - g[:, :nz.size]) @ w
            err[c[:, 0]] = np.where(np.isnan(e), np.inf, e)

    # Each family (hi sets the scale, lo sets it) is ordered by its step: a coarse
    # pass, then every candidate around the three best coarse ones.
    for a, b in families:
        n = b - a
        stride = max(1, n // _COARSE)
        coarse = np.unique(np.r_[np.arange(a, b, stride), b - 1])
        evaluate(coarse)
        best3 = coarse[np.argsort(err[coarse], kind="stable")[:3]]
        for c0 in best3:
            evaluate(np.arange(max(a, c0 - stride), min(b, c0 + stride + 1)))
    best = int(np.argmin(err))  # the first minimum: deterministic tie-break
    if not np.isfinite(err[best]):
        return float(np.ldexp(float(min(0, j_lo)), k)), float(np.ldexp(float(j_hi + 1), k))
    return float(lo_t[best]), float(hi_t[best])


def _kl_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) of each row of unnormalised p, q (scipy.stats.entropy's convention)."""
    sp, sq = p.sum(axis=1, keepdims=True), q.sum(axis=1, keepdims=True)
    m = p > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        pn, qn = p / sp, q / sq
        terms = np.where(m, pn * np.log(np.where(m, pn, 1.0) / np.where(m, qn, 1.0)), 0.0)
    kl = terms.sum(axis=1)
    bad = (m & (q <= 0)).any(axis=1) | (sp[:, 0] <= 0) | (sq[:, 0] <= 0)
    return np.where(bad, np.inf, kl)


def _entropy(counts: np.ndarray, h: int, args: OpArgs) -> tuple[float, float]:
    ext = _extent(counts, h)
    if ext is None:
        return math.nan, math.nan
    j_lo, j_hi = ext
    folded = counts[h:].astype(np.float64) + counts[:h][::-1].astype(np.float64)
    stop = int(np.flatnonzero(folded)[-1]) + 1
    a = folded[:stop].copy()
    if stop > 1:
        a[0] = a[1]  # TensorRT's guard against a spike of zeros
    tail = np.concatenate([np.cumsum(a[::-1])[::-1], [0.0]])  # tail[i] = a[i:].sum()
    unsigned = args.qmin >= 0
    nbins = min(1 << min(args.num_bits - 1 + int(unsigned), 62), stop)
    start = min(max(1, h // 8), stop)  # TensorRT: 128 of 2048 bins of |x|
    cum = np.concatenate([[0.0], np.cumsum(a)])                    # cum[i] = a[:i].sum()
    cnz = np.concatenate([[0], np.cumsum(a != 0)])
    best_i, best = stop, math.inf
    for r0 in range(start, stop + 1, _ENTROPY_ROWS):  # a block of candidate ends i
        i = np.arange(r0, min(r0 + _ENTROPY_ROWS, stop + 1), dtype=np.int64)[:, None]
        width = int(i[-1, 0])
        j = np.arange(width, dtype=np.int64)[None, :]
        nb = np.minimum(nbins, i)
        inside = j < i
        # bin j of a[:i] is in group g = floor(j * nb / i), which holds bins
        # [ceil(g * i / nb), ceil((g + 1) * i / nb)); in float64, exact: the products are
        # integers below 2**53 (bins <= 2**24), so a quotient's rounding never crosses one
        fi, fnb = i.astype(np.float64), nb.astype(np.float64)
        g = np.where(inside, np.floor(j * fnb / fi), 0.0)
        first = np.ceil(g * fi / fnb).astype(np.int64)
        last = np.ceil((g + 1.0) * fi / fnb).astype(np.int64)
        nz = inside & (a[None, :width] != 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            q = np.where(nz, (cum[last] - cum[first]) / (cnz[last] - cnz[first]), 0.0)
        p = np.where(inside, a[None, :width], 0.0)
        rows = np.arange(i.shape[0])
        p[rows, i[:, 0] - 1] += tail[i[:, 0]]
        kl = _kl_rows(p, q)
        for r in range(kl.shape[0]):
            if kl[r] <= best:  # the last minimum, as TensorRT
                best, best_i = float(kl[r]), int(i[r, 0])
    amax = float(best_i)
    lo = 0.0 if unsigned else max(-amax, float(min(0, j_lo)))
    hi = min(amax, float(max(0, j_hi + 1))) if not unsigned else amax
    if lo == hi == 0.0:
        hi = amax
    return lo, hi


# ---------------------------------------------------------------------------
# Per channel
# ---------------------------------------------------------------------------

def histogram_range(hist: Any, fmt: Format, bins: int, method: str, *, percentile: float,
                    num_bits: int, signed_input: bool, narrow_range: bool,
                    round_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Compute-type arrays (lo, hi), one value per channel of a tracker's histogram."""
    method, p = check_method(method, percentile)
    args = OpArgs(signed_input, num_bits, True, round_mode, narrow_range)
    C = hist.k.shape[0]
    if method == "minmax":
        mn, mx = hist.mn.copy(), hist.mx.copy()
        empty = mn > mx
        mn[empty] = np.nan
        mx[empty] = np.nan
        return round_to(mn, fmt), round_to(mx, fmt)
    h = bins // 2

    def one(c: int) -> tuple[float, float]:
        k = int(hist.k[c])
        counts = hist.counts[c]
        if method == "mse":
            return _mse(counts, h, k, fmt, args)
        if method == "percentile":
            a, b = _percentile(counts, h, p)
        else:
            a, b = _entropy(counts, h, args)
        return float(np.ldexp(a, k)), float(np.ldexp(b, k))

    # Channels are independent: mse and entropy (NumPy on blocks of candidates, which
    # releases the GIL) take qdq's threads; every channel's result is the same either way.
    workers = min(get_num_threads(), C) if method != "percentile" else 1
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            res = list(pool.map(one, range(C)))
    else:
        res = [one(c) for c in range(C)]
    lo = np.array([r[0] for r in res], np.float64).reshape(C)
    hi = np.array([r[1] for r in res], np.float64).reshape(C)
    with np.errstate(over="ignore"):
        return round_to(lo, fmt), round_to(hi, fmt)
