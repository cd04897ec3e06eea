"""Calibrated ranges from signed power-of-two histograms: the four methods.

Four ways to pick ``(input_min, input_max)`` for the op with ``range_given``:

* ``"minmax"``: the exact NaN-ignoring min/max (tracked alongside the counts).
* ``"percentile"``: the lower ``(100 - p)/100`` and upper ``p/100`` quantiles
  of the finite values, to the bin: the upper end is the upper edge of the bin
  holding the element of rank ``floor(p/100 * (N - 1))`` (0-based, sorted),
  the lower end the lower edge of the bin holding rank
  ``ceil((1 - p/100) * (N - 1))``. Each end lies within one bin width of
  np.quantile's (linear) quantile whenever the two order statistics it
  interpolates share a bin or sit in adjacent ones (always, for p = 100).
* ``"mse"``: the candidate range (pairs of bin edges) whose quantizer, with the
  op's own parameters (TF's scale rule in the data's type, via
  :func:`qdq.quantization_params`' computation) and clamp, has the least
  expected squared error over the histogram, the values of each bin taken as
  spread uniformly over it (closed form, no sampling).
* ``"entropy"``: TensorRT's KL-divergence search (as in pytorch-quantization's
  ``_compute_amax_entropy``) on the histogram of ``|x|``, which the signed
  histogram gives exactly by folding bin ``-1 - j`` onto bin ``j``.

Every method is a function of the counts, the exponent and the exact min/max
only, so its result inherits the histogram's independence of chunking, order,
threads and merges. Results are rounded to the data's type.

``"mse"`` and ``"entropy"`` are compiled (``qdq/_ext/csrc/search.h``, the
channels spread over qdq's threads): the same float64 operations, in the same
order, as the NumPy formulation they replaced (kept as the tests' oracle in
``tests/calibrate/search_reference.py``), with NumPy's own matmul and log loops
where that formulation used them, so the chosen ranges are bit-identical to it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from .._core import engine
from .._core.formats import Format, round_to
from .._core.validate import OpArgs

__all__ = ["check_calibration", "check_method", "histogram_range", "parse_calibration", "METHODS"]

METHODS = ("percentile", "mse", "entropy", "minmax")


def check_method(method: Any, percentile: Any) -> tuple[str, float]:
    """The method name and percentile, checked."""
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; expected one of "
                         f"{', '.join(repr(m) for m in METHODS)}")
    if isinstance(percentile, (bool, np.bool_)) or not isinstance(percentile, numbers.Real):
        raise TypeError(f"percentile must be a real number, got {percentile!r}")
    p = float(percentile)
    if not 50.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    return method, p


def parse_calibration(spec: Any) -> tuple[str, float]:
    """``"mse"``, ``"entropy"``, ``"minmax"``, ``"percentile"`` or ``"percentile:99.9"``.

    Returns the method and the percentile (99.99 unless given), checked.
    """
    if not isinstance(spec, str):
        raise TypeError(f"calibrate must be a method name such as 'mse' or "
                        f"'percentile:99.99', got {spec!r}")
    method, _, rest = spec.partition(":")
    percentile: Any = 99.99
    if rest:
        if method != "percentile":
            raise ValueError(f"only 'percentile' takes a value after ':', got {spec!r}")
        try:
            percentile = float(rest)
        except ValueError:
            raise ValueError(f"not a percentile in {spec!r}") from None
    return check_method(method, percentile)


def check_calibration(spec: Any, block_size: int | None, range_given: bool) -> None:
    """A calibration request for a file run: a valid method, and no other range source."""
    parse_calibration(spec)
    if block_size is not None or range_given:
        raise ValueError("calibrate takes the range from the data's histogram: it goes with "
                         "neither a given range nor block_size")


# ---------------------------------------------------------------------------
# One channel, in units of the bin width (edges are the integers -h..h)
# ---------------------------------------------------------------------------

def _extent(counts: np.ndarray, h: int) -> tuple[int, int] | None:
    """(lowest, highest) non-empty bin index j, or None."""
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return None
    return int(nz[0]) - h, int(nz[-1]) - h


def _percentile(counts: np.ndarray, h: int, p: float) -> tuple[float, float]:
    ext = _extent(counts, h)
    if ext is None:
        return math.nan, math.nan
    n = int(counts.sum(dtype=np.uint64))
    q = p / 100.0
    # np.quantile's (linear) value lies between the order statistics of ranks
    # floor(r) and ceil(r): take the far edge of the bin of the nearer one.
    r_hi = min(n - 1, math.floor(q * (n - 1)))
    r_lo = max(0, min(n - 1, math.ceil((1.0 - q) * (n - 1))))
    cum = np.cumsum(counts, dtype=np.uint64)
    b_hi = int(np.searchsorted(cum, np.uint64(r_hi), side="right"))
    b_lo = int(np.searchsorted(cum, np.uint64(r_lo), side="right"))
    return float(b_lo - h), float(b_hi + 1 - h)


# ---------------------------------------------------------------------------
# Per channel
# ---------------------------------------------------------------------------

def histogram_range(hist: Any, fmt: Format, bins: int, method: str, *, percentile: float,
                    num_bits: int, signed_input: bool, narrow_range: bool,
                    round_mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Compute-type arrays (lo, hi), one value per channel of a tracker's histogram."""
    method, p = check_method(method, percentile)
    args = OpArgs(signed_input, num_bits, True, round_mode, narrow_range)
    C = hist.k.shape[0]
    if method == "minmax":
        mn, mx = hist.mn.copy(), hist.mx.copy()
        empty = mn > mx
        mn[empty] = np.nan
        mx[empty] = np.nan
        return round_to(mn, fmt), round_to(mx, fmt)
    if method == "mse":
        lo, hi = engine.search_mse(hist.counts, hist.k, fmt, args.qmin, args.qmax)
    elif method == "entropy":
        lo, hi = engine.search_entropy(hist.counts, hist.k, args.num_bits, args.qmin)
    else:
        h = bins // 2
        lo, hi = np.empty(C), np.empty(C)
        for c in range(C):
            a, b = _percentile(hist.counts[c], h, p)
            k = int(hist.k[c])
            lo[c], hi[c] = float(np.ldexp(a, k)), float(np.ldexp(b, k))
    with np.errstate(over="ignore"):
        return round_to(lo, fmt), round_to(hi, fmt)
