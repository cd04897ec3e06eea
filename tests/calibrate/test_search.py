"""The compiled calibration searches (mse, entropy) against today's NumPy ones, bit for bit.

The oracle is ``search_reference.histogram_range``: :mod:`qdq._calibrate.methods` as it
was before the searches were compiled. Histograms are drawn with heavy tails, sparse and
dense, and with every degenerate shape (empty, a single bin, one side only, counts near
2**53 and beyond), for every format, num_bits 1..16 and large ones, signed, unsigned and
narrow grids, per tensor and per channel, bins 16 to 2**16. Every comparison runs at every
instruction-set level the CPU has (the searches' loops have a copy per level, csrc/cpu.h):
``compare`` loops over the levels, the tracker and thread tests take the ``isa`` fixture.
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import search_reference as ref
from _util import assert_bits_equal
from hypothesis import given, settings
from hypothesis import strategies as st

import qdq
from qdq._calibrate.histogram import K_FLOOR
from qdq._calibrate.methods import histogram_range
from qdq._core import engine
from qdq._core.formats import format_named
from qdq._ext import search

# the reference warns where the edges of huge bins overflow the format (as it always did)
pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

FORMATS = ("float16", "bfloat16", "float32", "float64")
#: The largest exponent of each format's finite values (the edges overflow beyond it).
E_MAX = {"float16": 15, "bfloat16": 127, "float32": 127, "float64": 1023}
#: The instruction-set levels this CPU and build have (0 baseline ... 3, csrc/cpu.h).
LEVELS = range(engine.isa_available() + 1)
KINDS = ("t3", "normal", "uniform", "sparse", "single", "spike", "negative", "positive",
         "zero", "empty", "ends", "huge", "near_zero", "flat")


def counts_of(kind: str, bins: int, rng: np.random.Generator) -> np.ndarray:
    """One channel's counts (uint64) of a given shape."""
    h = bins // 2
    c = np.zeros(bins, np.uint64)
    # for many bins keep the data near zero, or the reference's entropy takes minutes
    span = min(h, 2048)
    n = int(rng.integers(1, 4000))
    if kind == "t3":
        pos = rng.standard_t(3, n) * span / rng.uniform(4, 40)
    elif kind == "normal":
        pos = rng.normal(rng.uniform(-0.3, 0.3) * span, span / rng.uniform(3, 20), n)
    elif kind == "uniform":
        pos = rng.uniform(-span, span, n)
    elif kind == "sparse":
        pos = rng.uniform(-span, span, int(rng.integers(1, 12)))
    elif kind == "single":
        pos = np.full(1, rng.uniform(-span, span))
    elif kind == "spike":
        pos = np.concatenate([np.zeros(n), rng.normal(0, span / 8, int(rng.integers(1, 50)))])
    elif kind == "negative":
        pos = -np.abs(rng.standard_t(2, n)) * span / 10 - 1
    elif kind == "positive":
        pos = np.abs(rng.standard_t(2, n)) * span / 10
    elif kind == "zero":
        pos = np.zeros(n)
    elif kind == "empty":
        return c
    elif kind == "ends":  # the first and last bins (the reference takes minutes at 2**16)
        end = h if bins <= 4096 else span
        pos = np.array([-end, end - 1, rng.uniform(-span, span)])
    elif kind == "near_zero":
        pos = rng.integers(-2, 2, n).astype(np.float64)
    elif kind == "flat":  # equal counts over a run of bins: ties between candidates
        lo = int(rng.integers(-span, span))
        c[h + lo:h + int(rng.integers(lo + 1, span + 1))] = rng.integers(1, 100, dtype=np.uint64)
        return c
    else:  # huge: counts near and beyond 2**53 (the float64 sums are no longer exact)
        j = rng.integers(h - span, h + span, int(rng.integers(1, 40)))
        c[j] = rng.integers(1, 1 << int(rng.integers(40, 62)), j.size, dtype=np.uint64)
        return c
    j = np.clip(np.floor(pos).astype(np.int64) + h, 0, bins - 1)
    np.add.at(c, j, np.uint64(1))
    if kind in ("t3", "sparse", "spike") and rng.random() < 0.5:
        c *= rng.integers(1, 1000, bins, dtype=np.uint64)  # heavy-tailed counts
    return c


