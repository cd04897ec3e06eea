"""Block-wise (group-wise) ranges through the public API: ``axis=a, block_size=B``.

Every 1-D slice along ``axis`` is cut into blocks of ``block_size`` elements
from index 0 (the last one shorter when ``block_size`` does not divide the
axis length), and each block is quantized as one channel: its own NaN-ignoring
range, or its given range in ONNX's blocked layout (broadcastable to the
input's shape with ``axis`` replaced by the number of blocks).

The API these tests expect (they are skipped until
``qdq.quantize_and_dequantize`` takes ``block_size``):

- ``qdq.quantize_and_dequantize(x, input_min, input_max, ..., axis=a, block_size=B)``;
  ``block_size=None`` (the default) is the per-channel or per-tensor op.
- ``qdq.compute_range(x, axis, block_size=B)``: (min, max) of the blocked shape.
- ``qdq.quantize(..., axis=a, block_size=B)`` -> (codes, params) and
  ``qdq.dequantize(codes, params)``; the params survive their JSON form.
- ``qdq.quantize_and_dequantize_grad(g, x, input_min, input_max, axis=a, block_size=B)``.

Correctness is bit-exactness: TensorFlow's golden vectors (float32, float64)
and the pure-NumPy reference (all four formats, every layout).
"""

import inspect
import warnings

import numpy as np
import pytest
from _blocks_cases import (
    BLOCK_CASES,
    FORMATS,
    block_case,
    block_cases,
    blocked_ranges,
    blocks,
    quiet,
    range_dtype,
    ref_codes,
    ref_op,
)
from _cases import LAYOUTS, _format, _layout
from _util import assert_bits_equal, assert_equal_but_zero_signs, make_dtype
from hypothesis import given
from hypothesis import strategies as st

import qdq
from qdq import _reference

pytestmark = pytest.mark.skipif(
    "block_size" not in inspect.signature(qdq.quantize_and_dequantize).parameters,
    reason="qdq.quantize_and_dequantize has no block_size parameter yet")


# ---------------------------------------------------------------------------
# TensorFlow's golden vectors (float32, float64), bit for bit.
# ---------------------------------------------------------------------------

def _golden_kw(mn, mx, kw):
    return dict(kw, input_min=mn, input_max=mx)


@pytest.mark.parametrize("case", [c for c in BLOCK_CASES if c["known_difference"] is None],
                         ids=lambda c: c["name"])
def test_golden_matches_tensorflow(case, isa):
    x, mn, mx, kw, expected = block_case(case)
    got = quiet(qdq.quantize_and_dequantize, x, mn, mx, **kw)
    assert_bits_equal(got, expected, msg=case["name"])


@pytest.mark.parametrize("case", [c for c in BLOCK_CASES if c["known_difference"] == "zero_sign"],
                         ids=lambda c: c["name"])
def test_golden_mixed_zero_signs(case):
    """SPEC difference 2 per block: values equal TensorFlow's, bits equal the reference's."""
    x, mn, mx, kw, expected = block_case(case)
    got = qdq.quantize_and_dequantize(x, mn, mx, **kw)
    assert ((got == expected) | (np.isnan(got) & np.isnan(expected))).all()
    assert_bits_equal(got, ref_op(x, _golden_kw(mn, mx, kw)))


def check_codes(x, xv, kw, kind):
    """quantize's codes equal the reference's; dequantize gives the op back (zero signs aside)."""
    bits_mode = kind == "bfloat16_bits"
    expected = ref_codes(x, kw, bits_mode)
    cdt = qdq.code_dtype(_format(kind), kw["signed_input"], kw["num_bits"], kw["narrow_range"])
    info = np.iinfo(cdt)
    try:
        codes, params = qdq.quantize(xv, bfloat16_bits=bits_mode, **kw)
    except ValueError as exc:
        # Refused exactly when a code is NaN or does not fit the code type.
        finite = expected[~np.isnan(expected)]
        assert np.isnan(expected).any() or (finite < info.min).any() or \
            (finite > info.max).any(), str(exc)
        return
    assert codes.dtype == cdt and codes.shape == x.shape
    assert (codes.astype(np.float64) == expected).all()
    op = quiet(qdq.quantize_and_dequantize, x, bfloat16_bits=bits_mode, **kw)
    back = qdq.dequantize(codes, params, bfloat16_bits=bits_mode)
    assert_equal_but_zero_signs(back, op, codes, bfloat16_bits=bits_mode)
    again = qdq.QuantizationParams.from_json(params.to_json())
    assert_bits_equal(qdq.dequantize(codes, again, bfloat16_bits=bits_mode), back,
                      bfloat16_bits=bits_mode)


