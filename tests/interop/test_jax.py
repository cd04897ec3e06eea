"""qdq.jax against the C kernels under jit, vmap and grad, on JAX's CPU backend.

Compiling is what costs (a few tenths of a second per shape and argument set),
so the random cases draw data for a bounded set of compiled functions, and
TensorFlow's golden vectors run on a sample chosen to cover every argument
(the NumPy op is checked against all of them in tests/conformance/).

One known difference: XLA's CPU backend flushes subnormals to zero (as
TensorFlow's CPU kernels do, SPEC section 5.3), so for bfloat16, float32 and
float64 a case whose data, range, parameters or result is subnormal is
compared with TensorFlow's flushed answer where there is one, and otherwise
left out. float16 is unaffected (its subnormals are float32 normals).
Skipped without JAX.
"""

import functools
import warnings

import numpy as np
import pytest
from _blocks_cases import BLOCK_CASES, block_case
from _cases import SPECIALS
from _golden import OP_CASES, _arr
from _util import assert_bits_equal
from hypothesis import assume, given
from hypothesis import strategies as st

import qdq
from qdq import _reference

jax = pytest.importorskip("jax")
import jax.numpy as jnp  # noqa: E402
import ml_dtypes  # noqa: E402

import qdq.jax  # noqa: E402
from qdq import jax as qdq_jax  # noqa: E402

FORMATS = ["float16", "bfloat16", "float32", "float64"]
TINY = {"bfloat16": 2.0 ** -126, "float32": 2.0 ** -126, "float64": 2.0 ** -1022}
DIGITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


@functools.lru_cache(maxsize=None)
def compiled(**static):
    """One jitted function per set of static arguments (the cache makes compiles count)."""
    return jax.jit(functools.partial(qdq.jax.quantize_and_dequantize, **static))


def np_dtype(name):
    return np.dtype(ml_dtypes.bfloat16) if name == "bfloat16" else np.dtype(name)


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kw)


def as_bits(a):
    a = np.asarray(a)
    return a.view(np.uint16) if a.dtype == np_dtype("bfloat16") else a


def check(got, want, name, msg=""):
    assert_bits_equal(as_bits(got), as_bits(want), name == "bfloat16", msg=msg)


def flush_sensitive(x, lo, hi, kw, out, name):
    """Whether XLA:CPU's flush to zero can change this case (see the module's docstring)."""
    if name == "float16":
        return False
    axis, bs = kw.get("axis"), kw.get("block_size")
    if not kw.get("range_given"):
        lo, hi = qdq.compute_range(x, axis, block_size=bs)
    lo = np.asarray(lo, np.float64).ravel()
    hi = np.asarray(hi, np.float64).ravel()
    lo, hi = np.broadcast_arrays(lo, hi)
    p = quiet(qdq.quantization_params, lo, hi, np_dtype(name), kw.get("signed_input", True),
              kw.get("num_bits", 8), kw.get("narrow_range", False))
    with np.errstate(all="ignore"):   # both candidate scales and inverses, as SPEC step 3
        candidates = (float(p.qmin) / lo, float(p.qmax) / hi, lo / float(p.qmin),
                      hi / float(p.qmax))
    for a in (x, lo, hi, p.scale, p.inverse_scale, p.min_range, p.max_range, out, *candidates):
        v = np.abs(np.asarray(a, np.float64))
        if ((v > 0) & (v < TINY[name])).any():
            return True
    return False


def run(x, lo, hi, kw, name, jit=True):
    """(qdq.jax's result, the kernels') for one case (float64 under jax_enable_x64)."""
    static = {k: v for k, v in kw.items() if k in qdq.jax.STATIC_ARGNAMES}
    want = quiet(qdq.quantize_and_dequantize, x, lo, hi, **static)
    with jax.enable_x64(name == "float64"):
        fn = compiled(**static) if jit else functools.partial(qdq.jax.quantize_and_dequantize,
                                                              **static)
        got = np.asarray(fn(jnp.asarray(x), None if lo is None else jnp.asarray(lo),
                            None if hi is None else jnp.asarray(hi)))
    return got, want


