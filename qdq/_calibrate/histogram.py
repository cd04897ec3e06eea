"""Signed power-of-two histograms of a tensor that arrives in chunks.

The histogram of a channel has ``bins`` counts (``bins`` even) for the bin
indices ``j`` in ``[-bins/2, bins/2)``; bin ``j`` holds the elements ``x``
with ``floor(x / 2**k) == j``, that is ``j * 2**k <= x < (j + 1) * 2**k``.
The exponent ``k`` is a pure function of the channel's largest finite
magnitude ``m = max |x|``: the smallest ``k >= k_floor`` with
``m < bins/2 * 2**k``, so every finite element lands in a bin. ``k_floor``
is the exponent of the format's smallest subnormal (float16 -24, bfloat16
-133, float32 -149, float64 -1074); data of only zeros (or of no finite
value) keeps ``k = k_floor``. Every value of the format is a multiple of
``2**k_floor``, so ``x / 2**k`` is computed exactly.

When a chunk needs a larger ``k``, groups of adjacent bins are summed
(``floor(j / 2**d)``): bins nest, so this is exact, and the final counts are
the counts at the final ``k`` whatever the chunking, the order, the thread
count or the merge tree. Counts are ``uint64``. NaN is counted apart and
ignored; +inf and -inf are counted apart (and take part in the exact
min/max, as in :func:`qdq.compute_range`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._core import engine
from .._core.arrays import as_input, check_next_chunk, kernel_copy, kernel_view
from .._core.formats import (
    FLOAT16,
    Format,
    bits_to_values,
    dtype_from_name,
    dtype_name,
    format_named,
    format_of,
    to_public,
)
from .._core.validate import as_int, check_axis, check_flag, normalize_axis_arg
from .methods import histogram_range

__all__ = ["HistogramTracker", "K_FLOOR"]

#: The exponent of each format's smallest subnormal: the finest bin width.
K_FLOOR = {"float16": -24, "bfloat16": -133, "float32": -149, "float64": -1074}
_LUTS: dict[str, np.ndarray] = {}


def _lut(fmt: Format) -> np.ndarray | None:
    """float32 values of every 16-bit pattern (float16, bfloat16), built once."""
    if fmt.itemsize != 2:
        return None
    if fmt.name not in _LUTS:
        pats = np.arange(1 << 16, dtype=np.uint16)
        if fmt is FLOAT16:
            _LUTS[fmt.name] = pats.view(np.float16).astype(np.float32)
        else:
            _LUTS[fmt.name] = bits_to_values(pats)
    return _LUTS[fmt.name]


def _check_bins(bins: Any) -> int:
    b = as_int("bins", bins)
    if b < 16 or b % 2 or b > (1 << 24):
        raise ValueError(f"bins must be an even int in [16, 2**24], got {b}")
    return b


def _bad(field: str, problem: str) -> ValueError:
    return ValueError(f"HistogramTracker state: {field} {problem}")


def _require(state: dict, fields: tuple[str, ...]) -> None:
    missing = [f for f in fields if f not in state]
    if missing:
        raise ValueError(f"HistogramTracker state lacks {', '.join(missing)}")


def _kfor(a: float, h: int, kfloor: int) -> int:
    """The smallest ``k >= kfloor`` with ``a < h * 2**k`` (``a`` finite, >= 0), as the kernel.

    With ``2**(e-1) <= a < 2**e`` and ``h`` of ``n`` bits, ``e - n`` is the first exponent
    that can fit and ``e - n + 1`` fits; the products tried are exact (no overflow, whatever
    the rounding mode: rounded toward -inf, an overflow does not give infinity).
    """
    if not a:
        return kfloor
    e, n = math.frexp(a)[1], h.bit_length()
    k, top = max(kfloor, e - n), max(kfloor, e - n + 1)
    while k < top and not a < math.ldexp(h, k):
        k += 1
    return k


def _representable(v: np.ndarray, fmt: Format) -> np.ndarray:
    """Which float64 values are values of the format (infinities included)."""
    if fmt.name == "float64":
        return ~np.isnan(v)
    with np.errstate(over="ignore", invalid="ignore"):
        if fmt is FLOAT16:
            return v.astype(np.float16).astype(np.float64) == v
        f = v.astype(np.float32)
        ok = f.astype(np.float64) == v
        if fmt.name == "bfloat16":
            ok &= (f.view(np.uint32) & 0xFFFF) == 0
    return ok


def _check_tensor(state: dict, axis: int | None,
                  bfloat16_bits: bool) -> tuple[Format, np.dtype, tuple, int | None]:
    """The state's format, dtype, chunk shape and axis, checked."""
    try:
        fmt = format_named(state["format"])
        if not isinstance(state["format"], str) or fmt.name != state["format"]:
            raise ValueError(f"not a format name: {state['format']!r}")
    except (TypeError, ValueError) as exc:
        raise _bad("format", f"is not valid ({exc})") from None
    try:
        if not isinstance(state["dtype"], str):
            raise TypeError(f"not a dtype name: {state['dtype']!r}")
        dtype = dtype_from_name(state["dtype"])
        if format_of(dtype, bfloat16_bits) is not fmt or dtype.byteorder not in "=|":
            raise ValueError(f"dtype {state['dtype']} is not of format {fmt.name} "
                             f"(bfloat16_bits {bfloat16_bits})")
    except (TypeError, ValueError) as exc:
        raise _bad("dtype", f"is not valid ({exc})") from None
    rest = state["rest"]
    if (not isinstance(rest, list) or len(rest) > 63
            or not all(type(r) is int and r >= 0 for r in rest)):
        raise _bad("rest", f"must be a list of at most 63 non-negative ints, got {rest!r}")
    ax = state["ax"]
    try:
        want = check_axis(axis, len(rest) + 1)
    except (TypeError, ValueError) as exc:
        raise _bad("axis", f"does not fit chunks of rank {len(rest) + 1} ({exc})") from None
    if type(ax) is not type(want) or ax != want:
        raise _bad("ax", f"must be {want!r} for axis {axis!r} and chunks of rank "
                   f"{len(rest) + 1}, got {ax!r}")
    return fmt, dtype, tuple(rest), ax


