"""The compiled error statistics (engine.error_stats, TensorErrorStats) against float64 NumPy.

The reference is :class:`qdq._core.stats.ErrorStats`, the arithmetic of ``qdq
info``, on the values taken as float64. Counts and the largest error must be
equal; the float64 sums may differ in their order only. Between instruction
sets and thread counts the figures must be identical.
"""

import math

import numpy as np
import pytest

from qdq._core import engine as _engine
from qdq._core.formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, values_as_float64
from qdq._core.stats import ErrorStats, TensorErrorStats

FORMATS = [FLOAT16, BFLOAT16, FLOAT32, FLOAT64]
# around a piece (32768) and the 8 lanes: empty, tails, several pieces
SIZES = [0, 1, 7, 8, 9, 63, 1000, 32767, 32768, 32769, 70001]
SUM_REL = 1e-10  # float64 sums of non-negative terms, in another order


def storage(values, fmt):
    """float64 values -> the kernels' storage type (bfloat16 by truncation, keeping NaN)."""
    if fmt is FLOAT16:
        return values.astype(np.float16).view(np.uint16)
    if fmt is BFLOAT16:
        return (values.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return values.astype(fmt.storage)


def random_bits(rng, n, fmt):
    """Every kind of value: random bit patterns (NaN, inf, subnormals, zeros of both signs)."""
    dtype = np.dtype(fmt.storage)
    raw = rng.integers(0, 256, n * dtype.itemsize, dtype=np.uint8)
    return raw.view(dtype).copy()


def pairs(rng, n, fmt, kind):
    if kind == "bits":
        return random_bits(rng, n, fmt), random_bits(rng, n, fmt)
    x = rng.standard_normal(n) * 4
    y = np.round(x * 8) / 8  # an op-like output: a step of 1/8
    for arr, share in ((x, 0.02), (y, 0.02)):
        arr[rng.random(n) < share] = np.nan
        arr[rng.random(n) < share] = np.inf
        arr[rng.random(n) < share] = -np.inf
    return storage(x, fmt), storage(y, fmt)


def reference(xs, ys, fmt, lo=None, hi=None):
    s = ErrorStats()
    bound = None if lo is None else np.array([lo], np.float64).reshape(1, 1, 1)
    with np.errstate(over="ignore", invalid="ignore"):  # huge squares: inf; NaN casts
        s.add(values_as_float64(xs, fmt), values_as_float64(ys, fmt), bound,
              None if hi is None else np.array([hi], np.float64).reshape(1, 1, 1))
    return (s.nan, s.clipped, s.nonfinite_out, s.finite_pairs, s.max_abs_error, s.signal,
            s.noise)


def assert_figures(got, want):
    assert got[:5] == want[:5]
    assert got[5] == pytest.approx(want[5], rel=SUM_REL, abs=0)
    assert got[6] == pytest.approx(want[6], rel=SUM_REL, abs=0)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
@pytest.mark.parametrize("kind", ["bits", "values"])
def test_against_float64_reference_every_isa(isa, fmt, kind):
    rng = np.random.default_rng([fmt.code, len(kind), isa])
    for n in SIZES:
        xs, ys = pairs(rng, n, fmt, kind)
        assert_figures(_engine.error_stats(xs, ys, fmt, nthreads=1), reference(xs, ys, fmt))


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_clipped_count(isa, fmt):
    rng = np.random.default_rng(fmt.code)
    xs, ys = pairs(rng, 40001, fmt, "values")
    got = _engine.error_stats(xs, ys, fmt, -2.0, 3.0, nthreads=1)
    want = reference(xs, ys, fmt, -2.0, 3.0)
    assert want[1] > 1000
    assert_figures(got, want)


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda f: f.name)
def test_same_bits_every_isa_and_thread_count(fmt):
    rng = np.random.default_rng(7)
    xs, ys = pairs(rng, 5 * 32768 + 13, fmt, "values")
    seen = set()
    try:
        for level in range(_engine.isa_available() + 1):
            _engine.set_isa(level)
            for nt in (1, 2, 3, 8):
                seen.add(_engine.error_stats(xs, ys, fmt, nthreads=nt))
    finally:
        _engine.set_isa(-1)
    assert len(seen) == 1


def test_edge_values():
    big = np.finfo(np.float64).max
    x = np.array([0.0, -0.0, 1.0, big, -big, 1.0, np.inf, np.nan, 2.0, 5e-324])
    y = np.array([-0.0, 0.0, np.inf, -big, big, np.nan, np.inf, 1.0, 2.0, 0.0])
    got = _engine.error_stats(x, y, FLOAT64, nthreads=1)
    # x = +-big against -+big: the error overflows to inf, and so does its square
    assert got == reference(x, y, FLOAT64)
    assert got[:5] == (1, 0, 2, 6, math.inf) and got[6] == math.inf
    h = np.array([0x7bff, 0x0001, 0x8001, 0x7c00, 0xfc00, 0x7e00], np.uint16)  # float16
    o = np.array([0x7c00, 0x0000, 0x8000, 0x7c00, 0x3c00, 0x3c00], np.uint16)
    got = _engine.error_stats(h, o, FLOAT16, nthreads=1)
    assert got == reference(h, o, FLOAT16)
    assert got[:5] == (1, 0, 1, 2, 2.0 ** -24)


def test_tensor_stats_blocks_and_threads():
    """Counts and the maximum do not depend on the blocks; the sums only in their order."""
    rng = np.random.default_rng(3)
    xs, ys = pairs(rng, 300_000, FLOAT16, "values")
    whole = TensorErrorStats(FLOAT16)
    whole.add(xs, ys)
    want = reference(xs, ys, FLOAT16)
    for cuts in ([1, 50_000, 150_001], [32768 * 3], list(range(0, 300_000, 77_777))):
        a, b = TensorErrorStats(FLOAT16, nthreads=2), TensorErrorStats(FLOAT16, nthreads=1)
        edges = [0] + cuts + [xs.size]
        for k, (i, j) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
            (a if k % 2 else b).add(xs[i:j], ys[i:j])
        a.merge(b)
        t = a.total
        assert_figures((t.nan, t.clipped, t.nonfinite_out, t.finite_pairs, t.max_abs_error,
                        t.signal, t.noise), want)
        assert a.elements == xs.size and a.nan == whole.nan
        assert a.sqnr_db() == pytest.approx(whole.sqnr_db(), rel=1e-12)


def test_tensor_stats_bad_blocks():
    s = TensorErrorStats(FLOAT32)
    with pytest.raises(ValueError, match="3 inputs but 2 outputs"):
        s.add(np.zeros(3, np.float32), np.zeros(2, np.float32))
    s.add(np.zeros((4, 3), np.float32)[:, ::2], np.ones((4, 2), np.float32))  # strided: copied
    assert s.elements == 8 and s.max_abs_error == 1.0 and s.sqnr_db() == -math.inf
    empty = TensorErrorStats(FLOAT32)
    empty.add(np.zeros(0, np.float32), np.zeros(0, np.float32))
    assert empty.elements == 0 and math.isnan(empty.sqnr_db())
