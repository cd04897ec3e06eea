"""Generate tests/golden/tf_golden.json from TensorFlow (the oracle).

Run it in a virtual environment of its own, never from the tests:

    python -m venv /tmp/tf && /tmp/tf/bin/pip install tensorflow-cpu==2.21.0
    /tmp/tf/bin/python tests/golden/generate_tf_golden.py

It imports only TensorFlow and NumPy (not qdq). Every case stores the exact
input and output bytes (little-endian hex) and the op's arguments. Cases are
drawn with a fixed seed, so a rerun on the same TensorFlow gives the same file.

Each case carries ``known_difference``: null when qdq must match TensorFlow bit
for bit, otherwise the deliberate difference of SPEC section 5 it exercises
("nan" for NaN in the data without a given range, "ftz" for subnormals,
"zero_sign" for a range of +0 and -0), so that the tests can check that the
documented differences are the only ones.
"""

from __future__ import annotations

import json
import os
import platform
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tf_golden.json")
rng = np.random.default_rng(20261128)
cases: list[dict] = []

NP = {"float32": np.float32, "float64": np.float64}
TINY = {"float32": np.finfo(np.float32).tiny, "float64": np.finfo(np.float64).tiny}


def hexbytes(a: np.ndarray) -> str:
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes().hex()


def tf_qdq(x, mn, mx, signed_input, num_bits, range_given, round_mode, narrow_range, axis):
    """TensorFlow's CPU kernel: V2 per tensor; per channel V2 (range not given) or V3."""
    xt = tf.constant(x)
    dt = xt.dtype
    if axis is None:
        return tf.raw_ops.QuantizeAndDequantizeV2(
            input=xt, input_min=tf.constant(mn, dt), input_max=tf.constant(mx, dt),
            signed_input=signed_input, num_bits=num_bits, range_given=range_given,
            round_mode=round_mode, narrow_range=narrow_range, axis=-1).numpy()
    if not range_given:
        c = x.shape[axis]
        return tf.raw_ops.QuantizeAndDequantizeV2(
            input=xt, input_min=tf.zeros([c], dt), input_max=tf.zeros([c], dt),
            signed_input=signed_input, num_bits=num_bits, range_given=False,
            round_mode=round_mode, narrow_range=narrow_range, axis=axis).numpy()
    assert round_mode == "HALF_TO_EVEN", "V3 rounds half to even only"
    return tf.raw_ops.QuantizeAndDequantizeV3(
        input=xt, input_min=tf.constant(mn, dt), input_max=tf.constant(mx, dt),
        num_bits=tf.constant(num_bits, tf.int32), signed_input=signed_input,
        range_given=True, narrow_range=narrow_range, axis=axis).numpy()


def subnormal_involved(x, mn, mx, out, dtype):
    """Whether FTZ/DAZ can matter: a subnormal in the data, range or result.

    The result test catches a subnormal scale, inverse or product as well:
    TensorFlow flushes it, so an output that is zero where the scaled value is
    not, or a subnormal output, shows up in out or in the IEEE recomputation
    the tests do. Here it is judged on the inputs and outputs TF gave.
    """
    tiny = TINY[dtype]
    vals = [np.asarray(v, dtype=np.float64).ravel() for v in (x, mn, mx, out)]
    return any(((np.abs(v) < tiny) & (v != 0)).any() for v in vals)


def add(name, x, input_min=0.0, input_max=0.0, signed_input=True, num_bits=8,
        range_given=False, round_mode="HALF_TO_EVEN", narrow_range=False, axis=None,
        known_difference=None):
    x = np.asarray(x)
    dtype = x.dtype.name
    T = NP[dtype]
    mn = np.asarray(input_min, dtype=T)
    mx = np.asarray(input_max, dtype=T)
    out = tf_qdq(x, mn, mx, signed_input, num_bits, range_given, round_mode, narrow_range, axis)
    assert out.dtype == x.dtype and out.shape == x.shape
    diff = known_difference
    if diff is None and not range_given and np.isnan(x).any():
        diff = "nan"
    if diff is None and subnormal_involved(x, mn if range_given else 0, mx if range_given else 0,
                                           out, dtype):
        diff = "ftz"
    cases.append({
        "name": name, "dtype": dtype, "shape": list(x.shape), "x": hexbytes(x),
        "input_min": hexbytes(mn), "input_max": hexbytes(mx), "minmax_shape": list(mn.shape),
        "signed_input": bool(signed_input), "num_bits": int(num_bits),
        "range_given": bool(range_given), "round_mode": round_mode,
        "narrow_range": bool(narrow_range), "axis": axis, "out": hexbytes(out),
        "known_difference": diff,
    })


