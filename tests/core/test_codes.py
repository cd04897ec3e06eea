"""Integer codes, dequantization, the gradient and the parameters' JSON."""

import json
import os
import warnings

import numpy as np
import pytest
from _cases import _call, _layout, cases
from _golden import GOLDEN, _arr
from _util import assert_bits_equal, assert_equal_but_zero_signs, make_dtype, run_python
from hypothesis import given
from hypothesis import strategies as st

import qdq
from qdq import _reference

FORMATS = ["float16", "bfloat16", "float32", "float64"]


def _format(kind):
    return "bfloat16" if kind.startswith("bfloat16") else kind


@given(cases())
def test_codes_round_trip_and_reference(case):
    kind, x, kw, layout, _ = case
    bits = kind == "bfloat16_bits"
    xv = _layout(x, layout)
    expected_codes = _call(_reference.quantize, x, kw, bits)
    cdt = qdq.code_dtype(_format(kind), kw["signed_input"], kw["num_bits"], kw["narrow_range"])
    info = np.iinfo(cdt)
    try:
        codes, params = _call(qdq.quantize, xv, kw, bits)
    except ValueError as exc:
        # Refused exactly when a code is NaN or does not fit the code type.
        finite = expected_codes[~np.isnan(expected_codes)]
        assert np.isnan(expected_codes).any() or (finite < info.min).any() \
            or (finite > info.max).any(), str(exc)
        if kw["range_given"]:
            # with a range only NaN or a degenerate grid (whose op output is not finite)
            op = _reference.decode(_call(_reference.quantize_and_dequantize, x, kw, bits),
                                   bits)[0]
            assert np.isnan(_reference.decode(x, bits)[0]).any() or \
                not np.isfinite(op).all()
        return
    assert codes.dtype == cdt and codes.shape == x.shape
    assert (codes.astype(np.float64) == expected_codes).all()
    assert params.round_mode == kw["round_mode"]
    back = qdq.dequantize(codes, params, bfloat16_bits=bits)
    assert_equal_but_zero_signs(back, _call(qdq.quantize_and_dequantize, x, kw, bits), codes,
                                bfloat16_bits=bits)


@given(cases())
def test_gradient_matches_reference(case):
    kind, x, kw, layout, _ = case
    bits = kind == "bfloat16_bits"
    rng = np.random.default_rng(x.size)
    g = _reference.encode(rng.standard_normal(x.shape) * 3, x, bits)
    if x.size:
        g.reshape(-1)[0] = _reference.encode(np.array([np.inf]), x.reshape(-1)[:1], bits)[0]
    axis = kw["axis"]
    c = None if axis is None else x.shape[axis]
    lo = rng.uniform(-3, 1, c) if c is not None and rng.random() < 0.5 else -1.5
    hi = rng.uniform(-1, 3, c) if c is not None and rng.random() < 0.5 else 2.0
    got = qdq.quantize_and_dequantize_grad(_layout(g, layout), _layout(x, layout), lo, hi,
                                           axis=axis, bfloat16_bits=bits)
    assert_bits_equal(got, _reference.gradient(g, x, lo, hi, axis, bfloat16_bits=bits),
                      bfloat16_bits=bits)


@pytest.mark.parametrize("case", [c for c in GOLDEN["cases"] if c.get("op") == "grad"],
                         ids=lambda c: c["name"] + " " + c["dtype"])
def test_gradient_matches_tensorflow(case, isa):
    x = _arr(case["x"], case["dtype"], case["shape"])
    g = _arr(case["gradients"], case["dtype"], case["shape"])
    mn = _arr(case["input_min"], case["dtype"], case["minmax_shape"])
    mx = _arr(case["input_max"], case["dtype"], case["minmax_shape"])
    got = qdq.quantize_and_dequantize_grad(g, x, mn, mx, axis=case["axis"])
    assert_bits_equal(got, _arr(case["out"], case["dtype"], case["shape"]), msg=case["name"])


