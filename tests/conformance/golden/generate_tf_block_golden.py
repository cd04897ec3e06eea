"""Generate tests/golden/tf_block_golden.json: block-wise ranges, from TensorFlow.

Run it in a virtual environment of its own, never from the tests:

    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tf/bin/python tests/golden/generate_tf_block_golden.py

TensorFlow has no block mode, but a block is one channel of its per-channel
kernel: with ``axis`` moved last and the array reshaped so that every block is
one row, the per-channel op along axis 0 of those rows quantizes every block on
its own (the full blocks in one call, the short last blocks in another).
Range from the data: ``QuantizeAndDequantizeV2`` per channel; a given range:
``QuantizeAndDequantizeV3`` per channel (it rounds half to even only), and for
``HALF_UP`` one ``QuantizeAndDequantizeV2`` call per block with that block's
scalar range.

It imports only TensorFlow and NumPy (not qdq). The JSON follows
tf_golden.json's conventions (little-endian hex bytes, ``minmax_shape``,
``known_difference``); each case adds ``block_size``. Given ranges are stored
in ONNX's blocked layout: broadcastable to the input's shape with ``axis``
replaced by ``ceil(shape[axis] / block_size)``. Without a given range the
stored range is a scalar 0 (ignored). Cases are drawn with a fixed seed, so a
rerun on the same TensorFlow gives the same file.
"""

from __future__ import annotations

import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_block_golden.json")
rng = np.random.default_rng(20261129)
cases: list[dict] = []

NP = {"float32": np.float32, "float64": np.float64}
TINY = {"float32": np.finfo(np.float32).tiny, "float64": np.finfo(np.float64).tiny}
DTYPES = ("float32", "float64")


def hexbytes(a: np.ndarray) -> str:
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes().hex()


