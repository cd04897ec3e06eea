"""Shared by the parameter tests: a valid parameters' JSON, and bad values for each field."""

import numpy as np

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