def _int_list(state: dict, field: str, channels: int | None, lo: int, hi: int) -> list[int]:
    v = state[field]
    if (not isinstance(v, list) or (channels is not None and len(v) != channels)
            or not all(type(x) is int and lo <= x <= hi for x in v)):
        size = "" if channels is None else f"{channels} "
        raise _bad(field, f"must be a list of {size}ints in [{lo}, {hi}], got {_short(v)}")
    return v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def _check_hist(state: dict, fmt: Format, bins: int,
                channels: int | None) -> tuple[_Hist, int]:
    """The per-channel arrays of a state (``channels`` of them if known), checked, and the
    elements they count."""
    kfloor = K_FLOOR[fmt.name]
    h = bins // 2
    k = _int_list(state, "k", channels, kfloor, _kfor(fmt.max, h, kfloor))
    channels = len(k)
    top = (1 << 64) - 1
    special = state["special"]
    if (not isinstance(special, list) or len(special) != channels
            or not all(isinstance(row, list) and len(row) == 3
                       and all(type(v) is int and 0 <= v <= top for v in row)
                       for row in special)):
        raise _bad("special", f"must be {channels} lists of 3 ints in [0, 2**64), got "
                   f"{_short(special)}")
    counts = state["counts"]
    if not isinstance(counts, list) or len(counts) != channels:
        raise _bad("counts", f"must be a list of {channels} dicts, got {_short(counts)}")
    out = _Hist(channels, bins, kfloor)
    seen = sum(sum(row) for row in special)
    for c, row in enumerate(counts):
        if not isinstance(row, dict):
            raise _bad("counts", f"[{c}] must be a dict, got {_short(row)}")
        for i, v in row.items():
            j = int(i) if isinstance(i, str) and i.isascii() and i.isdigit() else -1
            if not 0 <= j < bins or str(j) != i:
                raise _bad("counts", f"[{c}]: bin {i!r} is not a bin index in [0, {bins})")
            if type(v) is not int or not 0 <= v <= top:
                raise _bad("counts", f"[{c}][{i!r}] must be an int in [0, 2**64), got {v!r}")
            out.counts[c, j] = v
            seen += v
    mnmx = []
    for field in ("min", "max"):
        v = state[field]
        try:
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise TypeError("not a list of hex strings")
            a = np.array([float.fromhex(x) for x in v], dtype=np.float64)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _bad(field, f"must be a list of {channels} hex floats ({exc})") from None
        if a.shape != (channels,) or not _representable(a, fmt).all():
            raise _bad(field, f"must be {channels} values of {fmt.name} or infinities, got "
                       f"{_short(v)}")
        mnmx.append(a)
    mn, mx = mnmx
    out.k = np.array(k, dtype=np.int64)
    out.special = np.array(special, dtype=np.uint64).reshape(channels, 3)
    out.mn, out.mx = mn, mx
    _check_consistent(out, fmt, bins)
    return out, seen