def blocked_shape(shape, axis, block_size):
    shape = list(shape)
    shape[axis] = -(-shape[axis] // block_size)
    return tuple(shape)


def tf_rows(rows, mn, mx, signed_input, num_bits, range_given, round_mode, narrow_range):
    """TensorFlow's per-channel op along axis 0 of (blocks, length) rows."""
    xt = tf.constant(rows)
    dt = xt.dtype
    m = rows.shape[0]
    if not range_given:
        return tf.raw_ops.QuantizeAndDequantizeV2(
            input=xt, input_min=tf.zeros([m], dt), input_max=tf.zeros([m], dt),
            signed_input=signed_input, num_bits=num_bits, range_given=False,
            round_mode=round_mode, narrow_range=narrow_range, axis=0).numpy()
    if round_mode == "HALF_TO_EVEN":
        return tf.raw_ops.QuantizeAndDequantizeV3(
            input=xt, input_min=tf.constant(mn, dt), input_max=tf.constant(mx, dt),
            num_bits=tf.constant(num_bits, tf.int32), signed_input=signed_input,
            range_given=True, narrow_range=narrow_range, axis=0).numpy()
    # V3 has no round_mode and V2/V4 take only scalar given ranges: one call a block.
    out = np.empty_like(rows)
    for i in range(m):
        out[i] = tf.raw_ops.QuantizeAndDequantizeV2(
            input=tf.constant(rows[i]), input_min=tf.constant(mn[i], dt),
            input_max=tf.constant(mx[i], dt), signed_input=signed_input, num_bits=num_bits,
            range_given=True, round_mode=round_mode, narrow_range=narrow_range,
            axis=-1).numpy()
    return out


def tf_blocks(x, axis, block_size, mn, mx, signed_input, num_bits, range_given, round_mode,
              narrow_range):
    """The block-wise op from TensorFlow's per-channel kernel (full blocks, then the tail)."""
    moved = np.moveaxis(x, axis, -1)
    lead, d = moved.shape[:-1], moved.shape[-1]
    full, tail = d // block_size, d % block_size
    if range_given:
        bshape = blocked_shape(x.shape, axis, block_size)
        mn_b = np.moveaxis(np.broadcast_to(mn, bshape), axis, -1)
        mx_b = np.moveaxis(np.broadcast_to(mx, bshape), axis, -1)
    out = np.empty_like(moved)
    args = (signed_input, num_bits, range_given, round_mode, narrow_range)
    if full:
        rows = np.ascontiguousarray(moved[..., :full * block_size]).reshape(-1, block_size)
        lo = mn_b[..., :full].reshape(-1) if range_given else None
        hi = mx_b[..., :full].reshape(-1) if range_given else None
        out[..., :full * block_size] = tf_rows(rows, lo, hi, *args).reshape(
            lead + (full * block_size,))
    if tail:
        rows = np.ascontiguousarray(moved[..., full * block_size:]).reshape(-1, tail)
        lo = mn_b[..., full].reshape(-1) if range_given else None
        hi = mx_b[..., full].reshape(-1) if range_given else None
        out[..., full * block_size:] = tf_rows(rows, lo, hi, *args).reshape(lead + (tail,))
    return np.ascontiguousarray(np.moveaxis(out, -1, axis))


def subnormal_involved(x, mn, mx, out, dtype):
    """Whether FTZ/DAZ can matter: a subnormal in the data, range or result."""
    tiny = TINY[dtype]
    vals = [np.asarray(v, dtype=np.float64).ravel() for v in (x, mn, mx, out)]
    return any(((np.abs(v) < tiny) & (v != 0)).any() for v in vals)


def mixed_zero_block(x, axis, block_size):
    """Whether some block's numbers are all zeros of both signs (TF's min/max picks either)."""
    moved = np.moveaxis(x, axis, -1)
    d = moved.shape[-1]
    for start in range(0, d, block_size):
        blk = moved[..., start:start + block_size].reshape(-1, min(block_size, d - start))
        for row in blk:
            v = row[~np.isnan(row)]
            if v.size and (v == 0).all() and np.signbit(v).any() and (~np.signbit(v)).any():
                return True
    return False


def add(name, x, axis, block_size, input_min=0.0, input_max=0.0, signed_input=True,
        num_bits=8, range_given=False, round_mode="HALF_TO_EVEN", narrow_range=False):
    x = np.asarray(x)
    dtype = x.dtype.name
    T = NP[dtype]
    # One minmax_shape for both bounds, as in tf_golden.json.
    mn, mx = (np.array(a, order="C") for a in np.broadcast_arrays(
        np.asarray(input_min, dtype=T), np.asarray(input_max, dtype=T)))
    if range_given:
        bshape = blocked_shape(x.shape, axis, block_size)
        assert np.broadcast_shapes(mn.shape, mx.shape, bshape) == bshape, (mn.shape, bshape)
        assert (np.broadcast_to(mn, bshape) <= np.broadcast_to(mx, bshape)).all(), name
    out = tf_blocks(x, axis, block_size, mn, mx, signed_input, num_bits, range_given,
                    round_mode, narrow_range)
    assert out.dtype == x.dtype and out.shape == x.shape
    diff = None
    if not range_given and np.isnan(x).any():
        diff = "nan"
    if diff is None and not range_given and mixed_zero_block(x, axis, block_size):
        diff = "zero_sign"
    if diff is None and subnormal_involved(x, mn if range_given else 0, mx if range_given else 0,
                                           out, dtype):
        diff = "ftz"
    cases.append({
        "name": name, "dtype": dtype, "shape": list(x.shape), "x": hexbytes(x),
        "input_min": hexbytes(mn), "input_max": hexbytes(mx), "minmax_shape": list(mn.shape),
        "signed_input": bool(signed_input), "num_bits": int(num_bits),
        "range_given": bool(range_given), "round_mode": round_mode,
        "narrow_range": bool(narrow_range), "axis": int(axis), "block_size": int(block_size),
        "out": hexbytes(out), "known_difference": diff,
    })


def random_data(shape, dtype, kind, axis=0, block_size=1):
    """Random data; "blocky" gives every block of ``block_size`` its own magnitude."""
    T = NP[dtype]
    n = int(np.prod(shape))
    if kind == "mixed":
        v = rng.uniform(-7, 11, n)
    elif kind == "positive":
        v = rng.uniform(0.25, 9, n)
    elif kind == "negative":
        v = rng.uniform(-9, -0.25, n)
    elif kind == "wide":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)
    elif kind == "blocky":
        span = 30 if dtype == "float32" else 150
        v = rng.standard_normal(shape)
        bshape = blocked_shape(shape, axis, block_size)
        exps = np.repeat(rng.integers(-span, span + 1, bshape), block_size, axis=axis)
        exps = np.take(exps, np.arange(shape[axis]), axis=axis)
        v = (v * 10.0 ** exps).reshape(-1)
    else:
        raise ValueError(kind)
    return v.astype(T).reshape(shape)


