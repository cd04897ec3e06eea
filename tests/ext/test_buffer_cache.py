"""Fresh outputs from the buffer cache: same bits, reuse, the limit, no aliasing, threads."""

import gc
import threading

import numpy as np
import pytest
from _util import run_python

import qdq
from qdq._ext import bufcache as _bufcache

MIB = 1 << 20
N = 1 << 19  # elements: 2 MiB of float32, above the cache's 1 MiB threshold


@pytest.fixture(autouse=True)
def _restore_the_cache():
    previous = qdq.set_buffer_cache(0)  # every test starts with an empty cache
    qdq.set_buffer_cache(None)
    yield
    qdq.set_buffer_cache(previous)


def _data(dtype, n=N, seed=0):
    x = np.random.default_rng(seed).standard_normal(n).astype(np.float32) * 3
    x[::97] = np.nan
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return x.astype(ml_dtypes.bfloat16)
    return x.astype(dtype)


def _bits(a):
    return a.view(f"u{a.dtype.itemsize}")


def _address(a):
    return a.__array_interface__["data"][0]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("range_given", [False, True])
def test_bits_are_the_same_with_and_without_the_cache(dtype, axis, range_given):
    x = _data(dtype).reshape(512, -1)
    kw = dict(axis=axis, range_given=range_given)
    if range_given:
        kw.update(input_min=-2.0, input_max=2.5)
    expected = qdq.quantize_and_dequantize(x, out=np.empty_like(x), **kw)
    qdq.set_buffer_cache(0)
    cold = qdq.quantize_and_dequantize(x, **kw)
    qdq.set_buffer_cache(1 << 28)
    warm = [qdq.quantize_and_dequantize(x, **kw) for _ in range(3)]
    del warm[0]  # its buffer goes back to the cache and serves the next call
    warm.append(qdq.quantize_and_dequantize(x, **kw))
    for y in [cold, *warm]:
        assert y.dtype == x.dtype and y.shape == x.shape
        np.testing.assert_array_equal(_bits(y), _bits(expected))


