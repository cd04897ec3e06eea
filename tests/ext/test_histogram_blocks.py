"""The histogram kernel's block path (blocks free of NaN and inf) against the definition.

Blocks of ``_histkernel.BLOCK`` elements holding no NaN or inf take the vectorised path
(the AVX2 or AVX-512 loops where the CPU has them, else the portable ones); these tests
feed such blocks in every exponent regime and compare the loops of every instruction-set
level the CPU has (the ``isa`` fixture) with the exact counts and the exact min/max.
"""

from __future__ import annotations

import numpy as np
import pytest
from _hist_cases import floor_counts, fmt_name, make, ref_counts
from _util import bits, run_python, values

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
            k, counts = floor_counts(vals, 64, K_FLOOR[fmt_name(case)])
            assert t.exponent == k and (t.counts == counts).all(), (n, sp)
            assert t.nan_count == np.isnan(vals).sum(), (n, sp)
            if np.isnan(vals).all():
                continue
            mn, mx = qdq.compute_range(x, bfloat16_bits=b)
            lo, hi = t.range("minmax")
            assert bits(lo) == bits(mn) and bits(hi) == bits(mx), (n, sp)


def _patterns(case: str, pick: str, limit: float, rng) -> tuple[np.ndarray, bool]:
    """Every finite 16-bit pattern below limit in magnitude (zeros of both signs,
    subnormals, every bin edge of both sides), in pattern order or shuffled, or one sign."""
    u = np.arange(1 << 16, dtype=np.uint16)
    b = case == "bfloat16_bits"
    v = values(u if b else u.view(np.float16), b)
    keep = np.isfinite(v) & (np.abs(v) < limit)
    if pick == "negative":
        keep &= (u >> 15) == 1
    elif pick == "positive":
        keep &= (u >> 15) == 0
    u = u[keep]
    if pick == "shuffled":
        u = u[rng.permutation(u.size)]
    return (u if b else u.view(np.float16)), b


@pytest.mark.parametrize("case", ("float16", "bfloat16_bits"))
@pytest.mark.parametrize("pick", ["in_order", "shuffled", "negative", "positive"])
@pytest.mark.parametrize("bins", [2048, 64, 16])
def test_every_pattern_near_the_window(case, pick, bins, isa):
    # With the largest magnitude just below 8, the central bins [-8, 8) of every bin count
    # lie in the bottom binades, where every pattern in turn lands in them, on their edges
    # (the negative side closes its bins at -j * 2**k) or just outside; blocks of one sign
    # (in pattern order: the positive values, then the negative ones) and of mixed signs
    # check the min and the max (-0.0 below +0.0) as well as the counts.
    x, b = _patterns(case, pick, 8.0, np.random.default_rng(15))
    t = qdq.HistogramTracker(bins=bins, bfloat16_bits=b).update(x)
    k, counts = floor_counts(values(x, b), bins, K_FLOOR[fmt_name(case)])
    assert t.exponent == k and (t.counts == counts).all()
    mn, mx = qdq.compute_range(x, bfloat16_bits=b)
    lo, hi = t.range("minmax")
    assert bits(lo) == bits(mn) and bits(hi) == bits(mx)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("zeros", ["negative", "positive", "both"])
def test_blocks_of_zeros_and_one_sign(case, zeros, isa):
    # Whole blocks of zeros of one sign with small values of one sign: the min and the
    # max of a block come from its zeros as often as from its values.
    rng = np.random.default_rng(16)
    blk = _histkernel.BLOCK
    z = {"negative": [-0.0], "positive": [0.0], "both": [0.0, -0.0]}[zeros]
    for sign in (1.0, -1.0):
        v = rng.choice(z, 3 * blk + 45)
        v[rng.choice(v.size, 20, replace=False)] = sign * rng.uniform(0.01, 3.0, 20)
        for w in (v, np.array(rng.choice(z, 3 * blk + 45))):
            x, b = make(case, w)
            t = qdq.HistogramTracker(bins=2048, bfloat16_bits=b).update(x)
            vals = values(x, b)
            k, counts = ref_counts(vals, 2048, K_FLOOR[fmt_name(case)])
            assert t.exponent == k and (t.counts == counts).all(), (sign, zeros)
            mn, mx = qdq.compute_range(x, bfloat16_bits=b)
            lo, hi = t.range("minmax")
            assert bits(lo) == bits(mn) and bits(hi) == bits(mx), (sign, zeros)



