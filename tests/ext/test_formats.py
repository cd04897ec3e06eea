"""The 16-bit converters over every bit pattern, and rounding values to a format."""

import numpy as np
import pytest
from _util import assert_bits_equal

import qdq
from qdq import _reference
from qdq._core import engine as _engine
from qdq._core import formats as _formats
from qdq._ext import kernels as _kernels
from qdq._ext import testing as _testing_kernels

ALL16 = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)


def _f32_sample():
    """float32 patterns: every high half with low halves at and around the rounding points."""
    highs = np.arange(1 << 16, dtype=np.uint32) << np.uint32(16)
    lows = np.array([0, 1, 0x0FFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x2001, 0x3000, 0x7FFF,
                     0x8000, 0x8001, 0xBFFF, 0xC000, 0xFFFF], dtype=np.uint32)
    rng = np.random.default_rng(1)
    lows = np.concatenate([lows, rng.integers(0, 1 << 16, 8, dtype=np.uint32)])
    return (highs[:, None] | lows[None, :]).ravel().view(np.float32)


def test_f16_to_f32_all_patterns():
    out = np.empty(ALL16.size, np.float32)
    _testing_kernels.f16_to_f32(ALL16, out)
    expected = ALL16.view(np.float16).astype(np.float32)
    assert (out.view(np.uint32) == expected.view(np.uint32)).all()


def test_f16_round_trip_all_patterns():
    widened = np.empty(ALL16.size, np.float32)
    _testing_kernels.f16_to_f32(ALL16, widened)
    back = np.empty(ALL16.size, np.uint16)
    _testing_kernels.f32_to_f16(widened, back)
    assert (back == ALL16).all()


def test_f32_to_f16_matches_numpy():
    v = _f32_sample()
    out = np.empty(v.size, np.uint16)
    with np.errstate(over="ignore"):
        expected = v.astype(np.float16).view(np.uint16)
    _testing_kernels.f32_to_f16(v, out)
    assert (out == expected).all()


def test_bf16_to_f32_all_patterns():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    out = np.empty(ALL16.size, np.float32)
    _testing_kernels.bf16_to_f32(ALL16, out)
    expected = ALL16.view(ml_dtypes.bfloat16).astype(np.float32)
    assert (out.view(np.uint32) == expected.view(np.uint32)).all()


def test_f32_to_bf16_matches_ml_dtypes():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    v = _f32_sample()
    out = np.empty(v.size, np.uint16)
    _testing_kernels.f32_to_bf16(v, out)
    with np.errstate(invalid="ignore"):
        expected = v.astype(ml_dtypes.bfloat16).view(np.uint16)
    assert (out == expected).all()


def test_numpy_side_bf16_bits_match_kernel():
    v = _f32_sample()
    out = np.empty(v.size, np.uint16)
    _testing_kernels.f32_to_bf16(v, out)
    assert (_formats.values_to_bits(v) == out).all()
    assert (_formats.bits_to_values(ALL16).view(np.uint32)
            == (ALL16.astype(np.uint32) << 16)).all()


def _random_f64(n, seed):
    rng = np.random.default_rng(seed)
    mant = rng.random(n) + 1.0
    return np.concatenate([
        mant * np.ldexp(1.0, rng.integers(-160, 140, n)) * rng.choice([-1, 1], n),
        [0.0, -0.0, np.inf, -np.inf, np.nan, 65504.0, 65519.999, 65520.0, 2.0 ** -24,
         2.0 ** -25, 3 * 2.0 ** -26, 2.0 ** -149, 2.0 ** -150, 2.0 ** -133, 2.0 ** -134,
         3.3961e38, 3.4e38, 1e300, 5e-324],
    ])


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32"])
def test_round_to_matches_reference_rounding(name):
    d = _random_f64(20000, 7)
    # values exactly halfway between neighbours of the format, and next to them
    p = _reference.FORMATS[name][0]
    base = _reference.round_to_format(d, name)
    _, e = np.frexp(np.abs(base))
    half = np.ldexp(1.0, np.maximum(e - p, _reference.FORMATS[name][1] - p + 1) - 1)
    d = np.concatenate([d, base + half, base - half, np.nextafter(base + half, np.inf)])
    d = d[np.isfinite(d) | np.isnan(d)]
    got = _formats.round_to(d, _formats.format_named(name)).astype(np.float64)
    expected = _reference.round_to_format(d, name)
    assert_bits_equal(got, expected)


