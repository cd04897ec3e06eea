"""Fuzzing the public API with hostile arguments.

Every call either returns what the pure-NumPy reference returns (bit for bit)
or raises TypeError or ValueError with a message; nothing else (no crash, no
IndexError, OverflowError, SystemError...). The default run draws a few
hundred examples per target; ``pytest -m slow tests/test_fuzz.py`` (with
QDQ_HYPOTHESIS_PROFILE=fuzz) runs thousands.
"""

import warnings

import numpy as np
import pytest
from _util import assert_bits_equal
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import qdq
from qdq import _reference

ml_dtypes = pytest.importorskip("ml_dtypes")

FLOATS = [np.float16, ml_dtypes.bfloat16, np.float32, np.float64, ">f4", ">f8"]
OTHERS = [np.int8, np.int32, np.uint16, np.uint64, np.bool_, np.complex64, object,
          np.longdouble, "M8[s]", "U2"]
# mostly the supported types, so that most calls reach the kernels; the rest are hostile
DTYPES = FLOATS * 5 + OTHERS

HUGE = st.integers(-(2 ** 63), 2 ** 63)
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10), HUGE,
    st.sampled_from([0.0, -0.0, 5e-324, 1e-310, 1e-40, 6e-8, 65504.0, 3.4e38, 1e308,
                     float("nan"), float("inf"), -float("inf")]))
BAD = st.sampled_from([None, "x", b"1", 1j, [1.0, 2.0], [[1.0]], object(), True, 2.5, -1,
                       np.float32(1), (), {}])


@st.composite
def arrays(draw, dtype=None):
    dtype = draw(st.sampled_from(DTYPES)) if dtype is None else dtype
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.sampled_from([0, 1, 1, 2, 3, 5]), min_size=ndim,
                                max_size=ndim)))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    v = rng.standard_normal(shape) * 10.0 ** rng.integers(-5, 5, shape)
    v = np.where(rng.random(shape) < 0.1, rng.choice([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-42],
                                                     shape), v)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            x = np.asarray(v).astype(dtype)
        except (TypeError, ValueError):
            x = np.zeros(shape, dtype=dtype)
    layout = draw(st.sampled_from(["plain", "readonly", "broadcast", "strided", "misaligned",
                                   "reversed"]))
    if layout == "readonly":
        x.setflags(write=False)
    elif layout == "broadcast" and x.ndim:
        x = np.broadcast_to(x[..., :1] if x.shape[-1] else x, x.shape)
    elif layout == "strided" and x.ndim:
        big = np.zeros((x.shape[0] * 2,) + x.shape[1:], dtype=x.dtype)
        big[::2] = x
        x = big[::2]
    elif layout == "misaligned" and x.dtype.kind != "O":
        buf = np.zeros(x.nbytes + 1, np.uint8)
        m = np.ndarray(x.shape, x.dtype, buffer=buf, offset=1)
        m[...] = x
        x = m
    elif layout == "reversed" and x.ndim:
        x = x[::-1]
    return x