@pytest.mark.parametrize("case", CASES)
def test_a_zero_extreme_whose_sign_comes_late(case, isa):
    # Values of one sign whose first zeros are of that sign and a zero of the other sign
    # comes late in each block: the min (max) is that late -0.0 (+0.0). Floating-point
    # min/max instructions keep the first of two zeros.
    blk = _histkernel.BLOCK
    for sign in (1.0, -1.0):
        v = sign * np.random.default_rng(18).uniform(0.01, 3.0, 3 * blk + 45)
        for start in range(0, v.size - 1100, blk):
            v[start:start + 16] = sign * 0.0
            v[start + 1001] = -sign * 0.0
        x, b = make(case, v)
        t = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(x)
        mn, mx = qdq.compute_range(x, bfloat16_bits=b)
        lo, hi = t.range("minmax")
        assert bits(lo) == bits(mn) and bits(hi) == bits(mx), sign
        m = np.asarray(mn if sign > 0 else mx).astype(np.float64)
        assert m == 0 and np.signbit(m) == (sign > 0), sign
        k, counts = ref_counts(values(x, b), 64, K_FLOOR[fmt_name(case)])
        assert t.exponent == k and (t.counts == counts).all(), sign


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("where", [5, 31, 32, 1000, 2047, 2048 + 40])
@pytest.mark.parametrize("bins", [16, 64])
def test_the_extreme_of_a_later_block_of_one_sign(case, where, bins, isa):
    # All-negative data whose max (all-positive data whose min) sits in a later block, at
    # a position in a vector, at the end of one, or in the last block's tail: the block's
    # min and max are read differently when its elements share a sign, and the first
    # block (binned at the smallest exponent before it grows) does not hold the answer.
    # Few bins keep most elements in the central bins the vector loops count in registers.
    rng = np.random.default_rng(17)
    blk = _histkernel.BLOCK
    for sign in (-1.0, 1.0):
        v = sign * np.abs(rng.standard_t(3, 2 * blk + 2048 + 45))
        v[blk + where] = sign * 2.0 ** -20
        x, b = make(case, v)
        t = qdq.HistogramTracker(bins=bins, bfloat16_bits=b).update(x)
        mn, mx = qdq.compute_range(x, bfloat16_bits=b)
        lo, hi = t.range("minmax")
        assert bits(lo) == bits(mn) and bits(hi) == bits(mx), sign
        assert (mx if sign < 0 else mn) == sign * 2.0 ** -20
        k, counts = ref_counts(values(x, b), bins, K_FLOOR[fmt_name(case)])
        assert t.exponent == k and (t.counts == counts).all(), sign


# Run in a child: a call that left the rounding toward -inf behind makes Python itself hang
# (its float parsing and printing assume rounding to nearest), which the timeout turns into
# a failure. The child bins the arrays the test saved (argv[1]: a .npz of case -> array,
# argv[2]: the cases with bfloat16 bits) at every level.
ROUNDING_CHILD = r"""
import sys
import numpy as np, qdq
from qdq._core import engine
one, part = np.float32(1.0), np.float32(0.75 * 2.0 ** -23)  # 1 +- part: a tie-free rounding
up, down = np.float32(1.0 + 2.0 ** -23), np.float32(-1.0 - 2.0 ** -23)
data = np.load(sys.argv[1])
bits = sys.argv[2].split(",")
bad = []
for level in range(engine.isa_available() + 1):
    engine.set_isa(level)
    for case in data.files:
        with qdq.num_threads(1):
            qdq.HistogramTracker(bins=64, bfloat16_bits=case in bits).update(data[case])
        if not (one + part == up and -one - part == down):
            bad.append(f"level {level} {case}")
print("ok" if not bad else "changed: " + ", ".join(bad))
"""


def test_the_caller_keeps_its_rounding(tmp_path):
    # The AVX2 passes round toward -inf inside (the floor in the conversion); the caller's
    # rounding (to nearest) must be back after the call, on the calling thread, at every
    # level and for every format.
    v = np.random.default_rng(17).standard_t(3, 3 * _histkernel.BLOCK + 5)
    arrays, bits16 = {}, []
    for case in ("float16", "bfloat16_bits", "float32", "float64"):
        arrays[case], b = make(case, v)
        if b:
            bits16.append(case)
    np.savez(tmp_path / "data.npz", **arrays)
    r = run_python(["-c", ROUNDING_CHILD, tmp_path / "data.npz", ",".join(bits16)], tmp_path,
                   timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)