def block_sizes(d, size):
    """The block sizes a dimension of length d exercises (B=32, 128 only when smaller than d).

    Large arrays (``size`` elements) get fewer of them, to keep the file small.
    """
    sizes = [1, 2, 3, 7, 8] + [b for b in (32, 128) if b < d] + [d, d + 1]
    if d > 3:
        sizes.append(1000)
    if size > 100:
        sizes = [b for b in sizes if b in (1, 3, 32, 128, d + 1)]
    return sorted({b for b in sizes if b > 0})


# The argument sets the grid cycles through: (signed, bits, narrow, round_mode).
ARGS = [(True, 8, False, "HALF_TO_EVEN"), (True, 4, True, "HALF_UP"),
        (False, 8, False, "HALF_TO_EVEN"), (True, 16, False, "HALF_UP"),
        (True, 2, False, "HALF_TO_EVEN"), (False, 4, False, "HALF_UP"),
        (True, 8, True, "HALF_TO_EVEN"), (False, 16, False, "HALF_UP")]

SHAPES = [(1,), (5,), (8,), (13,), (64,), (70,), (300,),
          (3, 7), (4, 16), (2, 70), (9, 5), (1, 33), (2, 130),
          (2, 3, 10), (3, 8, 2), (2, 5, 3),
          (2, 3, 2, 5), (2, 2, 4, 3), (1, 3, 2, 5)]

# ---------------------------------------------------------------------------
# 1. Hand-made cases: tails, zero blocks, constant blocks, magnitudes, inf.
# ---------------------------------------------------------------------------
for dtype in DTYPES:
    T = NP[dtype]
    doc = np.array([-10, -3.3, 0.01, 5, 9.921875, 10, 0.5, -0.25], T)
    for b in (1, 2, 3, 8, 9):
        add(f"hand: doc values B={b}", doc, 0, b)
        add(f"hand: doc values B={b} half up", doc, -1, b, round_mode="HALF_UP")
    add("hand: doc values B=3 given [-10, 5]", doc, 0, 3, -10.0, 5.0, range_given=True)
    add("hand: doc values B=3 given per block", doc, 0, 3, [-10.0, -1.0, -0.5],
        [5.0, 8.0, 0.25], range_given=True)
    add("hand: doc values B=3 given per block half up", doc, 0, 3, [-10.0, -1.0, -0.5],
        [5.0, 8.0, 0.25], range_given=True, round_mode="HALF_UP")
    zeros = np.array([0, 0, 0, 1.5, -2, 0.25, 0, 0, 0, -0.0, -0.0, -0.0, 0, 3], T)
    add("hand: all-zero blocks", zeros, 0, 3)
    add("hand: all-zero blocks unsigned", zeros, 0, 3, signed_input=False)
    add("hand: all-zero blocks given", zeros, 0, 3, -1.0, 1.0, range_given=True)
    add("hand: all-zero blocks, mixed zero signs", np.array([0, -0.0, 0, 4, -4, 1], T), 0, 3)
    add("hand: 2D all-zero rows", np.array([[0, 0, 0, 0], [1, -2, 3, 0.5], [0, 0, 0, 0]], T),
        1, 2)
    add("hand: constant blocks", np.array([3, 3, 3, -1.7, -1.7, -1.7, 0.1, 0.1], T), 0, 3)
    add("hand: B=1 every element alone", np.array([-3, 0.3, 7, -0.01, 1e5, 0, -0.0], T), 0, 1)
    add("hand: B=1 half up narrow", np.array([-3, 0.3, 7, -0.01, 1e5, 0, 2.5], T), 0, 1,
        round_mode="HALF_UP", narrow_range=True)
    add("hand: B=1 unsigned 4 bits", np.array([0.3, 7, 0.01, 1e5, 0, 2.5], T), 0, 1,
        signed_input=False, num_bits=4)
    mags = np.array([1e-20, -3e-20, 2e-21, 5e15, -7e14, 1e16, 0.5, -0.25, 3, 1e-5, -4e-5], T)
    for b in (3, 4):
        for rm in ("HALF_TO_EVEN", "HALF_UP"):
            add(f"hand: wild magnitudes B={b} {rm}", mags, 0, b, round_mode=rm)
    add("hand: wild magnitudes 16 bits", mags, 0, 3, num_bits=16)
    add("hand: +inf alone in its block", np.array([1, 2, np.inf, -2, 0.5, 3, -1], T), 0, 3)
    add("hand: -inf alone in its block", np.array([1, 2, 4, -2, -np.inf, 3, -1], T), 0, 3)
    add("hand: unsigned, negative block", np.array([1, 2, 4, -2, -0.3, -1, 5, 6], T), 0, 3,
        signed_input=False)
    nan_inf = np.array([np.nan, -2, 0.7, 3, np.inf, -np.inf, 0.3, np.nan, 1e30, -1e30], T)
    for rm in ("HALF_TO_EVEN", "HALF_UP"):
        add(f"hand: NaN and inf, given scalar range {rm}", nan_inf, 0, 3, -1.0, 2.0,
            range_given=True, round_mode=rm)
        add(f"hand: NaN and inf, given per block {rm}", nan_inf, 0, 3, [-1.0, -5.0, 0.0, -1e3],
            [2.0, 5.0, 0.5, 1e3], range_given=True, round_mode=rm)
    add("hand: NaN and inf, given, unsigned", nan_inf, 0, 4, [-1.0, -5.0, 0.0],
        [2.0, 5.0, 0.5], signed_input=False, range_given=True)
    edge_x = np.array([-3, 0.5, 1, 2, -1, -0.0, 0, 2, -6, -3, 0.3, 6, -1, 0.3, 3, 6], T)
    for rm in ("HALF_TO_EVEN", "HALF_UP"):
        add(f"hand: given edge ranges per block {rm}", edge_x, 0, 4,
            [-np.inf, 0.0, -5.0, 2.0], [1.0, 0.0, -2.0, 5.0], range_given=True, round_mode=rm)
        add(f"hand: given ranges min == max {rm}", edge_x, 0, 4, [0.5, -1.0, 3.0, 0.0],
            [0.5, -1.0, 3.0, 0.0], range_given=True, round_mode=rm)
    add("hand: given range [-1, inf] in one block", edge_x, 0, 4, [-1.0, -1.0, -1.0, -1.0],
        [1.0, np.inf, 1.0, 1.0], range_given=True)
    add("hand: unsigned, given negative minimum", edge_x, 0, 5, -5.0, [1.0, 2.0, 3.0, 4.0],
        signed_input=False, range_given=True)
    add("hand: 1 bit signed narrow", np.array([-1, 2, 0.5, -1, -0.4, 0, 0.4, 1], T), 0, 3,
        num_bits=1, narrow_range=True)
    add("hand: 1 bit signed", np.array([-1, -0.4, 0, 0.4, 1, 0.2, -0.1], T), 0, 2, num_bits=1)
    add("hand: empty axis", np.zeros((3, 0), T), 1, 2)
    add("hand: empty other axis", np.zeros((0, 5), T), 1, 2)
    add("hand: empty axis given", np.zeros((0, 4), T), 0, 3, np.zeros((0, 4)), np.ones((0, 4)),
        range_given=True)