@pytest.mark.parametrize("case", BLOCK_CASES[::3], ids=lambda c: c["name"])
def test_golden_codes_round_trip(case):
    x, mn, mx, kw, _ = block_case(case)
    check_codes(x, x, _golden_kw(mn, mx, kw), case["dtype"])


# ---------------------------------------------------------------------------
# All four formats, every layout, against the reference.
# ---------------------------------------------------------------------------

@given(block_cases())
def test_op_matches_reference(case):
    kind, x, kw, layout, out_mode = case
    bits_mode = kind == "bfloat16_bits"
    expected = ref_op(x, kw, bits_mode)
    xv = _layout(x, layout)
    if out_mode == "fresh":
        got = quiet(qdq.quantize_and_dequantize, xv, bfloat16_bits=bits_mode, **kw)
    elif out_mode == "out":
        out = np.empty(x.shape, expected.dtype, order="F" if layout == "C" else "C")
        got = quiet(qdq.quantize_and_dequantize, xv, bfloat16_bits=bits_mode, out=out, **kw)
        assert got is out
    else:
        got = quiet(qdq.quantize_and_dequantize, xv, bfloat16_bits=bits_mode, out=xv, **kw)
        assert got is xv
        got = got.astype(got.dtype.newbyteorder("="))
    assert_bits_equal(got, expected, bfloat16_bits=bits_mode)


@given(block_cases())
def test_range_matches_reference(case):
    kind, x, kw, layout, _ = case
    bits_mode = kind == "bfloat16_bits"
    axis, block_size = kw["axis"], kw["block_size"]
    mn, mx = qdq.compute_range(_layout(x, layout), axis, block_size=block_size,
                               bfloat16_bits=bits_mode)
    emn, emx = _reference.compute_range_blocks(x, axis, block_size, bfloat16_bits=bits_mode)
    for got, exp in ((mn, emn), (mx, emx)):
        got = np.asarray(got)
        assert got.shape == _reference.blocked_shape(x.shape, axis, block_size)
        assert got.dtype == range_dtype(kind, x)
        assert_bits_equal(got.astype(np.float64), exp)


@given(block_cases())
def test_codes_match_reference(case):
    kind, x, kw, layout, _ = case
    check_codes(x, _layout(x, layout), kw, kind)


@given(block_cases(), st.sampled_from(["full", "keepdims", "scalar"]))
def test_gradient_matches_reference(case, range_layout):
    kind, x, kw, layout, out_mode = case
    bits_mode = kind == "bfloat16_bits"
    axis, block_size = kw["axis"], kw["block_size"]
    rng = np.random.default_rng(x.size)
    g = _reference.encode(rng.standard_normal(x.shape) * 3, x, bits_mode)
    if x.size:
        g.reshape(-1)[0] = _reference.encode(np.array([np.inf]), x.reshape(-1)[:1], bits_mode)[0]
    bshape = _reference.blocked_shape(x.shape, axis, block_size)
    # Unordered bounds too: the gradient does not check them (it is then zero).
    lo, hi = blocked_ranges(rng, bshape, range_layout, _format(kind), ordered=x.size % 2 == 0)
    expected = _reference.gradient_blocks(g, x, lo, hi, axis, block_size, bfloat16_bits=bits_mode)
    gv, xv = _layout(g, layout), _layout(x, layout)
    if out_mode == "inplace":
        got = qdq.quantize_and_dequantize_grad(gv, xv, lo, hi, axis=axis, block_size=block_size,
                                               out=gv, bfloat16_bits=bits_mode)
        assert got is gv
        got = got.astype(got.dtype.newbyteorder("="))
    else:
        got = qdq.quantize_and_dequantize_grad(gv, xv, lo, hi, axis=axis, block_size=block_size,
                                               bfloat16_bits=bits_mode)
    assert_bits_equal(got, expected, bfloat16_bits=bits_mode)


