"""Shared by the block-wise tests: the golden file, a loop over blocks, generated cases.

The golden file is TensorFlow's (tf_block_golden.json, from
golden/generate_tf_block_golden.py); ``block_cases`` draws arrays of all
formats with an axis, a block size of every class, the op's arguments and given
ranges in ONNX's blocked layout.
"""

import json
import os
import warnings

import numpy as np
from _cases import KINDS, LAYOUTS, SPECIALS, _encode
from _golden import _arr
from hypothesis import strategies as st

from qdq import _reference

HERE = os.path.join(os.path.dirname(__file__), "conformance", "golden")
PATH = os.path.join(HERE, "tf_block_golden.json")

with open(PATH) as _f:
    BLOCK_GOLDEN = json.load(_f)
BLOCK_CASES = BLOCK_GOLDEN["cases"]

ARG_NAMES = ("signed_input", "num_bits", "range_given", "round_mode", "narrow_range")


def block_case(case):
    """(x, input_min, input_max, keyword arguments, TensorFlow's output) of a golden case."""
    x = _arr(case["x"], case["dtype"], case["shape"])
    mn = _arr(case["input_min"], case["dtype"], case["minmax_shape"])
    mx = _arr(case["input_max"], case["dtype"], case["minmax_shape"])
    kw = {k: case[k] for k in ARG_NAMES}
    kw.update(axis=case["axis"], block_size=case["block_size"])
    return x, mn, mx, kw, _arr(case["out"], case["dtype"], case["shape"])


def blocks(shape, axis, block_size):
    """(index in the blocked shape, index of its elements) of every block."""
    axis %= len(shape)
    d = shape[axis]
    others = shape[:axis] + (1,) + shape[axis + 1:]
    for idx in np.ndindex(*others):
        for j, start in enumerate(range(0, d, block_size)):
            where, block = list(idx), list(idx)
            where[axis] = slice(start, min(start + block_size, d))
            block[axis] = j
            yield tuple(block), tuple(where)


FORMATS = [k for k in KINDS if k != "bfloat16_bits"]


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kw)


def _split(kw):
    """(axis, block_size, the other keyword arguments) of a case's arguments."""
    kw = dict(kw)
    return kw.pop("axis"), kw.pop("block_size"), kw


def ref_op(x, kw, bits_mode=False):
    axis, block_size, rest = _split(kw)
    return _reference.quantize_and_dequantize_blocks(x, axis, block_size, bfloat16_bits=bits_mode,
                                                     **rest)


def ref_codes(x, kw, bits_mode=False):
    axis, block_size, rest = _split(kw)
    return _reference.quantize_blocks(x, axis, block_size, bfloat16_bits=bits_mode, **rest)


def range_dtype(kind, x):
    """The dtype compute_range returns (as per channel): the input's, float32 for bits."""
    if kind == "bfloat16_bits":
        return np.dtype(np.float32)
    if kind == "bfloat16":
        return x.dtype
    return np.dtype(kind)


def blocked_ranges(rng, bshape, layout, kind, ordered=True):
    """Random bounds in a blocked layout: the full shape, size-1 dimensions, or scalars."""
    if layout == "full":
        rshape = bshape
    elif layout == "keepdims":
        rshape = tuple(n if rng.random() < 0.5 else 1 for n in bshape)
    else:
        rshape = ()
    top = 6e4 if kind == "float16" else 1e4
    lo = rng.uniform(-top, top / 10, rshape) * 10.0 ** rng.integers(-4, 1, rshape)
    hi = rng.uniform(-top, top, rshape)
    if ordered:
        lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
        if rng.random() < 0.2:
            hi = lo.copy()
    return lo, hi


@st.composite
def block_cases(draw):
    """(kind, x, keyword arguments, layout, out mode) with axis and block_size."""
    kind = draw(st.sampled_from(KINDS))
    ndim = draw(st.integers(1, 4))
    dims = draw(st.lists(st.integers(0, 5), min_size=ndim, max_size=ndim))
    axis = draw(st.integers(-ndim, ndim - 1))
    if draw(st.integers(0, 2)):
        dims[axis] = draw(st.integers(1, 70))
    shape = tuple(dims)
    d = shape[axis]
    block_size = draw(st.one_of(st.integers(1, 9), st.sampled_from([16, 32, 128]),
                                st.just(max(d, 1)), st.integers(d + 1, d + 50)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(np.prod(shape))
    style = draw(st.sampled_from(["normal", "blocky", "ties", "special", "mixed"]))
    if style == "normal":
        v = rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 7.0, 1e3]))
    elif style == "blocky":  # every block its own magnitude
        exps = np.repeat(rng.integers(-12, 13, _reference.blocked_shape(shape, axis, block_size)),
                         block_size, axis=axis)
        exps = np.take(exps, np.arange(d), axis=axis).reshape(-1)
        v = rng.standard_normal(n) * 10.0 ** exps
    elif style == "ties":
        v = (rng.integers(-130, 130, n) + rng.choice([0.0, 0.5], n)) * 2.0 ** rng.integers(-6, 7)
    elif style == "special":
        v = rng.choice(np.array(SPECIALS), n)
    else:
        v = np.where(rng.random(n) < 0.15, rng.choice(np.array(SPECIALS), n),
                     rng.standard_normal(n) * 5)
    if draw(st.booleans()):
        v = np.where(rng.random(n) < 0.6, np.abs(v), v)
    x = _encode(v.reshape(shape), kind)
    signed = draw(st.booleans())
    bits = draw(st.one_of(st.integers(1, 10), st.integers(1, 61 if signed else 62)))
    kw = dict(signed_input=signed, num_bits=bits, narrow_range=draw(st.booleans()),
              round_mode=draw(st.sampled_from(["HALF_TO_EVEN", "HALF_UP"])),
              range_given=draw(st.booleans()), axis=axis, block_size=block_size)
    if kw["range_given"]:
        bshape = _reference.blocked_shape(shape, axis, block_size)
        layout = draw(st.sampled_from(["full", "keepdims", "scalar"]))
        kw["input_min"], kw["input_max"] = blocked_ranges(rng, bshape, layout, kind)
    return kind, x, kw, draw(st.sampled_from(LAYOUTS)), draw(
        st.sampled_from(["fresh", "out", "inplace"]))
