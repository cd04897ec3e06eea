"""QuantizationParams from hand-edited JSON: every field checked, naming it."""

import json

import numpy as np
import pytest

import qdq

X = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
PER_TENSOR = qdq.quantize(X)[1].to_dict()
PER_CHANNEL = qdq.quantize(X, axis=1)[1].to_dict()

# (field, value, the exception, a word the message must hold)
BAD_FIELDS = [
    ("scale", 1.5, ValueError, "scale"),                       # a plain number
    ("scale", 0, ValueError, "scale"),
    ("scale", None, ValueError, "scale"),
    ("scale", ["0x1p0"], ValueError, "scale"),                 # a list, per_channel false
    ("inverse_scale", "nan:0x" + "f" * 40, ValueError, "inverse_scale"),  # a huge NaN payload
    ("min_range", "nan:0x0", ValueError, "min_range"),         # not a NaN
    ("min_range", "nan:-1", ValueError, "min_range"),
    ("max_range", "0x1p+99999", ValueError, "max_range"),      # overflows float64
    ("max_range", "0x1.0000001p0", ValueError, "max_range"),   # not a float32 value
    ("per_channel", "no", TypeError, "per_channel"),           # was read as true
    ("per_channel", 0, TypeError, "per_channel"),
    ("qmax", "0x1p+10", ValueError, "qmax"),                   # not the grid's
    ("qmin", "0x0p+0", ValueError, "qmin"),
    ("qmin", 3, ValueError, "qmin"),
    ("num_bits", 70, ValueError, "num_bits"),
    ("num_bits", "8", TypeError, "num_bits"),
    ("num_bits", 8.0, TypeError, "num_bits"),
    ("num_bits", True, TypeError, "num_bits"),
    ("signed_input", "yes", TypeError, "signed_input"),
    ("signed_input", 1, TypeError, "signed_input"),
    ("narrow_range", None, TypeError, "narrow_range"),
    ("round_mode", "UP", ValueError, "round_mode"),
    ("round_mode", 3, ValueError, "round_mode"),
    ("dtype", "int8", ValueError, "dtype"),
    ("dtype", 5, ValueError, "dtype"),
    ("dtype", ["float32"], ValueError, "dtype"),
    ("axis", "0", ValueError, "axis"),
    ("axis", 1.5, ValueError, "axis"),
    ("axis", True, ValueError, "axis"),
    ("code_dtype", "int16", ValueError, "code_dtype"),
    ("code_dtype", 5, ValueError, "code_dtype"),
    ("qdq_params", 2, ValueError, "qdq_params"),
]


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