def grad_case(name, gradients, x, input_min, input_max, axis=None):
    """QuantizeAndDequantizeV4Grad: the straight-through gradient."""
    x = np.asarray(x)
    T = x.dtype.type
    g = np.asarray(gradients, dtype=T)
    mn, mx = np.asarray(input_min, dtype=T), np.asarray(input_max, dtype=T)
    res = tf.raw_ops.QuantizeAndDequantizeV4Grad(
        gradients=tf.constant(g), input=tf.constant(x), input_min=tf.constant(mn),
        input_max=tf.constant(mx), axis=-1 if axis is None else axis)
    out = res[0].numpy()
    cases.append({
        "name": name, "op": "grad", "dtype": x.dtype.name, "shape": list(x.shape),
        "x": hexbytes(x), "gradients": hexbytes(g), "input_min": hexbytes(mn),
        "input_max": hexbytes(mx), "minmax_shape": list(mn.shape), "axis": axis,
        "out": hexbytes(out), "known_difference": None,
    })


def random_data(n, dtype, kind):
    T = NP[dtype]
    if kind == "mixed":
        v = rng.uniform(-7, 11, n)
    elif kind == "positive":
        v = rng.uniform(0.25, 9, n)
    elif kind == "negative":
        v = rng.uniform(-9, -0.25, n)
    elif kind == "wide":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4, n)
    else:
        raise ValueError(kind)
    return v.astype(T)


# ---------------------------------------------------------------------------
# 1. TensorFlow's own test vectors (quantize_and_dequantize_op_test.cc,
#    array_ops_test.py) and the op documentation's worked examples.
# ---------------------------------------------------------------------------
for dtype in ("float32", "float64"):
    T = NP[dtype]
    add("tf: scalar tensor", np.array(-3.5, T))
    add("tf: 1D int8", np.array([-1, -0.5, 0, 0.3, 0.8, 0.555], T))
    add("tf: 1D int4", np.array([-1, -0.5, 0, 0.3125, 0.8, 0.555], T), num_bits=4)
    add("tf: 1D int4 half up", np.array([-1, -0.5, 0, 0.3125, 0.8, 0.555], T), num_bits=4,
        round_mode="HALF_UP")
    x2 = np.array([-0.8, -0.5, 0, 0.3, 0.8, 0.555, -2, 33], T).reshape(2, 4)
    add("tf: 2D int8 range given", x2, -1.0, 1.0, range_given=True)
    add("tf: 2D int8 range given half up", x2, -1.0, 1.0, range_given=True, round_mode="HALF_UP")
    x4 = np.array([-0.5, 0, 0.3, 0.8], T).reshape(2, 2, 1, 1)
    add("tf: 4D uint8 range given", x4, 0.0, 1.0, signed_input=False, range_given=True)
    add("tf: 4D uint8 range given half up", x4, 0.0, 1.0, signed_input=False, range_given=True,
        round_mode="HALF_UP")
    add("tf: all zeros unsigned", np.zeros((2, 2, 1, 1), T), signed_input=False)
    base = np.array([-1, -0.5, 0, 0.3, 0.8, 0.555, 0.5], T)
    shape = (2, 3, 4, 5)
    for axis in (None, 0, 1, 2, 3):
        data = np.take(base, np.arange(np.prod(shape)) % base.size).reshape(shape)
        if axis is not None:
            scale = np.arange(1, shape[axis] + 1, dtype=T).reshape(
                [-1 if d == axis else 1 for d in range(4)])
            data = (data * scale).astype(T)
        for rm in ("HALF_TO_EVEN", "HALF_UP"):
            add(f"tf: testAxis axis={axis} {rm}", data, round_mode=rm, axis=axis)
        add(f"tf: testAxis axis={axis} narrow half up", data, round_mode="HALF_UP",
            narrow_range=True, axis=axis)
    add("doc: [-10, 5] given", np.array([-10, -3.3, 0.01, 5, 9.921875, 10], T), -10.0, 5.0,
        range_given=True)
    add("doc: [-10, 10] given", np.array([-11, -10.07874, -10, 3.3, 10, 11], T), -10.0, 10.0,
        range_given=True)
    add("doc: [-10, 5] from data", np.array([-10, -3.3, 0.01, 5, 2.5], T))
    add("doc: [-10, 10] from data", np.array([-10, -3.3, 0.01, 10, 2.5], T))