def test_code_dtype_is_minimal():
    from qdq._core.params import code_bounds
    from qdq._core.validate import check_grid

    for name in FORMATS:
        fmt = qdq._core.formats.format_named(name)
        for signed in (True, False):
            for bits in range(1, 62 if signed else 63):
                for narrow in ((False, True) if signed else (False,)):
                    dt = qdq.code_dtype(name, signed, bits, narrow)
                    assert dt.kind == ("i" if signed else "u")
                    lo, hi = code_bounds(fmt, check_grid(signed, bits, narrow))
                    qmin, qmax = ((-(2 ** (bits - 1)) + narrow, 2 ** (bits - 1) - 1) if signed
                                  else (0, 2 ** bits - 1))
                    assert lo <= qmin and qmax <= hi
                    info = np.iinfo(dt)
                    assert info.min <= lo and hi <= info.max
                    if dt.itemsize > 1:
                        smaller = np.iinfo(np.dtype(f"{dt.kind}{dt.itemsize // 2}"))
                        assert lo < smaller.min or hi > smaller.max or \
                            bits > 8 * dt.itemsize // 2
    assert qdq.code_dtype(np.float32) == np.int8
    assert qdq.code_dtype(np.float16) == np.int8
    assert qdq.code_dtype(np.float32, True, 32) == np.int64   # qmax rounds to 2**31
    assert qdq.code_dtype(np.float64, True, 32) == np.int32
    assert qdq.code_dtype(np.float16, True, 16) == np.int32   # 32767 rounds to 32768
    assert qdq.code_dtype(np.float64, False, 62) == np.uint64
    assert qdq.code_dtype("bfloat16") == np.int16             # code 128 can occur
    assert qdq.code_dtype("bfloat16", False) == np.uint16


