"""The op over chunks: qdq.stream and quantize_and_dequantize_chunks."""

import numpy as np
import pytest
from _util import assert_bits_equal, op_quiet, sample_data

import qdq

FORMATS = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("axis", [None, 0, 1, -1, 2])
def test_stream_and_tracker_equal_in_memory(name, axis):
    x = sample_data((23, 5, 4), name, seed=5)
    parts = [x[:1], x[1:9], x[9:9], x[9:]]
    expected = op_quiet(x, axis=axis, num_bits=3, narrow_range=True)
    got = np.concatenate(list(qdq.stream(parts, axis=axis, num_bits=3, narrow_range=True)))
    assert_bits_equal(got, expected)
    got = np.concatenate(list(qdq.stream(lambda: iter(parts), axis=axis, num_bits=3,
                                         narrow_range=True)))
    assert_bits_equal(got, expected)
    t = qdq.RangeTracker(axis)
    for p in parts:
        t.update(p)
    mn, mx = qdq.compute_range(x, axis)
    assert_bits_equal(np.asarray(t.min), np.asarray(mn))
    assert_bits_equal(np.asarray(t.max), np.asarray(mx))
    assert t.params(num_bits=3, narrow_range=True) == qdq.quantization_params(
        mn if name != "bfloat16" else np.asarray(mn, np.float32),
        mx if name != "bfloat16" else np.asarray(mx, np.float32), name, num_bits=3,
        narrow_range=True, axis=None if axis is None else axis % 3)


def test_chunks_with_given_range_and_data_range():
    x = sample_data((50, 6), "float64", seed=7)
    parts = np.array_split(x, 4)
    got = np.concatenate(list(qdq.quantize_and_dequantize_chunks(parts, -1.0, 2.0,
                                                                 round_mode="HALF_UP")))
    assert_bits_equal(got, op_quiet(x, -1.0, 2.0, range_given=True, round_mode="HALF_UP"))
    t = qdq.RangeTracker(axis=0)
    for p in parts:
        t.update(p)
    mn, mx = t.raw()
    got = np.concatenate(list(qdq.quantize_and_dequantize_chunks(parts, mn, mx, axis=0,
                                                                 range_given=False)))
    assert_bits_equal(got, op_quiet(x, axis=0))


def test_chunk_errors():
    with pytest.raises(TypeError, match="one-shot iterator"):
        qdq.stream(iter([np.zeros(3)]))
    with pytest.raises(TypeError, match="one-shot iterator"):
        qdq.stream(c for c in [np.zeros(3)])
    with pytest.raises(TypeError, match="not one array"):
        qdq.stream(np.zeros((3, 3)))
    # a one-shot iterator is fine when the range is given
    out = list(qdq.stream(iter([np.zeros(3)]), -1.0, 1.0, range_given=True))
    assert len(out) == 1
    with pytest.raises(ValueError, match="does not continue"):
        list(qdq.stream([np.zeros((2, 3)), np.zeros((2, 4))]))
    with pytest.raises(ValueError, match="has 3 channels along axis 0"):
        list(qdq.quantize_and_dequantize_chunks([np.zeros((2, 2)), np.zeros((2, 2))],
                                                np.zeros(3), np.ones(3), axis=0))


class _ArrayLike:
    """One tensor that NumPy can convert (as torch, JAX or xarray objects are)."""

    def __array__(self, dtype=None, copy=None):
        return np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)

    def __iter__(self):  # iterating would give its rows
        return iter(np.asarray(self))


def _one_tensors():
    items = [np.zeros((3, 4), np.float32), _ArrayLike(), [[1.0, 2.0], [3.0, 4.0]],
             [(1.0, 2.0), (3.0, 4.0)], [1.0, 2.0, 3.0]]
    try:
        import dask.array as da

        items.append(da.ones((4, 3), chunks=2))
    except ImportError:
        pass
    return items


@pytest.mark.parametrize("obj", _one_tensors(), ids=lambda o: type(o).__name__)
@pytest.mark.parametrize("range_given", [False, True])
def test_one_tensor_is_not_taken_for_chunks(obj, range_given):
    """An array-like (or a list of rows) is one tensor, never iterated as chunks."""
    with pytest.raises(TypeError, match="chunk"):
        list(qdq.stream(obj, -1.0, 1.0, range_given=range_given))
    with pytest.raises(TypeError, match="chunk"):
        list(qdq.quantize_and_dequantize_chunks(obj, -1.0, 1.0))


def test_chunks_need_the_range():
    """Without bounds the chunks would come out all NaN: a TypeError."""
    c = [np.linspace(-1, 1, 10)]
    for range_given in (False, True):
        with pytest.raises(TypeError, match="input_min and input_max are required"):
            qdq.quantize_and_dequantize_chunks(c, None, None, range_given=range_given)
        with pytest.raises(TypeError, match="input_min and input_max are required"):
            qdq.quantize_and_dequantize_chunks(c, -1.0, None, range_given=range_given)


@pytest.mark.parametrize("bound", [10**400, -10**400])
def test_huge_python_int_bound(bound):
    with pytest.raises((ValueError, TypeError), match="input_m"):
        list(qdq.quantize_and_dequantize_chunks([np.zeros(3)], min(bound, 0), max(bound, 0)))
    with pytest.raises((ValueError, TypeError), match="input_m"):
        list(qdq.stream([np.zeros(3)], min(bound, 0), max(bound, 0), range_given=True))


def test_scalar_bounds_per_row_broadcast():
    """Along axis 0 scalar bounds give every row the same range, as the op broadcasts them."""
    x = sample_data((10, 3), "float32", seed=8)
    expected = op_quiet(x, -1.0, 1.0, range_given=True, axis=0)
    for fn in (qdq.stream, qdq.quantize_and_dequantize_chunks):
        kw = {"range_given": True} if fn is qdq.stream else {}
        got = np.concatenate(list(fn(np.array_split(x, 3), -1.0, 1.0, axis=0, **kw)))
        assert_bits_equal(got, expected)


def test_more_row_bounds_than_rows_is_an_error():
    parts = [np.zeros((2, 3)), np.ones((2, 3))]
    with pytest.raises(ValueError, match="5 channels along axis 0 but the chunks had 4 rows"):
        list(qdq.quantize_and_dequantize_chunks(parts, -np.ones(5), np.ones(5), axis=0))
    got = list(qdq.quantize_and_dequantize_chunks(parts, -np.ones(4), np.ones(4), axis=0))
    assert_bits_equal(np.concatenate(got), op_quiet(np.concatenate(parts), -np.ones(4),
                                                    np.ones(4), range_given=True, axis=0))


def test_a_chunk_of_another_dtype_is_named():
    with pytest.raises(TypeError, match="a chunk of dtype float64 cannot continue a tensor of "
                                        "dtype float32"):
        list(qdq.stream([np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float64)]))
    with pytest.raises(ValueError, match="dtype float16 does not continue"):
        list(qdq.quantize_and_dequantize_chunks(
            [np.zeros((2, 3), np.float32), np.zeros((2, 3), np.float16)], -1.0, 1.0))