def _ok_or_clean_error(fn, *args, **kwargs):
    """Run fn; return (True, result) or (False, exc) for TypeError/ValueError with a message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            res = fn(*args, **kwargs)
        except (TypeError, ValueError) as exc:
            assert str(exc), f"{type(exc).__name__} without a message"
            event(f"{getattr(fn, '__name__', 'call')}: {type(exc).__name__}")
            return False, exc
    event(f"{getattr(fn, '__name__', 'call')}: returned")
    return True, res


@st.composite
def op_kwargs(draw):
    kw = {}
    def mostly(good, bad, p_bad=0.08):
        # a uniform pick (hypothesis biases number draws towards 0)
        return draw(bad) if draw(st.sampled_from(range(100))) < 100 * p_bad else draw(good)

    for name in ("signed_input", "narrow_range", "range_given"):
        kw[name] = mostly(st.booleans(), BAD)
    kw["bfloat16_bits"] = mostly(st.just(False), st.one_of(st.just(True), BAD), 0.1)
    kw["num_bits"] = mostly(st.integers(1, 61), st.one_of(st.integers(-3, 64), HUGE, BAD), 0.15)
    kw["round_mode"] = mostly(st.sampled_from(["HALF_TO_EVEN", "HALF_UP"]),
                              st.one_of(st.sampled_from(["half_up", "", "HALF_AWAY_FROM_ZERO"]),
                                        BAD))
    kw["axis"] = mostly(st.one_of(st.none(), st.integers(-4, 3)), st.one_of(HUGE, BAD), 0.1)
    ordered = st.tuples(NUMBERS, NUMBERS).map(sorted)
    pair = mostly(ordered, st.tuples(st.one_of(NUMBERS, st.lists(NUMBERS, max_size=6).map(
        np.array), BAD), st.one_of(NUMBERS, BAD)), 0.3)
    kw["input_min"], kw["input_max"] = pair
    return kw


def _valid_call(x, kw):
    """Whether the spec accepts these arguments (an independent predicate)."""
    bools = ("signed_input", "narrow_range", "range_given", "bfloat16_bits")
    if any(not isinstance(kw[b], (bool, np.bool_)) for b in bools):
        return False
    if isinstance(kw["num_bits"], (bool, np.bool_)) or not isinstance(kw["num_bits"], int):
        return False
    if not 1 <= kw["num_bits"] <= (61 if kw["signed_input"] else 62):
        return False
    if kw["round_mode"] not in ("HALF_TO_EVEN", "HALF_UP"):
        return False
    axis = kw["axis"]
    if axis is not None and (isinstance(axis, (bool, np.bool_)) or not isinstance(axis, int)
                             or not -x.ndim <= axis < x.ndim):
        return False
    return True


FUZZ = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
                deadline=None)


@st.composite
def calls(draw):
    """(array, op kwargs): bfloat16 bit patterns (uint16) go with bfloat16_bits=True."""
    kw = draw(op_kwargs())
    if kw["bfloat16_bits"] is True and draw(st.sampled_from(range(10))) < 8:
        x = draw(arrays(ml_dtypes.bfloat16))
        x = x.view(np.uint16) if x.dtype.itemsize == 2 else x
    else:
        x = draw(arrays())
    return x, kw


@FUZZ
@given(calls(), st.sampled_from(["fresh", "inplace", "partial", "wrong"]))
def test_fuzz_quantize_and_dequantize(call, out_mode):
    x, kw = call
    out = None
    if out_mode == "inplace":
        out = x
    elif out_mode == "partial" and x.ndim and x.shape[0] > 1 and x.flags.writeable:
        base = np.concatenate([x.reshape(-1), x.reshape(-1)[:1]]) if x.size else x.reshape(-1)
        out = base[1:].reshape(x.shape) if base.size > x.size else None
        x = base[:-1].reshape(x.shape) if out is not None else x
    elif out_mode == "wrong":
        out = np.zeros(x.shape + (1,), np.float64)
    ok, res = _ok_or_clean_error(qdq.quantize_and_dequantize, x, out=out, **kw)
    if not ok:
        return
    assert _valid_call(x, kw), f"accepted invalid arguments {kw}"
    if out is not None:
        assert res is out
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        expected = _reference.quantize_and_dequantize(
            np.array(x) if out_mode != "inplace" else res * 0 + res, **kw) \
            if out_mode == "partial" else None
    if out_mode == "fresh":
        expected = _reference.quantize_and_dequantize(np.array(x), **kw)
        assert_bits_equal(np.asarray(res).astype(res.dtype.newbyteorder("=")), expected,
                          bfloat16_bits=kw["bfloat16_bits"])


@FUZZ
@given(arrays(), st.one_of(st.none(), st.integers(-5, 5), HUGE, BAD),
       st.one_of(st.booleans(), BAD))
def test_fuzz_compute_range(x, axis, bits):
    ok, res = _ok_or_clean_error(qdq.compute_range, x, axis, bfloat16_bits=bits)
    if ok:
        mn, mx = res
        emn, emx = _reference.compute_range(np.array(x), axis, bfloat16_bits=bits)
        assert_bits_equal(np.asarray(mn, np.float64), np.asarray(emn, np.float64))
        assert_bits_equal(np.asarray(mx, np.float64), np.asarray(emx, np.float64))


@FUZZ
@given(calls())
def test_fuzz_codes_and_gradient(call):
    x, kw = call
    ok, res = _ok_or_clean_error(qdq.quantize, x, **kw)
    if ok:
        codes, params = res
        assert _valid_call(x, kw)
        ok2, back = _ok_or_clean_error(qdq.dequantize, codes, params,
                                       bfloat16_bits=kw["bfloat16_bits"])
        assert ok2, back
        assert back.shape == x.shape
    g = np.ones(x.shape, dtype=x.dtype) if x.dtype.kind != "O" else x
    _ok_or_clean_error(qdq.quantize_and_dequantize_grad, g, x, kw["input_min"], kw["input_max"],
                       axis=kw["axis"], bfloat16_bits=kw["bfloat16_bits"])


@FUZZ
@given(NUMBERS | BAD, NUMBERS | BAD, st.sampled_from(["float16", "bfloat16", "float32",
                                                       "float64", "int8", "float8", None, 3]),
       op_kwargs())
def test_fuzz_quantization_params(lo, hi, dtype, kw):
    _ok_or_clean_error(qdq.quantization_params, lo, hi, dtype, kw["signed_input"],
                       kw["num_bits"], kw["narrow_range"])


@FUZZ
@given(st.lists(arrays(), min_size=0, max_size=4), op_kwargs())
def test_fuzz_stream_and_tracker(chunks, kw):
    def consume():
        return [np.asarray(c) for c in qdq.stream(chunks, **kw)]

    _ok_or_clean_error(consume)
    t = qdq.RangeTracker(kw["axis"] if isinstance(kw["axis"], int) and
                         not isinstance(kw["axis"], bool) and abs(kw["axis"]) < 8 else None)

    def feed():
        for c in chunks:
            t.update(c)
        return t.min, t.max

    _ok_or_clean_error(feed)


@pytest.mark.slow
@settings(max_examples=4000, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(calls())
def test_fuzz_long(call):
    x, kw = call
    """The slow run: many more examples of the op and the codes."""
    ok, res = _ok_or_clean_error(qdq.quantize_and_dequantize, x, **kw)
    if ok:
        assert _valid_call(x, kw)
        expected = _reference.quantize_and_dequantize(np.array(x), **kw)
        assert_bits_equal(res, expected, bfloat16_bits=kw["bfloat16_bits"])
    _ok_or_clean_error(qdq.quantize, x, **kw)