# ---- TensorFlow's golden vectors (a sample covering every argument) ----

def _golden_sample(cases, key):
    """Every known difference, one HALF_UP case of each format and kind of range with a grid
    as wide as T's integers, and one case of every other combination of the arguments."""
    chosen, seen = [], set()
    for c in cases:
        wide = c["round_mode"] == "HALF_UP" and c["num_bits"] >= DIGITS[c["dtype"]]
        k = key(c) + (wide,)
        if c["known_difference"] or k not in seen:
            chosen.append(c)
            seen.add(k)
    return chosen


OP_SAMPLE = _golden_sample(OP_CASES, lambda c: (
    c["dtype"], c["signed_input"], c["range_given"], c["round_mode"], c["narrow_range"],
    c["axis"] is None))
BLOCK_SAMPLE = _golden_sample(BLOCK_CASES, lambda c: (
    c["dtype"], c["range_given"], c["round_mode"], c["shape"][c["axis"]] % c["block_size"] == 0))


def _op_golden(case):
    x = _arr(case["x"], case["dtype"], case["shape"])
    lo = _arr(case["input_min"], case["dtype"], case["minmax_shape"])
    hi = _arr(case["input_max"], case["dtype"], case["minmax_shape"])
    kw = dict(signed_input=case["signed_input"], num_bits=case["num_bits"],
              range_given=case["range_given"], round_mode=case["round_mode"],
              narrow_range=case["narrow_range"], axis=case["axis"])
    return x, lo, hi, kw, _arr(case["out"], case["dtype"], case["shape"])


@pytest.mark.parametrize("golden", ["op", "block"])
def test_golden_vectors_under_jit(golden):
    sample = OP_SAMPLE if golden == "op" else BLOCK_SAMPLE
    assert 20 < len(sample) < 120
    flushed = 0
    for case in sample:
        x, lo, hi, kw, tf_out = _op_golden(case) if golden == "op" else block_case(case)
        if not kw["range_given"]:
            lo = hi = None
        got, want = run(x, lo, hi, kw, case["dtype"])
        if case["known_difference"] == "ftz":   # XLA:CPU flushes, as TensorFlow does
            check(got, tf_out, case["dtype"], case["name"])
            flushed += 1
        else:
            check(got, want, case["dtype"], case["name"])
    assert golden == "block" or flushed >= 2


# ---- random cases: hypothesis draws the data of a bounded set of compiled functions ----

SHAPES = [(6, 10)]
WIDE = "p + 1"   # a grid as wide as T's integers: HALF_UP's odd-integer cases
SPECS = [dict(round_mode="HALF_UP", num_bits=WIDE),
         dict(round_mode="HALF_TO_EVEN", num_bits=4, signed_input=False),
         dict(axis=-1, round_mode="HALF_UP", num_bits=3, narrow_range=True),
         dict(axis=0, block_size=4, round_mode="HALF_TO_EVEN", num_bits=2),
         dict(range_given=True, round_mode="HALF_UP", num_bits=WIDE),
         dict(range_given=True, axis=0, round_mode="HALF_TO_EVEN", num_bits=8,
              narrow_range=True),
         dict(range_given=True, axis=-1, block_size=3, round_mode="HALF_UP", num_bits=4,
              signed_input=False),
         dict(range_given=True, axis=-1, block_size=3, round_mode="HALF_TO_EVEN", num_bits=1)]