def test_reference_rounding_matches_numpy_casts():
    d = _random_f64(20000, 8)
    with np.errstate(over="ignore"):
        assert_bits_equal(_reference.round_to_format(d, "float16"),
                          d.astype(np.float16).astype(np.float64))
        assert_bits_equal(_reference.round_to_format(d, "float32"),
                          d.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
@pytest.mark.parametrize("params", [
    dict(range_given=True, input_min=-1.0, input_max=1.0),
    dict(range_given=True, input_min=-60000.0, input_max=65504.0, num_bits=16),
    dict(range_given=True, input_min=-3e-5, input_max=2e-5, num_bits=5, round_mode="HALF_UP"),
    dict(range_given=True, input_min=0.0, input_max=300.0, signed_input=False, num_bits=12),
    dict(range_given=True, input_min=-1e30, input_max=1e30, num_bits=3),
    dict(range_given=True, input_min=-2.0, input_max=7.0, narrow_range=True, round_mode="HALF_UP"),
], ids=str)
def test_op_on_every_16bit_pattern(name, params, isa):
    """The whole op (both conversions of the vector path) on all 65,536 inputs."""
    if name == "bfloat16":
        x = ALL16.copy()
        got = qdq.quantize_and_dequantize(x, bfloat16_bits=True, **params)
        expected = _reference.quantize_and_dequantize(x, bfloat16_bits=True, **params)
        assert_bits_equal(got, expected, bfloat16_bits=True)
    else:
        x = ALL16.view(np.float16)
        got = qdq.quantize_and_dequantize(x, **params)
        assert_bits_equal(got, _reference.quantize_and_dequantize(x, **params))


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_range_of_every_16bit_pattern(name, isa):
    x = ALL16.copy()
    rng = np.random.default_rng(3)
    for _ in range(20):
        sub = x[rng.integers(0, x.size, int(rng.integers(1, 200)))]
        if name == "bfloat16":
            got = qdq.compute_range(sub, bfloat16_bits=True)
            expected = _reference.compute_range(sub, bfloat16_bits=True)
        else:
            got = qdq.compute_range(sub.view(np.float16))
            expected = _reference.compute_range(sub.view(np.float16))
        assert_bits_equal(np.asarray(got, np.float64), np.asarray(expected, np.float64))


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
def test_scalar_rounding_matches_array_rounding(name):
    """The compiled scalar rounding (round to odd, then to the format) is a single rounding."""
    fmt = _formats.format_named(name)
    d = _random_f64(3000, 11)
    if name != "float64":
        p, emin, _ = _reference.FORMATS[name]
        base = _reference.round_to_format(d, name)
        _, e = np.frexp(np.abs(base))
        half = np.ldexp(1.0, np.maximum(e - p, emin - p + 1) - 1)
        d = np.concatenate([d, base + half, base - half, np.nextafter(base + half, 0)])
    got = np.array([_kernels.round_value(fmt.code, float(v)) for v in d])
    assert_bits_equal(got, _reference.round_to_format(d, name))


def _bfloat16_cases():
    """Keyword arguments of the op over scales from subnormal to huge, every round mode."""
    rng = np.random.default_rng(19)
    cases = [dict(), dict(round_mode="HALF_UP"),   # the range from the data: no clamp
             dict(range_given=True, input_min=-3e-38, input_max=3e-38),  # 1 / scale is inf
             dict(range_given=True, input_min=-1e-36, input_max=2e-36, num_bits=4),
             dict(range_given=True, input_min=-3.3e38, input_max=3.3e38, num_bits=16)]
    for top, num_bits in [(4e-37, 8), (1e-36, 8), (1.4e-36, 8), (1e-34, 16), (3e-34, 16),
                          (2e-38, 2)]:   # a subnormal scale with a finite inverse
        cases += [dict(range_given=True, input_min=-top, input_max=top, num_bits=num_bits),
                  dict(range_given=True, input_min=-top, input_max=top, num_bits=num_bits,
                       round_mode="HALF_UP")]
    for k in range(40):
        top = float(10.0 ** rng.uniform(-37, 37))
        cases.append(dict(range_given=True, input_min=-top * float(rng.uniform(0.1, 2.0)),
                          input_max=top, num_bits=int(rng.integers(2, 17)),
                          signed_input=bool(k % 3), narrow_range=bool(k % 5 == 1),
                          round_mode=("HALF_TO_EVEN", "HALF_UP")[k % 2]))
    return cases


def test_bfloat16_op_same_bits_on_every_isa():
    """Every instruction-set level gives the baseline's bfloat16 bits exactly, NaN bits
    included: level 3 rounds with the AVX512-BF16 instruction, which keeps NaN payloads and
    flushes subnormals, and must fall back wherever that could show (NaN in a group of 16,
    a subnormal scale). Inputs: every pattern in random order (NaN in some groups), the same
    without NaN (whole arrays on the fast path), odd offsets and lengths (tails)."""
    rng = np.random.default_rng(20)
    every = rng.permutation(ALL16)
    finite = every[(every & 0x7FFF) <= 0x7F80]
    inputs = [every, finite, every[3:-5], finite[1:1000]]
    levels = range(_engine.isa_available() + 1)
    try:
        for kw in _bfloat16_cases():
            for x in inputs:
                got = {}
                for level in levels:
                    _engine.set_isa(level)
                    got[level] = qdq.quantize_and_dequantize(x, bfloat16_bits=True, **kw)
                for level in levels:
                    assert np.array_equal(got[level], got[0]), (level, kw, x.size)
    finally:
        _engine.set_isa(-1)