# ---------------------------------------------------------------------------
# What a block is, checked through the public API alone.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("shape, axis", [((23,), 0), ((3, 10), 1), ((10, 3), -2),
                                         ((2, 9, 3), 1), ((2, 3, 2, 7), -1)], ids=str)
def test_each_block_is_quantized_alone(name, shape, axis):
    """The block op equals the per-tensor op on every block, given range or not."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 3, shape)).astype(
        make_dtype(name))
    d = shape[axis]
    for block_size in sorted({1, 2, 3, 4, d - 1, d, d + 1} - {0}):
        bshape = _reference.blocked_shape(shape, axis, block_size)
        lo = rng.uniform(-30, 0, bshape)
        hi = lo + rng.uniform(0, 30, bshape)
        for kw in (dict(), dict(round_mode="HALF_UP", num_bits=4, narrow_range=True),
                   dict(range_given=True), dict(range_given=True, signed_input=False,
                                                round_mode="HALF_UP", num_bits=3)):
            got = quiet(qdq.quantize_and_dequantize, x, lo, hi, axis=axis,
                         block_size=block_size, **kw)
            for block, where in blocks(shape, axis, block_size):
                alone = quiet(qdq.quantize_and_dequantize, x[where], lo[block], hi[block], **kw)
                assert_bits_equal(got[where], alone, msg=f"B={block_size} {kw} block {block}")
        mn, mx = qdq.compute_range(x, axis, block_size=block_size)
        for block, where in blocks(shape, axis, block_size):
            assert_bits_equal(np.asarray(mn[block]), np.asarray(qdq.compute_range(x[where])[0]))
            assert_bits_equal(np.asarray(mx[block]), np.asarray(qdq.compute_range(x[where])[1]))


@pytest.mark.parametrize("block_size", [9, 10, 2**31 + 1, 2**40])
def test_one_block_per_slice(block_size):
    """block_size >= the axis length: every 1-D slice is one block."""
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((5, 9)) * 4).astype(np.float32)
    assert_bits_equal(qdq.quantize_and_dequantize(x, axis=1, block_size=block_size),
                      qdq.quantize_and_dequantize(x, axis=0))
    lo, hi = -rng.uniform(0, 5, (5, 1)), rng.uniform(0, 5, (5, 1))
    assert_bits_equal(qdq.quantize_and_dequantize(x, lo, hi, range_given=True, axis=-1,
                                                  block_size=block_size),
                      qdq.quantize_and_dequantize(x, lo[:, 0], hi[:, 0], range_given=True,
                                                  axis=0))
    x3 = x.reshape(-1)[:36].reshape(3, 3, 4)
    assert_bits_equal(qdq.quantize_and_dequantize(x3, axis=2, block_size=block_size),
                      qdq.quantize_and_dequantize(x3.reshape(9, 4), axis=0).reshape(3, 3, 4))
    assert_bits_equal(qdq.quantize_and_dequantize(x[0], axis=0, block_size=block_size),
                      qdq.quantize_and_dequantize(x[0]))
    mn, mx = qdq.compute_range(x, 1, block_size=block_size)
    emn, emx = qdq.compute_range(x, 0)
    assert mn.shape == (5, 1)
    assert_bits_equal(mn[:, 0], emn)
    assert_bits_equal(mx[:, 0], emx)


def test_block_size_none_is_the_default():
    x = np.random.default_rng(2).standard_normal((6, 8)).astype(np.float32)
    for axis in (None, 0, -1):
        assert_bits_equal(qdq.quantize_and_dequantize(x, axis=axis, block_size=None),
                          qdq.quantize_and_dequantize(x, axis=axis))
        for got, exp in zip(qdq.compute_range(x, axis, block_size=None),
                            qdq.compute_range(x, axis), strict=True):
            assert_bits_equal(np.asarray(got), np.asarray(exp))
        codes, p = qdq.quantize(x, axis=axis, block_size=None)
        assert (codes == qdq.quantize(x, axis=axis)[0]).all()
        assert qdq.quantize(x, axis=axis)[1] == p
    g = np.ones_like(x)
    assert_bits_equal(qdq.quantize_and_dequantize_grad(g, x, -0.5, 0.5, axis=1, block_size=None),
                      qdq.quantize_and_dequantize_grad(g, x, -0.5, 0.5, axis=1))


def test_blocked_range_layouts():
    """Bounds broadcast to the blocked shape; any layout, list or float type works."""
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((4, 3, 10)) * 3).astype(np.float32)
    axis, block_size = 2, 4                      # blocked shape (4, 3, 3)
    lo = -rng.uniform(0.5, 4, (4, 1, 3))
    hi = rng.uniform(0.5, 4, (1, 3, 3))
    full_lo, full_hi = np.broadcast_to(lo, (4, 3, 3)), np.broadcast_to(hi, (4, 3, 3))
    kw = dict(range_given=True, axis=axis, block_size=block_size)
    expected = _reference.quantize_and_dequantize_blocks(x, axis, block_size, full_lo, full_hi,
                                                         range_given=True)
    for a, b in ((lo, hi), (full_lo, full_hi), (np.asfortranarray(full_lo), full_hi[::-1][::-1]),
                 (full_lo.tolist(), full_hi.astype(np.float32)), (lo.astype(np.float32), hi)):
        assert_bits_equal(qdq.quantize_and_dequantize(x, a, b, **kw), expected)
        assert_bits_equal(qdq.quantize_and_dequantize(x, a, b, axis=-1, block_size=4,
                                                      range_given=True), expected)
    assert_bits_equal(qdq.quantize_and_dequantize(x, -1.5, 2.0, **kw),
                      qdq.quantize_and_dequantize(x, -1.5, 2.0, range_given=True, axis=0))


def test_range_edge_cases():
    """NaN is ignored per block, an all-NaN block gives NaN, -0.0 is below +0.0."""
    x = np.array([[np.nan, np.nan, 1.0, -2.0, 0.0, -0.0, 0.0],
                  [-0.0, 0.0, np.nan, 3.0, np.inf, -np.inf, 5.0]], np.float32)
    mn, mx = qdq.compute_range(x, 1, block_size=2)
    assert mn.shape == mx.shape == (2, 4) and mn.dtype == np.float32
    assert np.isnan(mn[0, 0]) and np.isnan(mx[0, 0])
    assert mn[0, 1] == -2 and mx[0, 1] == 1
    assert np.signbit(mn[0, 2]) and not np.signbit(mx[0, 2]) and mn[0, 2] == mx[0, 2] == 0
    assert mn[0, 3] == 0 and not np.signbit(mn[0, 3])
    assert np.signbit(mn[1, 0]) and not np.signbit(mx[1, 0])
    assert mn[1, 1] == mx[1, 1] == 3
    assert mn[1, 2] == -np.inf and mx[1, 2] == np.inf
    assert mn[1, 3] == mx[1, 3] == 5
    out = quiet(qdq.quantize_and_dequantize, x, axis=1, block_size=2)
    assert np.isnan(out[0, :2]).all() and np.isnan(out[1, 4:6]).all()   # inf: that block only
    assert_bits_equal(out[1, 6:], x[1, 6:])                              # a constant comes back
    for shape, axis in (((3, 0), 1), ((0, 5), 1), ((4, 0), 0)):
        e = np.zeros(shape, np.float64)
        assert qdq.quantize_and_dequantize(e, axis=axis, block_size=2).shape == shape
        mn, mx = qdq.compute_range(e, axis, block_size=2)
        assert mn.shape == mx.shape == _reference.blocked_shape(shape, axis, 2)


def test_gradient_by_hand():
    """Each element is compared with its own block's bounds, both inclusive."""
    x = np.array([[-2, -1, 0, 1, 2], [3, 4, 5, 6, 7]], np.float32)
    g = np.arange(1, 11, dtype=np.float32).reshape(2, 5)
    lo = np.array([[-1, -5, 0], [3, 0, 7]], np.float32)
    hi = np.array([[0, 5, 0], [3, 6, 8]], np.float32)
    mask = np.array([[0, 1, 1, 1, 0], [1, 0, 1, 1, 1]], np.float32)
    got = qdq.quantize_and_dequantize_grad(g, x, lo, hi, axis=1, block_size=2)
    assert_bits_equal(got, g * mask)
    got = qdq.quantize_and_dequantize_grad(g.T, x.T, lo.T, hi.T, axis=0, block_size=2)
    assert_bits_equal(got, (g * mask).T)


