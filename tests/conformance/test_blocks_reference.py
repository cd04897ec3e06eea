"""The reference's block-wise twins against TensorFlow's golden vectors, bit for bit.

tf_block_golden.json comes from generate_tf_block_golden.py (TensorFlow's
per-channel op on a reshape where every block is one row). The reference cuts
the blocks another way (NaN-padded rows), so agreeing with the file checks
both. The twins are then checked, for all four formats, against a plain loop
that quantizes each block as a tensor of its own.
"""

import os

import numpy as np
import pytest
from _blocks_cases import BLOCK_CASES, BLOCK_GOLDEN, PATH, block_case, blocks
from _util import assert_bits_equal, make_dtype

from qdq import _reference


def _twin(x, mn, mx, kw):
    kw = dict(kw)
    return _reference.quantize_and_dequantize_blocks(x, kw.pop("axis"), kw.pop("block_size"),
                                                     mn, mx, **kw)


@pytest.mark.parametrize("case", [c for c in BLOCK_CASES if c["known_difference"] is None],
                         ids=lambda c: c["name"])
def test_reference_matches_tensorflow(case):
    x, mn, mx, kw, expected = block_case(case)
    assert_bits_equal(_twin(x, mn, mx, kw), expected, msg=case["name"])


@pytest.mark.parametrize("case", [c for c in BLOCK_CASES if c["known_difference"] == "zero_sign"],
                         ids=lambda c: c["name"])
def test_mixed_zero_signs_differ_only_in_sign(case):
    """SPEC difference 2, per block: a block of +0 and -0 may give zeros of either sign."""
    x, mn, mx, kw, expected = block_case(case)
    got = _twin(x, mn, mx, kw)
    assert ((got == expected) | (np.isnan(got) & np.isnan(expected))).all()


def test_known_differences_are_only_zero_signs():
    assert {c["known_difference"] for c in BLOCK_CASES} <= {None, "zero_sign"}
    assert sum(c["known_difference"] is None for c in BLOCK_CASES) > 900


def _block_class(b, d):
    if b > d:
        return "B>D"
    if b == d:
        return "B=D"
    return b