@st.composite
def jax_cases(draw):
    name = draw(st.sampled_from(FORMATS))
    shape = draw(st.sampled_from(SHAPES))
    kw = dict(draw(st.sampled_from(SPECS)))
    p = DIGITS[name]
    if kw["num_bits"] == WIDE:
        kw["num_bits"] = p + 1
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = int(np.prod(shape))
    style = draw(st.sampled_from(["normal", "ties", "wide", "special"]))
    if style == "normal":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-3, 4)
    elif style == "ties":   # ties after scaling, and the odd integers of [2**(p-1), 2**p)
        v = np.where(rng.random(n) < 0.5, rng.integers(-300, 300, n) + 0.5,
                     2.0 ** (p - 1) + 2 * rng.integers(0, 2 ** min(p - 2, 20), n) + 1)
        v *= rng.choice([1.0, -1.0], n) * 2.0 ** rng.integers(-4, 3)
    elif style == "wide":
        v = rng.standard_normal(n) * 10.0 ** rng.integers(-8, 9, n)
    else:
        v = np.where(rng.random(n) < 0.4, rng.choice(np.array(SPECIALS), n),
                     rng.standard_normal(n) * 5)
    with np.errstate(over="ignore"):
        x = v.reshape(shape).astype(np_dtype(name))
    lo = hi = None
    if kw.get("range_given"):
        axis, bs = kw.get("axis"), kw.get("block_size")
        if axis is None:
            rshape = ()
        elif bs is None:
            rshape = (shape[axis],)
        else:
            rshape = _reference.blocked_shape(shape, axis, bs)
        a = rng.standard_normal(rshape) * 10.0 ** rng.integers(-2, 3)
        b = rng.standard_normal(rshape) * 10.0 ** rng.integers(-2, 3)
        lo, hi = np.minimum(a, b), np.maximum(a, b)
        if name != "float64":
            lo, hi = lo.astype(np.float32), hi.astype(np.float32)
    return name, x, lo, hi, kw


@given(jax_cases())
def test_random_cases_under_jit_equal_the_kernels(case):
    name, x, lo, hi, kw = case
    got, want = run(x, lo, hi, kw, name)
    assume(not flush_sensitive(x, lo, hi, kw, want, name))
    check(got, want, name, str(kw))


def test_eager_equals_the_kernels():
    """Op by op (no fusion; every operation compiled on its own, which is slow)."""
    rng = np.random.default_rng(3)
    for name in ("float16",):
        v = np.concatenate([rng.standard_normal(40) * 30, np.arange(-20, 20) + 0.5,
                            [np.nan, np.inf, -0.0, 0.0]])
        x = v.reshape(4, -1).astype(np_dtype(name))
        for kw in ({"axis": 1, "block_size": 5, "range_given": True, "round_mode": "HALF_UP"},):
            lo = hi = None
            if kw.get("range_given"):
                lo, hi = np.full((4, 5), -7.5, np.float32), np.full((4, 5), 9.0, np.float32)
            got, want = run(x, lo, hi, kw, name, jit=False)
            check(got, want, name, str(kw))


# ---- the pieces XLA must not change ----

@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_rounding_to_16_bits_by_integer_operations(name):
    """_round_to_format against NumPy's/ml_dtypes' conversion on every 16-bit value, the
    float32 values either side of every midpoint, and random float32 bit patterns."""
    dt = np_dtype(name)
    every = np.arange(1 << 16, dtype=np.uint16).view(dt).astype(np.float32)
    every = np.sort(every[np.isfinite(every)])
    mids = ((every[1:].astype(np.float64) + every[:-1]) / 2).astype(np.float32)
    near = np.concatenate([mids, np.nextafter(mids, np.float32(np.inf)),
                           np.nextafter(mids, np.float32(-np.inf)), every])
    rng = np.random.default_rng(5)
    random = rng.integers(0, 2**32, 1 << 20, dtype=np.uint64).astype(np.uint32).view(np.float32)
    edges = np.array([np.inf, -np.inf, 65520.0, 65519.996, 3.4e38], np.float32)
    v = np.concatenate([near, random, edges])
    with np.errstate(over="ignore", invalid="ignore"):
        want = v.astype(dt).astype(np.float32)
    got = np.asarray(jax.jit(lambda a: qdq_jax._round_to_format(a, name))(v))
    assert_bits_equal(got, want)