def test_unsigned_negative_data_warns_per_block():
    x = np.array([1.0, 2.0, -0.5, 3.0], np.float32)
    with pytest.warns(RuntimeWarning, match="signed_input=False with negative data"):
        qdq.quantize_and_dequantize(x, signed_input=False, axis=0, block_size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        qdq.quantize_and_dequantize(np.abs(x), signed_input=False, axis=0, block_size=2)


# ---------------------------------------------------------------------------
# Layouts, out=, threads and instruction sets.
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_and_out(name, layout):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((7, 10)) * 10.0 ** rng.integers(-2, 3, (7, 10))).astype(
        make_dtype(name))
    for axis, block_size in ((1, 3), (0, 2), (-1, 4), (0, 7)):
        bshape = _reference.blocked_shape(x.shape, axis, block_size)
        lo, hi = -rng.uniform(0, 20, bshape), rng.uniform(0, 20, bshape)
        for kw in (dict(), dict(input_min=lo, input_max=hi, range_given=True)):
            kw.update(axis=axis, block_size=block_size)
            expected = ref_op(x, kw)
            xv = _layout(x, layout)
            got = qdq.quantize_and_dequantize(xv, **kw)
            assert_bits_equal(got, expected)
            if layout == "F":
                assert got.flags.f_contiguous
            out = np.empty(x.shape, expected.dtype, order="F")
            assert qdq.quantize_and_dequantize(xv, out=out, **kw) is out
            assert_bits_equal(out, expected)
            assert qdq.quantize_and_dequantize(xv, out=xv, **kw) is xv
            assert_bits_equal(xv.astype(xv.dtype.newbyteorder("=")), expected)
            mn, mx = qdq.compute_range(_layout(x, layout), axis, block_size=block_size)
            emn, emx = _reference.compute_range_blocks(x, axis, block_size)
            assert_bits_equal(np.asarray(mn).astype(np.float64), emn)
            assert_bits_equal(np.asarray(mx).astype(np.float64), emx)
    with pytest.raises(ValueError):
        qdq.quantize_and_dequantize(x, axis=1, block_size=3, out=np.empty((10, 7), x.dtype))


