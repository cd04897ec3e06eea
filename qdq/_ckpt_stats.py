"""The error the op introduced in one tensor, accumulated chunk by chunk at memory speed.

Finite slices take a fast path: the values in their compute type (float32
for float16, bfloat16 and float32; float64 for float64), the error
``y - x`` in that type, sums of squares by ``einsum`` per slice of 32K
elements, accumulated in float64. The error is exact there whenever the
output lies within half a step of the input (Sterbenz: every output of the
op but those of unsigned output from negative data, which the op's own
warning covers). A slice with a NaN or an infinity, in or out, or whose
squares overflow, goes through :class:`qdq._analysis.ErrorStats` in
float64, which counts them apart. The figures are those of ``qdq info`` on
a file: the largest absolute error and 10 log10(signal / noise) over the
finite pairs.
"""

from __future__ import annotations

import math

import numpy as np

from ._analysis import ErrorStats
from ._formats import BFLOAT16, FLOAT16, FLOAT64, Format, values_as_float64

__all__ = ["TensorErrorStats"]

_SLICE = 1 << 15
_HALF: list[np.ndarray] = []


def _half_table() -> np.ndarray:
    """float32 values of the 65,536 float16 bit patterns."""
    if not _HALF:
        _HALF.append(np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
                     .view(np.float16).astype(np.float32))
    return _HALF[0]


class TensorErrorStats:
    """Running error statistics of one tensor: max abs error, SQNR, NaN and clipped counts.

    Examples
    --------
    >>> import numpy as np
    >>> from qdq._formats import FLOAT32
    >>> s = TensorErrorStats(FLOAT32)
    >>> s.add(np.array([1.0, 2.0, np.nan], np.float32), np.array([1.0, 2.5, np.nan], np.float32))
    >>> s.max_abs_error, round(s.sqnr_db(), 2), s.nan, s.elements
    (0.5, 13.01, 1, 3)
    """

    def __init__(self, fmt: Format):
        self.fmt = fmt
        self.slow = ErrorStats()
        self.fast_elements = self.pairs = 0
        self.signal = self.noise = 0.0
        self.max_abs = 0.0
        ctype = np.float64 if fmt is FLOAT64 else np.float32
        self._x = np.empty(_SLICE, ctype)
        self._y = np.empty(_SLICE, ctype)
        self._d = np.empty(_SLICE, ctype)

    def _values(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """The values of a slice in the compute type (a view when they are already)."""
        if self.fmt is FLOAT16:  # a table lookup beats NumPy's float16 conversion
            np.take(_half_table(), x, out=out[:x.size])
            return out[:x.size]
        if self.fmt is BFLOAT16:  # bfloat16's bits are float32's top half
            u = out[:x.size].view(np.uint32)
            np.left_shift(x, 16, out=u, dtype=np.uint32)
            return out[:x.size]
        return x

    def add(self, data: np.ndarray, target: np.ndarray) -> None:
        """One block: the input and the op's output, in the kernels' storage type."""
        x, y = data.reshape(-1), target.reshape(-1)
        for i in range(0, x.size, _SLICE):
            xs, ys = x[i:i + _SLICE], y[i:i + _SLICE]
            n = xs.size
            xv = self._values(xs, self._x)
            yv = self._values(ys, self._y)
            d = np.subtract(yv, xv, out=self._d[:n])
            noise = float(np.einsum("i,i->", d, d))
            signal = float(np.einsum("i,i->", xv, xv))
            if math.isfinite(noise) and math.isfinite(signal):
                self.fast_elements += n
                self.pairs += n
                self.signal += signal
                self.noise += noise
                self.max_abs = max(self.max_abs, float(d.max()), -float(d.min()))
            else:
                self.slow.add(values_as_float64(xs, self.fmt), values_as_float64(ys, self.fmt),
                              None, None)

    def merge(self, other: "TensorErrorStats") -> None:
        """Add the statistics another accumulator gathered over other elements."""
        self.fast_elements += other.fast_elements
        self.pairs += other.pairs
        self.signal += other.signal
        self.noise += other.noise
        self.max_abs = max(self.max_abs, other.max_abs)
        a, b = self.slow, other.slow
        a.elements += b.elements
        a.nan += b.nan
        a.clipped += b.clipped
        a.nonfinite_out += b.nonfinite_out
        a.finite_pairs += b.finite_pairs
        a.max_abs_error = max(a.max_abs_error, b.max_abs_error)
        a.signal += b.signal
        a.noise += b.noise

    @property
    def elements(self) -> int:
        return self.fast_elements + self.slow.elements

    @property
    def max_abs_error(self) -> float:
        return max(self.max_abs, self.slow.max_abs_error)

    @property
    def nan(self) -> int:
        """NaN inputs."""
        return self.slow.nan

    @property
    def clipped(self) -> int:
        """Elements the clamp changed (none: the range is the data's)."""
        return self.slow.clipped

    def sqnr_db(self) -> float:
        """10 log10(signal / noise) over finite pairs; NaN when there is none."""
        signal = self.signal + self.slow.signal
        noise = self.noise + self.slow.noise
        if not self.pairs + self.slow.finite_pairs:
            return math.nan
        if noise == 0:
            return math.inf
        return 10 * math.log10(signal / noise) if signal > 0 else -math.inf
