"""Memory layouts, outputs, threads and the kernels' internal code paths."""

import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, make_dtype

import qdq
from qdq import _reference

FORMATS = ["float16", "bfloat16", "float32", "float64"]


def _data(shape, name, seed=0, nan=False):
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * 3
    if nan:
        v.ravel()[rng.integers(0, v.size, max(1, v.size // 50))] = np.nan
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    return v.astype(make_dtype(name))


def _check(x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = qdq.quantize_and_dequantize(x, **kw)
        expected = _reference.quantize_and_dequantize(x, **kw)
    assert_bits_equal(got, expected)
    return got


# Shapes chosen to reach each path of the compiled per-channel code:
# per tensor; channels last (lanes); post < 16 (interleaved, "expanded");
# C * threads above the partial-array limit (channels split between threads);
# few channels with long rows (per-thread partial ranges).
PATHS = [
    ((1 << 20,), None),
    ((512, 2048), 1),
    ((512, 2048), -1),
    ((2048, 512), 0),
    ((300, 700, 3), 1),
    ((40000, 20), 0),
    ((4, 40000), 1),
    ((3, 1 << 18), 0),
    ((1 << 16, 3, 5), 1),
    ((2, 3, 4, 5000), 2),
]


@pytest.mark.parametrize("shape, axis", PATHS, ids=str)
@pytest.mark.parametrize("name", FORMATS)
def test_paths_thread_counts_and_reference(shape, axis, name):
    x = _data(shape, name, nan=True)
    results = []
    for n in (1, 2, 3):
        with qdq.num_threads(n):
            results.append(_check(x, axis=axis, num_bits=6))
            mn, mx = qdq.compute_range(x, axis)
            results.append(np.asarray(mn).astype(np.float64))
    for i in range(2, len(results)):
        assert_bits_equal(results[i], results[i % 2])


@pytest.mark.parametrize("name", FORMATS)
def test_range_given_per_channel_large(name):
    x = _data((700, 300), name, seed=1)
    lo = -np.linspace(0.5, 4, 300)
    hi = np.linspace(0.1, 5, 300)
    _check(x, input_min=lo, input_max=hi, range_given=True, axis=1, round_mode="HALF_UP")
    _check(x.T, input_min=lo, input_max=hi, range_given=True, axis=0)


def test_fortran_order_stays_fortran():
    x = np.asfortranarray(_data((300, 200), "float32"))
    out = _check(x, axis=0)
    assert out.flags.f_contiguous
    _check(x, axis=1)


def test_in_place():
    x = _data((1000, 37), "float32")
    expected = _reference.quantize_and_dequantize(x, axis=1)
    res = qdq.quantize_and_dequantize(x, axis=1, out=x)
    assert res is x
    assert_bits_equal(x, expected)


def test_in_place_16bit_views():
    x = _data((4096,), "float16")
    expected = _reference.quantize_and_dequantize(x)
    qdq.quantize_and_dequantize(x, out=x)
    assert_bits_equal(x, expected)


def test_partial_overlap_matches_numpy_semantics():
    """out overlapping the input is computed as if from a copy (like ufuncs)."""
    base = _data((5000,), "float32")
    x, out = base[:4000], base[1000:]
    expected = _reference.quantize_and_dequantize(x.copy())
    qdq.quantize_and_dequantize(x, out=out)
    assert_bits_equal(base[1000:], expected)
    base = _data((60, 80), "float64")
    x, out = base[:, :40], base[:, 20:60]
    expected = _reference.quantize_and_dequantize(x.copy(), axis=1)
    qdq.quantize_and_dequantize(x, axis=1, out=out)
    assert_bits_equal(base[:, 20:60], expected)


def test_out_layout_differs_from_input():
    x = _data((64, 48), "float32")
    out = np.empty((48, 64), np.float32).T  # Fortran order
    qdq.quantize_and_dequantize(x, axis=0, out=out)
    assert_bits_equal(out, _reference.quantize_and_dequantize(x, axis=0))


def test_read_only_memmap(tmp_path):
    x = _data((1000, 10), "float32")
    path = tmp_path / "x.npy"
    np.save(path, x)
    m = np.load(path, mmap_mode="r")
    assert not m.flags.writeable
    assert_bits_equal(qdq.quantize_and_dequantize(m, axis=1),
                      _reference.quantize_and_dequantize(x, axis=1))
    mn, mx = qdq.compute_range(m)
    assert mn == x.min() and mx == x.max()


def test_byteswapped_input_gives_native_output():
    x = _data((333,), "float32")
    swapped = x.astype(">f4")
    out = qdq.quantize_and_dequantize(swapped)
    assert out.dtype == np.dtype("=f4")
    assert_bits_equal(out, _reference.quantize_and_dequantize(x))
    # out may be byte-swapped itself; values are stored in its byte order
    out2 = np.empty(333, ">f4")
    qdq.quantize_and_dequantize(x, out=out2)
    assert_bits_equal(out2.astype("=f4"), out)


def test_broadcast_zero_stride_input():
    x = np.broadcast_to(np.float32(2.5), (100, 7))
    _check(x)
    row = np.broadcast_to(np.linspace(-1, 1, 7, dtype=np.float32), (100, 7))
    _check(row, axis=1)
    _check(row, axis=0)


def test_non_contiguous_deep_blocks():
    """Blocks of the slow path cut at every depth of a 4-D strided array."""
    from qdq._core import arrays as _arrays

    x = _data((6, 5, 40, 30), "float64")[:, ::2, ::3, 1::2]
    old = _arrays.set_block_items(None)
    try:
        for items in (1, 7, 64, 1000, 1 << 20):
            _arrays.set_block_items(items)
            for axis in (None, 0, 1, 2, 3):
                _check(x, axis=axis, num_bits=5)
    finally:
        _arrays.set_block_items(old)


def test_threads_api():
    previous = qdq.get_num_threads()
    with qdq.num_threads(1):
        assert qdq.get_num_threads() == 1
    assert qdq.get_num_threads() == previous
    assert isinstance(qdq.openmp_enabled(), bool)
    old = qdq.set_num_threads(None)
    assert old == previous