def _check_consistent(hist: _Hist, fmt: Format, bins: int) -> None:
    """Min, max, exponents, counts and infinities agree with each other, channel by channel."""
    kfloor, h = K_FLOOR[fmt.name], bins // 2
    for c in range(hist.k.shape[0]):
        k, mn, mx = int(hist.k[c]), float(hist.mn[c]), float(hist.mx[c])
        _, pinf, ninf = (int(v) for v in hist.special[c])
        nz = np.flatnonzero(hist.counts[c])
        where = f"channel {c}"
        if (mx == math.inf) != (pinf > 0) or (mn == -math.inf) != (ninf > 0):
            raise _bad("min", f"and max ({mn}, {mx}) do not match the infinities counted in "
                       f"special ({pinf} +inf, {ninf} -inf) in {where}")
        if not nz.size:
            if math.isfinite(mn) or math.isfinite(mx) or k != kfloor:
                raise _bad("counts", f"are empty in {where} but min {mn}, max {mx}, k {k}")
            if not (pinf or ninf) and (mn, mx) != (math.inf, -math.inf):
                raise _bad("min", f"and max must be inf and -inf in {where}, which saw no "
                           f"value, got {mn} and {mx}")
            continue
        if not mn <= mx or mn == math.inf or mx == -math.inf:
            raise _bad("min", f"{mn} and max {mx} do not bound the values counted in {where}")
        if math.isfinite(mn) and math.isfinite(mx):
            if k != _kfor(max(-mn, mx, 0.0), h, kfloor):
                raise _bad("k", f"{k} is not the exponent of min {mn} and max {mx} in {where}")
        for v, j, name in ((mn, nz[0], "min"), (mx, nz[-1], "max")):
            if math.isfinite(v) and _bin(v, k) != j - h:
                raise _bad(name, f"{v} is not in the {'lowest' if name == 'min' else 'highest'}"
                           f" bin of the counts in {where} (bin {j - h} at k {k})")


def _bin(v: float, k: int) -> int:
    """``floor(v / 2**k)`` exactly (v finite)."""
    try:
        r = math.ldexp(v, -k) if v else 0.0
    except OverflowError:
        return -(1 << 2000) if v < 0 else 1 << 2000  # far outside every histogram
    if abs(r) < 1:
        return -1 if v < 0 else 0
    return math.floor(r)


class _Hist:
    """Per-channel arrays: exponents, counts, NaN/+inf/-inf counts, exact min/max."""

    __slots__ = ("k", "counts", "special", "mn", "mx")

    def __init__(self, channels: int, bins: int, kfloor: int):
        self.k = np.full(channels, kfloor, dtype=np.int64)
        self.counts = np.zeros((channels, bins), dtype=np.uint64)
        self.special = np.zeros((channels, 3), dtype=np.uint64)
        self.mn = np.full(channels, np.inf)
        self.mx = np.full(channels, -np.inf)

    @classmethod
    def concat(cls, parts: list["_Hist"]) -> "_Hist":
        h = cls.__new__(cls)
        for name in cls.__slots__:
            setattr(h, name, np.concatenate([getattr(p, name) for p in parts]))
        return h


