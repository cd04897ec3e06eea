"""Shared by the property tests: random cases of every format, shape, argument and layout.

Random dtypes (all four formats, bfloat16 both as ml_dtypes arrays and as
uint16 bits), shapes (0-d and empty included), data with ties, zeros of both
signs, subnormals, inf and NaN, every argument, per tensor and per channel on
any axis, and odd memory layouts (Fortran order, strided, reversed, permuted,
byte-swapped, misaligned).
"""

import warnings

import numpy as np
import pytest
from _util import make_dtype
from hypothesis import strategies as st

from qdq import _reference

ml_dtypes = pytest.importorskip("ml_dtypes")

KINDS = ["float16", "bfloat16", "bfloat16_bits", "float32", "float64"]
LAYOUTS = ["C", "F", "strided", "reversed", "permuted", "byteswapped", "misaligned"]

SPECIALS = [0.0, -0.0, 0.5, -0.5, 1.5, -2.5, 1.0, -1.0, 127.0, -128.0, 1e-3, 6e-8, 1e-40,
            3e38, -3e38, np.inf, -np.inf, np.nan, 65504.0, 65520.0]


def _format(kind):
    return "bfloat16" if kind.startswith("bfloat16") else kind


def _encode(v, kind):
    """float64 values -> an array of the kind (values rounded to the format)."""
    r = _reference.round_to_format(v, _format(kind))
    if kind == "bfloat16_bits":
        return _reference.encode(r, np.zeros(0, np.uint16), bfloat16_bits=True)
    return r.astype(make_dtype(_format(kind)))


@st.composite
def data(draw, shape, kind):
    n = int(np.prod(shape))
    style = draw(st.sampled_from(["normal", "wide", "ties", "special", "mixed"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if style == "normal":
        v = rng.standard_normal(n) * draw(st.sampled_from([1e-3, 1.0, 7.0, 1e3]))
    elif style == "wide":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)
    elif style == "ties":
        step = 2.0 ** draw(st.integers(-6, 6))
        v = (rng.integers(-130, 130, n) + rng.choice([0.0, 0.5], n)) * step
    elif style == "special":
        v = rng.choice(np.array(SPECIALS), n)
    else:
        v = np.where(rng.random(n) < 0.15, rng.choice(np.array(SPECIALS), n),
                     rng.standard_normal(n) * 5)
    if draw(st.booleans()):
        v = np.where(rng.random(n) < 0.5, np.abs(v), v)  # skew positive
    return _encode(v.reshape(shape), kind)


@st.composite
def shapes(draw):
    ndim = draw(st.integers(0, 4))
    dims = draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim))
    if ndim and draw(st.integers(0, 3)) == 0:
        dims[draw(st.integers(0, ndim - 1))] = draw(st.integers(7, 90))
    return tuple(dims)


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(KINDS))
    shape = draw(shapes())
    x = draw(data(shape, kind))
    signed = draw(st.booleans())
    bits = draw(st.one_of(st.integers(1, 10), st.integers(1, 61 if signed else 62)))
    kw = dict(signed_input=signed, num_bits=bits, narrow_range=draw(st.booleans()),
              round_mode=draw(st.sampled_from(["HALF_TO_EVEN", "HALF_UP"])),
              range_given=draw(st.booleans()))
    axis = None
    if len(shape) and draw(st.booleans()):
        axis = draw(st.integers(-len(shape), len(shape) - 1))
    kw["axis"] = axis
    if kw["range_given"]:
        c = shape[axis] if axis is not None else None
        lo_hi = st.floats(-1e4, 1e4, allow_nan=False, width=16 if kind == "float16" else 32)
        n = 1 if c is None else c
        pairs = draw(st.lists(st.tuples(lo_hi, lo_hi), min_size=n, max_size=n))
        lo = np.array([min(p) for p in pairs], dtype=np.float64)
        hi = np.array([max(p) for p in pairs], dtype=np.float64)
        if axis is None or (c == 1 and draw(st.booleans())):
            lo, hi = lo[0], hi[0]  # a scalar range (broadcast per channel)
        kw["input_min"], kw["input_max"] = lo, hi
    layout = draw(st.sampled_from(LAYOUTS))
    out_mode = draw(st.sampled_from(["fresh", "out", "inplace"]))
    return kind, x, kw, layout, out_mode


def _layout(x, layout):
    if x.ndim == 0 or x.size == 0:
        return x.copy()
    if layout == "F":
        return np.asfortranarray(x)
    if layout == "strided":
        big = np.zeros((x.shape[0] * 2,) + x.shape[1:], x.dtype)
        big[::2] = x
        return big[::2]
    if layout == "reversed":
        return np.ascontiguousarray(x[::-1])[::-1]
    if layout == "permuted":
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(x, 0, -1)), -1, 0)
    if layout == "byteswapped":
        if x.dtype.kind not in "fu":
            return x.copy()
        return x.astype(x.dtype.newbyteorder("S"))
    if layout == "misaligned":
        buf = np.zeros(x.nbytes + 1, np.uint8)
        m = np.ndarray(x.shape, x.dtype, buffer=buf, offset=1)
        m[...] = x
        return m
    return x.copy()


def _call(fn, x, kw, bfloat16_bits, **extra):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(x, bfloat16_bits=bfloat16_bits, **kw, **extra)
