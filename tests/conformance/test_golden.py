"""qdq against TensorFlow 2.21's golden vectors, bit for bit.

tf_golden.json comes from generate_tf_golden.py (run in its own environment
with tensorflow-cpu 2.21.0); tf_reference_vectors.json is the shared set of
55 probes from the semantics reference. A case without a known difference must
match TensorFlow exactly; each known difference (SPEC section 5) is checked to
be that difference and nothing else.
"""

import os
import warnings

import numpy as np
import pytest
from _golden import GOLDEN, HERE, OP_CASES, _arr, _load
from _util import assert_bits_equal, bits

import qdq
from qdq import _reference


def _run(case):
    x = _arr(case["x"], case["dtype"], case["shape"])
    mn = _arr(case["input_min"], case["dtype"], case["minmax_shape"])
    mx = _arr(case["input_max"], case["dtype"], case["minmax_shape"])
    kw = dict(signed_input=case["signed_input"], num_bits=case["num_bits"],
              range_given=case["range_given"], round_mode=case["round_mode"],
              narrow_range=case["narrow_range"], axis=case["axis"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = qdq.quantize_and_dequantize(x, mn, mx, **kw)
    expected = _arr(case["out"], case["dtype"], case["shape"])
    return x, mn, mx, kw, got, expected


def test_golden_file_covers_the_issue():
    names = " ".join(c["name"] for c in OP_CASES)
    for needle in ("doc: [-10, 5] given", "doc: [-10, 10] given", "HALF_UP", "narrow=True",
                   "bits=1 ", "bits=61", "bits=62", "edge: empty", "edge: 0-d", "ties:",
                   "negative zero", "+inf in data", "channel given (V3)", "axis=3"):
        assert needle in names, needle
    assert {c["dtype"] for c in OP_CASES} == {"float32", "float64"}
    assert GOLDEN["tensorflow"] == "2.21.0"
    assert len(OP_CASES) > 900
    assert os.path.getsize(os.path.join(HERE, "tf_golden.json")) < 2_000_000


@pytest.mark.parametrize("case", [c for c in OP_CASES if c["known_difference"] is None],
                         ids=lambda c: c["name"])
def test_matches_tensorflow(case, isa):
    x, mn, mx, kw, got, expected = _run(case)
    assert_bits_equal(got, expected, msg=case["name"])


@pytest.mark.parametrize("case", [c for c in OP_CASES if c["known_difference"] == "nan"],
                         ids=lambda c: c["name"])
def test_nan_in_data_is_ignored_by_the_range(case):
    """Difference 1: TF's reduction sees NaN depending on its position; qdq ignores it."""
    x, mn, mx, kw, got, tf_out = _run(case)
    finite = ~np.isnan(x)
    clean = qdq.quantize_and_dequantize(x[finite], **kw)
    assert np.isnan(got[~finite]).all()
    assert_bits_equal(got[finite], clean)
    assert_bits_equal(got, _reference.quantize_and_dequantize(x, mn, mx, **kw))


@pytest.mark.parametrize("case", [c for c in OP_CASES if c["known_difference"] == "ftz"],
                         ids=lambda c: c["name"])
def test_subnormals_follow_ieee(case):
    """Difference 3: TF flushes subnormals to zero; qdq does IEEE arithmetic."""
    x, mn, mx, kw, got, tf_out = _run(case)
    assert_bits_equal(got, _reference.quantize_and_dequantize(x, mn, mx, **kw))
    differ = bits(got) != bits(tf_out)
    assert differ.any(), "expected TensorFlow's flush-to-zero to show"
    # Where they differ, TensorFlow's answer is a flushed zero.
    assert (tf_out[differ] == 0).all()


@pytest.mark.parametrize("case", [c for c in OP_CASES if c["known_difference"] == "zero_sign"],
                         ids=lambda c: c["name"])
def test_mixed_zero_signs_differ_only_in_sign(case):
    """Difference 2: with +0 and -0 in an all-zero tensor, only zero signs may differ."""
    x, mn, mx, kw, got, tf_out = _run(case)
    assert (got == tf_out).all()
    assert_bits_equal(got, _reference.quantize_and_dequantize(x, mn, mx, **kw))


def test_zero_range_is_order_independent():
    """qdq's min prefers -0.0 and its max +0.0, whatever the order."""
    for x in ([0.0, -0.0, 0.0], [-0.0, 0.0, -0.0], [0.0] * 20 + [-0.0], [-0.0] + [0.0] * 20):
        a = np.array(x, np.float32)
        mn, mx = qdq.compute_range(a)
        assert np.signbit(mn) and not np.signbit(mx)


# The 55 probes of the semantics reference, each tagged by its name.
REFERENCE = _load("tf_reference_vectors.json")


def _ref_case(c):
    dt = np.dtype(c["dtype"])
    ut = np.dtype(f"u{dt.itemsize}")
    shape = c["shape"]
    x = np.array([int(b, 16) for b in c["input_bits"]], dtype=ut).view(dt).reshape(shape)
    out = np.array([int(b, 16) for b in c["output_bits"]], dtype=ut).view(dt).reshape(shape)
    return x, out


@pytest.mark.parametrize("case", [c for c in REFERENCE["cases"] if c["op"] in ("V2", "V3", "V4")],
                         ids=lambda c: c["name"])
def test_reference_probes(case):
    x, tf_out = _ref_case(case)
    attrs = {k: v for k, v in case["attrs"].items()
             if k in ("signed_input", "num_bits", "range_given", "round_mode", "narrow_range",
                      "axis")}
    if case["op"] == "V3":
        attrs.setdefault("range_given", True)
    name = case["name"]
    if "min>max not rejected" in name:
        # Difference 5: TF's V3 does not check per-channel ranges; qdq names the channel.
        with pytest.raises(ValueError, match="channel 1"):
            qdq.quantize_and_dequantize(x, case["input_min"], case["input_max"], **attrs)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = qdq.quantize_and_dequantize(x, case["input_min"], case["input_max"], **attrs)
    ref = _reference.quantize_and_dequantize(x, case["input_min"], case["input_max"], **attrs)
    assert_bits_equal(got, ref, msg=name)
    if "NaN" in name and not attrs.get("range_given"):
        return  # difference 1, checked above
    if "denormal" in name:
        assert (tf_out[bits(got) != bits(tf_out)] == 0).all()  # difference 3
        return
    assert_bits_equal(got, tf_out, msg=name)