def test_bfloat16_code_past_qmax():
    """bfloat16's rounding takes the clamped maximum to code 128 on an 8-bit grid."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = np.array([0.000125885, -0.000132561, 0.00130463], ml_dtypes.bfloat16)
    codes, p = qdq.quantize(x, -4.137349728894725e-27, 0.0, range_given=True)
    assert codes.dtype == np.int16 and codes.max() == 128
    assert_bits_equal(qdq.dequantize(codes, p),
                      qdq.quantize_and_dequantize(x, -4.137349728894725e-27, 0.0,
                                                  range_given=True))
    with pytest.raises(ValueError, match="narrower code_dtype"):
        qdq.quantize(x, -4.137349728894725e-27, 0.0, range_given=True, code_dtype=np.int8)
    codes8, _ = qdq.quantize(x, -1.0, 1.0, range_given=True, code_dtype=np.int8)
    assert codes8.dtype == np.int8


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("bits", [1, 2, 7, 8, 9, 15, 16, 17, 24, 25, 31, 32, 33, 53, 60, 61])
def test_round_trip_every_width(name, bits):
    rng = np.random.default_rng(bits)
    x = (rng.standard_normal((40, 6)) * 10).astype(make_dtype(name)) if name != "bfloat16" \
        else None
    if x is None:
        pytest.importorskip("ml_dtypes")
        x = (rng.standard_normal((40, 6)) * 10).astype(make_dtype(name))
    for axis in (None, 0, -1):
        for kw in (dict(), dict(range_given=True, input_min=-12.0, input_max=9.0),
                   dict(signed_input=False, range_given=True, input_min=0.0, input_max=20.0)):
            signed = kw.get("signed_input", True)
            if name == "float16" and bits >= (17 if signed else 16):
                continue  # qmax is inf in float16: the op's output is NaN, codes are inf
            try:
                codes, p = qdq.quantize(x, num_bits=bits, axis=axis, **kw)
            except ValueError:
                assert not kw  # only unclamped garbage is refused
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = qdq.quantize_and_dequantize(x, num_bits=bits, axis=axis, **kw)
            assert_equal_but_zero_signs(qdq.dequantize(codes, p), expected, codes)


def test_zero_code_loses_the_sign_of_zero():
    """The one difference from the op: -0.0 has no integer code."""
    x = np.array([-0.003, -10.0, 10.0], np.float32)
    codes, p = qdq.quantize(x)
    op = qdq.quantize_and_dequantize(x)
    back = qdq.dequantize(codes, p)
    assert codes[0] == 0 and np.signbit(op[0]) and not np.signbit(back[0]) and back[0] == op[0]
    assert_bits_equal(back[1:], op[1:])


def test_nan_and_unclamped_codes_are_refused():
    with pytest.raises(ValueError, match="NaN .* has no integer code"):
        qdq.quantize(np.array([1.0, np.nan, -1.0]))
    with pytest.raises(ValueError, match="NaN"):
        qdq.quantize(np.array([1.0, np.inf, -1.0]))        # scale 0 * inf
    with pytest.raises(ValueError, match="do not fit the code type uint8"):
        qdq.quantize(np.array([-1.0, 0.5]), signed_input=False)
    # with a range, inf and negatives clamp
    codes, _ = qdq.quantize(np.array([-1.0, np.inf]), 0.0, 1.0, signed_input=False,
                            range_given=True)
    assert codes.tolist() == [0, 255]
    # num_bits=1 signed without a range: q = +1 although qmax = 0; it fits int8
    codes, p = qdq.quantize(np.array([-1.0, -0.4, 0, 0.4, 1.0], np.float32), num_bits=1)
    assert codes.tolist() == [-1, 0, 0, 0, 1]


_SMALL16 = np.float16([[0.001, -0.0005], [0.0, 0.00075]])  # max |w| < 127 / 65504


def _quantize_small16(how, tmp_path):
    x = _SMALL16
    if how == "given":
        return qdq.quantize(x, -0.001, 0.001, range_given=True)
    if how == "data":
        return qdq.quantize(x)
    if how == "channels":
        return qdq.quantize(x, np.float16([-1, -0.001]), np.float16([1, 0.001]),
                            range_given=True, axis=1)
    if how == "blocks":
        return qdq.quantize(x, axis=0, block_size=2)
    if how == "blocks-given":
        return qdq.quantize(x, np.float16([[-1, -0.001]]), np.float16([[1, 0.001]]),
                            range_given=True, axis=0, block_size=2)
    np.save(tmp_path / "x.npy", x)
    if how == "file":
        return qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy", -0.001, 0.001,
                                 range_given=True)
    if how == "file-blocks":
        return qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy", axis=0, block_size=2)
    qdq_dask = pytest.importorskip("qdq.dask")
    da = pytest.importorskip("dask.array")
    with warnings.catch_warnings():  # (the range task warns as the op does, then the codes fail)
        warnings.simplefilter("ignore", RuntimeWarning)
        codes, _ = qdq_dask.quantize(da.from_array(x, chunks=1), -0.001, 0.001,
                                     range_given=True)
        return codes.compute()


@pytest.mark.parametrize("how", ["given", "data", "channels", "blocks", "blocks-given", "file",
                                 "file-blocks", "dask"])
def test_float16_scale_overflow_is_named_by_quantize(how, tmp_path):
    """Issue 24 item 12: the error said the input "has NaN (or ... an inf without a given
    range)"; it names the float16 scale overflow, the range and the fix, as the op warns."""
    with pytest.raises(ValueError) as info:
        _quantize_small16(how, tmp_path)
    text = str(info.value)
    assert "float16 scale overflows to inf" in text and "has NaN" not in text, text
    assert "too small for float16 arithmetic" in text and "x.astype(np.float32)" in text
    assert ("given range" in text) == ("given" in how or how in ("channels", "file", "dask"))
    assert not (tmp_path / "c.npy").exists()
    # the same data in float32: codes, no error
    qdq.quantize(_SMALL16.astype(np.float32), -0.001, 0.001, range_given=True)


def test_float16_overflow_without_elements_is_no_error():
    """No element, no code to refuse (hypothesis found it): empty codes, as before."""
    for kw in ({}, {"axis": 0, "block_size": 2}):
        codes, _ = qdq.quantize(np.zeros((0, 3), np.float16), -0.001, 0.001, range_given=True,
                                **kw)
        assert codes.shape == (0, 3)


def test_float16_nan_without_overflow_still_says_nan():
    with pytest.raises(ValueError, match="the input has NaN"):
        qdq.quantize(np.float16([1.0, np.nan, -1.0]))


