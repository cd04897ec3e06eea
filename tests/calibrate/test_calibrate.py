"""qdq.calibrate and the range methods: percentile, mse, entropy, minmax."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _util import bits, values

import qdq


def heavy_tailed(n: int = 400_000, seed: int = 0) -> np.ndarray:
    """Student-t with 3 degrees of freedom plus rare outliers."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, n)
    pick = rng.choice(n, size=n // 40_000, replace=False)
    x[pick] = rng.choice([-1, 1], pick.size) * rng.uniform(40, 80, pick.size)
    return x.astype(np.float32)


def op_mse(x: np.ndarray, lo, hi, num_bits: int, signed: bool = True) -> float:
    y = qdq.quantize_and_dequantize(x, lo, hi, num_bits=num_bits, range_given=True,
                                    signed_input=signed)
    return float(np.mean((y.astype(np.float64) - x.astype(np.float64)) ** 2))


def brute_force(x: np.ndarray, num_bits: int) -> float:
    """The least error over clip values: symmetric on a fine grid, then asymmetric."""
    mn, mx = (float(v) for v in qdq.compute_range(x))
    top = max(-mn, mx)
    grid = np.geomspace(top / 2000, top, 400)
    errs = [op_mse(x, -c, c, num_bits) for c in grid]
    best_c = float(grid[int(np.argmin(errs))])
    best = min(errs)
    for c in np.linspace(0.8 * best_c, 1.2 * best_c, 41):
        for r in (0.5, 0.8, 0.9, 1.1, 1.25, 2.0):
            best = min(best, op_mse(x, -c, c * r, num_bits))
    return best


@pytest.mark.parametrize("num_bits", [4, 8])
def test_mse_beats_minmax_and_matches_brute_force(num_bits):
    x = heavy_tailed()
    lo, hi = qdq.calibrate(x, "mse", num_bits=num_bits)
    assert lo.dtype == np.float32 and hi.dtype == np.float32
    e = op_mse(x, lo, hi, num_bits)
    e_minmax = op_mse(x, *qdq.compute_range(x), num_bits)
    e_best = brute_force(x, num_bits)
    assert e <= 0.8 * e_minmax, (e, e_minmax)
    assert e <= 1.02 * e_best, (e, e_best)


def test_mse_unsigned_output():
    x = np.abs(heavy_tailed(100_000, 1))
    lo, hi = qdq.calibrate(x, "mse", num_bits=4, signed_input=False)
    assert lo == 0
    e = op_mse(x, lo, hi, 4, signed=False)
    assert e < 0.8 * op_mse(x, 0, x.max(), 4, signed=False)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("p", [99.0, 99.9, 99.99, 100.0])
def test_percentile_within_one_bin_of_quantile(dtype, p):
    rng = np.random.default_rng(2)
    x = (rng.standard_t(4, 200_000) * 3).astype(dtype)
    t = qdq.HistogramTracker().update(x)
    width = float(t.edges[1] - t.edges[0])
    lo, hi = t.range("percentile", percentile=p)
    q_lo, q_hi = np.quantile(x.astype(np.float64), [1 - p / 100, p / 100])
    # the bin edge, then rounded to the type (within half an ulp of it)
    tol = width + float(np.spacing(np.abs(np.asarray(hi, dtype))))
    assert abs(float(hi) - q_hi) <= tol, (hi, q_hi, width)
    assert abs(float(lo) - q_lo) <= tol, (lo, q_lo, width)
    if p == 100.0:
        assert float(lo) <= q_lo and float(hi) >= q_hi


def test_percentile_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(3)
    x = (rng.standard_t(4, 100_000)).astype(np.float32).astype(ml_dtypes.bfloat16)
    t = qdq.HistogramTracker().update(x)
    width = float(t.edges[1] - t.edges[0])
    lo, hi = t.range("percentile", percentile=99.9)
    assert lo.dtype == x.dtype
    q_lo, q_hi = np.quantile(x.astype(np.float64), [0.001, 0.999])
    ulp = 2.0 ** (math.floor(math.log2(abs(q_hi))) - 7)
    assert abs(float(hi) - q_hi) <= width + ulp and abs(float(lo) - q_lo) <= width + ulp


def test_entropy_clips_a_heavy_tail():
    x = heavy_tailed(200_000, 4)
    lo, hi = qdq.calibrate(x, "entropy", num_bits=8)
    mn, mx = qdq.compute_range(x)
    assert mn < lo < 0 < hi < mx


def trt_entropy_amax_bin(abs_hist: np.ndarray, num_bits: int, unsigned: bool,
                         start_bin: int = 128) -> int:
    """TensorRT's KL search, written out loop by loop: the edge index of amax."""
    hist = abs_hist.astype(np.float64).copy()
    hist[0] = hist[1]
    nq = 1 << (num_bits - 1 + int(unsigned))
    best, best_i = math.inf, None
    for i in range(start_bin, len(hist) + 1):
        group = [min(int(j * nq // i), nq - 1) for j in range(i)]
        sums = [0.0] * nq
        nonzero = [0] * nq
        for j in range(i):
            if hist[j] != 0:
                sums[group[j]] += hist[j]
                nonzero[group[j]] += 1
        q = np.array([sums[group[j]] / nonzero[group[j]] if hist[j] != 0 else 0.0
                      for j in range(i)])
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        p, q = p / p.sum(), q / q.sum()
        m = p > 0
        kl = math.inf if (q[m] == 0).any() else float(np.sum(p[m] * np.log(p[m] / q[m])))
        if kl <= best:
            best, best_i = kl, i
    return best_i


@pytest.mark.parametrize("seed", range(4))
def test_entropy_follows_tensorrt(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, 30_000) * rng.uniform(0.5, 3)
    t = qdq.HistogramTracker(bins=256).update(x)
    counts, h = t.counts, 128
    folded = counts[h:] + counts[:h][::-1]
    stop = int(np.flatnonzero(folded)[-1]) + 1
    i = trt_entropy_amax_bin(folded[:stop], 6, False, start_bin=min(16, stop))
    w = float(t.edges[1] - t.edges[0])
    lo, hi = t.range("entropy", num_bits=6)
    amax = i * w
    assert hi == min(amax, float(t.edges[h + int(np.flatnonzero(counts)[-1]) - h + 1]))
    assert lo == max(-amax, float(t.edges[int(np.flatnonzero(counts)[0])]))


def test_entropy_of_uniform_data_keeps_the_range():
    x = np.random.default_rng(5).uniform(-1, 1, 100_000)
    lo, hi = qdq.calibrate(x, "entropy", bins=256)
    assert lo < -0.95 and hi > 0.95


def test_minmax_is_the_exact_range():
    x = heavy_tailed(10_000, 6)
    assert qdq.calibrate(x, "minmax") == qdq.compute_range(x)
    lo, hi = qdq.calibrate(x.reshape(100, 100), "minmax", axis=1)
    mn, mx = qdq.compute_range(x.reshape(100, 100), axis=1)
    assert (bits(lo) == bits(mn)).all() and (bits(hi) == bits(mx)).all()


def test_calibrate_array_chunks_and_generators_agree():
    x = heavy_tailed(50_000, 7).reshape(500, 100)
    ref = qdq.calibrate(x, "mse", axis=1)
    for data in (list(np.array_split(x, 7)), (c for c in np.array_split(x, 3)),
                 iter([x])):
        got = qdq.calibrate(data, "mse", axis=1)
        assert all((bits(a) == bits(b)).all() for a, b in zip(got, ref, strict=True))
    assert ref[0].shape == (100,)
    assert qdq.calibrate([1.0, -2.0, 3.0], "minmax") == (-2.0, 3.0)


def test_calibrate_bfloat16_bits():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = heavy_tailed(20_000, 8)
    xb = x.astype(ml_dtypes.bfloat16)
    bits16 = xb.view(np.uint16)
    a = qdq.calibrate(xb, "percentile")
    b = qdq.calibrate(bits16, "percentile", bfloat16_bits=True)
    assert a[0].dtype == xb.dtype and b[0].dtype == np.float32
    assert values(np.asarray(a)).tolist() == np.asarray(b, np.float64).tolist()


def test_ranges_are_values_of_the_type_and_usable():
    rng = np.random.default_rng(9)
    for dtype in ("float16", "float32", "float64"):
        x = rng.standard_t(3, 20_000).astype(dtype)
        for method in ("percentile", "mse", "entropy", "minmax"):
            lo, hi = qdq.calibrate(x, method)
            assert lo.dtype == x.dtype and lo <= hi
            y = qdq.quantize_and_dequantize(x, lo, hi, range_given=True)
            assert np.isfinite(y).all()


def test_narrow_range_and_round_mode_accepted():
    x = heavy_tailed(20_000, 10)
    lo, hi = qdq.calibrate(x, "mse", num_bits=4, narrow_range=True, round_mode="HALF_UP")
    assert lo < 0 < hi


def test_calibrate_bad_input():
    x = np.linspace(-1, 1, 100)
    with pytest.raises(ValueError, match="method"):
        qdq.calibrate(x, "max")
    with pytest.raises(ValueError, match="percentile"):
        qdq.calibrate(x, "percentile", percentile=40)
    with pytest.raises(TypeError, match="percentile"):
        qdq.calibrate(x, "percentile", percentile="99")
    with pytest.raises(ValueError, match="bins"):
        qdq.calibrate(x, bins=8)
    with pytest.raises(ValueError, match="no data"):
        qdq.calibrate(np.zeros(0))
    with pytest.raises(ValueError, match="no data"):
        qdq.calibrate(iter([]))
    with pytest.raises(TypeError):
        qdq.calibrate(np.arange(10))
    with pytest.raises(TypeError, match="unexpected"):
        qdq.calibrate(x, bogus=1)
    with pytest.raises(ValueError, match="num_bits"):
        qdq.calibrate(x, num_bits=0)
    with pytest.raises(ValueError):
        qdq.calibrate(x, round_mode="UP")
    with pytest.raises(TypeError, match="data"):
        qdq.calibrate("abc")


@pytest.mark.parametrize("name", ["_calibrate.histogram", "_calibrate.calibrate"])
def test_docstring_examples(name):
    import doctest
    import importlib

    module = importlib.import_module(f"qdq.{name}")
    failures, tried = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE,
                                      extraglobs={"qdq": qdq})
    assert failures == 0 and tried > 0