# ---------------------------------------------------------------------------
# 2. Ties: power-of-two scales per block make x * scale exact.
# ---------------------------------------------------------------------------
for dtype in DTYPES:
    T = NP[dtype]
    blocks = []
    for j in (0, 3, -2, 5):
        step = 2.0 ** -j
        ties = (rng.integers(-128, 127, 14) + 0.5) * step
        blocks.append(np.concatenate([[-128 * step, 127 * step], ties]))
    x = np.concatenate(blocks).astype(T)
    for rm in ("HALF_TO_EVEN", "HALF_UP"):
        add(f"ties: per-block powers of two {rm}", x, 0, 16, round_mode=rm)
        add(f"ties: per-block powers of two {rm} 2D", x.reshape(4, 16), 1, 16, round_mode=rm)
        add(f"ties: per-block powers of two {rm} given", x.reshape(4, 16), 1, 16,
            [[-128.0], [-16.0], [-512.0], [-4.0]], [[127.0], [15.875], [508.0], [3.96875]],
            range_given=True, round_mode=rm)

# ---------------------------------------------------------------------------
# 3. Every rank, every axis (positive and negative), every class of block
#    size, range from the data; the arguments cycle through ARGS.
# ---------------------------------------------------------------------------
k = 0
for dtype in DTYPES:
    for shape in SHAPES:
        for ax in range(len(shape)):
            d = shape[ax]
            for b in block_sizes(d, int(np.prod(shape))):
                signed, bits, narrow, rm = ARGS[k % len(ARGS)]
                k += 1
                axis = ax - len(shape) if rng.random() < 0.4 else ax
                kinds = ("mixed", "wide", "blocky") if signed else ("positive", "blocky")
                kind = kinds[rng.integers(0, len(kinds))]
                x = random_data(shape, dtype, kind, ax, b)
                if kind == "blocky" and not signed:
                    x = np.abs(x)
                add(f"grid: {dtype} {shape} axis={axis} B={b} signed={signed} bits={bits} "
                    f"narrow={narrow} {rm} {kind}", x, axis, b, signed_input=signed,
                    num_bits=bits, round_mode=rm, narrow_range=narrow)

