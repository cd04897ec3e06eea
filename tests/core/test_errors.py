"""SPEC section 4: every refused input raises a clear Python exception."""

import numpy as np
import pytest
from _util import assert_bits_equal
from numpy.exceptions import AxisError

import qdq
from qdq import _reference

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)


@pytest.mark.parametrize("signed, bits", [(True, 0), (True, 62), (True, -1), (False, 63),
                                          (False, 0), (True, 2**63), (True, -2**63)])
def test_num_bits_out_of_range(signed, bits):
    top = 61 if signed else 62
    with pytest.raises(ValueError, match=rf"num_bits must be in 1\.\.{top} .*got {bits}"):
        qdq.quantize_and_dequantize(X, signed_input=signed, num_bits=bits)


@pytest.mark.parametrize("bits", [8.0, "8", None, True, np.float32(8)])
def test_num_bits_wrong_type(bits):
    with pytest.raises(TypeError, match="num_bits must be an int"):
        qdq.quantize_and_dequantize(X, num_bits=bits)


@pytest.mark.parametrize("bits", [np.int64(8), np.int32(4), np.uint8(3)])
def test_num_bits_numpy_int_accepted(bits):
    """A NumPy integer is an int: the result is the plain int's, bit for bit."""
    got = qdq.quantize_and_dequantize(X, num_bits=bits)
    assert_bits_equal(got, _reference.quantize_and_dequantize(X, num_bits=int(bits)))
    assert_bits_equal(got, qdq.quantize_and_dequantize(X, num_bits=int(bits)))


@pytest.mark.parametrize("signed, bits", [(True, 1), (True, 61), (False, 1), (False, 62)])
def test_num_bits_at_the_bounds_accepted(signed, bits):
    kw = dict(signed_input=signed, num_bits=bits, range_given=True)
    got = qdq.quantize_and_dequantize(X, -0.5, 0.75, **kw)
    assert_bits_equal(got, _reference.quantize_and_dequantize(X, -0.5, 0.75, **kw))


@pytest.mark.parametrize("lo, hi", [(3.0, -3.0), (np.nan, 1.0), (0.0, np.nan), (1.0, 0.999)])
def test_invalid_range(lo, hi):
    with pytest.raises(ValueError, match="invalid range: input_min .* must be <= input_max"):
        qdq.quantize_and_dequantize(X, lo, hi, range_given=True)


def test_invalid_range_names_both_values():
    with pytest.raises(ValueError, match=r"input_min \(3\.0\).*input_max \(-3\.0\)"):
        qdq.quantize_and_dequantize(X, 3, -3, range_given=True)


def test_invalid_range_per_channel_names_the_channel():
    with pytest.raises(ValueError, match=r"channel 2 of axis 1: input_min\[2\] \(1\.0\)"):
        qdq.quantize_and_dequantize(X, [0, 0, 1, 0], [1, 1, 0.5, 1], range_given=True, axis=1)
    with pytest.raises(ValueError, match="channel 0"):
        qdq.quantize_and_dequantize(X, [np.nan, 0, 0], 1.0, range_given=True, axis=0)


def test_range_rounding_can_make_it_valid():
    # 1.00000001 rounds to the float32 1.0: min == max == 1 is valid. By hand: the max side
    # decides (qmin * min < 0), scale = 127 / 1, inverse = 1 / 127, the adjusted range
    # [-128/127, 1] holds all of X, so the result is rint(x * 127) * (1 / 127) in float32.
    got = qdq.quantize_and_dequantize(X, 1.00000001, 1.0, range_given=True)
    f32 = np.float32
    assert_bits_equal(got, np.rint(X * f32(127)) * (f32(1) / f32(127)))
    assert_bits_equal(got, _reference.quantize_and_dequantize(X, 1.00000001, 1.0,
                                                              range_given=True))


@pytest.mark.parametrize("mode", ["HALF_AWAY_FROM_ZERO", "half_to_even", "", None, 0])
def test_round_mode(mode):
    with pytest.raises(ValueError, match="round_mode must be 'HALF_TO_EVEN' or 'HALF_UP'"):
        qdq.quantize_and_dequantize(X, round_mode=mode)


@pytest.mark.parametrize("axis", [2, -3, 10, 2**40, -2**40])
def test_axis_out_of_range(axis):
    with pytest.raises(AxisError):
        qdq.quantize_and_dequantize(X, axis=axis)
    with pytest.raises(ValueError):  # AxisError is a ValueError
        qdq.compute_range(X, axis=axis)


def test_axis_on_0d():
    with pytest.raises(AxisError):
        qdq.quantize_and_dequantize(np.float32(1.0), axis=0)


