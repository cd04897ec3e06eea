"""Property tests: qdq against the pure-NumPy reference, bit for bit.

Random dtypes (all four formats, bfloat16 both as ml_dtypes arrays and as
uint16 bits), shapes (0-d and empty included), data with ties, zeros of both
signs, subnormals, inf and NaN, every argument, per tensor and per channel on
any axis, and odd memory layouts (Fortran order, strided, reversed, permuted,
byte-swapped, misaligned) with fresh, separate and in-place outputs.
"""


import numpy as np
from _cases import KINDS, LAYOUTS, SPECIALS, _call, _encode, _format, _layout, cases, data  # noqa: F401
from _util import assert_bits_equal
from hypothesis import assume, given

import qdq
from qdq import _reference


@given(cases())
def test_op_matches_reference(case):
    kind, x, kw, layout, out_mode = case
    bits_mode = kind == "bfloat16_bits"
    expected = _call(_reference.quantize_and_dequantize, x, kw, bits_mode)
    xv = _layout(x, layout)
    if out_mode == "fresh":
        got = _call(qdq.quantize_and_dequantize, xv, kw, bits_mode)
    elif out_mode == "out":
        out = np.empty(x.shape, expected.dtype, order="F" if layout == "C" else "C")
        got = _call(qdq.quantize_and_dequantize, xv, kw, bits_mode, out=out)
        assert got is out
    else:
        got = _call(qdq.quantize_and_dequantize, xv, kw, bits_mode, out=xv)
        assert got is xv
        got = got.astype(got.dtype.newbyteorder("="))
    assert_bits_equal(got, expected, bfloat16_bits=bits_mode)


@given(cases())
def test_op_matches_reference_avx2_and_baseline(case):
    """Every instruction-set level gives the bits of level 0."""
    from qdq._core import engine as _engine

    kind, x, kw, layout, out_mode = case
    bits_mode = kind == "bfloat16_bits"
    results = []
    for level in range(_engine.isa_available() + 1):
        _engine.set_isa(level)
        try:
            results.append(_call(qdq.quantize_and_dequantize, x, kw, bits_mode))
        finally:
            _engine.set_isa(-1)
    for r in results[1:]:
        assert_bits_equal(r, results[0], bfloat16_bits=bits_mode)


@given(cases())
def test_range_matches_reference(case):
    kind, x, kw, layout, _ = case
    bits_mode = kind == "bfloat16_bits"
    axis = kw["axis"]
    xv = _layout(x, layout)
    mn, mx = qdq.compute_range(xv, axis, bfloat16_bits=bits_mode)
    emn, emx = _reference.compute_range(x, axis, bfloat16_bits=bits_mode)
    for got, exp in ((mn, emn), (mx, emx)):
        got = np.asarray(got)
        if kind in ("float16", "float32", "float64"):
            assert got.dtype == np.dtype(kind)
        elif kind == "bfloat16":
            assert got.dtype == x.dtype
        else:
            assert got.dtype == np.float32
        assert_bits_equal(got.astype(np.float64), np.asarray(exp, np.float64))


@given(cases())
def test_params_match_reference(case):
    kind, x, kw, layout, _ = case
    name = _format(kind)
    axis = kw["axis"]
    emn, emx = _reference.compute_range(x, axis, bfloat16_bits=kind == "bfloat16_bits")
    assume(np.all(np.isfinite(emn)) or True)
    p = qdq.quantization_params(np.nan_to_num(emn, nan=0.0), np.nan_to_num(emx, nan=0.0),
                                name, kw["signed_input"], kw["num_bits"], kw["narrow_range"])
    e = _reference.quantization_params(np.nan_to_num(emn, nan=0.0), np.nan_to_num(emx, nan=0.0),
                                       name, kw["signed_input"], kw["num_bits"],
                                       kw["narrow_range"])
    for got, exp in zip((p.scale, p.inverse_scale, p.min_range, p.max_range), e, strict=True):
        assert_bits_equal(np.asarray(got, np.float64).reshape(-1),
                          np.asarray(exp, np.float64).reshape(-1))