def test_quantize_out_and_layouts():
    x = np.asfortranarray(np.random.default_rng(0).standard_normal((30, 20)))
    codes, p = qdq.quantize(x, axis=1)
    assert codes.flags.f_contiguous
    out = np.empty((30, 20), np.int8)
    c2, _ = qdq.quantize(x, axis=1, out=out)
    assert c2 is out and (out == codes).all()
    with pytest.raises(ValueError, match="the codes need int8"):
        qdq.quantize(x, out=np.empty((30, 20), np.int16))
    back = qdq.dequantize(codes.astype(np.int64)[::-1][::-1], p)   # any int type and layout
    assert_equal_but_zero_signs(back, qdq.quantize_and_dequantize(x, axis=1), codes)
    out = np.empty((30, 20))
    assert qdq.dequantize(codes, p, out=out) is out


def test_dequantize_errors():
    codes, p = qdq.quantize(np.zeros((4, 3)), axis=1)
    with pytest.raises(ValueError, match="3 channels but the codes have 4"):
        qdq.dequantize(codes.T, p)
    with pytest.raises(TypeError, match="integer array"):
        qdq.dequantize(codes.astype(np.float32), p)
    with pytest.raises(TypeError, match="QuantizationParams"):
        qdq.dequantize(codes, {"scale": 1})


def test_gradient_errors_and_tf_rules():
    x = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    g = np.ones(5)
    # min > max is not an error: the gradient is zero
    assert (qdq.quantize_and_dequantize_grad(g, x, 1.0, -1.0) == 0).all()
    # the given range, not the adjusted one: (0, 9.92] gets no gradient for [-10, 0]
    assert qdq.quantize_and_dequantize_grad(g, x, -10.0, 0.0).tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="same shape"):
        qdq.quantize_and_dequantize_grad(np.ones(4), x, -1.0, 1.0)
    with pytest.raises(TypeError, match="same type"):
        qdq.quantize_and_dequantize_grad(g.astype(np.float32), x, -1.0, 1.0)
    with pytest.raises(ValueError, match="has 2 values but axis 0 has 5"):
        qdq.quantize_and_dequantize_grad(g, x, [0, 0], [1, 1], axis=0)


# -- JSON ---------------------------------------------------------------------

@given(st.sampled_from(FORMATS), st.booleans(), st.integers(1, 61), st.booleans(),
       st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=12),
       st.booleans(), st.sampled_from(["HALF_TO_EVEN", "HALF_UP"]))
def test_params_json_round_trip(name, signed, bits, narrow, values, per_channel, mode):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.array(values[::2]), np.array(values[1::2])
        n = min(len(lo), len(hi))
        lo, hi = lo[:n], hi[:n]
        if not per_channel:
            lo, hi = lo[0], hi[0]
        p = qdq.quantization_params(lo, hi, name, signed, bits, narrow and signed,
                                    axis=0 if per_channel else None)
    p = qdq.QuantizationParams(**{**p.__dict__, "round_mode": mode})
    text = p.to_json()
    back = qdq.QuantizationParams.from_json(text)
    assert back == p
    assert json.loads(text)["code_dtype"] == qdq.code_dtype(name, signed, bits,
                                                            narrow and signed).name
    for f in ("scale", "inverse_scale", "min_range", "max_range", "qmin", "qmax"):
        a, b = np.asarray(getattr(p, f)), np.asarray(getattr(back, f))
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()


def test_params_json_files_and_errors(tmp_path):
    _, p = qdq.quantize(np.linspace(-3, 2, 50, dtype=np.float16).reshape(10, 5), axis=1)
    p.save(tmp_path / "p.json")
    assert qdq.QuantizationParams.load(tmp_path / "p.json") == p
    assert os.listdir(tmp_path) == ["p.json"]
    with pytest.raises(ValueError, match="not a JSON document"):
        qdq.QuantizationParams.from_json("{")
    with pytest.raises(ValueError, match="missing 'qdq_params'"):
        qdq.QuantizationParams.from_json("{}")
    d = p.to_dict()
    d["scale"] = d["scale"][:-1] + ["zz"]
    with pytest.raises(ValueError, match="malformed"):
        qdq.QuantizationParams.from_dict(d)
    d = p.to_dict()
    d["scale"][0] = (0.1).hex()   # not a float16 value
    with pytest.raises(ValueError, match="not float16 values"):
        qdq.QuantizationParams.from_dict(d)


# -- files and the command line -------------------------------------------------