# ---------------------------------------------------------------------------
# 2. SPEC section 3 and the edge table of the semantics reference.
# ---------------------------------------------------------------------------
for dtype in ("float32", "float64"):
    T = NP[dtype]
    add("edge: b=1 signed narrow", np.array([-1, 2, 0.5], T), num_bits=1, narrow_range=True)
    add("edge: b=1 signed narrow 5", np.array([-1, -0.4, 0, 0.4, 1], T), num_bits=1,
        narrow_range=True)
    add("edge: b=1 signed", np.array([-1, -0.4, 0, 0.4, 1], T), num_bits=1)
    add("edge: unsigned negative data", np.array([-1, -0.3], T), signed_input=False)
    add("edge: unsigned mixed", np.array([-0.5, 1.0, 0.25], T), signed_input=False)
    add("edge: unsigned all negative", np.array([-2, -0.5, -0.1], T), signed_input=False)
    add("edge: unsigned data <= 0, max 0", np.array([-2, -0.5, 0], T), signed_input=False)
    add("edge: +inf in data", np.array([1, np.inf, -2], T))
    add("edge: -inf in data", np.array([1, -np.inf, -2], T))
    add("edge: -inf unsigned", np.array([-np.inf, 0.5, 1], T), signed_input=False)
    add("edge: range [-inf, 1]", np.array([-3, 0.5, 1, 2], T), -np.inf, 1.0, range_given=True)
    add("edge: range [-1, inf]", np.array([-3, 0.5, 1, 2], T), -1.0, np.inf, range_given=True)
    add("edge: unsigned range [-inf, 1]", np.array([-3, 0.5, 1, 2], T), -np.inf, 1.0,
        signed_input=False, range_given=True)
    add("edge: all zeros", np.zeros(5, T))
    add("edge: all -0", np.full(4, -0.0, T))
    add("edge: zeros mixed sign", np.array([0.0, -0.0, 0.0, -0.0], T), known_difference="zero_sign")
    add("edge: empty", np.zeros(0, T))
    add("edge: empty 2D axis 1", np.zeros((0, 3), T), axis=1)
    add("edge: empty 2D axis 0", np.zeros((0, 3), T), axis=0)
    add("edge: 0-d", np.array(2.75, T))
    add("edge: 0-d given", np.array(2.75, T), -1.0, 2.0, range_given=True)
    add("edge: constant", np.full(6, 3.0, T))
    add("edge: constant negative", np.full(6, -1.7, T))
    add("edge: unsigned range [-5, 1]", np.array([-3, -0.2, 0.4, 1, 3], T), -5.0, 1.0,
        signed_input=False, range_given=True)
    add("edge: range min==max==0", np.array([-1, -0.0, 0, 2], T), 0.0, 0.0, range_given=True)
    add("edge: range min==max==0.5", np.array([-1, 0.2, 0.5, 2], T), 0.5, 0.5, range_given=True)
    add("edge: range both positive", np.array([-1, 0.3, 3, 6], T), 2.0, 5.0, range_given=True)
    add("edge: range both negative", np.array([-6, -3, 0.3, 6], T), -5.0, -2.0, range_given=True)
    add("edge: signed all positive", np.array([0.1, 0.5, 2], T))
    add("edge: negative zero kept", np.array([-0.003, 0.003, -10, 10], T))
    add("edge: NaN data range given", np.array([np.nan, -2, 0.7, 3, np.nan], T), -1.0, 2.0,
        range_given=True)
    add("edge: inf data range given", np.array([np.inf, -np.inf, 0.7], T), -1.0, 2.0,
        range_given=True)
    add("edge: huge range", np.array([-3e38, 3e38, 1], T))
    add("edge: b=61 near identity", np.array([-1.1, 0.3, 123.456, 7], T), num_bits=61)
    add("edge: b=62 unsigned", np.array([0, 0.3, 123.456, 7], T), num_bits=62, signed_input=False)
    add("edge: b=61 range given", np.array([-1.1, 0.3, 1e6, 7], T), -2.0, 1000.0,
        num_bits=61, range_given=True)
    # DAZ: a subnormal input times a normal scale reaches q = +-1, and the
    # inverse scale (about 2e-38, normal) brings it back; TensorFlow reads 0.
    sub, rng_max = (1.1e-38, 2.54e-36) if dtype == "float32" else (1.1e-308, 2.54e-306)
    add("ftz: subnormal data", np.array([sub, -sub, sub / 2, 10 * sub], T), -rng_max, rng_max,
        range_given=True, known_difference="ftz")
    tiny_range = 1e-36 if dtype == "float32" else 1e-306
    add("ftz: subnormal inverse scale", np.array([5e-37, 1e-36, -7e-37], T)
        if dtype == "float32" else np.array([5e-307, 1e-306, -7e-307], T),
        -tiny_range, tiny_range, range_given=True, known_difference="ftz")
    add("nan: NaN middle of 3", np.array([-5, np.nan, 1], T), known_difference="nan")
    add("nan: NaN last of 3", np.array([-1, 2, np.nan], T), known_difference="nan")
    add("nan: NaN last of 17", np.append(np.linspace(-1, 1, 16), np.nan).astype(T),
        known_difference="nan")
    add("nan: NaN first of 16", np.insert(np.linspace(-1, 1, 15), 0, np.nan).astype(T),
        known_difference="nan")

