"""RangeTracker: chunks, merges, state, threads."""

import copy
import json
import pickle
import threading

import numpy as np
import pytest
from _util import assert_bits_equal, sample_data

import qdq


@pytest.mark.parametrize("axis", [None, 0, 2])
def test_tracker_merge_and_state(axis):
    x = sample_data((30, 4, 3), "float32", seed=6)
    a, b, c = qdq.RangeTracker(axis), qdq.RangeTracker(axis), qdq.RangeTracker(axis)
    a.update(x[:10])
    b.update(x[10:17])
    c.update(x[17:])
    whole = qdq.RangeTracker(axis).update(x)
    left = qdq.RangeTracker.from_state(json.loads(json.dumps(a.state_dict())))
    left.merge(b).merge(c)
    right = a.merge(qdq.RangeTracker.from_state(b.state_dict()).merge(c))
    for t in (left, right):
        assert_bits_equal(np.asarray(t.min), np.asarray(whole.min))
        assert_bits_equal(np.asarray(t.max), np.asarray(whole.max))
        assert t.rows == 30 and t.count == x.size
    assert qdq.RangeTracker(axis).merge(whole).state_dict() == whole.state_dict()


def test_tracker_zero_signs_and_nan():
    t = qdq.RangeTracker()
    t.update(np.array([0.0, np.nan]))
    t.update(np.array([-0.0]))
    assert np.signbit(t.min) and not np.signbit(t.max)
    t = qdq.RangeTracker().update(np.array([np.nan, np.nan], np.float32))
    assert np.isnan(t.min) and np.isnan(t.max)
    assert "empty" in repr(qdq.RangeTracker())


def test_tracker_errors():
    t = qdq.RangeTracker().update(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        t.update(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="at least one dimension"):
        qdq.RangeTracker().update(np.float32(1))
    with pytest.raises(ValueError, match="not a RangeTracker state"):
        qdq.RangeTracker.from_state({"min": []})


def test_another_dtype_names_chunk_and_tensor():
    t = qdq.RangeTracker().update(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="a chunk of dtype float16 cannot continue a tensor of "
                                        "dtype float32"):
        t.update(np.zeros((2, 3), np.float16))


@pytest.mark.parametrize("axis", [None, 1])
def test_updates_from_eight_threads_lose_nothing(axis):
    rng = np.random.default_rng(11)
    chunks = [(rng.standard_normal((128, 256)) * rng.uniform(0.5, 2, 256)).astype(np.float32)
              for _ in range(240)]
    whole = np.concatenate(chunks)
    mn, mx = qdq.compute_range(whole, axis)
    for _ in range(6):  # races show in most runs, not all
        t = qdq.RangeTracker(axis)
        errors = []
        barrier = threading.Barrier(8)

        def work(k, t=t, errors=errors, barrier=barrier):
            try:
                barrier.wait()
                for c in chunks[k::8]:
                    t.update(c)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert not errors, errors
        assert t.rows == whole.shape[0] and t.count == whole.size
        assert_bits_equal(np.asarray(t.min), np.asarray(mn))
        assert_bits_equal(np.asarray(t.max), np.asarray(mx))


def test_merges_and_updates_from_threads():
    rng = np.random.default_rng(12)
    chunks = [rng.standard_normal((64, 32)).astype(np.float32) for _ in range(64)]
    total = qdq.RangeTracker(1)
    errors = []

    def work(k):
        try:
            for c in chunks[k::4]:
                total.merge(qdq.RangeTracker(-1).update(c))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    mn, mx = qdq.compute_range(np.concatenate(chunks), 1)
    assert_bits_equal(total.min, mn)
    assert_bits_equal(total.max, mx)


@pytest.mark.parametrize("a, b", [(1, -1), (-1, 1), (0, -2), (-2, 0)])
def test_merge_normalises_the_axis(a, b):
    x = sample_data((10, 4), "float64", seed=9)
    left = qdq.RangeTracker(axis=a).update(x[:6])
    left.merge(qdq.RangeTracker(axis=b).update(x[6:]))
    mn, mx = qdq.compute_range(x, a)
    assert_bits_equal(left.min, mn)
    assert_bits_equal(left.max, mx)
    # an empty tracker of the other spelling merges too, both ways
    assert qdq.RangeTracker(axis=b).merge(left).rows == 10
    left.merge(qdq.RangeTracker(axis=b))
    with pytest.raises(ValueError, match="different axes"):
        left.merge(qdq.RangeTracker(axis=None).update(x))


def test_tracker_pickles():
    """A tracker crosses process boundaries (multiprocessing, Dask) by pickle."""
    x = sample_data((12, 5), "float32", seed=10)
    for axis in (None, 0, 1):
        t = qdq.RangeTracker(axis).update(x[:7])
        for u in (pickle.loads(pickle.dumps(t)), copy.deepcopy(t)):
            u.update(x[7:])
            mn, mx = qdq.compute_range(x, axis)
            assert_bits_equal(np.asarray(u.min), np.asarray(mn))
            assert_bits_equal(np.asarray(u.max), np.asarray(mx))
            u.merge(t)


def _state(axis=1, shape=(2, 3)):
    x = np.arange(float(np.prod(shape))).reshape(shape)
    return qdq.RangeTracker(axis).update(x).state_dict()


@pytest.mark.parametrize("edit", [
    {"min": None}, {"max": ["0x1p0"]}, {"ax": 0}, {"ax": None}, {"ax": 5}, {"axis": 0},
    {"axis": "1"}, {"rest": "ab"}, {"rest": [-3]}, {"format": "int8"}, {"dtype": 5},
    {"format": "float16"}, {"rows": -1}, {"count": 1.5}, {"min": ["zz", "0x0p0", "0x0p0"]},
    {"bfloat16_bits": "no"}, {"qdq_range_tracker": 2},
    "min", "max", "ax", "rest", "format", "dtype", "rows", "axis",
], ids=str)
def test_from_state_checks_every_field(edit):
    state = _state()
    if isinstance(edit, str):
        del state[edit]
    else:
        state.update(edit)
    with pytest.raises((ValueError, TypeError), match="RangeTracker|axis|bfloat16_bits"):
        qdq.RangeTracker.from_state(state)


def test_from_state_round_trips():
    for axis, shape in ((None, (2, 3)), (0, (2, 3)), (1, (2, 3)), (-1, (2, 3, 4))):
        state = json.loads(json.dumps(_state(axis, shape)))
        assert qdq.RangeTracker.from_state(state).state_dict() == state
