"""SPEC section 3 (observed TensorFlow behaviour), one test each, plus the
public helpers compute_range and quantization_params."""

import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, bits

import qdq

F32 = np.float32


def qdq32(x, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return qdq.quantize_and_dequantize(np.asarray(x, F32), *args, **kw)


def test_seed_examples():
    p = qdq.quantization_params(-10.0, 5.0, F32)
    assert p.scale == F32(12.8) and p.max_range == F32(9.921875) and p.min_range == F32(-10)
    p = qdq.quantization_params(-10.0, 10.0, F32)
    assert p.scale == F32(12.7) and p.min_range == F32(-128) * (F32(10) / F32(127))
    assert np.float32(p.min_range) == F32(-10.07874)


def test_one_bit_signed_narrow_is_all_inf():
    assert_bits_equal(qdq32([-1, 2, 0.5], num_bits=1, narrow_range=True),
                      np.array([-np.inf, np.inf, np.inf], F32))


def test_unsigned_negative_data_is_garbage_with_a_warning():
    with pytest.warns(RuntimeWarning, match="signed_input=False with negative data"):
        out = qdq.quantize_and_dequantize(np.array([-1, -0.3], F32), signed_input=False)
    assert_bits_equal(out, np.array([4.0033218e+35, 1.2009965e+35], F32))


def test_inf_in_data_makes_everything_nan():
    assert np.isnan(qdq32([1, np.inf, -2])).all()
    assert np.isnan(qdq32([1, -np.inf, -2])).all()


def test_infinite_given_bound_makes_everything_nan():
    assert np.isnan(qdq32([-3, 0.5, 1, 2], -np.inf, 1.0, range_given=True)).all()


def test_all_zero_empty_and_0d():
    assert_bits_equal(qdq32(np.zeros(7)), np.zeros(7, F32))
    assert qdq32(np.zeros((0, 3))).shape == (0, 3)
    assert qdq32(np.zeros((2, 0)), axis=1).shape == (2, 0)
    out = qdq32(np.array(-3.5))
    assert out.shape == () and isinstance(out, np.ndarray) and out == F32(-3.5)


@pytest.mark.parametrize("c", [3.0, -1.7, 1e-3, 123456.0, -0.1])
def test_constant_comes_back_exactly(c):
    assert_bits_equal(qdq32(np.full(5, c)), np.full(5, c, F32))


def test_unsigned_ignores_input_min_beyond_the_check():
    out = qdq32([-3, -0.2, 0.4, 1, 3], -5.0, 1.0, signed_input=False, range_given=True)
    assert out.min() == 0 and out.max() == 1
    assert_bits_equal(out, qdq32([-3, -0.2, 0.4, 1, 3], 0.0, 1.0, signed_input=False,
                                 range_given=True))


def test_one_bit_signed_gives_q_plus_one():
    assert_bits_equal(qdq32([-1, -0.4, 0, 0.4, 1], num_bits=1),
                      np.array([-1, -0.0, 0, 0, 1], F32))


def test_per_channel_spec_example():
    x = np.arange(12, dtype=F32).reshape(3, 4) - 5
    expected = np.array([[-5, -4, -2.992126, -1.984252], [-1.015625, 0, 0.984252, 1.984252],
                         [3.0078125, 4, 5, 6]], F32)
    assert_bits_equal(qdq32(x, axis=1), expected)
    assert_bits_equal(qdq32(x, axis=-1), expected)


def test_negative_zero_is_kept():
    out = qdq32([-0.003, -10, 10])
    assert np.signbit(out[0]) and out[0] == 0


def test_clamp_only_when_range_given():
    # Without a range there is no clamp, so unsigned keeps negatives (garbage, like TF).
    assert qdq32([-0.5, 1.0], signed_input=False)[0] < 0
    # With a range the clamp uses the adjusted range: [-1, 1] signed clamps to [-128/127, 1].
    out = qdq32([-2, -1.005, 2], -1.0, 1.0, range_given=True)
    assert_bits_equal(out, np.array([F32(-128) * (F32(1) / F32(127))] * 2 + [1], F32))


def test_nan_data_passes_the_clamp():
    out = qdq32([np.nan, -2, 0.7, 3], -1.0, 2.0, range_given=True)
    assert np.isnan(out[0]) and not np.isnan(out[1:]).any()


def test_nan_ignored_without_a_range():
    out = qdq32([-1, 2, np.nan])
    assert_bits_equal(out[:2], qdq32([-1, 2]))
    assert np.isnan(out[2])
    assert np.isnan(qdq32([np.nan, np.nan])).all()


def test_half_up_is_floor_of_x_plus_half_in_t():
    x = np.array([7.5, -7.5, 0.49999997, -0.5, 2.5, -2.5], F32)
    out = qdq32(np.append(x, [-128, 127]), round_mode="HALF_UP")[:6]
    assert_bits_equal(out, np.array([8, -7, 1, 0, 3, -2], F32))
    out = qdq32(np.append(x, [-128, 127]))[:6]
    assert_bits_equal(out, np.array([8, -8, 0, -0.0, 2, -2], F32))
    # Near 2^24 the add in float32 moves odd integers.
    big = np.array([8388609, 8388611, -8388609], F32)
    out = qdq32(big, -2.0**25, 2.0**25, num_bits=26, range_given=True, round_mode="HALF_UP")
    assert_bits_equal(out, np.array([8388610, 8388612, -8388608], F32))


def test_qmax_converted_to_t():
    p = qdq.quantization_params(-1.0, 1.0, np.float16, signed_input=False, num_bits=16)
    assert np.isinf(p.qmax) and p.qmax.dtype == np.float16
    p = qdq.quantization_params(-1.0, 1.0, F32, num_bits=61)
    assert p.qmax == F32(2.0**60) and p.code_max == 2**60 - 1


def test_compute_range():
    x = np.array([[1.0, np.nan, -2.0], [np.nan, np.nan, np.nan]])
    assert qdq.compute_range(x) == (-2.0, 1.0)
    mn, mx = qdq.compute_range(x, axis=0)  # one range per row
    assert_bits_equal(mn, np.array([-2.0, np.nan]))
    assert_bits_equal(mx, np.array([1.0, np.nan]))
    mn, mx = qdq.compute_range(x, axis=1)  # one range per column
    assert_bits_equal(mn, np.array([1.0, np.nan, -2.0]))
    mn, mx = qdq.compute_range(np.zeros(0, np.float16))
    assert mn == np.inf and mx == -np.inf and mn.dtype == np.float16
    mn, mx = qdq.compute_range(np.zeros((0, 3), F32), axis=1)
    assert (mn == np.inf).all() and mn.shape == (3,)


def test_compute_range_bfloat16():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([1.5, -3.0, 2.0], ml_dtypes.bfloat16)
    mn, mx = qdq.compute_range(x)
    assert mn.dtype == x.dtype and float(mn) == -3.0 and float(mx) == 2.0
    mn, mx = qdq.compute_range(x.view(np.uint16), bfloat16_bits=True)
    assert mn.dtype == np.float32 and mn == -3.0 and mx == 2.0


def test_bfloat16_array_and_bits_agree():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000).astype(ml_dtypes.bfloat16)
    a = qdq.quantize_and_dequantize(x, num_bits=5)
    b = qdq.quantize_and_dequantize(x.view(np.uint16), num_bits=5, bfloat16_bits=True)
    assert a.dtype == x.dtype and b.dtype == np.uint16
    assert (a.view(np.uint16) == b).all()