def hist_of(counts: np.ndarray, k: np.ndarray) -> types.SimpleNamespace:
    """The parts of a tracker's histogram the searches read."""
    return types.SimpleNamespace(counts=np.ascontiguousarray(counts), k=k.astype(np.int64))


def compare(counts, k, fmt, bins, method, num_bits, signed, narrow, round_mode="HALF_TO_EVEN"):
    kw = dict(percentile=99.99, num_bits=num_bits, signed_input=signed, narrow_range=narrow,
              round_mode=round_mode)
    h = hist_of(counts, k)
    with np.errstate(over="ignore"):  # (the reference warns where edges overflow)
        want = ref.histogram_range(h, format_named(fmt), bins, method, **kw)
    msg = f"{method} {fmt} bins={bins} num_bits={num_bits} signed={signed} narrow={narrow}"
    try:
        for level in LEVELS:  # each level's copy of the loops (csrc/search_isa.h)
            engine.set_isa(level)
            got = histogram_range(h, format_named(fmt), bins, method, **kw)
            assert_bits_equal(got[0], want[0], msg=f"{msg} level {level} lo")
            assert_bits_equal(got[1], want[1], msg=f"{msg} level {level} hi")
    finally:
        engine.set_isa(-1)


@st.composite
def cases(draw):
    fmt = draw(st.sampled_from(FORMATS))
    bins = draw(st.sampled_from([16, 18, 34, 64, 130, 256, 1024, 2048, 4096, 1 << 16]))
    signed = draw(st.booleans())
    num_bits = draw(st.one_of(st.integers(1, 16),
                              st.sampled_from([24, 31, 32, 53, 60, 61 if signed else 62])))
    narrow = signed and draw(st.booleans())
    channels = draw(st.integers(1, 4))
    kinds = draw(st.lists(st.sampled_from(KINDS), min_size=channels, max_size=channels))
    seed = draw(st.integers(0, 2**32 - 1))
    # exponents from the format's finest bins to bins whose edges overflow it
    k_hi = E_MAX[fmt] + 2 - int(np.log2(bins // 2))
    ks = draw(st.lists(st.one_of(st.integers(K_FLOOR[fmt], k_hi),
                                 st.sampled_from([K_FLOOR[fmt], 0, -8, k_hi])),
                       min_size=channels, max_size=channels))
    return fmt, bins, signed, num_bits, narrow, kinds, seed, ks


@given(cases(), st.sampled_from(["mse", "entropy"]))
@settings(deadline=None)
def test_search_matches_the_numpy_reference(case, method):
    fmt, bins, signed, num_bits, narrow, kinds, seed, ks = case
    rng = np.random.default_rng(seed)
    counts = np.stack([counts_of(kind, bins, rng) for kind in kinds])
    compare(counts, np.array(ks), fmt, bins, method, num_bits, signed, narrow)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("method", ["mse", "entropy"])
def test_degenerate_histograms(fmt, method):
    rng = np.random.default_rng(5)
    for bins in (16, 2048):
        h = bins // 2
        rows = [np.zeros(bins, np.uint64)]                      # empty (only NaN/inf seen)
        for j in (h, h - 1, 0, bins - 1, h + 3, h - 7):         # one bin: 0, -1, the ends
            r = np.zeros(bins, np.uint64)
            r[j] = 5
            rows.append(r)
        rows.append(np.r_[np.ones(h, np.uint64), np.zeros(h, np.uint64)])  # negative only
        rows.append(np.r_[np.zeros(h, np.uint64), np.ones(h, np.uint64)])  # positive only
        rows.append(np.full(bins, np.uint64(1) << np.uint64(62)))           # the sums wrap
        rows.append(np.full(bins, np.uint64(3)))                            # flat
        rows.append(counts_of("t3", bins, rng))
        counts = np.stack(rows)
        k0 = K_FLOOR[fmt]
        for k in (k0, 0, E_MAX[fmt] - int(np.log2(h)) + 1):
            for num_bits, signed, narrow in ((1, True, False), (1, True, True), (1, False, False),
                                             (2, True, True), (8, True, False),
                                             (8, False, False), (16, True, False),
                                             (61, True, True), (62, False, False)):
                compare(counts, np.full(len(rows), k), fmt, bins, method, num_bits, signed,
                        narrow)


def test_cases_that_catch_a_shortcut():
    # Found by comparing with variants of the compiled searches, whose chosen ranges of these
    # channels differ: a plain sequential sum in place of NumPy's matmul (mse) or of its
    # pairwise sums (entropy), rint(x * (1/d)) in place of rint(x / d) where they differ.
    counts = np.zeros((1, 1024), np.uint64)
    counts[0, 900:1023] = 33
    compare(counts, np.array([-997]), "float64", 1024, "mse", 3, True, True)
    counts = np.zeros((1, 2048), np.uint64)
    counts[0, 113:1504] = 75
    compare(counts, np.array([-50]), "bfloat16", 2048, "mse", 61, True, False)
    counts = np.zeros((1, 1024), np.uint64)
    for j, n in {134: 5573915394096400, 290: 7297051448217894, 399: 8330366548277312,
                 779: 6753353574204126, 852: 7839363166643098, 930: 4187984175571446,
                 953: 3668327549404078}.items():
        counts[0, j] = n
    compare(counts, np.array([1]), "float64", 1024, "entropy", 11, False, False)


@pytest.mark.parametrize("case", FORMATS)
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_tracker_ranges_match_the_reference(case, axis, isa):
    # real data through the tracker, per tensor and per channel: NaN, inf, zeros, subnormals
    from _hist_cases import sample

    rng = np.random.default_rng(3)
    x, b16 = sample(case, 6000, rng, shape=(200, 30))
    t = qdq.HistogramTracker(axis=axis, bins=512, bfloat16_bits=b16).update(x)
    hist = t._join()
    for method in ("mse", "entropy"):
        for num_bits in (3, 8):
            kw = dict(percentile=99.99, num_bits=num_bits, signed_input=True,
                      narrow_range=False, round_mode="HALF_TO_EVEN")
            lo, hi = t.range(method, num_bits=num_bits)
            want = ref.histogram_range(hist, format_named(case), 512, method, **kw)
            assert_bits_equal(np.asarray(lo, np.float64).reshape(-1),
                              want[0].astype(np.float64))
            assert_bits_equal(np.asarray(hi, np.float64).reshape(-1),
                              want[1].astype(np.float64))


@pytest.mark.parametrize("method", ["mse", "entropy"])
def test_results_do_not_depend_on_the_thread_count(method, isa):
    rng = np.random.default_rng(11)
    counts = np.stack([counts_of(str(rng.choice(KINDS)), 1024, rng) for _ in range(37)])
    k = rng.integers(-20, 5, 37)
    h = hist_of(counts, k)
    res = []
    for n in (1, 2, 3, 8):
        with qdq.num_threads(n):
            res.append(histogram_range(h, format_named("float32"), 1024, method,
                                       percentile=99.99, num_bits=4, signed_input=True,
                                       narrow_range=False, round_mode="HALF_TO_EVEN"))
    for lo, hi in res[1:]:
        assert_bits_equal(lo, res[0][0])
        assert_bits_equal(hi, res[0][1])


def test_numpy_loops_found():
    # the searches take NumPy's own float64 matmul and log loops
    assert search.HAVE_NUMPY_LOOPS


def test_kernel_checks_its_arguments():
    counts = np.zeros((3, 64), np.uint64)
    k = np.zeros(3, np.int64)
    lo, hi = np.empty(3), np.empty(3)
    with pytest.raises(ValueError, match="one entry per channel"):
        search.mse(counts, k[:2], 2, -128, 127, lo, hi)
    with pytest.raises(ValueError, match="bins"):
        search.entropy(np.zeros((3, 15), np.uint64), k, 8, -128, lo, hi)
    with pytest.raises(ValueError):  # not C-contiguous
        search.mse(np.zeros((64, 3), np.uint64).T, k, 2, -128, 127, lo, hi)
    # no channel: nothing to do
    empty = np.empty(0)
    engine.search_mse(np.zeros((0, 64), np.uint64), np.zeros(0, np.int64),
                      format_named("float32"), -128, 127)
    search.entropy(np.zeros((0, 64), np.uint64), np.zeros(0, np.int64), 8, -128, empty, empty)
