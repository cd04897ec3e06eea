"""The histogram kernel's block path (blocks free of NaN and inf) against the definition.

Blocks of ``_histkernel.BLOCK`` elements holding no NaN or inf take the vectorised path
(the AVX2 or AVX-512 loops where the CPU has them, else the portable ones); these tests
feed such blocks in every exponent regime and compare the loops of every instruction-set
level the CPU has (the ``isa`` fixture) with the exact counts and the exact min/max.
"""

from __future__ import annotations

import numpy as np
import pytest
from _hist_cases import fmt_name, make, ref_counts
from _util import bits, values

import qdq
from qdq._calibrate.histogram import K_FLOOR
from qdq._core import engine as _engine
from qdq._ext import histogram as _histkernel

CASES = ("float16", "bfloat16", "bfloat16_bits", "float32", "float64")


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
def test_window_turned_off_and_on(case, isa):
    # Spread-out blocks (most elements outside the central bins counted in registers)
    # turn the window off for a while; central blocks after them turn it on again.
    rng = np.random.default_rng(13)
    spread = rng.uniform(-1000, 1000, 40 * _histkernel.BLOCK)
    central = rng.standard_t(3, 40 * _histkernel.BLOCK)
    v = np.concatenate([central[:3000], spread, central, [1000.0]])
    x, b = make(case, v)
    t = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(x)
    k, counts = ref_counts(values(x, b), 64, K_FLOOR[fmt_name(case)])
    assert t.exponent == k and (t.counts == counts).all()


@pytest.mark.parametrize("case", CASES)
def test_blocks_match_the_definition(case, isa):
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
def test_every_level_gives_the_bits_of_level_0(case, axis):
    rng = np.random.default_rng(12)
    v = rng.standard_t(3, 3 * 40000) * 100
    v[rng.choice(v.size, 5, replace=False)] = np.nan
    x, b = make(case, v.reshape(40000, 3) if axis is not None else v)
    res = []
    try:
        for level in range(_engine.isa_available() + 1):
            _engine.set_isa(level)
            res.append(qdq.HistogramTracker(axis, bins=2048, bfloat16_bits=b).update(x))
    finally:
        _engine.set_isa(-1)
    for r in res[1:]:
        assert (r.counts == res[0].counts).all()
        assert (r.exponent == res[0].exponent).all()
        for u, w in zip(r.range("minmax"), res[0].range("minmax"), strict=True):
            assert (bits(u) == bits(w)).all()


@pytest.mark.parametrize("case", ("float16", "bfloat16_bits"))
def test_every_tail_of_a_16_bit_block(case, isa):
    # The AVX-512BW loop reads 32 elements at a time (bfloat16 permuted within 128 bits):
    # runs of every length up to 70 and around a block, each with a NaN, an inf or a value
    # needing a larger exponent in its last 32 elements (every position for runs under 40,
    # every 7th case beyond).
    rng = np.random.default_rng(14)
    blk = _histkernel.BLOCK
    for n in [*range(1, 71), blk - 1, blk, blk + 1, blk + 31, blk + 32, blk + 33]:
        v = rng.standard_t(3, n)
        specials = [None] + [(pos, s) for pos in range(max(0, n - 32), n)
                             for s in (np.nan, np.inf, -300.0)][:: 1 if n < 40 else 7]
        for sp in specials:
            w = v.copy()
            if sp is not None:
                w[sp[0]] = sp[1]
            x, b = make(case, w)
            t = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(x)
            vals = values(x, b)
            fin = vals[np.isfinite(vals)]
            # floor(x / 2**k) is exact in float64 for these (normal, moderate) values
            k = K_FLOOR[fmt_name(case)]
            while fin.size and not np.abs(fin).max() < 32 * 2.0 ** k:
                k += 1
            counts = np.bincount((np.floor(fin * 2.0 ** -k) + 32).astype(np.int64),
                                 minlength=64)
            assert t.exponent == k and (t.counts == counts).all(), (n, sp)
            assert t.nan_count == np.isnan(vals).sum(), (n, sp)
            if np.isnan(vals).all():
                continue
            mn, mx = qdq.compute_range(x, bfloat16_bits=b)
            lo, hi = t.range("minmax")
            assert bits(lo) == bits(mn) and bits(hi) == bits(mx), (n, sp)