@pytest.mark.parametrize("name", FORMATS)
def test_half_up_without_an_addition_is_floor_of_y_plus_half_in_t(name):
    """Arith.half_up(y) equals floor(y + 0.5) computed in T with two roundings: every
    16-bit value; for float32/float64 the ties, the odd integers of [2**(p-1), 2**p) and
    around, the float below 0.5, and random values."""
    dt, p = np_dtype(name), DIGITS[name]
    if name in ("float16", "bfloat16"):
        y = np.arange(1 << 16, dtype=np.uint16).view(dt)
    else:
        rng = np.random.default_rng(7)
        k = rng.integers(0, 2 ** 20, 4000)
        base = np.concatenate([np.arange(-300, 300) + 0.5, 2.0 ** (p - 1) + k,
                               2.0 ** p + k * 2, 2.0 ** (p - 2) + k / 2,
                               [0.5 - 2.0 ** -(p + 1), 0.5, -0.5, 0.0, -0.0, np.inf, np.nan],
                               rng.standard_normal(4000) * 10.0 ** rng.integers(-3, 18, 4000)])
        y = np.concatenate([base, -base]).astype(dt)
    with np.errstate(invalid="ignore", over="ignore"):
        want = np.floor((y + dt.type(0.5)).astype(dt))
    with jax.enable_x64(name == "float64"):
        T = qdq_jax._Arith(name)
        got = np.asarray(jax.jit(lambda a: T.half_up(a.astype(T.work)).astype(dt))(y))
    check(got, want, name)


def test_what_a_plain_transcription_would_get_wrong():
    """Why the op is written as it is: under jit, XLA turns a division by a constant into a
    multiplication by its reciprocal, and on a CPU with FMA contracts x*s + 0.5 into a fused
    multiply-add; qdq.jax gives the kernels' bits on the same values. (If a future XLA stops
    doing either, this test says so; qdq.jax stays correct.)"""
    # 2796202.75 * 3 = 8388608.25: rounds to 2**23, and 2**23 + 0.5 ties to even (2**23);
    # fused, 8388608.75 rounds to 2**23 + 1. The op with scale 3 on that value: the range
    # [-(2**25 - 1)/3, (2**25 - 1)/3] on a 26-bit grid
    x = np.array([2796202.75, -2796202.75, 1.25], np.float32)
    kw = dict(num_bits=26, range_given=True, round_mode="HALF_UP")
    got, want = run(x, np.float32(-(2**25 - 1) / 3), np.float32((2**25 - 1) / 3), kw,
                    "float32")
    check(got, want, "float32")
    v = np.random.default_rng(0).standard_normal(1 << 16).astype(np.float32) * 100
    plain = np.asarray(jax.jit(lambda a: a / jnp.float32(127.0))(v))
    assert (plain != v / np.float32(127)).any()
    s = np.float32(3.0)
    plain = np.asarray(jax.jit(lambda a, b: jnp.floor(a * b + 0.5))(x, s))
    if (plain == np.floor((x * s) + np.float32(0.5))).all():
        pytest.skip("XLA did not contract x*s + 0.5 on this CPU: nothing to show")


# ---- jit, vmap, grad ----

def test_jit_with_static_argnames_vmap_and_grad():
    x = jnp.asarray(np.random.default_rng(1).standard_normal((5, 9)).astype(np.float32))
    jit = jax.jit(qdq.jax.quantize_and_dequantize, static_argnames=qdq.jax.STATIC_ARGNAMES)
    for kw in ({"num_bits": 3}, {"num_bits": 4, "axis": 0, "round_mode": "HALF_UP"},
               {"axis": 0, "block_size": 4}):
        want = qdq.quantize_and_dequantize(np.asarray(x), **kw)
        check(jit(x, **kw), want, "float32")
        rows = jax.jit(jax.vmap(lambda r, kw=kw: qdq.jax.quantize_and_dequantize(r, **kw)))(x)
        loop = np.stack([qdq.quantize_and_dequantize(np.asarray(r), **kw) for r in x])
        check(rows, loop, "float32")
    # per-row given ranges, batched
    lo, hi = -jnp.arange(1.0, 6.0), jnp.arange(1.0, 6.0)
    rows = jax.jit(jax.vmap(lambda r, a, b: qdq.jax.quantize_and_dequantize(
        r, a, b, range_given=True)))(x, lo, hi)
    loop = np.stack([qdq.quantize_and_dequantize(np.asarray(r), -(i + 1.0), i + 1.0,
                                                 range_given=True) for i, r in enumerate(x)])
    check(rows, loop, "float32")
    # TensorFlow's gradient: the mask of the given range; the range gets zero
    g = np.random.default_rng(2).standard_normal((5, 9)).astype(np.float32)

    def loss(x, lo, hi):
        return (qdq.jax.quantize_and_dequantize(x, lo, hi, range_given=True, axis=0) * g).sum()

    lo, hi = jnp.full(5, -0.5), jnp.full(5, 0.7)
    gx, glo, ghi = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))(x, lo, hi)
    want = qdq.quantize_and_dequantize_grad(g, np.asarray(x), np.asarray(lo), np.asarray(hi), 0)
    check(gx, want, "float32")
    assert not np.asarray(glo).any() and not np.asarray(ghi).any()
    per_example = jax.jit(jax.vmap(jax.grad(
        lambda r: qdq.jax.quantize_and_dequantize(r).sum())))(
        x.at[0, 0].set(jnp.nan))
    assert np.asarray(per_example).tolist() == np.isfinite(
        np.asarray(x.at[0, 0].set(jnp.nan))).astype(np.float32).tolist()