# ---------------------------------------------------------------------------
# 3. Ties and HALF_UP's rounding in T: power-of-two scales make x*scale exact.
# ---------------------------------------------------------------------------
for dtype in ("float32", "float64"):
    T = NP[dtype]
    for j in (0, 3, -2):
        step = 2.0 ** -j
        ties = (np.arange(-128, 127) + 0.5) * step
        x = np.concatenate([[-128 * step, 127 * step], ties]).astype(T)
        for rm in ("HALF_TO_EVEN", "HALF_UP"):
            add(f"ties: scale 2^{j} {rm} from data", x, round_mode=rm)
            add(f"ties: scale 2^{j} {rm} given", x, -128 * step, 127 * step, range_given=True,
                round_mode=rm)
            add(f"ties: scale 2^{j} {rm} narrow", x, -127 * step, 127 * step, range_given=True,
                round_mode=rm, narrow_range=True)
    # HALF_UP's add in T: 0.5 - ulp/2 rounds up, odd integers near 2^p move.
    p = 24 if dtype == "float32" else 53
    big = 2.0 ** (p - 1)
    x = np.array([0.49999997 if dtype == "float32" else 0.49999999999999994, -0.49999997,
                  -0.5, 0.5, -1.5, -2.5, 2.5, big + 1, big + 3, -(big + 1), big - 0.5,
                  -(big - 0.5)], T)
    for rm in ("HALF_TO_EVEN", "HALF_UP"):
        add(f"round: near 2^{p - 1} {rm}", x, -(2.0 ** (p + 1)), 2.0 ** (p + 1) - 1,
            num_bits=p + 2 if p + 2 <= 61 else 61, range_given=True, round_mode=rm)
        add(f"round: near 2^{p - 1} {rm} from data",
            np.append(x, [-(2.0 ** (p + 1)), 2.0 ** (p + 1)]).astype(T),
            num_bits=p + 2 if p + 2 <= 61 else 61, round_mode=rm)
    # No FMA: products k + 0.5 - eps once rounded.
    k = rng.integers(-100, 100, 64)
    scale = T(12.7)
    x = ((k + 0.5) / scale).astype(T)
    for rm in ("HALF_TO_EVEN", "HALF_UP"):
        add(f"round: near-ties at scale 12.7 {rm}", np.append(x, [-10.07874, 10]).astype(T),
            -10.0, 10.0, range_given=True, round_mode=rm)

# ---------------------------------------------------------------------------
# 4. A grid over the arguments, per tensor, random data.
# ---------------------------------------------------------------------------
BITS = (1, 2, 3, 4, 7, 8, 9, 12, 15, 16, 17, 23, 24, 25, 31, 32, 33, 47, 52, 53, 54, 60, 61, 62)
for dtype in ("float32", "float64"):
    T = NP[dtype]
    for signed in (True, False):
        for bits in BITS:
            if signed and bits > 61:
                continue
            for narrow in (False, True):
                if narrow and not signed:
                    continue
                for rg in (False, True):
                    for rm in ("HALF_TO_EVEN", "HALF_UP"):
                        kind = ("mixed", "positive", "negative", "wide")[rng.integers(0, 4)]
                        if not signed and not rg:
                            kind = "positive" if rng.random() < 0.7 else kind
                        x = random_data(int(rng.integers(1, 33)), dtype, kind)
                        lo = float(rng.uniform(-8, 1))
                        hi = float(rng.uniform(max(lo, 0) if rng.random() < 0.8 else lo, 9))
                        add(f"grid: {dtype} signed={signed} bits={bits} narrow={narrow} "
                            f"range_given={rg} {rm} {kind}", x, lo, hi, signed_input=signed,
                            num_bits=bits, range_given=rg, round_mode=rm, narrow_range=narrow)