def coarsen(counts: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Counts (C, bins) at exponents k brought to k + d (d >= 0 per channel), exactly."""
    C, bins = counts.shape
    out = np.zeros_like(counts)
    j = np.arange(bins, dtype=np.int64) - bins // 2
    for c in range(C):
        dc = int(d[c])
        if dc == 0:
            out[c] = counts[c]
            continue
        jj = j >> min(dc, 62)  # arithmetic shift: floor(j / 2**d)
        np.add.at(out[c], jj + bins // 2, counts[c])
    return out


def _merge_into(a: _Hist, b: _Hist) -> None:
    """a += b for histograms of the same channels (in place on a)."""
    k = np.maximum(a.k, b.k)
    a.counts = coarsen(a.counts, k - a.k) + coarsen(b.counts, k - b.k)
    a.k = k
    a.special = a.special + b.special
    a.mn = np.where((b.mn < a.mn) | ((b.mn == a.mn) & np.signbit(b.mn)), b.mn, a.mn)
    a.mx = np.where((b.mx > a.mx) | ((b.mx == a.mx) & ~np.signbit(b.mx)), b.mx, a.mx)


class HistogramTracker:
    """Histograms of a tensor that arrives in chunks, for calibrated ranges.

    Bins have width ``2**k`` and are aligned at zero: element ``x`` goes to
    bin ``floor(x / 2**k)``; the ``bins`` bins cover ``[-bins/2 * 2**k,
    bins/2 * 2**k)``, where ``k`` is the smallest exponent (not below the
    format's smallest subnormal exponent) for which the largest finite
    ``|x|`` is below ``bins/2 * 2**k``. Counts, edges and every range depend
    only on the multiset of values: never on the chunking, the order of the
    chunks, the thread count or how trackers are merged. NaN is ignored
    (counted in :attr:`nan_count`); +inf and -inf are counted apart. Memory is
    ``O(bins * channels)``.

    Chunks are consecutive slices along axis 0 of one tensor (as for
    :class:`qdq.RangeTracker`); per channel along axis 0 each chunk brings new
    channels.

    Parameters
    ----------
    axis : int, optional
        One histogram per channel along this axis; None for the whole tensor.
    bins : int, default 2048
        The number of bins per histogram: even, at least 16.
    bfloat16_bits : bool, default False
        Chunks are ``uint16`` arrays of bfloat16 bit patterns.

    Attributes
    ----------
    counts, exponent, edges : numpy.ndarray
        The counts (uint64), ``k`` and the ``bins + 1`` edges ``j * 2**k``.
    nan_count, posinf_count, neginf_count : int or numpy.ndarray
        NaN, +inf and -inf elements seen (not in the counts).
    min, max : numpy scalar or numpy.ndarray
        The exact NaN-ignoring range, as :func:`qdq.compute_range` gives it.
    dtype : numpy.dtype or None
        The dtype of the chunks seen (None before the first).

    Examples
    --------
    >>> import numpy as np, qdq
    >>> t = qdq.HistogramTracker(bins=16)
    >>> for chunk in (np.array([0.5, -1.0]), np.array([3.0, 0.25])):
    ...     _ = t.update(chunk)
    >>> print(t.exponent, t.counts.sum())
    -1 4
    >>> t.edges[[0, -1]]
    array([-4.,  4.])
    >>> print(*t.range("minmax"))
    -1.0 3.0
    """

    def __init__(self, axis: int | None = None, *, bins: int = 2048,
                 bfloat16_bits: bool = False):
        self.axis = normalize_axis_arg(axis)
        self.bins = _check_bins(bins)
        self.bfloat16_bits = check_flag("bfloat16_bits", bfloat16_bits)
        self._fmt: Format | None = None
        self._dtype: np.dtype | None = None
        self._rest: tuple | None = None
        self._ax: int | None = None
        self.count = 0
        self._h: _Hist | None = None
        self._parts: list[_Hist] = []  # axis 0: per-chunk histograms, joined on demand

    # -- feeding -----------------------------------------------------------
    def _start(self, x: np.ndarray, fmt: Format) -> None:
        if x.ndim == 0:
            raise ValueError("chunks must have at least one dimension (slices along axis 0)")
        self._ax = check_axis(self.axis, x.ndim)
        self._fmt, self._dtype, self._rest = fmt, x.dtype.newbyteorder("="), tuple(x.shape[1:])
        channels = 1 if self._ax is None else (0 if self._ax == 0 else x.shape[self._ax])
        self._h = _Hist(channels, self.bins, K_FLOOR[fmt.name])

    def update(self, chunk: Any) -> "HistogramTracker":
        """Add one chunk's elements to the histograms; returns the tracker.

        Parameters
        ----------
        chunk : array_like
            Float16, bfloat16, float32 or float64 (or bfloat16 bit patterns
            with ``bfloat16_bits``), a slice along axis 0 of the tensor.

        Returns
        -------
        HistogramTracker
            This tracker.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> print(qdq.HistogramTracker(bins=16).update(np.float32([1, 2, np.nan])).nan_count)
        1
        """
        x, fmt = as_input(chunk, self.bfloat16_bits)
        if self._fmt is None:
            self._start(x, fmt)
        else:
            check_next_chunk(x, fmt, self._fmt, self._dtype, self._rest)
        assert self._h is not None and self._fmt is not None
        ax = self._ax
        xk = kernel_view(x, fmt)
        if ax is None and xk.flags.f_contiguous and not xk.flags.c_contiguous:
            xk = xk.T  # per tensor the order of the elements does not matter
        xk = kernel_copy(xk, fmt.storage)
        shape = x.shape
        if ax is None:
            pre, C, post = 1, 1, x.size
            target = self._h
        else:
            pre = int(np.prod(shape[:ax], dtype=np.int64))
            C = shape[ax]
            post = int(np.prod(shape[ax + 1:], dtype=np.int64))
            target = _Hist(C, self.bins, K_FLOOR[fmt.name]) if ax == 0 else self._h
        if x.size:
            engine.histogram_update(xk, fmt, _lut(fmt), pre, C, post, target.k,
                                     target.counts, target.special, target.mn, target.mx,
                                     K_FLOOR[fmt.name])
        if ax == 0 and C:
            self._parts.append(target)
        self.count += x.size
        return self

    def _join(self) -> _Hist:
        if self._h is None:
            raise ValueError("the tracker has seen no chunk yet")
        if self._parts:
            self._h = _Hist.concat([self._h] + self._parts)
            self._parts = []
        return self._h

    def merge(self, other: "HistogramTracker") -> "HistogramTracker":
        """Merge another tracker's histograms into this one; returns this tracker.

        Per tensor and per channel along an axis other than 0 the result does
        not depend on the order or grouping of merges; along axis 0 the other
        tracker's chunks count as coming after this one's (concatenation).

        Parameters
        ----------
        other : HistogramTracker
            A tracker of the same tensor (axis, bins, dtype, chunk shape).

        Returns
        -------
        HistogramTracker
            This tracker.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> a = qdq.HistogramTracker(bins=16).update(np.array([1.0, -2.0]))
        >>> b = qdq.HistogramTracker(bins=16).update(np.array([100.0]))
        >>> print(a.merge(b).counts.sum(), a.exponent)
        3 4
        """
        if not isinstance(other, HistogramTracker):
            raise TypeError(f"can only merge a HistogramTracker, got {type(other).__name__}")
        if (self.axis != other.axis or self.bfloat16_bits != other.bfloat16_bits
                or self.bins != other.bins):
            raise ValueError("trackers of different axes, bins or bfloat16_bits cannot merge")
        if other._fmt is None:
            return self
        if self._fmt is None:
            self.__dict__.update(HistogramTracker.from_state(other.state_dict()).__dict__)
            return self
        if other._fmt is not self._fmt or other._dtype != self._dtype or other._rest != self._rest:
            raise ValueError(f"trackers of different tensors cannot merge: {self._dtype} "
                             f"(n, {self._rest}) and {other._dtype} (n, {other._rest})")
        mine, theirs = self._join(), other._join()
        if self._ax == 0:
            self._h = _Hist.concat([mine, theirs])
        else:
            _merge_into(mine, theirs)
        self.count += other.count
        return self

    # -- results -----------------------------------------------------------
    def _one(self, v: np.ndarray):
        return v[0] if self._ax is None else v

    @property
    def counts(self) -> np.ndarray:
        """The counts (uint64): ``(bins,)`` per tensor, ``(channels, bins)`` per channel."""
        return self._one(self._join().counts.copy())

    @property
    def exponent(self):
        """``k``: the bins have width ``2**k`` (an int64 array per channel)."""
        return self._one(self._join().k.copy())

    @property
    def edges(self) -> np.ndarray:
        """The ``bins + 1`` bin edges ``j * 2**k``, float64 (per channel: one row each).

        Exact, except that an edge beyond float64's range is ``inf``.
        """
        h = self._join()
        j = np.arange(self.bins + 1, dtype=np.float64) - self.bins // 2
        with np.errstate(over="ignore"):
            e = np.ldexp(j[None, :], h.k[:, None])
        return self._one(e)

    @property
    def nan_count(self):
        """NaN elements seen (not in the counts)."""
        return self._one(self._join().special[:, 0].copy())

    @property
    def posinf_count(self):
        """+inf elements seen (not in the counts)."""
        return self._one(self._join().special[:, 1].copy())

    @property
    def neginf_count(self):
        """-inf elements seen (not in the counts)."""
        return self._one(self._join().special[:, 2].copy())

    def _public(self, values: np.ndarray):
        assert self._fmt is not None
        v = to_public(values.astype(self._fmt.compute), self._fmt,
                      None if self.bfloat16_bits else self._dtype)
        return self._one(v)

    def raw_minmax(self) -> tuple[np.ndarray, np.ndarray]:
        """The exact min/max per channel (float64): +inf/-inf where nothing non-NaN was seen.

        Returns
        -------
        min : numpy.ndarray
            1-D float64, one value per tensor or channel.
        max : numpy.ndarray
            The maximum, in the same form.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> qdq.HistogramTracker().update(np.array([0.5, np.nan, -2.0])).raw_minmax()
        (array([-2.]), array([0.5]))
        """
        h = self._join()
        return h.mn.copy(), h.mx.copy()

    @property
    def min(self):
        """The exact NaN-ignoring minimum, as :func:`qdq.compute_range` gives it."""
        return self.range("minmax")[0]

    @property
    def max(self):
        """The exact NaN-ignoring maximum, as :func:`qdq.compute_range` gives it."""
        return self.range("minmax")[1]

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the chunks seen (None before the first)."""
        return self._dtype

    @property
    def format(self) -> Format | None:
        """The element format (None before the first chunk)."""
        return self._fmt

    def range(self, method: str = "percentile", *, percentile: float = 99.99, num_bits: int = 8,
              signed_input: bool = True, narrow_range: bool = False,
              round_mode: str = "HALF_TO_EVEN"):
        """A calibrated ``(input_min, input_max)`` from the histograms.

        Parameters
        ----------
        method : {"percentile", "mse", "entropy", "minmax"}, default "percentile"
            See :func:`qdq.calibrate`.
        percentile : float, default 99.99
            For ``"percentile"``: in (50, 100].
        num_bits : int, default 8
            The op the range is for (``"mse"`` and ``"entropy"`` depend on it).
        signed_input : bool, default True
            The op's grid is signed.
        narrow_range : bool, default False
            The op's signed grid lacks its most negative value.
        round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
            The op's rounding, as ``num_bits``.

        Returns
        -------
        input_min : numpy scalar or numpy.ndarray
            A value of the data's type (bfloat16 bit patterns: float32 holding
            bfloat16 values); per channel, 1-D arrays. A channel without a
            finite value gives NaN (``"minmax"``: as :func:`qdq.compute_range`).
        input_max : numpy scalar or numpy.ndarray
            The upper bound, in the same form.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> x = np.concatenate([np.linspace(-1, 1, 1001), [50.0]])
        >>> t = qdq.HistogramTracker().update(x)
        >>> print(*t.range("percentile", percentile=99.9))
        -1.0 1.0
        >>> print(*t.range("minmax"))
        -1.0 50.0
        """
        h = self._join()
        if self.count == 0:
            raise ValueError("no data: the tracker has seen no element")
        assert self._fmt is not None
        lo, hi = histogram_range(h, self._fmt, self.bins, method, percentile=percentile,
                                 num_bits=num_bits, signed_input=signed_input,
                                 narrow_range=narrow_range, round_mode=round_mode)
        return self._public(lo), self._public(hi)

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict:
        """A plain, JSON-serialisable dict of the state (floats as exact hex strings).

        Returns
        -------
        dict
            The state, for :meth:`from_state` (counts stored sparsely).

        Examples
        --------
        >>> import json, numpy as np, qdq
        >>> t = qdq.HistogramTracker(bins=16).update(np.float32([0.1, -7.5]))
        >>> u = qdq.HistogramTracker.from_state(json.loads(json.dumps(t.state_dict())))
        >>> bool((u.counts == t.counts).all()), u.range("minmax") == t.range("minmax")
        (True, True)
        """
        state: dict[str, Any] = {"qdq_histogram_tracker": 1, "axis": self.axis,
                                 "bins": self.bins, "bfloat16_bits": self.bfloat16_bits,
                                 "count": self.count}
        if self._fmt is not None:
            h = self._join()
            assert self._dtype is not None and self._rest is not None
            state.update(
                format=self._fmt.name, dtype=dtype_name(self._dtype), rest=list(self._rest),
                ax=self._ax, k=[int(v) for v in h.k],
                counts=[{str(i): int(c[i]) for i in np.flatnonzero(c)} for c in h.counts],
                special=[[int(v) for v in row] for row in h.special],
                min=[float(v).hex() for v in h.mn], max=[float(v).hex() for v in h.mx])
        return state

    @classmethod
    def from_state(cls, state: dict) -> "HistogramTracker":
        """A tracker from :meth:`state_dict`'s dict, to resume where it stopped.

        Every field is checked, for its type, length and range and against
        the others (a ValueError naming the field): states are files people
        pass around, and the kernel trusts what it is given.

        Parameters
        ----------
        state : dict
            As :meth:`state_dict` returns it (possibly through JSON).

        Returns
        -------
        HistogramTracker
            A tracker that continues with the next chunk.

        Examples
        --------
        >>> import qdq
        >>> qdq.HistogramTracker.from_state(qdq.HistogramTracker(bins=64).state_dict()).bins
        64
        >>> qdq.HistogramTracker.from_state({"qdq_histogram_tracker": 1, "axis": None,
        ...     "bins": 64, "bfloat16_bits": False, "count": -1})
        Traceback (most recent call last):
        ...
        ValueError: HistogramTracker state: count must be a non-negative int, got -1
        """
        if not isinstance(state, dict) or type(state.get("qdq_histogram_tracker")) is not int \
                or state["qdq_histogram_tracker"] != 1:
            raise ValueError("not a HistogramTracker state (missing 'qdq_histogram_tracker': 1)")
        _require(state, ("axis", "bins", "bfloat16_bits", "count"))
        try:
            t = cls(state["axis"], bins=state["bins"], bfloat16_bits=state["bfloat16_bits"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"HistogramTracker state: {exc}") from None
        count = state["count"]
        if type(count) is not int or count < 0:
            raise _bad("count", f"must be a non-negative int, got {count!r}")
        t.count = count
        if "format" not in state:
            extra = sorted(set(state) & {"dtype", "rest", "ax", "k", "counts", "special",
                                         "min", "max"})
            if count or extra:
                raise _bad("format", f"is missing (count {count}, fields {extra})")
            return t
        _require(state, ("format", "dtype", "rest", "ax", "k", "counts", "special", "min",
                         "max"))
        fmt, dtype, rest, ax = _check_tensor(state, t.axis, t.bfloat16_bits)
        size = math.prod(rest)
        if (count % size if size else count):
            raise _bad("count", f"{count} is not a whole number of rows of shape rest "
                       f"{list(rest)}")
        if ax is None or ax > 0:
            channels: int | None = 1 if ax is None else rest[ax - 1]
        else:
            channels = count // size if size else None
        h, seen = _check_hist(state, fmt, t.bins, channels)
        if seen != count:
            raise _bad("counts", f"the counts and special counts add up to {seen}, "
                       f"not count {count}")
        t._fmt, t._dtype, t._rest, t._ax, t._h = fmt, dtype, rest, ax, h
        return t

    def __repr__(self):
        if self._fmt is None:
            return f"HistogramTracker(axis={self.axis}, bins={self.bins}, empty)"
        assert self._dtype is not None
        return (f"HistogramTracker(axis={self.axis}, bins={self.bins}, "
                f"dtype={dtype_name(self._dtype)}, count={self.count}, "
                f"channels={self._join().k.shape[0]})")