@pytest.mark.parametrize("axis", [1.0, "0", True])
def test_axis_wrong_type(axis):
    with pytest.raises(TypeError, match="axis must be an int or None"):
        qdq.quantize_and_dequantize(X, axis=axis)


def test_per_channel_bounds_wrong_length():
    with pytest.raises(ValueError, match="input_min has 3 values but axis 1 has 4 channels"):
        qdq.quantize_and_dequantize(X, [0, 0, 0], [1, 1, 1, 1], range_given=True, axis=1)
    with pytest.raises(ValueError, match="input_max has 5 values but axis 1 has 4 channels"):
        qdq.quantize_and_dequantize(X, 0, np.ones(5), range_given=True, axis=1)
    with pytest.raises(ValueError, match="scalar or 1-D"):
        qdq.quantize_and_dequantize(X, np.zeros((2, 2)), 1, range_given=True, axis=1)
    with pytest.raises(ValueError, match="must be a scalar for a per-tensor range"):
        qdq.quantize_and_dequantize(X, [0.0], [1.0], range_given=True)


@pytest.mark.parametrize("bad", [None, "a", 1j, [1, 2], True])
def test_range_values_wrong_type(bad):
    with pytest.raises((TypeError, ValueError)):
        qdq.quantize_and_dequantize(X, bad, 1.0, range_given=True)


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.int64, np.uint8, np.uint16, np.uint64,
                                   bool, np.complex64, np.complex128, object, np.longdouble,
                                   "U3", "V4", "M8[s]"])
def test_unsupported_input_types(dtype):
    if np.dtype(dtype) == np.float64:  # longdouble == double on some platforms
        pytest.skip("longdouble is float64 here")
    x = np.zeros(3, dtype=dtype)
    with pytest.raises(TypeError, match="supported types: float16, bfloat16"):
        qdq.quantize_and_dequantize(x)
    with pytest.raises(TypeError):
        qdq.compute_range(x)


def test_uint16_needs_the_flag_and_the_flag_needs_uint16():
    with pytest.raises(TypeError, match="bfloat16_bits=True"):
        qdq.quantize_and_dequantize(np.zeros(3, np.uint16))
    with pytest.raises(TypeError, match="bfloat16_bits=True expects uint16"):
        qdq.quantize_and_dequantize(np.zeros(3, np.float32), bfloat16_bits=True)


@pytest.mark.parametrize("name, value", [("signed_input", 1), ("narrow_range", "False"),
                                         ("range_given", None), ("bfloat16_bits", 0)])
def test_flags_must_be_bools(name, value):
    with pytest.raises(TypeError, match=f"{name} must be a bool"):
        qdq.quantize_and_dequantize(X, 0, 1, **{name: value})


def test_bad_out():
    with pytest.raises(ValueError, match="out has shape"):
        qdq.quantize_and_dequantize(X, out=np.empty((4, 3), np.float32))
    with pytest.raises(ValueError, match="out has dtype float64, the result needs float32"):
        qdq.quantize_and_dequantize(X, out=np.empty((3, 4)))
    ro = np.empty((3, 4), np.float32)
    ro.setflags(write=False)
    with pytest.raises(ValueError, match="out is read-only"):
        qdq.quantize_and_dequantize(X, out=ro)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        qdq.quantize_and_dequantize(X, out=[0.0] * 12)


def test_masked_arrays_refused():
    with pytest.raises(TypeError, match="masked arrays"):
        qdq.quantize_and_dequantize(np.ma.masked_array([1.0, 2.0], [0, 1]))


def test_threads_setting_validated():
    with pytest.raises(ValueError):
        qdq.set_num_threads(0)
    with pytest.raises(TypeError):
        qdq.set_num_threads(1.5)


def test_quantization_params_errors():
    with pytest.raises(TypeError):
        qdq.quantization_params(0.0, 1.0, np.int32)
    with pytest.raises(TypeError):
        qdq.quantization_params(0.0, 1.0, "float8")
    with pytest.raises(ValueError, match="num_bits"):
        qdq.quantization_params(0.0, 1.0, np.float32, num_bits=70)
    with pytest.raises(ValueError, match="input_min has 2 values, input_max has 3"):
        qdq.quantization_params([0.0, 1.0], [1.0, 2.0, 3.0], np.float32)


def test_chunk_bytes_validated(tmp_path):
    x = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="chunk_bytes must be at least 1"):
        qdq.quantize_and_dequantize_file(x, tmp_path / "y.npy", chunk_bytes=0)
    with pytest.raises(TypeError, match="chunk_bytes must be an int"):
        qdq.quantize_and_dequantize_file(x, tmp_path / "y.npy", chunk_bytes=1.5)