def test_codes_dequantize_and_gradient_use_it_with_the_same_bits():
    x = np.nan_to_num(_data("float32", 4 * N))  # int8 codes of 2 MiB

    def outputs():
        codes, params = qdq.quantize(x, -2.0, 2.0, range_given=True)
        return (codes, qdq.dequantize(codes, params),
                qdq.quantize_and_dequantize_grad(x, x, -2.0, 2.0))

    qdq.set_buffer_cache(0)
    cold = outputs()
    qdq.set_buffer_cache(1 << 28)
    before = _bufcache.reuses()
    for _ in range(2):
        warm = outputs()
        for a, b in zip(cold, warm, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(_bits(a), _bits(b))
        del warm, a, b
    assert _bufcache.reuses() >= before + 3


def test_a_freed_output_serves_the_next_call():
    x = _data("float32")
    y = qdq.quantize_and_dequantize(x)
    address = _address(y)
    before = _bufcache.reuses()
    del y
    assert _bufcache.held()[0] >= x.nbytes
    z = qdq.quantize_and_dequantize(x)
    assert _address(z) == address
    assert _bufcache.reuses() == before + 1
    # an ordinary array that owns its memory, not a view of the cache's
    assert z.base is None and z.flags.owndata and z.flags.writeable and z.flags.c_contiguous


def test_fortran_order_is_kept():
    x = np.asfortranarray(_data("float64").reshape(256, -1))
    y = qdq.quantize_and_dequantize(x)
    assert y.flags.f_contiguous and not y.flags.c_contiguous
    np.testing.assert_array_equal(_bits(y), _bits(qdq.quantize_and_dequantize(
        x, out=np.empty_like(x))))


def test_live_results_never_share_memory():
    xs = [_data("float32", N + k * 1024, seed=k) for k in range(6)]
    held = []
    for rep in range(4):
        for x in xs:
            held.append((x, qdq.quantize_and_dequantize(x)))
        if rep % 2:
            del held[::3]  # free some: their buffers are reused while the others live
            gc.collect()
    spans = sorted((_address(y), _address(y) + y.nbytes) for _, y in held)
    for (_, end), (start, _) in zip(spans[:-1], spans[1:], strict=True):
        assert end <= start
    for x, y in held:
        np.testing.assert_array_equal(_bits(y), _bits(qdq.quantize_and_dequantize(
            x, out=np.empty_like(x))))


def test_the_limit_is_honoured():
    qdq.set_buffer_cache(5 * MIB)
    ys = [qdq.quantize_and_dequantize(_data("float32")) for _ in range(4)]  # 2 MiB each
    del ys
    nbytes, count = _bufcache.held()
    assert nbytes <= 5 * MIB and count == 2
    qdq.set_buffer_cache(3 * MIB)  # lowering it releases the oldest at once
    assert _bufcache.held() == (2 * MIB, 1)
    big = qdq.quantize_and_dequantize(_data("float32", 2 * N))  # 4 MiB: over the limit
    del big
    assert _bufcache.held() == (2 * MIB, 1)
    assert qdq.get_buffer_cache() == 3 * MIB


def test_small_outputs_are_not_cached():
    before = _bufcache.held()
    for _ in range(3):
        qdq.quantize_and_dequantize(np.ones(1000, np.float32))
    assert _bufcache.held() == before


def test_zero_disables_and_releases():
    x = _data("float32")
    y = qdq.quantize_and_dequantize(x)
    expected = _bits(y).copy()
    z = qdq.quantize_and_dequantize(x)
    del z
    assert _bufcache.held()[0] > 0
    limit = qdq.get_buffer_cache()
    assert qdq.set_buffer_cache(0) == limit
    assert _bufcache.held() == (0, 0) and qdq.get_buffer_cache() == 0
    before = _bufcache.reuses()
    for _ in range(3):
        qdq.quantize_and_dequantize(x)
    assert _bufcache.reuses() == before and _bufcache.held() == (0, 0)
    # a result made with the cache outlives it, and its memory goes back to the system
    np.testing.assert_array_equal(_bits(y), expected)
    y[:] = 1.0
    assert (y == 1.0).all()
    del y
    assert _bufcache.held() == (0, 0)


def test_set_buffer_cache_returns_the_previous_limit_and_checks_its_argument():
    assert qdq.set_buffer_cache(7 * MIB) == qdq._core.arrays.DEFAULT_BUFFER_CACHE
    assert qdq.set_buffer_cache(None) == 7 * MIB
    assert qdq.get_buffer_cache() == qdq._core.arrays.DEFAULT_BUFFER_CACHE
    assert 0 < qdq.get_buffer_cache() <= 1 << 30
    with pytest.raises(ValueError, match="at least 0"):
        qdq.set_buffer_cache(-1)
    with pytest.raises(TypeError, match="must be an int"):
        qdq.set_buffer_cache(1.5)
    with pytest.raises(TypeError, match="must be an int"):
        qdq.set_buffer_cache(True)
    with pytest.raises(ValueError, match="at most"):
        qdq.set_buffer_cache(1 << 70)


def test_a_cached_array_can_be_resized_in_place():
    """NumPy's resize reallocates through the handler that allocated the array."""
    x = _data("float32")
    y = qdq.quantize_and_dequantize(x)
    expected = _bits(y).copy()
    y.resize(3 * N, refcheck=False)
    np.testing.assert_array_equal(_bits(y[:N]), expected)
    y.resize(N // 4, refcheck=False)
    np.testing.assert_array_equal(_bits(y), expected[:N // 4])
    del y
    np.testing.assert_array_equal(_bits(qdq.quantize_and_dequantize(x)), expected)


def test_threads_hammering_the_cache():
    qdq.set_buffer_cache(12 * MIB)
    inputs = [_data("float32", N + k * 4096, seed=k) for k in range(4)]
    expected = [_bits(qdq.quantize_and_dequantize(x, out=np.empty_like(x))).copy()
                for x in inputs]
    errors = []

    def work(t):
        try:
            live = []
            for i in range(40):
                k = (t + i) % len(inputs)
                y = qdq.quantize_and_dequantize(inputs[k])
                y_bits = _bits(y)
                live.append((k, y, y_bits.copy()))
                if len(live) > 3:
                    k0, y0, b0 = live.pop(0)
                    # no other thread wrote into a live result
                    if not np.array_equal(_bits(y0), b0) or not np.array_equal(b0, expected[k0]):
                        errors.append(f"thread {t}: result {k0} changed")
                if i % 7 == 0:
                    qdq.set_buffer_cache((4 + i % 3 * 4) * MIB)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(repr(e))

    with qdq.num_threads(1):
        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert not errors
    assert _bufcache.held()[0] <= qdq.get_buffer_cache()


def test_buffer_cache_stub_matches_the_module(tmp_path):
    pytest.importorskip("mypy")
    res = run_python(["-m", "mypy.stubtest", "qdq._ext.bufcache"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("n", [1000, N])
def test_the_lean_path_gives_the_bits_of_the_slab_path(isa, threads, dtype, n):
    """The common call (one tensor, fresh output) against strided input, which takes slabs."""
    x = _data(dtype, n)
    strided = np.repeat(x, 2)[::2]
    assert not strided.flags.c_contiguous
    with qdq.num_threads(threads):
        for kw in ({}, dict(input_min=-2.0, input_max=2.5, range_given=True),
                   dict(signed_input=False, num_bits=4, range_given=True, input_min=0.0,
                        input_max=3.0, round_mode="HALF_UP")):
            lean = qdq.quantize_and_dequantize(x, **kw)
            slab = qdq.quantize_and_dequantize(strided, **kw)
            np.testing.assert_array_equal(_bits(lean), _bits(slab))
