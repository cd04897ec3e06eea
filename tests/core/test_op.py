"""The in-memory op's warnings and messages, and compute_range's result types."""

import warnings

import numpy as np
import pytest
from _util import make_dtype

import qdq


@pytest.mark.parametrize("axis", [None, 1])
def test_float16_scale_overflow_warns(axis):
    """A float16 range below qmax / 65504 overflows the scale: inf/NaN out, and a warning."""
    x = np.array([[1e-4, -5e-5], [3e-5, 2e-5]], np.float16)
    with pytest.warns(RuntimeWarning) as record:
        y = qdq.quantize_and_dequantize(x, axis=axis)
    message = " ".join(str(w.message) for w in record)
    assert "float16" in message and "inf" in message and "float32" in message
    assert not np.isfinite(y).all()  # TensorFlow's bits are kept
    # the fix the warning names works
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        z = qdq.quantize_and_dequantize(x.astype(np.float32), axis=axis)
    assert np.isfinite(z).all()


def test_float16_block_scale_overflow_warns():
    # the fused block kernel: the warning names the blocks whose scale overflowed
    x = np.ones((4, 64), np.float16)
    x[1, 32:40] = [1e-4, -5e-5, 3e-5, 2e-5, 0, 0, 1e-5, 0]
    x[1, 40:64] = 0
    with pytest.warns(RuntimeWarning, match=r"float16 scale overflows .* in 1 blocks"):
        y = qdq.quantize_and_dequantize(x, axis=1, block_size=32)
    assert not np.isfinite(y[1, 32:]).any() and np.isfinite(np.delete(y, 1, 0)).all()


@pytest.mark.parametrize("signed, num_bits, narrow", [(True, 8, False), (False, 4, True),
                                                     (True, 2, True), (False, 16, False)])
def test_float16_block_warning_exactly_when_a_scale_overflows(signed, num_bits, narrow):
    # The fused block kernel keeps no scales: the warning looks at the first output of
    # each block, which relies on an overflowed scale making the whole block inf/NaN.
    from qdq._core import engine as _engine
    from qdq._core.formats import FLOAT16
    from qdq._core.validate import OpArgs

    rng = np.random.default_rng(num_bits)
    a = OpArgs(signed, num_bits, False, "HALF_TO_EVEN", narrow)
    for bs in (2, 3, 32):
        for _ in range(30):
            x = (rng.standard_normal((4, 3 * bs)) * 10.0 ** rng.uniform(-9, 1)).astype(
                np.float16)
            x[rng.random(x.shape) < 0.2] = 0
            rows = np.ascontiguousarray(x.reshape(-1, bs)).view(np.uint16)
            lo, hi = _engine.reduce_range(rows, FLOAT16, 0)
            overflow = np.isinf(_engine.compute_params(lo, hi, FLOAT16, a.qmin, a.qmax)[0]
                                .astype(np.float64))
            with warnings.catch_warnings(record=True) as record:
                warnings.simplefilter("always")
                y = qdq.quantize_and_dequantize(x, axis=1, block_size=bs, signed_input=signed,
                                                num_bits=num_bits, narrow_range=narrow)
            assert not np.isfinite(y.reshape(-1, bs)[overflow]).any()
            warned = any("float16 scale overflows" in str(w.message) for w in record)
            assert warned == bool(overflow.any())


def test_no_float16_block_warning_for_non_finite_inputs():
    x = np.linspace(-1, 1, 256, dtype=np.float16).reshape(4, 64)
    x[0, 3], x[2, 40] = np.nan, np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = qdq.quantize_and_dequantize(x, axis=1, block_size=32)
    assert not np.isfinite(y).all()


def test_float16_overflow_warns_through_out_overlap_path():
    x = np.array([1e-4, -5e-5, 3e-5, 0.0], np.float16)
    buf = np.concatenate([x, x])
    with pytest.warns(RuntimeWarning, match="float16 scale overflows"):
        qdq.quantize_and_dequantize(buf[:4], out=buf[1:5])


def test_no_float16_warning_for_ordinary_ranges():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qdq.quantize_and_dequantize(np.linspace(-1, 1, 10, dtype=np.float16))
        qdq.quantize_and_dequantize(np.zeros(4, np.float16))  # scale of a zero range
        qdq.quantize_and_dequantize(np.zeros(0, np.float16))


def test_quantize_with_a_given_range_says_so():
    """The message of codes that do not fit must not claim no range was given."""
    x = np.linspace(-1, 1, 10, dtype=np.float32)
    with pytest.raises(ValueError, match="do not fit the code type int8") as info:
        qdq.quantize(x, -1.0, 1.0, range_given=True, num_bits=10, code_dtype=np.int8)
    assert "without a given range" not in str(info.value)
    assert "narrower code_dtype" in str(info.value)
    with pytest.raises(ValueError, match="without a given range"):
        qdq.quantize(x, signed_input=False, num_bits=8, code_dtype=np.uint8)


@pytest.mark.parametrize("bound", [10**400, -10**400])
def test_huge_python_int_bounds(bound):
    x = np.zeros((3, 2), np.float32)
    lo, hi = min(bound, 0), max(bound, 0)
    with pytest.raises((ValueError, TypeError), match="input_m"):
        qdq.quantize_and_dequantize(x, lo, hi, range_given=True)
    with pytest.raises((ValueError, TypeError), match="input_m"):
        qdq.quantize_and_dequantize(x, [lo, lo], [hi, hi], range_given=True, axis=1)
    with pytest.raises((ValueError, TypeError), match="input_m"):
        qdq.quantize(x, lo, hi, range_given=True)
    with pytest.raises((ValueError, TypeError), match="input_m"):
        qdq.quantization_params(lo, hi, np.float32)


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_compute_range_gives_two_scalars_for_every_layout(name):
    x = np.linspace(-3, 5, 24).astype(make_dtype(name)).reshape(4, 6)
    results = [qdq.compute_range(v) for v in (x, x[:, ::2], x.T, np.asfortranarray(x),
                                                x[::-1], x[0, 0])]
    for r in results:
        assert type(r) is tuple and len(r) == 2
        lo, hi = r
        assert type(lo) is type(hi) is type(x[0, 0])
        assert np.ndim(lo) == 0 and np.ndim(hi) == 0
    assert float(results[0][0]) == -3.0 and float(results[0][1]) == 5.0
    bits = x.view(np.uint16) if name == "bfloat16" else None
    if bits is not None:
        for v in (bits, bits[:, ::2]):
            r = qdq.compute_range(v, bfloat16_bits=True)
            assert type(r) is tuple and len(r) == 2
            lo, hi = r
            assert type(lo) is type(hi) is np.float32