@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_codes_files(tmp_path, name, axis):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((60, 7)) * 5).astype(make_dtype(name))
    np.save(tmp_path / "x.npy", x)
    bits = name == "bfloat16"
    p = qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy", axis=axis, num_bits=5,
                          chunk_bytes=100, bfloat16_bits=bits)
    codes, p2 = qdq.quantize(x, axis=axis, num_bits=5)
    assert p == p2
    assert (np.load(tmp_path / "c.npy") == codes).all()
    assert qdq.QuantizationParams.load(tmp_path / "c.params.json") == p
    qdq.dequantize_file(tmp_path / "c.npy", tmp_path / "y.npy", chunk_bytes=77)
    y = np.load(tmp_path / "y.npy")
    expected = qdq.quantize_and_dequantize(x, axis=axis, num_bits=5)
    assert_equal_but_zero_signs(y.view(x.dtype) if bits else y, expected, codes)
    # arrays in and out
    out = np.empty(x.shape, np.int8)
    qdq.quantize_file(x, out, axis=axis, num_bits=5)
    assert (out == codes).all()
    back = np.empty_like(x)
    qdq.dequantize_file(out, back, params=p)
    assert_equal_but_zero_signs(back, expected, codes)
    assert sorted(os.listdir(tmp_path)) == ["c.npy", "c.params.json", "x.npy", "y.npy"]


def test_codes_file_with_nan_leaves_nothing(tmp_path):
    x = np.ones((100, 10), np.float32)
    x[77, 3] = np.nan
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match="NaN"):
        qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy", chunk_bytes=400)
    assert os.listdir(tmp_path) == ["x.npy"]


def test_cli_quantize_dequantize(tmp_path):
    x = np.random.default_rng(5).standard_normal((40, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    r = run_python(["-m", "qdq", "quantize", "x.npy", "c.npy", "--axis", "1", "--num-bits", "4",
                    "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "int8 codes" in r.stdout and (tmp_path / "c.params.json").exists()
    r = run_python(["-m", "qdq", "dequantize", "c.npy", "y.npy", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    codes = np.load(tmp_path / "c.npy")
    assert_equal_but_zero_signs(np.load(tmp_path / "y.npy"),
                                qdq.quantize_and_dequantize(x, axis=1, num_bits=4), codes)
    r = run_python(["-m", "qdq", "dequantize", "c.npy", "z.npy", "--params", "nope.json", "-q"],
                   cwd=tmp_path)
    assert r.returncode == 1 and r.stderr.startswith("qdq: error:")


@pytest.mark.parametrize("name", ["bfloat16", "float16", "float32"])
def test_codes_at_the_clamp_extremes_fit(name):
    """Inputs at and beyond the adjusted range, many ranges: every code fits code_dtype."""
    from qdq._core.params import code_bounds
    from qdq._core.validate import check_grid

    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    dt = make_dtype(name)
    fmt = qdq._core.formats.format_named(name)
    rng = np.random.default_rng(11)
    worst = {}
    for _ in range(3000):
        signed = bool(rng.integers(0, 2))
        bits = int(rng.integers(2, 17 if name != "float16" else 16))
        narrow = signed and bool(rng.integers(0, 2))
        low_exp = -3 if name == "float16" else -30   # ranges the format holds, not 0 or inf
        a, b = np.sort(rng.standard_normal(2) * 10.0 ** rng.integers(low_exp, 4))
        if not signed:
            a, b = 0.0, abs(b) + abs(a)
        p = qdq.quantization_params(a, b, name, signed, bits, narrow)
        if not np.isfinite([float(p.scale), float(p.inverse_scale), float(p.min_range),
                            float(p.max_range)]).all():
            continue  # the format cannot hold this grid's scale: the op gives NaN/inf too
        x = np.array([a, b, float(p.min_range), float(p.max_range), a - abs(a), b + abs(b),
                      *(rng.uniform(a, b, 8))]).astype(dt)
        codes, _ = qdq.quantize(x, a, b, signed, bits, True, "HALF_UP" if rng.random() < 0.5
                                else "HALF_TO_EVEN", narrow)
        lo, hi = code_bounds(fmt, check_grid(signed, bits, narrow))
        assert lo <= codes.min() and codes.max() <= hi
        qmax = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
        worst[bits] = max(worst.get(bits, 0), int(codes.max()) - qmax)
    if name == "float32":
        assert max(worst.values()) <= 0  # float32 never passes qmax on these grids