def test_golden_file_coverage():
    """Every rank and axis, every class of block size, tails, and the hard data."""
    cases = BLOCK_CASES
    assert BLOCK_GOLDEN["tensorflow"] == "2.21.0"
    assert {c["dtype"] for c in cases} == {"float32", "float64"}
    assert os.path.getsize(PATH) < 1_600_000
    axes = {(len(c["shape"]), c["axis"]) for c in cases}
    for rank in (1, 2, 3, 4):
        for axis in range(-rank, rank):
            assert (rank, axis) in axes, (rank, axis)
    classes = {(_block_class(c["block_size"], c["shape"][c["axis"]]), len(c["shape"]))
               for c in cases if c["shape"][c["axis"]] > 0}
    for rank in (1, 2, 3, 4):
        for cls in (1, 2, 3, "B=D", "B>D"):
            assert (cls, rank) in classes, (cls, rank)
    all_classes = {cls for cls, _ in classes}
    assert {1, 2, 3, 7, 8, 32, 128, "B=D", "B>D"} <= all_classes
    assert any(c["block_size"] >= 1000 for c in cases)

    def tail(c):
        d = c["shape"][c["axis"]]
        return c["block_size"] < d and d % c["block_size"] != 0

    for b in (2, 3, 7, 8, 32, 128):
        assert any(tail(c) and c["block_size"] == b for c in cases), b
    for rank in (1, 2, 3, 4):
        assert any(tail(c) and len(c["shape"]) == rank for c in cases), rank
    assert any(tail(c) and c["range_given"] for c in cases)
    assert any(0 in c["shape"] for c in cases)

    kinds = {(c["dtype"], c["range_given"], c["round_mode"], c["signed_input"],
              c["narrow_range"]) for c in cases}
    for dtype in ("float32", "float64"):
        for rg in (False, True):
            for rm in ("HALF_TO_EVEN", "HALF_UP"):
                for signed, narrow in ((True, False), (True, True), (False, False)):
                    assert (dtype, rg, rm, signed, narrow) in kinds
    bits = {c["num_bits"] for c in cases}
    assert {1, 2, 4, 8, 16, 24, 32, 53, 61, 62} <= bits

    layouts = set()
    for c in cases:
        if c["range_given"]:
            shape = list(c["shape"])
            shape[c["axis"]] = -(-shape[c["axis"]] // c["block_size"])
            layouts.add("scalar" if c["minmax_shape"] == [] else
                        "full" if c["minmax_shape"] == shape else "broadcast")
    assert layouts == {"scalar", "full", "broadcast"}

    zero_block = nan_given = inf_given = inf_data = wild = False
    for c in cases:
        x, mn, mx, kw, out = block_case(c)
        if x.size == 0:
            continue
        lo, hi = _reference.compute_range_blocks(x, kw["axis"], kw["block_size"])
        if not c["range_given"]:
            zero_block |= bool(((lo == 0) & (hi == 0)).any() and (hi != 0).any())
            inf_data |= bool(np.isinf(x).any())
            span = np.maximum(np.abs(lo), np.abs(hi))
            span = span[np.isfinite(span) & (span > 0)]
            wild |= bool(span.size and span.max() / span.min() > 1e20)
        else:
            nan_given |= bool(np.isnan(x).any())
            inf_given |= bool(np.isinf(x).any())
    assert zero_block and nan_given and inf_given and inf_data and wild


# ---------------------------------------------------------------------------
# The twins against a plain loop over the blocks, for all four formats.
# ---------------------------------------------------------------------------

def _looped(x, axis, block_size, lo=None, hi=None, **kw):
    out = np.empty(x.shape, x.dtype)
    for block, where in blocks(x.shape, axis, block_size):
        rg = kw.get("range_given", False)
        out[where] = _reference.quantize_and_dequantize(
            x[where], lo[block] if rg else None, hi[block] if rg else None, **kw)
    return out


SHAPES = [((17,), 0), ((3, 10), 1), ((10, 3), -2), ((2, 9, 3), 1), ((2, 3, 2, 7), -1),
          ((4, 5, 2, 3), 0)]


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("shape, axis", SHAPES, ids=str)
def test_twins_equal_a_loop_over_blocks(name, shape, axis):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(len(shape) * 10 + axis)
    v = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    v.reshape(-1)[rng.integers(0, v.size, 3)] = np.nan
    v.reshape(-1)[rng.integers(0, v.size, 2)] = 0.0
    x = v.astype(make_dtype(name))
    d = shape[axis]
    for block_size in sorted({1, 2, 3, 4, d, d + 5}):
        bshape = _reference.blocked_shape(shape, axis, block_size)
        lo = rng.uniform(-20, 0, bshape)
        hi = lo + rng.uniform(0, 20, bshape)
        for kw in (dict(), dict(round_mode="HALF_UP", num_bits=4),
                   dict(signed_input=False, num_bits=3, range_given=True),
                   dict(narrow_range=True, range_given=True, round_mode="HALF_UP")):
            got = _reference.quantize_and_dequantize_blocks(x, axis, block_size, lo, hi, **kw)
            assert_bits_equal(got, _looped(x, axis, block_size, lo, hi, **kw),
                              msg=f"{name} B={block_size} {kw}")
        mn, mx = _reference.compute_range_blocks(x, axis, block_size)
        assert mn.shape == mx.shape == bshape
        for block, where in blocks(shape, axis, block_size):
            emn, emx = _reference.compute_range(x[where])
            assert_bits_equal(mn[block], emn)
            assert_bits_equal(mx[block], emx)
        codes = _reference.quantize_blocks(x, axis, block_size, lo, hi, num_bits=5,
                                           range_given=True)
        for block, where in blocks(shape, axis, block_size):
            assert_bits_equal(codes[where], _reference.quantize(x[where], lo[block], hi[block],
                                                                num_bits=5, range_given=True))
        g = rng.standard_normal(shape).astype(x.dtype)
        grad = _reference.gradient_blocks(g, x, lo, hi, axis, block_size)
        for block, where in blocks(shape, axis, block_size):
            assert_bits_equal(grad[where], _reference.gradient(g[where], x[where], lo[block],
                                                               hi[block]))


def test_twins_on_bfloat16_bits():
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = (np.random.default_rng(5).standard_normal((4, 11)) * 3).astype(ml_dtypes.bfloat16)
    bits = x.view(np.uint16)
    for kw in (dict(), dict(range_given=True, input_min=-1.0, input_max=[[1.0], [2], [3], [4]])):
        got = _reference.quantize_and_dequantize_blocks(bits, 1, 3, bfloat16_bits=True, **kw)
        assert got.dtype == np.uint16
        assert_bits_equal(got, _reference.quantize_and_dequantize_blocks(x, 1, 3, **kw).view(
            np.uint16))
    mn, _ = _reference.compute_range_blocks(bits, -1, 3, bfloat16_bits=True)
    assert_bits_equal(mn, _reference.compute_range_blocks(x, -1, 3)[0])


def test_empty_and_one_block():
    x = np.arange(12, dtype=np.float32).reshape(3, 4) - 5
    for b in (4, 5, 100, 2**40):
        assert_bits_equal(_reference.quantize_and_dequantize_blocks(x, 1, b),
                          _reference.quantize_and_dequantize(x, axis=0))
        assert_bits_equal(_reference.quantize_and_dequantize_blocks(x.reshape(-1), 0, 3 * b),
                          _reference.quantize_and_dequantize(x.reshape(-1)))
        mn, mx = _reference.compute_range_blocks(x, -1, b)
        assert mn.shape == (3, 1) and (mn[:, 0] == x.min(axis=1)).all()
        assert (mx[:, 0] == x.max(axis=1)).all()
        grad = _reference.gradient_blocks(np.ones_like(x), x, -1.0, mx, 1, b)
        assert_bits_equal(grad, ((x >= -1) & (x <= mx)).astype(np.float32))
    for shape, axis in (((3, 0), 1), ((0, 5), 1), ((0, 5), 0)):
        e = np.zeros(shape, np.float32)
        assert _reference.quantize_and_dequantize_blocks(e, axis, 2).shape == shape
        mn, mx = _reference.compute_range_blocks(e, axis, 2)
        assert mn.shape == mx.shape == _reference.blocked_shape(shape, axis, 2)
