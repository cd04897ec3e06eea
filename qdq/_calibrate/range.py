"""RangeTracker: the op's range over a tensor that arrives in chunks, and its merge rules."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .._core import engine
from .._core.arrays import as_input, check_next_chunk, kernel_view
from .._core.formats import Format, dtype_from_name, dtype_name, format_named, format_of, to_public
from .._core.params import QuantizationParams, params_from_rows
from .._core.validate import check_axis, check_flag, check_grid, normalize_axis_arg

__all__ = ["RangeTracker", "merge_max", "merge_min"]


def merge_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise minimum with -0.0 below +0.0 (no NaN: raw ranges use +-inf)."""
    return np.where((b < a) | ((b == a) & np.signbit(b)), b, a)


def merge_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise maximum with +0.0 above -0.0 (no NaN: raw ranges use +-inf)."""
    return np.where((b > a) | ((b == a) & ~np.signbit(b)), b, a)


class RangeTracker:
    """The NaN-ignoring min/max of a tensor that arrives in chunks.

    Chunks are consecutive slices along axis 0 of one logical tensor (so
    every chunk has the tensor's number of dimensions and the same extents
    after the first). Per channel works along every axis, axis 0 included
    (each chunk then brings new channels).

    :meth:`update` and :meth:`merge` may be called from several threads at
    once: updates of one tracker are serialised by its lock (the reduction
    itself runs on all of qdq's threads). Per channel along axis 0 the
    chunks' order is the order their updates finish, so feed axis-0 trackers
    from one thread.

    Parameters
    ----------
    axis : int, optional
        Track one range per channel along this axis (negative counts from the
        end); None tracks the whole tensor.
    bfloat16_bits : bool, default False
        Chunks are ``uint16`` arrays of bfloat16 bit patterns.

    Attributes
    ----------
    min, max : numpy scalar or numpy.ndarray
        The range so far, as :func:`qdq.compute_range` gives it.
    dtype : numpy.dtype or None
        The dtype of the chunks seen (None before the first).
    format : Format or None
        The element format of the chunks seen (None before the first).
    rows, count : int
        The rows (along axis 0) and elements seen.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> x = np.arange(12.0).reshape(6, 2) - 3
    >>> t = qdq.RangeTracker(axis=1)
    >>> for chunk in np.array_split(x, 3):
    ...     _ = t.update(chunk)
    >>> t.min, t.max
    (array([-3., -2.]), array([7., 8.]))
    """

    def __init__(self, axis: int | None = None, *, bfloat16_bits: bool = False):
        self.axis = normalize_axis_arg(axis)
        self.bfloat16_bits = check_flag("bfloat16_bits", bfloat16_bits)
        self._fmt: Format | None = None
        self._dtype: np.dtype | None = None
        self._rest: tuple | None = None
        self._ax: int | None = None
        self.rows = 0
        self.count = 0
        self._mn = np.empty(0)
        self._mx = np.empty(0)
        self._parts: list = []  # axis 0: per-chunk ranges, joined on demand
        self._lock = threading.Lock()

    # -- feeding -----------------------------------------------------------
    def _start(self, x: np.ndarray, fmt: Format) -> None:
        if x.ndim == 0:
            raise ValueError("chunks must have at least one dimension (slices along axis 0)")
        self._ax = check_axis(self.axis, x.ndim)
        self._fmt, self._dtype, self._rest = fmt, x.dtype.newbyteorder("="), tuple(x.shape[1:])
        channels = 1 if self._ax is None else (0 if self._ax == 0 else x.shape[self._ax])
        self._mn = np.full(channels, np.inf, dtype=fmt.compute)
        self._mx = np.full(channels, -np.inf, dtype=fmt.compute)

    def update(self, chunk: Any) -> "RangeTracker":
        """Merge one chunk into the range; returns the tracker.

        Parameters
        ----------
        chunk : array_like
            The next slice along axis 0 of the tensor (same type and extents
            after axis 0 as the chunks before it).

        Returns
        -------
        RangeTracker
            This tracker.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> qdq.RangeTracker().update(np.float32([3, -1]))
        RangeTracker(axis=None, dtype=<f4, rows=2, min=-1.0, max=3.0)
        """
        x, fmt = as_input(chunk, self.bfloat16_bits)
        with self._lock:
            if self._fmt is None:
                self._start(x, fmt)
            else:
                check_next_chunk(x, fmt, self._fmt, self._dtype, self._rest)
            ax = self._ax
        xk = kernel_view(x, fmt)
        if ax == 0:  # new channels: reduce outside the lock, append under it
            part = engine.reduce_range(xk, fmt, 0) if x.shape[0] else None
            with self._lock:
                if part is not None:
                    self._parts.append(part)
                self.rows += x.shape[0]
                self.count += x.size
            return self
        with self._lock:  # merge into the accumulators in place (the kernel's own rule)
            engine.reduce_range(xk, fmt, ax, self._mn, self._mx)
            self.rows += x.shape[0]
            self.count += x.size
        return self

    def _join(self) -> None:
        if self._parts:
            self._mn = np.concatenate([self._mn] + [p[0] for p in self._parts])
            self._mx = np.concatenate([self._mx] + [p[1] for p in self._parts])
            self._parts = []

    def merge(self, other: "RangeTracker") -> "RangeTracker":
        """Merge another tracker's range into this one; returns this tracker.

        Merging is associative, so partial ranges of threads, processes or
        files combine in any grouping. Per channel along axis 0 the other
        tracker's chunks count as coming after this one's (concatenation);
        otherwise the order does not matter either.

        Parameters
        ----------
        other : RangeTracker
            A tracker of the same tensor (type, axis, extents after axis 0).

        Returns
        -------
        RangeTracker
            This tracker.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> a = qdq.RangeTracker().update(np.array([1.0, -2.0]))
        >>> b = qdq.RangeTracker().update(np.array([5.0, np.nan]))
        >>> print(a.merge(b).min, a.max)
        -2.0 5.0
        """
        if not isinstance(other, RangeTracker):
            raise TypeError(f"can only merge a RangeTracker, got {type(other).__name__}")
        if self.bfloat16_bits != other.bfloat16_bits:
            raise ValueError("trackers of different bfloat16_bits cannot merge")
        if other is self:
            raise ValueError("a tracker cannot merge itself")
        with other._lock:  # a snapshot, so that two trackers never hold both locks
            other._join()
            fmt, dtype, rest, ax = other._fmt, other._dtype, other._rest, other._ax
            mn, mx, rows, count = other._mn, other._mx, other.rows, other.count
        with self._lock:
            if fmt is None:
                if self.axis != other.axis and (self._fmt is None or self._ax != _axis_for(
                        other.axis, self._rest)):
                    raise ValueError(f"trackers of different axes cannot merge: {self.axis} "
                                     f"and {other.axis}")
                return self
            if self._fmt is None:
                if _axis_for(self.axis, rest) != ax:
                    raise ValueError(f"trackers of different axes cannot merge: {self.axis} "
                                     f"and {other.axis}")
                self._fmt, self._dtype, self._rest, self._ax = fmt, dtype, rest, ax
                self._mn, self._mx = mn.copy(), mx.copy()
                self.rows, self.count = rows, count
                return self
            if ax != self._ax:
                raise ValueError(f"trackers of different axes cannot merge: {self.axis} and "
                                 f"{other.axis}")
            if fmt is not self._fmt or dtype != self._dtype or rest != self._rest:
                raise ValueError(f"trackers of different tensors cannot merge: {self._dtype} "
                                 f"(n, {self._rest}) and {dtype} (n, {rest})")
            self._join()
            if self._ax == 0:
                self._mn = np.concatenate([self._mn, mn])
                self._mx = np.concatenate([self._mx, mx])
            else:
                self._mn = merge_min(self._mn, mn).astype(fmt.compute)
                self._mx = merge_max(self._mx, mx).astype(fmt.compute)
            self.rows += rows
            self.count += count
        return self

    # -- results -----------------------------------------------------------
    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw reduction: compute-type arrays, +inf/-inf where nothing was seen.

        Returns
        -------
        min : numpy.ndarray
            1-D (one value per tensor or channel), as
            :func:`qdq.quantize_and_dequantize_chunks` takes it.
        max : numpy.ndarray
            The maximum, in the same form.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> qdq.RangeTracker().update(np.array([1.0, -2.0])).raw()
        (array([-2.]), array([1.]))
        """
        with self._lock:
            if self._fmt is None:
                raise ValueError("the tracker has seen no chunk yet")
            self._join()
            return self._mn, self._mx

    @property
    def format(self) -> Format | None:
        """The element format of the chunks seen (None before the first)."""
        return self._fmt

    def _public(self, which: int) -> Any:
        mn, mx = self.raw()
        assert self._fmt is not None
        channels = max(mn.shape[0], 1)
        mn, mx = engine.finish_range(mn, mx, self.count // channels if mn.shape[0] else 0)
        v = to_public((mn, mx)[which], self._fmt, None if self.bfloat16_bits else self._dtype)
        return v[0] if self._ax is None else v

    @property
    def min(self) -> Any:
        """The minimum: as :func:`qdq.compute_range` gives it for the whole tensor."""
        return self._public(0)

    @property
    def max(self) -> Any:
        """The maximum: as :func:`qdq.compute_range` gives it for the whole tensor."""
        return self._public(1)

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the chunks seen (None before the first)."""
        return self._dtype

    def params(self, signed_input: bool = True, num_bits: int = 8,
               narrow_range: bool = False) -> QuantizationParams:
        """The quantization parameters the op derives from this range.

        Parameters
        ----------
        signed_input : bool, default True
            A signed grid.
        num_bits : int, default 8
            The grid's bit width.
        narrow_range : bool, default False
            The signed grid loses its most negative value.

        Returns
        -------
        QuantizationParams
            As :func:`qdq.quantization_params` gives them for this range.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> print(qdq.RangeTracker().update(np.array([1.0, -2.0])).params(num_bits=4).scale)
        4.0
        """
        grid = check_grid(signed_input, num_bits, narrow_range)
        mn, mx = self.raw()
        assert self._fmt is not None
        p = engine.compute_params(mn, mx, self._fmt, grid.qmin, grid.qmax)
        return params_from_rows(p, self._fmt, grid, self._ax, self._ax is not None)

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict:
        """A plain, JSON-serialisable dict of the state (floats as exact hex strings).

        Returns
        -------
        dict
            The state, for :meth:`from_state`.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> qdq.RangeTracker().update(np.array([1.0, -2.0])).state_dict()["max"]
        ['0x1.0000000000000p+0']
        """
        state: dict[str, Any] = {"qdq_range_tracker": 1, "axis": self.axis,
                                 "bfloat16_bits": self.bfloat16_bits, "rows": self.rows,
                                 "count": self.count}
        if self._fmt is not None:
            mn, mx = self.raw()
            assert self._dtype is not None and self._rest is not None
            state.update(format=self._fmt.name, dtype=dtype_name(self._dtype),
                         rest=list(self._rest), ax=self._ax,
                         min=[float(v).hex() for v in mn], max=[float(v).hex() for v in mx])
        return state

    @classmethod
    def from_state(cls, state: dict) -> "RangeTracker":
        """A tracker from :meth:`state_dict`'s dict, to resume where it stopped.

        Every field is checked (ValueError naming it for a hand-edited dict).

        Parameters
        ----------
        state : dict
            A dict from :meth:`state_dict` (possibly through JSON).

        Returns
        -------
        RangeTracker
            A tracker that continues with the next chunk.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> t = qdq.RangeTracker().update(np.array([1.0, -2.0]))
        >>> print(qdq.RangeTracker.from_state(t.state_dict()).update(np.array([7.0])).max)
        7.0
        """
        if not isinstance(state, dict) or state.get("qdq_range_tracker") != 1:
            raise ValueError("not a RangeTracker state (missing 'qdq_range_tracker': 1)")
        missing = [k for k in ("axis", "bfloat16_bits", "rows", "count") if k not in state]
        if missing:
            raise ValueError(f"RangeTracker state lacks {', '.join(missing)}")
        t = cls(state["axis"], bfloat16_bits=state["bfloat16_bits"])
        rows, count = state["rows"], state["count"]
        if type(rows) is not int or type(count) is not int or rows < 0 or count < 0:
            raise ValueError(f"RangeTracker state: rows and count must be non-negative "
                             f"integers, got {rows!r} and {count!r}")
        t.rows, t.count = rows, count
        if "format" not in state:
            if rows or count:
                raise ValueError("RangeTracker state: rows/count without a range")
            return t
        try:
            fmt = format_named(state["format"])
            dtype = dtype_from_name(state["dtype"])
            if format_of(dtype, t.bfloat16_bits) is not fmt:
                raise ValueError(f"format {fmt.name} does not match dtype {dtype}")
            rest = tuple(state["rest"])
            ax = state["ax"]
            mn = np.array([float.fromhex(v) for v in state["min"]], dtype=np.float64)
            mx = np.array([float.fromhex(v) for v in state["max"]], dtype=np.float64)
        except (KeyError, TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"RangeTracker state: malformed range ({exc!r})") from None
        if not all(type(r) is int and r >= 0 for r in rest):
            raise ValueError(f"RangeTracker state: rest must hold non-negative integers, "
                             f"got {state['rest']!r}")
        if ax != _axis_for(t.axis, rest):
            raise ValueError(f"RangeTracker state: ax {ax!r} does not match axis {t.axis!r} "
                             f"for chunks of rank {len(rest) + 1}")
        channels = 1 if ax is None else (rows if ax == 0 else rest[ax - 1])
        if mn.shape != (channels,) or mx.shape != (channels,):
            raise ValueError(f"RangeTracker state: min and max need {channels} values, got "
                             f"{mn.size} and {mx.size}")
        t._fmt, t._dtype, t._rest, t._ax = fmt, dtype, rest, ax
        t._mn, t._mx = mn.astype(fmt.compute), mx.astype(fmt.compute)
        return t

    def __getstate__(self) -> dict:
        # (pickle and copy: everything but the lock)
        with self._lock:
            self._join()
            return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        if self._fmt is None:
            return f"RangeTracker(axis={self.axis}, empty)"
        if self._ax is None:
            seen = f"min={float(self.min)!r}, max={float(self.max)!r}"
        else:
            seen = f"channels={self.raw()[0].shape[0]}"
        assert self._dtype is not None
        return (f"RangeTracker(axis={self.axis}, dtype={dtype_name(self._dtype)}, "
                f"rows={self.rows}, {seen})")


def _axis_for(axis: int | None, rest: tuple | None) -> int | None:
    """The normalised axis for chunks of shape (n, *rest); ValueError if out of range."""
    if axis is None:
        return None
    ndim = 1 + len(rest or ())
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for chunks of rank {ndim}")
    return axis + ndim if axis < 0 else axis