BIG = [((64, 1000), 1, 32), ((64, 1000), 1, 100), ((1000, 64), 0, 7), ((8, 300, 5), 1, 16),
       ((3, 5000), -1, 128), ((5000, 3), 0, 1000), ((1 << 16,), 0, 64), ((2, 3, 4, 500), 3, 33)]


@pytest.mark.parametrize("shape, axis, block_size", BIG, ids=str)
@pytest.mark.parametrize("name", ["float16", "float32"])
def test_threads_and_instruction_sets(shape, axis, block_size, name, isa):
    rng = np.random.default_rng(5)
    v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    v.reshape(-1)[rng.integers(0, v.size, max(1, v.size // 100))] = np.nan
    x = v.astype(make_dtype(name))
    bshape = _reference.blocked_shape(shape, axis, block_size)
    lo, hi = -rng.uniform(0, 100, bshape), rng.uniform(0, 100, bshape)
    expected = _reference.quantize_and_dequantize_blocks(x, axis, block_size, num_bits=6)
    expected_given = _reference.quantize_and_dequantize_blocks(x, axis, block_size, lo, hi,
                                                               range_given=True)
    emn, emx = _reference.compute_range_blocks(x, axis, block_size)
    for n in (1, 2, 3):
        with qdq.num_threads(n):
            assert_bits_equal(qdq.quantize_and_dequantize(x, num_bits=6, axis=axis,
                                                          block_size=block_size), expected)
            assert_bits_equal(qdq.quantize_and_dequantize(x, lo, hi, range_given=True,
                                                          axis=axis, block_size=block_size),
                              expected_given)
            mn, mx = qdq.compute_range(x, axis, block_size=block_size)
            assert_bits_equal(np.asarray(mn).astype(np.float64), emn)
            assert_bits_equal(np.asarray(mx).astype(np.float64), emx)


# ---------------------------------------------------------------------------
# Bad input: a clear TypeError or ValueError.
# ---------------------------------------------------------------------------

X = np.arange(24, dtype=np.float32).reshape(4, 6) - 11
G = np.ones_like(X)
CALLS = {
    "op": lambda **kw: qdq.quantize_and_dequantize(X, **kw),
    "op given": lambda **kw: qdq.quantize_and_dequantize(X, -20.0, 20.0, range_given=True, **kw),
    "compute_range": lambda axis=None, **kw: qdq.compute_range(X, axis, **kw),
    "quantize": lambda **kw: qdq.quantize(X, **kw),
    "grad": lambda **kw: qdq.quantize_and_dequantize_grad(G, X, -5.0, 5.0, **kw),
}


@pytest.mark.parametrize("call", CALLS, ids=str)
@pytest.mark.parametrize("block_size, error", [(0, ValueError), (-1, ValueError),
                                               (-6, ValueError), (2.5, TypeError),
                                               (3.0, TypeError), ("3", TypeError),
                                               (True, TypeError), (np.True_, TypeError),
                                               ([3], TypeError), (np.float32(3), TypeError)])
def test_bad_block_size(call, block_size, error):
    with pytest.raises(error, match="block_size"):
        CALLS[call](axis=1, block_size=block_size)


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_block_size_needs_an_axis(call):
    with pytest.raises(ValueError, match="axis"):
        CALLS[call](block_size=2)
    with pytest.raises(ValueError, match="axis"):
        CALLS[call](axis=None, block_size=2)


@pytest.mark.parametrize("call", CALLS, ids=str)
def test_integer_block_sizes_are_accepted(call):
    expected = CALLS[call](axis=1, block_size=4)
    for block_size in (np.int64(4), np.uint8(4), np.int16(4)):
        got = CALLS[call](axis=1, block_size=block_size)
        if call == "quantize":
            got, expected_codes = got[0], expected[0]
            assert (got == expected_codes).all()
        elif call == "compute_range":
            for a, b in zip(got, expected, strict=True):
                assert_bits_equal(a, b)
        else:
            assert_bits_equal(got, expected)


# X is (4, 6): along axis 1 with block_size 4 the blocked shape is (4, 2). (4, 6) is the
# per-channel shape; (2,) or (1, 2) would broadcast, so they are not here.
BAD_SHAPES = [(4, 3), (4, 6), (3, 2), (2, 4), (4,), (6,), (3,), (4, 2, 1), (1, 4, 2)]


@pytest.mark.parametrize("shape", BAD_SHAPES, ids=str)
@pytest.mark.parametrize("which", ["input_min", "input_max", "both"])
def test_ranges_of_the_wrong_block_shape(shape, which):
    bad = np.full(shape, 1.0)
    lo = -bad if which in ("input_min", "both") else -1.0
    hi = bad if which in ("input_max", "both") else 1.0
    with pytest.raises(ValueError, match="input_min|input_max"):
        qdq.quantize_and_dequantize(X, lo, hi, range_given=True, axis=1, block_size=4)
    with pytest.raises(ValueError, match="input_min|input_max"):
        qdq.quantize(X, lo, hi, range_given=True, axis=1, block_size=4)
    with pytest.raises(ValueError, match="input_min|input_max"):
        qdq.quantize_and_dequantize_grad(G, X, lo, hi, axis=1, block_size=4)


def test_invalid_block_range():
    """input_min > input_max or NaN in one block is refused; the gradient does not check."""
    lo = np.full((4, 2), -1.0)
    hi = np.full((4, 2), 1.0)
    for bad_lo, bad_hi in ((2.0, 1.0), (np.nan, 1.0), (-1.0, np.nan)):
        a, b = lo.copy(), hi.copy()
        a[2, 1], b[2, 1] = bad_lo, bad_hi
        with pytest.raises(ValueError):
            qdq.quantize_and_dequantize(X, a, b, range_given=True, axis=1, block_size=4)
        with pytest.raises(ValueError):
            qdq.quantize(X, a, b, range_given=True, axis=1, block_size=4)
    a = lo.copy()
    a[2, 1] = 2.0
    got = qdq.quantize_and_dequantize_grad(G, X, a, hi, axis=1, block_size=4)
    assert (got[2, 4:] == 0).all() and got.sum() > 0


def test_dequantize_checks_the_codes_shape():
    x = np.random.default_rng(6).standard_normal((4, 10)).astype(np.float32)
    codes, p = qdq.quantize(x, axis=1, block_size=3)
    assert_equal_but_zero_signs(qdq.dequantize(codes, p), qdq.quantize_and_dequantize(
        x, axis=1, block_size=3), codes)
    for bad in (codes.T, codes[:3], np.zeros((4, 13), codes.dtype), codes[:, :6]):
        with pytest.raises(ValueError):
            qdq.dequantize(bad, p)