def test_quantization_params_per_channel():
    p = qdq.quantization_params([-1.0, -10.0], [1.0, 5.0], np.float64, axis=1)
    assert p.per_channel and p.axis == 1 and p.scale.shape == (2,)
    assert p.scale[1] == 12.8 and p.max_range[1] == 9.921875
    with pytest.raises(ValueError):
        p.scale[0] = 1.0  # read-only
    q = qdq.quantization_params(-10.0, 5.0, np.float64)
    assert not q.per_channel and q.scale == 12.8
    assert q == qdq.quantization_params(-10.0, 5.0, "float64")
    assert q != p


def test_params_dtype_names_and_bfloat16_without_ml_dtypes():
    p = qdq.quantization_params(-1.0, 3.0, "bfloat16", num_bits=4)
    assert p.dtype == "bfloat16" and p.scale.dtype == np.float32
    # 7 / 3 rounded to bfloat16
    assert p.scale == np.float32(2.328125)


def test_alias():
    assert qdq.quantize_and_dequantize_v2 is qdq.quantize_and_dequantize


def test_input_min_rounded_to_t():
    # 0.1 is not a float16 value: the range is rounded before use.
    x = np.array([-0.2, 0.05, 0.3], np.float16)
    a = qdq.quantize_and_dequantize(x, -0.1, 0.1, range_given=True)
    b = qdq.quantize_and_dequantize(x, np.float16(-0.1), np.float16(0.1), range_given=True)
    assert_bits_equal(a, b)


def test_python_lists_and_scalars():
    out = qdq.quantize_and_dequantize([[-1.0, 0.5], [2.0, 0.25]], axis=0)
    assert out.dtype == np.float64 and out.shape == (2, 2)
    assert bits(qdq.quantize_and_dequantize(2.5)).shape == ()
