"""QuantizationParams from hand-edited JSON: every field checked, naming it."""

import json

import numpy as np
import pytest
from _params_cases import BAD_FIELDS, PER_CHANNEL, PER_TENSOR, X  # noqa: F401

import qdq


@pytest.mark.parametrize("field, value, exc, word", BAD_FIELDS,
                         ids=[f"{f}={v!r}"[:30] for f, v, _, _ in BAD_FIELDS])
def test_every_field_is_checked(field, value, exc, word):
    d = dict(PER_TENSOR, **{field: value})
    with pytest.raises(exc, match=word):
        qdq.QuantizationParams.from_dict(d)
    with pytest.raises(exc, match=word):
        qdq.QuantizationParams.from_json(json.dumps(d))


@pytest.mark.parametrize("field, value", [
    ("scale", "0x1p0"), ("scale", ["0x1p0"]), ("min_range", ["0x1p0"] * 5),
    ("per_channel", False), ("max_range", [1.0, 1.0, 1.0, 1.0]),
])
def test_per_channel_fields_are_checked(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0] if field != "per_channel"
                       else "per_channel is false"):
        qdq.QuantizationParams.from_dict(dict(PER_CHANNEL, **{field: value}))


@pytest.mark.parametrize("doc", [[], "x", None, {}, {"qdq_params": 1}])
def test_not_params(doc):
    with pytest.raises(ValueError, match="qdq quantization parameters"):
        qdq.QuantizationParams.from_dict(doc)


def test_missing_fields_are_named():
    for field in PER_TENSOR:
        if field in ("qdq_params", "code_dtype"):
            continue
        d = dict(PER_TENSOR)
        del d[field]
        with pytest.raises(ValueError, match=f"missing {field}"):
            qdq.QuantizationParams.from_dict(d)


def test_round_trips_still_work():
    for p in (qdq.quantize(X)[1], qdq.quantize(X, axis=0, num_bits=3)[1],
              qdq.quantize((X + 1).astype(np.float16), signed_input=False, narrow_range=True)[1],
              qdq.quantization_params(np.zeros(0), np.zeros(0), np.float64, axis=0)):
        assert qdq.QuantizationParams.from_json(p.to_json()) == p
    d = dict(PER_TENSOR)
    del d["code_dtype"]  # informational: may be left out
    assert qdq.QuantizationParams.from_dict(d) == qdq.quantize(X)[1]


def test_integer_value_is_the_kernels_grid_in_every_format():
    """formats.integer_value (pure Python, for the framework adapters) equals the kernels'
    conversion of every grid bound: all widths, signs and narrowness, all four formats."""
    from qdq._core.formats import format_named, integer_value
    from qdq._core.validate import integer_grid

    for name in ("float16", "bfloat16", "float32", "float64"):
        fmt = format_named(name)
        for signed in (True, False):
            for narrow in (True, False):
                for bits in range(1, 62 if signed else 63):
                    p = qdq.quantization_params(-1.0, 1.0, name, signed, bits, narrow)
                    qmin, qmax = integer_grid(signed, bits, narrow)
                    assert integer_value(fmt, qmin) == float(p.qmin), (name, signed, bits)
                    assert integer_value(fmt, qmax) == float(p.qmax), (name, signed, bits)
    assert integer_value(format_named("float16"), 65535) == float("inf")
    assert integer_value(format_named("float32"), 2**24 + 1) == 2.0**24    # tie to even
    assert integer_value(format_named("float32"), 2**24 + 3) == 2.0**24 + 4
