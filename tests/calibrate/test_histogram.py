"""HistogramTracker: exact counts, independence of chunking/order/threads/merges, state."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from _hist_cases import CASES, METHODS, floor_counts, fmt_name, make, ref_counts, sample, split  # noqa: F401
from _util import bits, values

import qdq
from qdq._calibrate.histogram import K_FLOOR


@pytest.mark.parametrize("case", CASES)
def test_counts_match_the_definition(case):
    rng = np.random.default_rng(1)
    x, b = sample(case, 3000, rng)
    t = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(x)
    vals = values(x, b)
    k, counts = ref_counts(vals, 64, K_FLOOR[fmt_name(case)])
    assert t.exponent == k
    assert (t.counts == counts).all()
    assert t.counts.dtype == np.uint64
    assert t.nan_count == np.isnan(vals).sum()
    assert t.posinf_count == np.isposinf(vals).sum()
    assert t.neginf_count == np.isneginf(vals).sum()
    assert (t.edges == np.ldexp(np.arange(-32, 33, dtype=np.float64), k)).all()
    mn, mx = qdq.compute_range(x, bfloat16_bits=b)
    lo, hi = t.range("minmax")
    assert bits(lo) == bits(mn) and bits(hi) == bits(mx)


def _ranges(t: qdq.HistogramTracker) -> list:
    out = []
    for m in METHODS:
        for nb in (4, 8):
            out.extend(np.atleast_1d(r) for r in t.range(m, num_bits=nb))
    return out


def _same(a: qdq.HistogramTracker, b: qdq.HistogramTracker) -> None:
    assert (a.counts == b.counts).all()
    assert bits(a.exponent).tolist() == bits(b.exponent).tolist()
    assert (bits(a.edges) == bits(b.edges)).all()
    for u, v in zip(_ranges(a), _ranges(b), strict=True):
        assert u.dtype == v.dtype and (bits(u) == bits(v)).all()


def _tree_merge(trackers: list, rng) -> qdq.HistogramTracker:
    ts = list(trackers)
    while len(ts) > 1:
        i = int(rng.integers(0, len(ts) - 1))
        ts[i:i + 2] = [ts[i].merge(ts[i + 1])]
    return ts[0]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("axis", [None, 1, -1])
def test_invariant_to_chunking_order_threads_and_merges(case, axis):
    rng = np.random.default_rng(2)
    shape = (5000, 3, 2) if axis is not None else (40000,)
    x, b = sample(case, int(np.prod(shape)), rng, shape=shape)
    one = qdq.HistogramTracker(axis, bins=256, bfloat16_bits=b).update(x)
    old = qdq.get_num_threads()
    try:
        for trial in range(3):
            qdq.set_num_threads(1 + trial % 2)
            perm = rng.permutation(x.shape[0])
            pieces = split(x[perm], rng, int(rng.integers(1, 9)))
            if trial == 0:  # one tracker fed chunk by chunk
                t = qdq.HistogramTracker(axis, bins=256, bfloat16_bits=b)
                for p in pieces:
                    t.update(p)
            else:  # one tracker per chunk, merged along a random tree
                ts = [qdq.HistogramTracker(axis, bins=256, bfloat16_bits=b).update(p)
                      for p in pieces]
                t = _tree_merge(ts, rng)
            _same(t, one)
    finally:
        qdq.set_num_threads(old)


@pytest.mark.parametrize("axis", [None, 1])
def test_threads_on_large_tensor(axis):
    rng = np.random.default_rng(3)
    x = (rng.standard_t(3, 1 << 20) * 10).astype(np.float32)
    x[rng.choice(x.size, 100, replace=False)] = np.nan
    x = x.reshape(256, 8, 512)
    old = qdq.get_num_threads()
    try:
        res = []
        for nt in (1, 2):
            qdq.set_num_threads(nt)
            res.append(qdq.HistogramTracker(axis).update(x))
    finally:
        qdq.set_num_threads(old)
    _same(res[0], res[1])
    assert int(res[0].counts.sum()) == x.size - 100


@pytest.mark.parametrize("case", ("float16", "bfloat16_bits", "float32", "float64"))
@pytest.mark.parametrize("trend", ["growing", "shrinking", "one_spike"])
def test_pieces_that_start_warm(case, trend):
    # With more than one thread, a tensor's pieces after the first ones start at the
    # largest exponent a finished piece reached: data whose magnitude grows, shrinks or
    # jumps once along the tensor puts pieces at exponents far above and below their own;
    # the counts and the exponent are those of one thread and of the definition.
    rng = np.random.default_rng(10)
    n, e = 3 << 19, 6 if case == "float16" else 12  # float16: stay finite
    scale = {"growing": 2.0 ** np.linspace(-e, e, n),
             "shrinking": 2.0 ** np.linspace(e, -e, n),
             "one_spike": np.where(np.arange(n) == n // 3, 2.0 ** e, 1.0)}[trend]
    x, b = make(case, rng.standard_t(3, n) * scale)
    res = []
    for nt in (1, 2, 3):
        with qdq.num_threads(nt):
            res.append(qdq.HistogramTracker(bins=2048, bfloat16_bits=b).update(x))
    for r in res[1:]:
        _same(r, res[0])
    k, counts = floor_counts(values(x, b), 2048, K_FLOOR[fmt_name(case)])
    assert res[0].exponent == k and (res[0].counts == counts).all()


@pytest.mark.parametrize("shape", [(64, 5, 300), (3, 5, 2500), (700, 5, 1)])
def test_per_channel_matches_each_channel(shape):
    rng = np.random.default_rng(4)
    x = rng.standard_normal(shape).astype(np.float32) * np.float32([1, 10, 1e-3, 0, 5e3])[
        None, :, None]
    x[0, 1, 0] = np.nan
    t = qdq.HistogramTracker(axis=1, bins=128).update(x)
    assert t.counts.shape == (5, 128) and t.edges.shape == (5, 129)
    for c in range(5):
        u = qdq.HistogramTracker(bins=128).update(np.ascontiguousarray(x[:, c]))
        assert (t.counts[c] == u.counts).all() and t.exponent[c] == u.exponent
        for m in METHODS:
            lo, hi = t.range(m)
            a, b = u.range(m)
            assert bits(lo[c]) == bits(a) and bits(hi[c]) == bits(b)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("shape", [(2100, 70, 1), (700, 13, 3), (90, 5, 40), (5000, 3, 1)])
def test_short_runs_binned_in_groups_of_channels(case, shape):
    # Runs shorter than a block go through a tile in groups of channels: groups cut short at
    # the end of a thread's channels, rows in several tiles and blocks, one channel a group.
    rng = np.random.default_rng(12)
    x, b = sample(case, int(np.prod(shape)), rng, shape=shape)
    for n in (1, 2, 3):
        with qdq.num_threads(n):
            t = qdq.HistogramTracker(axis=1, bins=64, bfloat16_bits=b).update(x)
        for c in range(shape[1]):
            u = qdq.HistogramTracker(bins=64, bfloat16_bits=b).update(
                np.ascontiguousarray(x[:, c]))
            assert (t.counts[c] == u.counts).all() and t.exponent[c] == u.exponent
            assert bits(t.min[c]) == bits(u.min) and bits(t.max[c]) == bits(u.max)


def test_per_channel_ranges_do_not_depend_on_the_thread_count():
    # mse and entropy spread the channels over qdq's threads
    rng = np.random.default_rng(9)
    x = rng.standard_t(3, (400, 24)) * rng.uniform(0.1, 10, 24)
    t = qdq.HistogramTracker(axis=1, bins=256).update(x)
    for m in METHODS:
        res = []
        for n in (1, 2, 5):
            with qdq.num_threads(n):
                res.append(t.range(m, num_bits=4))
        for lo, hi in res[1:]:
            assert (bits(lo) == bits(res[0][0])).all() and (bits(hi) == bits(res[0][1])).all()


def test_layouts_give_the_same_histogram():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((300, 40))
    ref = qdq.HistogramTracker(axis=1, bins=64).update(x)
    for y in (np.asfortranarray(x), x.astype(">f8"), x[:, ::-1][:, ::-1]):
        _same(qdq.HistogramTracker(axis=1, bins=64).update(y), ref)
        _same(qdq.HistogramTracker(bins=64).update(y), qdq.HistogramTracker(bins=64).update(x))


def test_axis0_channels_concatenate():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((12, 500))
    one = qdq.HistogramTracker(axis=0, bins=32).update(x)
    a = qdq.HistogramTracker(axis=0, bins=32).update(x[:5])
    b = qdq.HistogramTracker(axis=0, bins=32).update(x[5:9]).update(x[9:])
    _same(a.merge(b), one)
    assert one.counts.shape == (12, 32)


def test_zero_only_and_subnormal_data():
    t = qdq.HistogramTracker(bins=16).update(np.zeros(10, np.float32))
    assert t.exponent == K_FLOOR["float32"]
    assert t.counts[8] == 10 and int(t.counts.sum()) == 10
    tiny = np.float64([-5e-324, 5e-324, -1e-320, 0.0])
    t = qdq.HistogramTracker(bins=16).update(tiny)
    k, counts = ref_counts(tiny, 16, K_FLOOR["float64"])
    assert t.exponent == k and (t.counts == counts).all()


@pytest.mark.parametrize("case", CASES)
def test_tiny_negative_with_huge_exponent(case):
    # x / 2**k underflows to -0.0: the element still belongs to bin -1.
    big = {"float16": 60000.0, "float64": 1e300}.get(fmt_name(case), 3e38)
    tiny = 2.0 ** K_FLOOR[fmt_name(case)]
    vals = np.array([big, -tiny, -3 * tiny, tiny, -0.0] + [0.5] * 5000)
    x, b = make(case, vals)
    t = qdq.HistogramTracker(bins=16, bfloat16_bits=b).update(x)
    k, counts = ref_counts(values(x, b), 16, K_FLOOR[fmt_name(case)])
    assert t.exponent == k and (t.counts == counts).all()
    assert t.counts[7] == 2


def test_nan_and_inf_only():
    t = qdq.HistogramTracker(bins=16).update(np.float32([np.nan, np.inf, -np.inf, np.inf]))
    assert int(t.counts.sum()) == 0
    assert (t.nan_count, t.posinf_count, t.neginf_count) == (1, 2, 1)
    assert t.range("minmax") == (-np.inf, np.inf)
    assert all(np.isnan(v) for v in t.range("mse"))
    t = qdq.HistogramTracker(bins=16).update(np.float32([np.nan]))
    assert all(np.isnan(v) for v in t.range("minmax"))


@pytest.mark.parametrize("case", CASES)
def test_state_round_trip_through_json(case):
    rng = np.random.default_rng(6)
    x, b = sample(case, 2000, rng, shape=(1000, 2))
    t = qdq.HistogramTracker(axis=1, bins=64, bfloat16_bits=b).update(x[:600])
    u = qdq.HistogramTracker.from_state(json.loads(json.dumps(t.state_dict())))
    t.update(x[600:])
    u.update(x[600:])
    _same(t, u)
    assert u.dtype == t.dtype


def test_merge_into_empty_and_with_empty():
    x = np.linspace(-3, 3, 100)
    a = qdq.HistogramTracker(bins=32).update(x)
    e = qdq.HistogramTracker(bins=32)
    assert e.merge(a) is e
    _same(e, a)
    _same(a.merge(qdq.HistogramTracker(bins=32)), e)


def test_memory_does_not_grow_with_the_data():
    rng = np.random.default_rng(7)
    block = rng.standard_normal(1 << 18).astype(np.float32)  # 1 MiB

    def chunks():
        for i in range(64):
            yield block * np.float32(1 + i)

    t = qdq.HistogramTracker(bins=2048)
    tracemalloc.start()
    try:
        for c in chunks():
            t.update(c)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # 64 MiB went through
    assert int(t.counts.sum()) == 64 << 18


@pytest.mark.parametrize("bins", [8, 15, 17, 0, -2])
def test_bad_bins(bins):
    with pytest.raises(ValueError, match="bins"):
        qdq.HistogramTracker(bins=bins)


def test_bad_arguments():
    with pytest.raises(TypeError, match="bins"):
        qdq.HistogramTracker(bins=16.0)
    with pytest.raises(TypeError):
        qdq.HistogramTracker().update(np.arange(5))
    with pytest.raises(TypeError):
        qdq.HistogramTracker().update(np.zeros(3, np.complex64))
    with pytest.raises(TypeError, match="bfloat16_bits"):
        qdq.HistogramTracker().update(np.zeros(3, np.uint16))
    t = qdq.HistogramTracker().update(np.zeros(3, np.float32))
    with pytest.raises(TypeError, match="dtype"):
        t.update(np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        qdq.HistogramTracker().update(np.zeros((2, 3))).update(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="no chunk"):
        _ = qdq.HistogramTracker().counts
    with pytest.raises(ValueError, match="no data"):
        qdq.HistogramTracker().update(np.zeros(0)).range()
    with pytest.raises(ValueError, match="method"):
        t.range("kl")
    with pytest.raises(ValueError, match="percentile"):
        t.range(percentile=50)
    with pytest.raises(ValueError, match="percentile"):
        t.range(percentile=100.5)
    with pytest.raises(TypeError, match="merge"):
        t.merge(qdq.RangeTracker())
    with pytest.raises(ValueError, match="merge"):
        t.merge(qdq.HistogramTracker(bins=16).update(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="merge"):
        t.merge(qdq.HistogramTracker().update(np.zeros(3)))
    with pytest.raises(ValueError, match="HistogramTracker state"):
        qdq.HistogramTracker.from_state({"qdq_range_tracker": 1})


def test_kernel_stub_matches_the_module(tmp_path):
    pytest.importorskip("mypy")
    from _util import run_python

    res = run_python(["-m", "mypy.stubtest", "qdq._ext.histogram"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
