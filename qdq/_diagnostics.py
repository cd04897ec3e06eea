"""The RuntimeWarnings of the op: results that are TensorFlow's but rarely what is wanted."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ._formats import FLOAT16, Format

__all__ = ["warn_float16_overflow", "warn_unsigned_negative"]


def warn_unsigned_negative(stacklevel: int = 3) -> None:
    """Warn about unsigned output with negative data and no given range."""
    warnings.warn(
        "signed_input=False with negative data and range_given=False: like TensorFlow, qdq "
        "does not clamp, so the negative values come out meaningless; pass range_given=True "
        "(the clamp then maps them to 0) or use signed_input=True",
        RuntimeWarning, stacklevel=stacklevel)


def warn_float16_overflow(fmt: Format, scale: Any, lo: Any, hi: Any,
                          stacklevel: int = 3, unit: str = "channels") -> None:
    """Warn when a float16 scale overflows to inf (tiny ranges): the output is then inf/NaN.

    TensorFlow computes the scale in T, and qdq keeps those bits; the warning
    names the fix. ``scale``, ``lo``, ``hi``: the parameters (scalars or per
    channel).
    """
    if fmt is not FLOAT16:
        return
    scale = np.atleast_1d(np.asarray(scale, np.float64))
    bad = np.isinf(scale)
    if not bad.any():
        return
    lo = np.broadcast_to(np.asarray(lo, np.float64), scale.shape)
    hi = np.broadcast_to(np.asarray(hi, np.float64), scale.shape)
    k = int(np.flatnonzero(bad)[0])
    where = "" if scale.shape[0] == 1 else f" in {int(bad.sum())} {unit} (first: {k})"
    warnings.warn(
        f"float16 scale overflows to {float(scale[k])!r}{where}: the range "
        f"[{float(lo[k])!r}, {float(hi[k])!r}] is too small for float16 arithmetic (its "
        "largest magnitude is below qmax / 65504), so the output is inf/NaN, as in "
        "TensorFlow; compute in float32 (x.astype(np.float32)) and convert the result back",
        RuntimeWarning, stacklevel=stacklevel)