def test_bfloat16_and_float16_gradients_keep_the_type():
    for name in ("float16", "bfloat16"):
        x = jnp.asarray(np.array([-2.0, -0.3, 0.5, 3.0]), dtype=np_dtype(name))
        gx = jax.jit(jax.grad(lambda t: qdq.jax.quantize_and_dequantize(
            t, -1.0, 1.0, range_given=True).astype(jnp.float32).sum()))(x)
        assert gx.dtype == x.dtype and np.asarray(gx, np.float32).tolist() == [0, 1, 1, 0]


def test_errors():
    x = jnp.ones((3, 4))
    with pytest.raises(TypeError, match="float64 input needs jax_enable_x64"):
        qdq.jax.quantize_and_dequantize(np.ones(3))
    with pytest.raises(TypeError, match="unsupported input dtype int32"):
        qdq.jax.quantize_and_dequantize(jnp.ones(3, jnp.int32))
    with pytest.raises(ValueError, match="num_bits must be in 1..62"):
        qdq.jax.quantize_and_dequantize(x, signed_input=False, num_bits=63)
    with pytest.raises(ValueError, match="invalid range in channel 1 of axis 1"):
        qdq.jax.quantize_and_dequantize(x, jnp.array([0.0, 2, 0, 0]), 1.0, range_given=True,
                                        axis=1)
    with pytest.raises(ValueError, match="input_min has 3 values but axis 1 has 4 channels"):
        qdq.jax.quantize_and_dequantize(x, jnp.zeros(3), 1.0, range_given=True, axis=1)
    with pytest.raises(TypeError, match="input_max is required"):
        qdq.jax.quantize_and_dequantize(x, 0.0, range_given=True)
    # under jit the range cannot be read: the channel comes out NaN
    y = jax.jit(lambda lo: qdq.jax.quantize_and_dequantize(x, lo, 1.0, range_given=True,
                                                           axis=1))(jnp.array([0.0, 2, 0, 0]))
    assert np.isnan(np.asarray(y)[:, 1]).all() and not np.isnan(np.asarray(y)[:, [0, 2, 3]]).any()
    with jax.enable_x64(True):
        x64 = np.array([1e-3, -2.0, 3.0])
        check(qdq.jax.quantize_and_dequantize(x64, num_bits=5),
              qdq.quantize_and_dequantize(x64, num_bits=5), "float64")


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_every_16_bit_value_under_jit(name):
    """All 65,536 bit patterns, both round modes, a scale of 1 and a scale that rounds."""
    every = np.arange(1 << 16, dtype=np.uint16).view(np_dtype(name))
    p = DIGITS[name]
    for lo, hi, bits in ((-2.0 ** p, 2.0 ** p - 1, p + 1), (-1000.3, 1000.3, 12)):
        for mode in ("HALF_UP", "HALF_TO_EVEN"):
            kw = dict(num_bits=bits, range_given=True, round_mode=mode)
            got, want = run(every, np.float32(lo), np.float32(hi), kw, name)
            check(got, want, name, f"{lo} {mode}")
