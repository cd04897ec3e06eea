"""TensorFlow's golden vectors (tests/conformance/golden/), loaded once for every test."""

import json
import os

import numpy as np

HERE = os.path.join(os.path.dirname(__file__), "conformance", "golden")


def _load(name):
    with open(os.path.join(HERE, name)) as f:
        return json.load(f)


GOLDEN = _load("tf_golden.json")
OP_CASES = [c for c in GOLDEN["cases"] if c.get("op") != "grad"]


def _arr(hexstr, dtype, shape):
    dt = np.dtype(dtype)
    raw = np.frombuffer(bytes.fromhex(hexstr), dtype=dt.newbyteorder("<"))
    return raw.astype(dt).reshape(shape)
