"""The histogram kernel's block path (blocks free of NaN and inf) against the definition.

Blocks of 1024 elements holding no NaN or inf take the vectorised path (the AVX2 loops
where the CPU has them, else the portable ones); these tests feed such blocks in every
exponent regime and compare both loops with the exact counts and the exact min/max.
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import bits, values
from test_histogram import fmt_name, make, ref_counts

import qdq
from qdq import _histkernel
from qdq._histogram import K_FLOOR

CASES = ("float16", "bfloat16", "bfloat16_bits", "float32", "float64")


@pytest.fixture(params=[True, False], ids=["simd", "portable"])
def simd(request):
    old = _histkernel.use_simd(request.param)
    yield request.param
    _histkernel.use_simd(old)


def regimes(case: str, rng) -> dict[str, np.ndarray]:
    """float64 values (5000, no NaN or inf) whose exponent k is small, around 0 and large."""
    f = fmt_name(case)
    tiny = 2.0 ** K_FLOOR[f]
    big = {"float16": 30000.0, "float64": 1e300}.get(f, 1e38)
    t = rng.standard_t(3, 5000)
    out = {
        "around_one": t,  # k <= 0: one exact product and a floor
        "large": t * big / 200,  # k > 0
        "subnormal": np.round(t * 50) * tiny,  # the smallest k (float32: two factors)
        "tiny_and_huge": np.concatenate([[big], -tiny * rng.integers(1, 9, 40), t[:4960]]),
        "zeros": np.where(rng.random(5000) < 0.5, 0.0, -0.0),
        "negative": -np.abs(t) - 1,
        "positive_and_zero": np.where(t > 0, t, 0.0),
        "growing": t * np.repeat(2.0 ** np.arange(5), 1000),  # k grows block by block
    }
    return out


@pytest.mark.parametrize("case", ("float16", "bfloat16_bits", "float32"))
def test_window_turned_off_and_on(case, simd):
    # Spread-out blocks (most elements outside the central bins counted in registers)
    # turn the window off for a while; central blocks after them turn it on again.
    rng = np.random.default_rng(13)
    spread = rng.uniform(-1000, 1000, 40 * 1024)
    central = rng.standard_t(3, 40 * 1024)
    v = np.concatenate([central[:3000], spread, central, [1000.0]])
    x, b = make(case, v)
    t = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(x)
    k, counts = ref_counts(values(x, b), 64, K_FLOOR[fmt_name(case)])
    assert t.exponent == k and (t.counts == counts).all()


@pytest.mark.parametrize("case", CASES)
def test_blocks_match_the_definition(case, simd):
    rng = np.random.default_rng(11)
    for name, v in regimes(case, rng).items():
        x, b = make(case, v)
        t = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(x)
        k, counts = ref_counts(values(x, b), 64, K_FLOOR[fmt_name(case)])
        assert t.exponent == k, name
        assert (t.counts == counts).all(), name
        mn, mx = qdq.compute_range(x, bfloat16_bits=b)
        lo, hi = t.range("minmax")
        assert bits(lo) == bits(mn) and bits(hi) == bits(mx), name


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("axis", [None, 1])
def test_simd_and_portable_loops_agree(case, axis):
    rng = np.random.default_rng(12)
    v = rng.standard_t(3, 3 * 40000) * 100
    v[rng.choice(v.size, 5, replace=False)] = np.nan
    x, b = make(case, v.reshape(40000, 3) if axis is not None else v)
    res = []
    old = _histkernel.use_simd(True)
    try:
        for on in (True, False):
            _histkernel.use_simd(on)
            res.append(qdq.HistogramTracker(axis, bins=2048, bfloat16_bits=b).update(x))
    finally:
        _histkernel.use_simd(old)
    assert (res[0].counts == res[1].counts).all()
    assert (res[0].exponent == res[1].exponent).all()
    for u, w in zip(res[0].range("minmax"), res[1].range("minmax"), strict=True):
        assert (bits(u) == bits(w)).all()


def test_use_simd_reports_the_previous_choice():
    old = _histkernel.use_simd(False)
    try:
        assert _histkernel.use_simd(True) is False
        assert _histkernel.use_simd(True) in (True, False)  # False without AVX2
    finally:
        _histkernel.use_simd(old)