# ---------------------------------------------------------------------------
# 4. Given ranges in the blocked layout: full shape, size-1 dimensions that
#    broadcast, a scalar; NaN and inf in the data are clamped.
# ---------------------------------------------------------------------------
GIVEN_SHAPES = [(13,), (70,), (3, 7), (2, 40), (9, 5), (2, 3, 10), (3, 8, 2), (2, 3, 2, 5),
                (1, 3, 2, 5)]
for dtype in DTYPES:
    T = NP[dtype]
    for shape in GIVEN_SHAPES:
        for ax in range(len(shape)):
            d = shape[ax]
            for b in sorted({2, 3, 7, 32 if d > 32 else d, d + 1}):
                signed, bits, narrow, rm = ARGS[k % len(ARGS)]
                k += 1
                axis = ax - len(shape) if rng.random() < 0.4 else ax
                bshape = blocked_shape(shape, ax, b)
                layout = ("full", "full", "keepdims", "scalar")[rng.integers(0, 4)]
                if layout == "full":
                    rshape = bshape
                elif layout == "keepdims":
                    rshape = tuple(n if i == ax or rng.random() < 0.5 else 1
                                   for i, n in enumerate(bshape))
                else:
                    rshape = ()
                lo = rng.uniform(-6, 0.5, rshape)
                hi = lo + rng.uniform(0, 8, rshape)
                x = random_data(shape, dtype, "mixed")
                flat = x.reshape(-1)
                specials = rng.integers(0, flat.size, max(1, flat.size // 10))
                flat[specials] = rng.choice(np.array([np.nan, np.inf, -np.inf, 20.0, -20.0], T),
                                            specials.size)
                add(f"given: {dtype} {shape} axis={axis} B={b} ranges {layout} {rshape} "
                    f"signed={signed} bits={bits} narrow={narrow} {rm}", x, axis, b, lo, hi,
                    signed_input=signed, num_bits=bits, range_given=True, round_mode=rm,
                    narrow_range=narrow)

# ---------------------------------------------------------------------------
# 5. The arguments' grid on small shapes with a tail: every num_bits class,
#    signed/unsigned, narrow, range from data and given (round mode drawn).
# ---------------------------------------------------------------------------
BITS = (1, 2, 3, 4, 7, 8, 9, 12, 16, 17, 23, 24, 25, 32, 33, 53, 54, 61, 62)
for dtype in DTYPES:
    T = NP[dtype]
    for signed in (True, False):
        for bits in BITS:
            if signed and bits > 61:
                continue
            for narrow in ((False, True) if signed else (False,)):
                for rg in (False, True):
                    rm = ("HALF_TO_EVEN", "HALF_UP")[rng.integers(0, 2)]
                    shape, axis, b = ((2, 7), 1, 3) if rng.random() < 0.5 else ((7, 2), -2, 4)
                    kind = ("mixed", "wide", "blocky")[rng.integers(0, 3)] if signed \
                        else "positive"
                    x = random_data(shape, dtype, kind, axis % 2, b)
                    bshape = blocked_shape(shape, axis, b)
                    lo = rng.uniform(-8, 1, bshape)
                    hi = np.maximum(lo, 0) + rng.uniform(0, 9, bshape)
                    add(f"bits: {dtype} signed={signed} bits={bits} narrow={narrow} "
                        f"range_given={rg} {rm} {kind} {shape} axis={axis} B={b}", x, axis, b,
                        lo if rg else 0.0, hi if rg else 0.0, signed_input=signed,
                        num_bits=bits, range_given=rg, round_mode=rm, narrow_range=narrow)

meta = {
    "generator": "tests/golden/generate_tf_block_golden.py",
    "tensorflow": tf.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
    "machine": platform.machine(),
    "encoding": "arrays are little-endian bytes in hex; minmax arrays have minmax_shape "
                "(ONNX's blocked layout when range_given, else a scalar 0)",
    "cases": cases,
}
with open(OUT, "w") as f:
    json.dump(meta, f, indent=0)
counts: dict = {}
for c in cases:
    counts[c["known_difference"]] = counts.get(c["known_difference"], 0) + 1
print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes): {counts}")
