"""Shared by the histogram tests: cases of every format, sample data, counts by definition."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from qdq._core.formats import values_to_bits

CASES = ("float16", "bfloat16", "bfloat16_bits", "float32", "float64")
METHODS = ("percentile", "mse", "entropy", "minmax")


def fmt_name(case: str) -> str:
    return "bfloat16" if case.startswith("bfloat16") else case


def make(case: str, vals: np.ndarray) -> tuple[np.ndarray, bool]:
    """float64 values -> an array of the case (rounded to the type), and bfloat16_bits."""
    if case == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return vals.astype(np.float32).astype(ml_dtypes.bfloat16), False
    if case == "bfloat16_bits":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        return values_to_bits(vals.astype(np.float32).astype(ml_dtypes.bfloat16)
                              .astype(np.float32)), True
    return vals.astype(case), False


def sample(case: str, n: int, rng, specials: bool = True, shape=None) -> np.ndarray:
    """Student-t data with zeros of both signs, subnormals, NaN and inf mixed in."""
    scale = {"float16": 4.0, "float64": 1e5}.get(fmt_name(case), 100.0)
    v = rng.standard_t(3, n) * scale
    if specials:
        sub = {"float16": 2.0 ** -20, "bfloat16": 2.0 ** -130, "float32": 2.0 ** -140,
               "float64": 2.0 ** -1060}[fmt_name(case)]
        pick = rng.choice(n, size=min(n, 40), replace=False)
        v[pick[:8]] = 0.0
        v[pick[8:14]] = -0.0
        v[pick[14:22]] = rng.integers(-7, 8, 8) * sub
        v[pick[22:28]] = np.nan
        v[pick[28:31]] = np.inf
        v[pick[31:33]] = -np.inf
    x, b = make(case, v)
    return (x.reshape(shape) if shape else x), b


def ref_counts(vals: np.ndarray, bins: int, kfloor: int) -> tuple[int, np.ndarray]:
    """Exponent and counts from the definition, in exact rational arithmetic."""
    v = vals[np.isfinite(vals)]
    m = float(np.max(np.abs(v))) if v.size else 0.0
    k = kfloor
    while not m < math.ldexp(bins // 2, k):
        k += 1
    counts = np.zeros(bins, np.uint64)
    step = Fraction(2) ** k
    for x in v:
        counts[math.floor(Fraction(float(x)) / step) + bins // 2] += 1
    return k, counts


def floor_counts(vals: np.ndarray, bins: int, kfloor: int) -> tuple[int, np.ndarray]:
    """ref_counts in float64: exact where x / 2**k neither overflows nor underflows (16-bit
    and float32 values, moderate float64 ones), and fast enough for millions of values."""
    v = vals[np.isfinite(vals)]
    k = kfloor
    while v.size and not np.abs(v).max() < math.ldexp(bins // 2, k):
        k += 1
    counts = np.bincount((np.floor(v * 2.0 ** -k) + bins // 2).astype(np.int64), minlength=bins)
    return k, counts


def split(x: np.ndarray, rng, pieces: int) -> list[np.ndarray]:
    cuts = np.sort(rng.integers(0, x.shape[0] + 1, pieces - 1))
    return np.split(x, cuts)