# ---------------------------------------------------------------------------
# 5. Per channel: ranks 1..4, every axis, range from the data (V2) and given (V3).
# ---------------------------------------------------------------------------
SHAPES = [(7,), (3, 4), (4, 1), (2, 3, 5), (1, 5, 2), (2, 3, 2, 3)]
for dtype in ("float32", "float64"):
    T = NP[dtype]
    for shape in SHAPES:
        for axis in range(len(shape)):
            for signed, bits, narrow, rm in ((True, 8, False, "HALF_TO_EVEN"),
                                             (True, 4, True, "HALF_UP"),
                                             (False, 8, False, "HALF_TO_EVEN"),
                                             (True, 16, False, "HALF_UP")):
                kind = "positive" if not signed else ("mixed", "wide")[rng.integers(0, 2)]
                x = random_data(int(np.prod(shape)), dtype, kind).reshape(shape)
                add(f"channel: {dtype} {shape} axis={axis} signed={signed} bits={bits} "
                    f"narrow={narrow} {rm}", x, signed_input=signed, num_bits=bits,
                    round_mode=rm, narrow_range=narrow, axis=axis)
            c = shape[axis]
            lo = rng.uniform(-6, 0.5, c)
            hi = lo + rng.uniform(0, 8, c)
            x = random_data(int(np.prod(shape)), dtype, "mixed").reshape(shape)
            for signed, narrow in ((True, False), (True, True), (False, False)):
                add(f"channel given (V3): {dtype} {shape} axis={axis} signed={signed} "
                    f"narrow={narrow}", x, lo, hi, signed_input=signed, range_given=True,
                    narrow_range=narrow, axis=axis)

# ---------------------------------------------------------------------------
# 6. Larger tensors (TensorFlow's multi-threaded reductions), no NaN.
# ---------------------------------------------------------------------------
for dtype in ("float32", "float64"):
    T = NP[dtype]
    add(f"large: {dtype} 5000 mixed", random_data(5000, dtype, "mixed"))
    add(f"large: {dtype} 3000 wide half up", random_data(3000, dtype, "wide"), round_mode="HALF_UP")
    add(f"large: {dtype} (64, 40) axis 1", random_data(2560, dtype, "mixed").reshape(64, 40),
        axis=1)

# ---------------------------------------------------------------------------
# 7. The straight-through gradient (QuantizeAndDequantizeV4Grad).
# ---------------------------------------------------------------------------
for dtype in ("float32", "float64"):
    T = NP[dtype]
    x = np.array([-20, -10, -5, 0, 5, 9.9, 10, 20, np.nan, -np.inf, np.inf], T)
    g = np.array([1, -2, 3, 4, 5, 6, -7, 8, 9, 10, np.inf], T)
    grad_case("grad: per tensor [-10, 10]", g, x, -10.0, 10.0)
    grad_case("grad: per tensor [0, 0]", g, x, 0.0, 0.0)
    grad_case("grad: per tensor min > max", g, x, 3.0, -3.0)
    grad_case("grad: nan gradient outside", np.array([np.nan, 1, np.inf], T),
              np.array([-11, 0, 11], T), -10.0, 10.0)
    x2 = np.array([[-2, -1, 0], [1, 2, 3]], T)
    grad_case("grad: axis 1", np.ones((2, 3), T), x2, [-1.0, -2.0, -3.0], [1.0, 2.0, 3.0], axis=1)
    grad_case("grad: axis 0", rng.standard_normal((2, 3)).astype(T), x2, [-1.0, 0.0], [0.5, 2.5],
              axis=0)
    xs = rng.uniform(-3, 3, (3, 4, 5)).astype(T)
    gs = rng.standard_normal((3, 4, 5)).astype(T)
    for axis in (0, 1, 2):
        c = xs.shape[axis]
        grad_case(f"grad: 3D axis {axis}", gs, xs, -rng.uniform(0, 2, c), rng.uniform(0, 2, c),
                  axis=axis)

doc = {
    "generator": "tests/golden/generate_tf_golden.py",
    "tensorflow": tf.__version__,
    "numpy": np.__version__,
    "python": sys.version.split()[0],
    "machine": platform.machine(),
    "encoding": "arrays are little-endian bytes in hex; minmax arrays have minmax_shape",
    "cases": cases,
}
with open(OUT, "w") as f:
    json.dump(doc, f, indent=0)
counts: dict = {}
for c in cases:
    counts[c["known_difference"]] = counts.get(c["known_difference"], 0) + 1
print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT)} bytes): {counts}")
