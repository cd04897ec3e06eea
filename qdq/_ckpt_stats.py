"""The error the op introduced in one tensor, accumulated chunk by chunk at memory speed.

Finite slices take a fast path (float64 copies in small reused buffers, sums
of squares by ``einsum``); a slice with a NaN or an infinity, in or out,
goes through :class:`qdq._analysis.ErrorStats`, which counts them apart. The
figures are those of ``qdq info`` on a file: the largest absolute error and
10 log10(signal / noise) over the finite pairs.
"""

from __future__ import annotations

import math

import numpy as np

from ._analysis import ErrorStats
from ._formats import BFLOAT16, FLOAT16, Format, values_as_float64

__all__ = ["TensorErrorStats"]

_SLICE = 1 << 15


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
        self._a = np.empty(_SLICE)
        self._d = np.empty(_SLICE)
        self._u = np.empty(_SLICE, np.uint32) if fmt is BFLOAT16 else None

    def _values(self, x: np.ndarray, out: np.ndarray) -> None:
        if self.fmt is FLOAT16:
            np.copyto(out, x.view(np.float16))
        elif self.fmt is BFLOAT16:
            assert self._u is not None
            u = self._u[:x.size]
            np.copyto(u, x)
            u <<= np.uint32(16)
            np.copyto(out, u.view(np.float32))
        else:
            np.copyto(out, x)

    def add(self, data: np.ndarray, target: np.ndarray) -> None:
        """One block: the input and the op's output, in the kernels' storage type."""
        x, y = data.reshape(-1), target.reshape(-1)
        for i in range(0, x.size, _SLICE):
            xs, ys = x[i:i + _SLICE], y[i:i + _SLICE]
            n = xs.size
            a, d = self._a[:n], self._d[:n]
            self._values(xs, a)
            self._values(ys, d)
            np.subtract(d, a, out=d)
            noise = float(np.einsum("i,i->", d, d))
            signal = float(np.einsum("i,i->", a, a))
            if math.isfinite(noise) and math.isfinite(signal):
                self.fast_elements += n
                self.pairs += n
                self.signal += signal
                self.noise += noise
                self.max_abs = max(self.max_abs, float(d.max()), -float(d.min()))
            else:
                self.slow.add(values_as_float64(xs, self.fmt), values_as_float64(ys, self.fmt),
                              None, None)

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
