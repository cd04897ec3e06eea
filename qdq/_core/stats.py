"""The error the op introduced in one tensor, accumulated chunk by chunk at memory speed.

Each block goes through one compiled pass (:func:`qdq._core.engine.error_stats`,
the GIL released, float16 widened with F16C where the CPU has it): the
values taken exactly as float64, and over the pairs both finite the largest
absolute error and the float64 sums of ``x * x`` and ``(y - x) ** 2``; NaN
inputs and finite inputs with a non-finite output are counted apart. The
figures are those of :class:`qdq._stream.analysis.ErrorStats`, the arithmetic of
``qdq info`` on a file: the largest absolute error and 10 log10(signal /
noise) over the finite pairs. They do not depend on the kernels' thread
count or instruction set; the sums' last bits depend on where the blocks
begin (the order of a float64 sum).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import engine
from .formats import Format

__all__ = ["ErrorStats", "TensorErrorStats"]


class ErrorStats:
    """Running error statistics over (input, output) value pairs."""

    def __init__(self) -> None:
        self.elements = self.nan = self.clipped = self.nonfinite_out = self.finite_pairs = 0
        self.max_abs_error = 0.0
        self.signal = self.noise = 0.0

    def add(self, x: np.ndarray, y: np.ndarray, lo: Any, hi: Any) -> None:
        """x, y: float64 values of shape (pre, C, post); lo, hi: (1, C, 1) clamp bounds or None."""
        self.elements += x.size
        self.nan += int(np.isnan(x).sum())
        if lo is not None:
            self.clipped += int(((x < lo) | (x > hi)).sum())
        finite_x = np.isfinite(x)
        finite_y = np.isfinite(y)
        ok = finite_x & finite_y
        self.nonfinite_out += int((finite_x & ~finite_y).sum())
        self.finite_pairs += int(ok.sum())
        err = np.abs(y[ok] - x[ok])
        if err.size:
            self.max_abs_error = max(self.max_abs_error, float(err.max()))
        self.signal += float(np.square(x[ok]).sum())
        self.noise += float(np.square(err).sum())

    def sqnr_db(self) -> float:
        """10 log10(signal / noise) over finite pairs; NaN when there is none."""
        if not self.finite_pairs:
            return math.nan
        if self.noise == 0:
            return math.inf
        return 10 * math.log10(self.signal / self.noise) if self.signal > 0 else -math.inf


class TensorErrorStats:
    """Running error statistics of one tensor: max abs error, SQNR, NaN and clipped counts.

    ``nthreads`` is the kernels' thread count for its blocks (None: qdq's
    current setting).

    Examples
    --------
    >>> import numpy as np
    >>> from qdq._core.formats import FLOAT32
    >>> s = TensorErrorStats(FLOAT32)
    >>> s.add(np.array([1.0, 2.0, np.nan], np.float32), np.array([1.0, 2.5, np.nan], np.float32))
    >>> s.max_abs_error, round(s.sqnr_db(), 2), s.nan, s.elements
    (0.5, 13.01, 1, 3)
    """

    def __init__(self, fmt: Format, nthreads: int | None = None):
        self.fmt = fmt
        self.nthreads = nthreads
        self.total = ErrorStats()

    def add(self, data: np.ndarray, target: np.ndarray) -> None:
        """One block: the input and the op's output, in the kernels' storage type."""
        x = np.ascontiguousarray(data).reshape(-1)
        y = np.ascontiguousarray(target).reshape(-1)
        if x.size != y.size:
            raise ValueError(f"error statistics: {x.size} inputs but {y.size} outputs")
        nan, clipped, nonfinite_out, pairs, max_abs, signal, noise = engine.error_stats(
            x, y, self.fmt, nthreads=self.nthreads)
        self._add(x.size, nan, clipped, nonfinite_out, pairs, max_abs, signal, noise)

    def _add(self, elements: int, nan: int, clipped: int, nonfinite_out: int, pairs: int,
             max_abs: float, signal: float, noise: float) -> None:
        t = self.total
        t.elements += elements
        t.nan += nan
        t.clipped += clipped
        t.nonfinite_out += nonfinite_out
        t.finite_pairs += pairs
        t.max_abs_error = max(t.max_abs_error, max_abs)
        t.signal += signal
        t.noise += noise

    def merge(self, other: "TensorErrorStats") -> None:
        """Add the statistics another accumulator gathered over other elements."""
        o = other.total
        self._add(o.elements, o.nan, o.clipped, o.nonfinite_out, o.finite_pairs,
                  o.max_abs_error, o.signal, o.noise)

    @property
    def elements(self) -> int:
        return self.total.elements

    @property
    def max_abs_error(self) -> float:
        return self.total.max_abs_error

    @property
    def nan(self) -> int:
        """NaN inputs."""
        return self.total.nan

    @property
    def clipped(self) -> int:
        """Elements the clamp changed (none: the range is the data's)."""
        return self.total.clipped

    def sqnr_db(self) -> float:
        """10 log10(signal / noise) over finite pairs; NaN when there is none."""
        return self.total.sqnr_db()
