"""Streaming: tensors larger than memory, in two passes over chunks.

One pass reduces the range (per tensor or per channel) over the chunks, the
second applies the op chunk by chunk with that range; the result equals the
in-memory :func:`qdq.quantize_and_dequantize` bit for bit.

* :class:`RangeTracker` reduces the range over chunks; trackers merge.
* :func:`quantize_and_dequantize_chunks` applies the op with a known range.
* :func:`stream` does both passes over re-iterable chunks.
* :func:`quantize_and_dequantize_file` runs a ``.npy`` file, a raw binary file,
  an ``np.memmap`` or an array through both passes with bounded memory, writing
  a ``.npy`` (to a temporary file renamed into place when complete), a memmap,
  an array, or the source itself.
"""

from __future__ import annotations

import errno
import math
import operator
import os
import queue
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from . import _api, _kernels, _threads
from ._api import (OpArgs, QuantizationParams, as_input, check_axis, check_flag,
                   check_num_bits, compute_params, finish_range, given_range, integer_grid,
                   iter_blocks, kernel_view, make_params, reduce_range, to_public)
from ._formats import BFLOAT16, Format, format_named, format_of, is_bfloat16_dtype
from ._progress import Progress
from ._threads import check_positive_int

__all__ = ["RangeTracker", "quantize_and_dequantize_chunks", "stream",
           "quantize_and_dequantize_file", "quantize_file", "dequantize_file",
           "DEFAULT_CHUNK_BYTES"]

#: Bytes per chunk of the file API unless ``chunk_bytes`` says otherwise.
DEFAULT_CHUNK_BYTES = 64 << 20
# Written data is synced and dropped from the page cache every this many bytes.
_SYNC_BYTES = 256 << 20


# ---------------------------------------------------------------------------
# Range tracking
# ---------------------------------------------------------------------------

def _merge_min(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise minimum with -0.0 below +0.0 (no NaN: raw ranges use +-inf)."""
    return np.where((b < a) | ((b == a) & np.signbit(b)), b, a)


def _merge_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where((b > a) | ((b == a) & ~np.signbit(b)), b, a)


class RangeTracker:
    """The NaN-ignoring min/max of a tensor that arrives in chunks.

    Chunks are consecutive slices along axis 0 of one logical tensor (so
    every chunk has the tensor's number of dimensions and the same extents
    after the first). Per channel works along every axis, axis 0 included
    (each chunk then brings new channels).

    Parameters
    ----------
    axis : int, optional
        Track one range per channel along this axis (negative counts from the
        end); None tracks the whole tensor.
    bfloat16_bits : bool, default False
        Chunks are ``uint16`` arrays of bfloat16 bit patterns.

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
        if axis is not None:
            if isinstance(axis, (bool, np.bool_)):
                raise TypeError(f"axis must be an int or None, got {axis!r}")
            axis = operator.index(axis)
        self.axis = axis
        self.bfloat16_bits = check_flag("bfloat16_bits", bfloat16_bits)
        self._fmt: Format | None = None
        self._dtype: np.dtype | None = None
        self._rest: tuple | None = None
        self._ax: int | None = None
        self.rows = 0
        self.count = 0
        self._mn: np.ndarray | None = None
        self._mx: np.ndarray | None = None
        self._parts: list = []  # axis 0: per-chunk ranges, joined on demand

    # -- feeding -----------------------------------------------------------
    def _start(self, x: np.ndarray, fmt: Format) -> None:
        if x.ndim == 0:
            raise ValueError("chunks must have at least one dimension (slices along axis 0)")
        self._ax = check_axis(self.axis, x.ndim)
        self._fmt, self._dtype, self._rest = fmt, x.dtype.newbyteorder("="), tuple(x.shape[1:])
        channels = 1 if self._ax is None else (0 if self._ax == 0 else x.shape[self._ax])
        self._mn = np.full(channels, np.inf, dtype=fmt.compute)
        self._mx = np.full(channels, -np.inf, dtype=fmt.compute)

    def _check(self, x: np.ndarray, fmt: Format) -> None:
        if fmt is not self._fmt or x.dtype.newbyteorder("=") != self._dtype:
            raise TypeError(f"chunk of dtype {x.dtype} after chunks of dtype {self._dtype}")
        if x.ndim == 0 or tuple(x.shape[1:]) != self._rest:
            raise ValueError(f"chunk of shape {x.shape} does not continue a tensor whose chunks "
                             f"have shape (n, {', '.join(map(str, self._rest))}) (slices along "
                             "axis 0 of one tensor)")

    def update(self, chunk) -> "RangeTracker":
        """Merge one chunk into the range; returns the tracker."""
        x, fmt = as_input(chunk, self.bfloat16_bits)
        if self._fmt is None:
            self._start(x, fmt)
        else:
            self._check(x, fmt)
        xk = kernel_view(x, fmt)
        if self._ax == 0:
            if x.shape[0]:
                self._parts.append(reduce_range(xk, fmt, 0))
        else:
            reduce_range(xk, fmt, self._ax, self._mn, self._mx)
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
        """
        if not isinstance(other, RangeTracker):
            raise TypeError(f"can only merge a RangeTracker, got {type(other).__name__}")
        if self.axis != other.axis or self.bfloat16_bits != other.bfloat16_bits:
            raise ValueError("trackers of different axes or bfloat16_bits cannot merge")
        if other._fmt is None:
            return self
        if self._fmt is None:
            self.__dict__.update(RangeTracker.from_state(other.state_dict()).__dict__)
            return self
        if other._fmt is not self._fmt or other._dtype != self._dtype or other._rest != self._rest:
            raise ValueError(f"trackers of different tensors cannot merge: {self._dtype} "
                             f"(n, {self._rest}) and {other._dtype} (n, {other._rest})")
        self._join()
        other._join()
        if self._ax == 0:
            self._mn = np.concatenate([self._mn, other._mn])
            self._mx = np.concatenate([self._mx, other._mx])
        else:
            self._mn = _merge_min(self._mn, other._mn).astype(self._fmt.compute)
            self._mx = _merge_max(self._mx, other._mx).astype(self._fmt.compute)
        self.rows += other.rows
        self.count += other.count
        return self

    # -- results -----------------------------------------------------------
    def raw(self) -> tuple[np.ndarray, np.ndarray]:
        """The raw reduction: compute-type arrays, +inf/-inf where nothing was seen."""
        if self._fmt is None:
            raise ValueError("the tracker has seen no chunk yet")
        self._join()
        return self._mn, self._mx

    def _public(self, which: int):
        mn, mx = self.raw()
        channels = max(mn.shape[0], 1)
        mn, mx = finish_range(mn, mx, self.count // channels if mn.shape[0] else 0)
        v = to_public((mn, mx)[which], self._fmt, None if self.bfloat16_bits else self._dtype)
        return v[0] if self._ax is None else v

    @property
    def min(self):
        """The minimum: as :func:`qdq.compute_range` gives it for the whole tensor."""
        return self._public(0)

    @property
    def max(self):
        """The maximum: as :func:`qdq.compute_range` gives it for the whole tensor."""
        return self._public(1)

    @property
    def dtype(self) -> np.dtype | None:
        """The dtype of the chunks seen (None before the first)."""
        return self._dtype

    def params(self, signed_input: bool = True, num_bits: int = 8,
               narrow_range: bool = False) -> QuantizationParams:
        """The quantization parameters the op derives from this range."""
        signed = check_flag("signed_input", signed_input)
        narrow = check_flag("narrow_range", narrow_range)
        bits = check_num_bits(num_bits, signed)
        qmin, qmax = integer_grid(signed, bits, narrow)
        mn, mx = self.raw()
        p = compute_params(mn, mx, self._fmt, qmin, qmax)
        return make_params(p, self._fmt, qmin, qmax, bits, signed, narrow, self._ax,
                           self._ax is not None)

    # -- state -------------------------------------------------------------
    def state_dict(self) -> dict:
        """A plain, JSON-serialisable dict of the state (floats as exact hex strings)."""
        state: dict[str, Any] = {"qdq_range_tracker": 1, "axis": self.axis,
                                 "bfloat16_bits": self.bfloat16_bits, "rows": self.rows,
                                 "count": self.count}
        if self._fmt is not None:
            mn, mx = self.raw()
            state.update(format=self._fmt.name, dtype=_dtype_name(self._dtype),
                         rest=list(self._rest), ax=self._ax,
                         min=[float(v).hex() for v in mn], max=[float(v).hex() for v in mx])
        return state

    @classmethod
    def from_state(cls, state: dict) -> "RangeTracker":
        """A tracker from :meth:`state_dict`'s dict, to resume where it stopped."""
        if not isinstance(state, dict) or state.get("qdq_range_tracker") != 1:
            raise ValueError("not a RangeTracker state (missing 'qdq_range_tracker': 1)")
        t = cls(state["axis"], bfloat16_bits=state["bfloat16_bits"])
        t.rows, t.count = int(state["rows"]), int(state["count"])
        if "format" in state:
            t._fmt = format_named(state["format"])
            t._dtype = _dtype_from_name(state["dtype"])
            t._rest, t._ax = tuple(state["rest"]), state["ax"]
            t._mn = np.array([float.fromhex(v) for v in state["min"]], dtype=t._fmt.compute)
            t._mx = np.array([float.fromhex(v) for v in state["max"]], dtype=t._fmt.compute)
        return t

    def __repr__(self):
        if self._fmt is None:
            return f"RangeTracker(axis={self.axis}, empty)"
        if self._ax is None:
            seen = f"min={float(self.min)!r}, max={float(self.max)!r}"
        else:
            seen = f"channels={self.raw()[0].shape[0]}"
        return (f"RangeTracker(axis={self.axis}, dtype={_dtype_name(self._dtype)}, "
                f"rows={self.rows}, {seen})")


def _dtype_name(dt: np.dtype) -> str:
    return "bfloat16" if is_bfloat16_dtype(dt) else dt.str


def _dtype_from_name(name: str) -> np.dtype:
    if name == "bfloat16":
        from ._formats import bfloat16_dtype

        return bfloat16_dtype()
    return np.dtype(name)


# ---------------------------------------------------------------------------
# Chunk generators
# ---------------------------------------------------------------------------

def _chunk_params(lo, hi, fmt: Format, args: OpArgs, axis_len: int | None, given: bool):
    """Parameter rows (4, C) from a range given per tensor or per channel."""
    if given:
        lo_arr, hi_arr = given_range(lo, hi, fmt, (axis_len,) if axis_len is not None else (),
                                     None if axis_len is None else 0)
    else:  # the data's own range (raw reduction): no checks, NaN and inf allowed
        lo_arr = np.asarray(lo, dtype=np.float64).reshape(-1)
        hi_arr = np.asarray(hi, dtype=np.float64).reshape(-1)
        if axis_len is not None:
            lo_arr = np.broadcast_to(lo_arr, (axis_len,)) if lo_arr.size == 1 else lo_arr
            hi_arr = np.broadcast_to(hi_arr, (axis_len,)) if hi_arr.size == 1 else hi_arr
    return compute_params(lo_arr, hi_arr, fmt, args.qmin, args.qmax)


def quantize_and_dequantize_chunks(chunks: Iterable, input_min: Any, input_max: Any,
                                   signed_input: bool = True, num_bits: int = 8,
                                   range_given: bool = True, round_mode: str = "HALF_TO_EVEN",
                                   narrow_range: bool = False, axis: int | None = None, *,
                                   bfloat16_bits: bool = False) -> Iterator[np.ndarray]:
    """Apply the op with a known range to each chunk; yields the output chunks.

    Parameters
    ----------
    chunks : iterable of array_like
        Consecutive slices along axis 0 of one tensor.
    input_min, input_max : float or array_like
        The range: scalars, or with ``axis`` one value per channel (along axis
        0: one per row of the whole tensor).
    range_given : bool, default True
        True: a given range, clamped, as the op with ``range_given=True``.
        False: ``input_min``/``input_max`` are the data's own range (from a
        :class:`RangeTracker` or :func:`qdq.compute_range`); no clamp, so the
        chunks come out exactly as the op with ``range_given=False`` gives them.
    signed_input, num_bits, round_mode, narrow_range, axis, bfloat16_bits
        As for :func:`qdq.quantize_and_dequantize`.

    Returns
    -------
    iterator of numpy.ndarray
        One output chunk per input chunk. Arguments are checked on the call;
        chunks are checked as they come.
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    bits_flag = check_flag("bfloat16_bits", bfloat16_bits)
    if axis is not None and (isinstance(axis, (bool, np.bool_))):
        raise TypeError(f"axis must be an int or None, got {axis!r}")
    if args.range_given and (input_min is None or input_max is None):
        raise TypeError("input_min and input_max are required")
    return _chunks_gen(iter(chunks), input_min, input_max, args, axis, bits_flag)


def _chunks_gen(it, lo, hi, args: OpArgs, axis, bits_flag):
    p = None
    fmt = ax = None
    offset = 0
    for chunk in it:
        x, cfmt = as_input(chunk, bits_flag)
        if x.ndim == 0:
            raise ValueError("chunks must have at least one dimension (slices along axis 0)")
        if fmt is None:
            fmt, ax, rest = cfmt, check_axis(axis, x.ndim), x.shape[1:]
            if ax is None:
                p = _chunk_params(lo, hi, fmt, args, None, args.range_given)
            elif ax == 0:
                n = np.asarray(lo).size if np.ndim(lo) else None
                n2 = np.asarray(hi).size if np.ndim(hi) else None
                length = n if n is not None else n2
                if length is None:
                    raise ValueError("per channel along axis 0, input_min/input_max need one "
                                     "value per row of the whole tensor")
                p = _chunk_params(lo, hi, fmt, args, length, args.range_given)
            else:
                p = _chunk_params(lo, hi, fmt, args, x.shape[ax], args.range_given)
        elif cfmt is not fmt or x.shape[1:] != rest:
            raise ValueError(f"chunk of shape {x.shape} and dtype {x.dtype} does not continue "
                             "the tensor of the earlier chunks")
        xk = kernel_view(x, fmt)
        res = np.empty(x.shape, dtype=_api.result_dtype(x, fmt))
        rk = kernel_view(res, fmt)
        if ax == 0:
            if offset + x.shape[0] > p.shape[1]:
                raise ValueError(f"the range has {p.shape[1]} channels along axis 0 but the "
                                 f"chunks have more rows ({offset + x.shape[0]} so far)")
            rows = p[:, offset:offset + x.shape[0]]
        else:
            rows = p
        _api.transform(xk, rk, fmt, ax, rows, args.mode)
        offset += x.shape[0]
        yield res


def stream(chunks: Any, input_min: Any = None, input_max: Any = None,
           signed_input: bool = True, num_bits: int = 8, range_given: bool = False,
           round_mode: str = "HALF_TO_EVEN", narrow_range: bool = False,
           axis: int | None = None, *, bfloat16_bits: bool = False) -> Iterator[np.ndarray]:
    """The op over chunks, in two passes when the range comes from the data.

    Parameters
    ----------
    chunks : re-iterable of array_like, or a callable returning an iterator
        Consecutive slices along axis 0 of one tensor. With the range from the
        data they are read twice (the range, then the op), so they must be a
        list or another re-iterable, or a function returning a fresh iterator
        each time; a one-shot iterator or generator is a TypeError. With
        ``range_given`` one pass suffices and any iterable works.
    input_min, input_max, signed_input, num_bits, range_given, round_mode, narrow_range, axis, \
bfloat16_bits
        As for :func:`qdq.quantize_and_dequantize`.

    Returns
    -------
    iterator of numpy.ndarray
        The output chunks; concatenated along axis 0 they equal, bit for bit,
        the in-memory op on the concatenated input.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> x = np.linspace(-1, 1, 10)
    >>> parts = np.array_split(x, 3)
    >>> y = np.concatenate(list(qdq.stream(parts, num_bits=4)))
    >>> bool((y == qdq.quantize_and_dequantize(x, num_bits=4)).all())
    True
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    bits_flag = check_flag("bfloat16_bits", bfloat16_bits)
    if isinstance(chunks, np.ndarray):
        raise TypeError("chunks must be an iterable of chunk arrays (for example "
                        "np.array_split(x, k)), not one array; for arrays and memmaps use "
                        "quantize_and_dequantize_file")
    if args.range_given:
        if input_min is None or input_max is None:
            raise TypeError("input_min and input_max are required when range_given=True")
        source = chunks() if callable(chunks) else chunks
        return _chunks_gen(iter(source), input_min, input_max, args, axis, bits_flag)
    if callable(chunks):
        def again():
            return iter(chunks())
    else:
        try:
            first = iter(chunks)
        except TypeError:
            raise TypeError(f"chunks must be iterable, got {type(chunks).__name__}") from None
        if first is chunks:
            raise TypeError(
                "with the range from the data qdq.stream reads the chunks twice (range, then "
                "op), but a one-shot iterator or generator can be read only once: pass a list, "
                "a re-iterable object, or a function returning a fresh iterator, or give the "
                "range (range_given=True)")

        def again():
            return iter(chunks)
    return _two_pass(again, args, axis, bits_flag)


def _two_pass(again: Callable[[], Iterator], args: OpArgs, axis, bits_flag):
    tracker = RangeTracker(axis, bfloat16_bits=bits_flag)
    for chunk in again():
        tracker.update(chunk)
    if tracker._fmt is None:
        return
    mn, mx = tracker.raw()
    n_first = tracker.rows
    rows = 0
    for out in _chunks_gen(again(), mn, mx, args, tracker.axis, bits_flag):
        rows += out.shape[0]
        yield out
    if rows != n_first:
        raise ValueError(f"the chunks changed between the two passes ({n_first} rows, then "
                         f"{rows})")


# ---------------------------------------------------------------------------
# Files: sources and destinations
# ---------------------------------------------------------------------------

def _fadvise_dontneed(fd: int, offset: int, length: int) -> None:
    if hasattr(os, "posix_fadvise") and length > 0:
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover - advisory only
            pass


def _npy_header(f, path) -> tuple[tuple, bool, np.dtype]:
    fmt_mod = np.lib.format
    try:
        version = fmt_mod.read_magic(f)
    except ValueError:
        raise ValueError(f"{path} is not a .npy file (bad magic string); for a raw binary "
                         "file pass dtype= and shape=") from None
    try:
        if version == (1, 0):
            shape, fortran, dtype = fmt_mod.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = fmt_mod.read_array_header_2_0(f)
        else:
            shape, fortran, dtype = fmt_mod._read_array_header(f, version)
    except (ValueError, SyntaxError, TypeError, KeyError) as exc:
        raise ValueError(f"{path}: corrupt .npy header ({exc})") from None
    return tuple(shape), bool(fortran), dtype


class _Source:
    """Logical tensor of a file or an array, read block by block in memory order."""

    shape: tuple
    fmt: Format
    dtype: np.dtype          # as stored (file byte order)
    result_dtype: np.dtype   # of the op's output
    transposed: bool         # Fortran order: blocks walk the reversed shape
    nbytes: int

    @property
    def canon_shape(self) -> tuple:
        """The shape in memory order (a 0-d tensor is one element)."""
        if not self.shape:
            return (1,)
        return self.shape[::-1] if self.transposed else self.shape

    def canon_axis(self, ax: int | None) -> int | None:
        """The channel axis in memory order."""
        if ax is None or not self.transposed:
            return ax
        return len(self.shape) - 1 - ax

    def close(self) -> None:
        pass


def _storage_dtype(fmt: Format | None, dtype: np.dtype) -> np.dtype:
    if fmt is None or fmt.itemsize != 2:
        return dtype
    return fmt.storage.newbyteorder(dtype.byteorder)


class _FileSource(_Source):
    def __init__(self, path, shape, fortran, dtype, offset, fmt):
        self.path = os.fspath(path)
        self.shape, self.transposed, self.dtype, self.offset, self.fmt = (
            tuple(shape), fortran and len(shape) > 1, dtype, offset, fmt)
        self.stored = _storage_dtype(fmt, dtype)
        self.result_dtype = dtype.newbyteorder("=")
        self.nbytes = math.prod(self.shape) * dtype.itemsize
        self.f = None

    def open(self):
        self.f = open(self.path, "rb", buffering=0)
        size = os.fstat(self.f.fileno()).st_size
        if size < self.offset + self.nbytes:
            self.f.close()
            raise ValueError(f"{self.path} is truncated: its data needs {self.nbytes} bytes "
                             f"after offset {self.offset}, the file has {size - self.offset}")
        self.drop_pages = self.nbytes > _memory_available() // 4
        return self

    def read(self, block, buf: np.ndarray) -> tuple[np.ndarray, bool]:
        n = block.count * self.dtype.itemsize
        view = memoryview(buf)[:n]
        pos = self.offset + block.start * self.dtype.itemsize
        got = 0
        while got < n:
            k = os.preadv(self.f.fileno(), [view[got:]], pos + got) if hasattr(os, "preadv") \
                else self._read_at(view[got:], pos + got)
            if k == 0:
                raise ValueError(f"{self.path} was truncated while being read (at byte "
                                 f"{pos + got} of {self.offset + self.nbytes})")
            got += k
        arr = buf[:n].view(self.stored)
        if not self.stored.isnative:
            arr = arr.byteswap(inplace=True).view(self.stored.newbyteorder("="))
        return arr.reshape(block.shape), True

    def _read_at(self, view, pos):  # pragma: no cover - platforms without preadv
        self.f.seek(pos)
        return self.f.readinto(view)

    def release(self, block, final: bool) -> None:
        if final or self.drop_pages:
            itemsize = self.dtype.itemsize
            _fadvise_dontneed(self.f.fileno(), self.offset + block.start * itemsize,
                              block.count * itemsize)

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


class _ArraySource(_Source):
    def __init__(self, arr: np.ndarray, fmt: Format | None):
        self.arr, self.fmt, self.dtype, self.shape = arr, fmt, arr.dtype, arr.shape
        self.transposed = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
        canon = arr.T if self.transposed else arr
        canon = canon if canon.ndim else canon.reshape(1)
        self.sk = canon if fmt is None else kernel_view(canon, fmt)
        self.result_dtype = _api.result_dtype(arr, fmt)
        self.nbytes = arr.nbytes

    def read(self, block, buf: np.ndarray) -> tuple[np.ndarray, bool]:
        v = self.sk[block.index]
        if v.flags.c_contiguous and v.flags.aligned and v.dtype.isnative:
            return v, False
        native = v.dtype.newbyteorder("=")
        out = buf[:block.count * v.dtype.itemsize].view(native).reshape(v.shape)
        np.copyto(out, v, casting="equiv")
        return out, True

    def release(self, block, final: bool) -> None:
        pass


def _memory_available() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return 1 << 34  # pragma: no cover


def _file_format(dtype: np.dtype, bfloat16_bits: bool, path) -> Format:
    if dtype.hasobject:
        raise ValueError(f"{path}: object arrays are not supported (reading them would need "
                         "pickle, which qdq never uses)")
    if dtype.kind == "V" and dtype.itemsize == 2 and not dtype.names:
        if bfloat16_bits:
            return BFLOAT16
        raise TypeError(f"{path} holds 2-byte void data (a bfloat16 array saved through "
                        "ml_dtypes?): pass bfloat16_bits=True to read it as bfloat16")
    return format_of(dtype, bfloat16_bits)


def open_source(src, dtype=None, shape=None, order="C", offset=0,
                bfloat16_bits=False, codes: bool = False) -> _Source:
    """A source for the file API: a .npy path, a raw path (dtype and shape), or an array.

    With ``codes`` the source holds integer codes (its ``fmt`` is None).
    """
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if dtype is not None or shape is not None:
            if dtype is None or shape is None:
                raise ValueError("a raw binary file needs both dtype= and shape=")
            if order not in ("C", "F"):
                raise ValueError(f"order must be 'C' or 'F', got {order!r}")
            shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
            if any(s < 0 for s in shape):
                raise ValueError(f"shape must not be negative, got {shape}")
            if isinstance(dtype, str) and dtype == "bfloat16":
                dt, bfloat16_bits = np.dtype(np.uint16), True
            else:
                dt = np.dtype(dtype)
            fmt = _file_format(dt, bfloat16_bits, path)
            off = operator.index(offset)
            src_obj = _FileSource(path, shape, order == "F", dt, off, fmt).open()
            size = os.fstat(src_obj.f.fileno()).st_size
            if size != off + src_obj.nbytes:
                src_obj.close()
                raise ValueError(f"{path} has {size - off} bytes of data after offset {off}, "
                                 f"but shape {shape} of {dt} needs {src_obj.nbytes}")
            return src_obj
        with open(path, "rb") as f:
            shp, fortran, dt = _npy_header(f, path)
            off = f.tell()
        fmt = _codes_format(dt, path) if codes else _file_format(dt, bfloat16_bits, path)
        return _FileSource(path, shp, fortran, dt, off, fmt).open()
    if dtype is not None or shape is not None:
        raise ValueError("dtype= and shape= describe raw files; the source here is an array")
    if codes:
        x = src if isinstance(src, np.ndarray) else np.asarray(src)
        _codes_format(x.dtype, "codes")
        return _ArraySource(x, None)
    x, fmt = as_input(src, bfloat16_bits)
    return _ArraySource(x, fmt)


def _codes_format(dtype: np.dtype, where) -> None:
    """Integer codes have no float format; TypeError for anything but integers."""
    from ._codes import _itype

    if dtype.hasobject:
        raise ValueError(f"{where}: object arrays are not supported")
    _itype(dtype)
    return None


class _FileDest:
    """A .npy (or raw) file written through a temporary file renamed into place."""

    def __init__(self, path, source: _Source, dtype: np.dtype, npy: bool):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        name = os.path.basename(self.path)
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".qdq-tmp", dir=directory)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot create the output {self.path}: {exc.strerror}",
                            directory) from None
        self.f = os.fdopen(fd, "wb", buffering=0)
        # A raw file keeps the source's byte order (it has no header to say otherwise).
        self.swap = not npy and not source.dtype.isnative
        self.written = 0
        self.synced = 0
        self.base = 0
        self.pending: tuple[int, int] | None = None
        if npy:
            header = {"descr": np.lib.format.dtype_to_descr(dtype),
                      "fortran_order": bool(source.transposed), "shape": tuple(source.shape)}
            self._guard(lambda: np.lib.format.write_array_header_2_0(self.f, header)
                        if _header_len(header) > 65535 else
                        np.lib.format.write_array_header_1_0(self.f, header))
            self.base = self.f.tell()

    def _guard(self, fn):
        try:
            return fn()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OSError(exc.errno, f"could not write {self.path}: {exc.strerror}; nothing "
                              "was written to it (the partial temporary file is removed)") from exc
            raise

    def write(self, block, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data)
        if self.swap:
            data = data.byteswap()
        mv = memoryview(data).cast("B")
        start = self.base + self.written

        def put():
            done = 0
            while done < len(mv):
                done += self.f.write(mv[done:])
        self._guard(put)
        self.written += len(mv)
        fd = self.f.fileno()
        # Keep the disk busy and the page cache small: start writing this
        # chunk back now, wait for the previous one, then drop it.
        if self._guard(lambda: _kernels.sync_range(fd, start, len(mv), False)):
            if self.pending is not None:
                off, n = self.pending
                self._guard(lambda: _kernels.sync_range(fd, off, n, True))
                _fadvise_dontneed(fd, off, n)
            self.pending = (start, len(mv))
        elif self.written - self.synced >= _SYNC_BYTES:
            self._guard(lambda: os.fdatasync(fd))
            _fadvise_dontneed(fd, 0, self.base + self.written)
            self.synced = self.written

    def commit(self) -> None:
        self._guard(lambda: os.fsync(self.f.fileno()))
        _fadvise_dontneed(self.f.fileno(), 0, self.base + self.written)
        self.f.close()
        os.replace(self.tmp, self.path)
        try:
            dfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        except OSError:  # pragma: no cover - directories cannot be opened on some systems
            return
        try:
            os.fsync(dfd)
        except OSError:  # pragma: no cover
            pass
        finally:
            os.close(dfd)

    def abort(self) -> None:
        try:
            self.f.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass


def _header_len(header: dict) -> int:
    return len(repr(header)) + 16


class _ArrayDest:
    def __init__(self, arr: np.ndarray, source: _Source, dtype: np.dtype, fmt: Format | None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"dst must be a path, a writable memmap or an array, got "
                            f"{type(arr).__name__}")
        if arr.shape != tuple(source.shape):
            raise ValueError(f"dst has shape {arr.shape}, the source has shape {source.shape}")
        if not (_api._same_type(arr.dtype, dtype) or
                (fmt is BFLOAT16 and dtype.kind == "V" and is_bfloat16_dtype(arr.dtype))):
            raise ValueError(f"dst has dtype {arr.dtype}, the result needs {dtype}")
        if not arr.flags.writeable:
            raise ValueError("dst is read-only")
        if isinstance(source, _ArraySource) and np.may_share_memory(arr, source.arr) \
                and not _api._same_memory(arr, source.arr):
            raise ValueError("dst overlaps the source array without being it")
        self.arr = arr
        canon = arr.T if source.transposed else arr
        canon = canon if canon.ndim else canon.reshape(1)
        self.dk = canon if (fmt is None or arr.dtype.kind in "iu") else kernel_view(canon, fmt)

    def write(self, block, data: np.ndarray) -> None:
        self.dk[block.index] = data

    def commit(self) -> None:
        if isinstance(self.arr, np.memmap):
            self.arr.flush()

    def abort(self) -> None:
        pass


def _same_file(a, b) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def open_dest(dst, source: _Source, dtype: np.dtype, result_fmt: Format | None = None):
    """The destination: a .npy (or the source's raw) path, or an array of ``dtype``."""
    if isinstance(dst, (str, os.PathLike)):
        path = os.fspath(dst)
        npy = path.endswith(".npy") or (isinstance(source, _FileSource)
                                        and _same_file(path, source.path)
                                        and source.offset > 0 and _is_npy(source.path))
        if not npy and not (isinstance(source, _FileSource) and _same_file(path, source.path)):
            raise ValueError(f"dst {path!r} must be a .npy path (or the source path itself)")
        return _FileDest(path, source, dtype, npy)
    return _ArrayDest(dst, source, dtype, result_fmt or source.fmt)


def _is_npy(path) -> bool:
    with open(path, "rb") as f:
        return f.read(6) == b"\x93NUMPY"


@contextmanager
def _sigterm_as_exit():
    """Turn SIGTERM into SystemExit(143) so that cleanup runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _buffer(source: _Source, chunk_items: int) -> np.ndarray:
    return np.empty(max(1, min(chunk_items, max(1, math.prod(source.shape))))
                    * source.dtype.itemsize, dtype=np.uint8)


def _range_pass(source: _Source, ax: int | None, chunk_items: int, progress: bool):
    fmt = source.fmt
    channels = 1 if ax is None else source.shape[ax]
    mn = np.full(channels, np.inf, dtype=fmt.compute)
    mx = np.full(channels, -np.inf, dtype=fmt.compute)
    buf = _buffer(source, chunk_items)
    prog = Progress(source.nbytes, "qdq pass 1/2, range", progress)
    cax = source.canon_axis(ax)
    try:
        for b in iter_blocks(source.canon_shape, cax, chunk_items):
            data, _ = source.read(b, buf)
            _kernels.minmax(data, mn[b.channels], mx[b.channels], fmt.code, *b.extents,
                            _threads._threads)
            source.release(b, final=False)
            prog.update(b.count * source.dtype.itemsize)
    finally:
        prog.close()
    return mn, mx, prog.rate


class _Writer:
    """Writes finished blocks on a background thread while the next are computed.

    Buffers rotate between the two threads (at most ``nbufs`` in use), so
    memory stays at ``nbufs`` chunks. An error in the writer is raised in the
    caller at its next call; :meth:`close` always stops the thread first.
    """

    def __init__(self, dest, source: _Source, nbufs: int, nbytes: int):
        self.dest, self.source = dest, source
        self.free: queue.Queue = queue.Queue()
        for _ in range(nbufs):
            self.free.put(np.empty(nbytes, dtype=np.uint8))
        self.todo: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="qdq-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.todo.get()
            if item is None:
                return
            block, data, buf = item
            try:
                if self.error is None:
                    self.dest.write(block, data)
                    self.source.release(block, final=True)
            except BaseException as exc:  # handed to the caller
                self.error = exc
            finally:
                self.free.put(buf)

    def _check(self) -> None:
        if self.error is not None:
            raise self.error

    def buffer(self) -> np.ndarray:
        buf = self.free.get()
        if self.error is not None:
            self.free.put(buf)
            self._check()
        return buf

    def submit(self, block, data: np.ndarray, buf: np.ndarray) -> None:
        self._check()
        self.todo.put((block, data, buf))

    def close(self) -> None:
        """Wait for the queued writes and stop; raises the writer's error if any."""
        self.todo.put(None)
        self.thread.join()
        self._check()


def _write_pass(source: _Source, dest, ax: int | None, chunk_items: int, progress: bool,
                label: str, kernel: Callable, out_dtype: np.dtype) -> float:
    """Pass 2: read each block, compute it into an output buffer, hand it to the writer.

    Memory: one read buffer and two output buffers of a chunk each.
    """
    read_buf = _buffer(source, chunk_items)
    items = max(1, min(chunk_items, math.prod(source.canon_shape)))
    prog = Progress(source.nbytes, label, progress)
    cax = source.canon_axis(ax)
    writer = _Writer(dest, source, 2, items * out_dtype.itemsize)
    try:
        for b in iter_blocks(source.canon_shape, cax, chunk_items):
            data, _ = source.read(b, read_buf)
            buf = writer.buffer()
            target = buf[:b.count * out_dtype.itemsize].view(out_dtype).reshape(b.shape)
            kernel(data, target, b)
            writer.submit(b, target, buf)
            prog.update(b.count * source.dtype.itemsize)
    finally:
        try:
            writer.close()
        finally:
            prog.close()
    return prog.rate


def _chunk_items(chunk_bytes, itemsize: int) -> int:
    return max(1, check_positive_int("chunk_bytes", chunk_bytes) // itemsize)


def quantize_and_dequantize_file(src: Any, dst: Any, input_min: Any = None,
                                 input_max: Any = None, signed_input: bool = True,
                                 num_bits: int = 8, range_given: bool = False,
                                 round_mode: str = "HALF_TO_EVEN", narrow_range: bool = False,
                                 axis: int | None = None, *,
                                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
                                 dtype: Any = None, shape: Any = None, order: str = "C",
                                 offset: int = 0,
                                 bfloat16_bits: bool = False) -> QuantizationParams:
    """Run a file or array through the op in two passes with bounded memory.

    The first pass reduces the range (unless it is given), the second applies
    the op chunk by chunk; the result equals the in-memory
    :func:`qdq.quantize_and_dequantize` bit for bit. Memory stays at about
    three times ``chunk_bytes`` (a chunk being read, two being written)
    whatever the file size, and pages already processed are released from the
    page cache.

    Parameters
    ----------
    src : path or numpy.ndarray
        A ``.npy`` file (read with plain file I/O; never with pickle), a raw
        binary file (give ``dtype`` and ``shape``), or an array or
        ``np.memmap``. C or Fortran order.
    dst : path or numpy.ndarray
        A ``.npy`` path, written to a temporary file beside it and renamed into
        place once complete and synced (the source path itself works: the file
        is replaced only at the end); or a writable array or memmap of the
        source's shape and result type, which may be ``src`` itself (in place).
    input_min, input_max, signed_input, num_bits, range_given, round_mode, narrow_range, axis
        As for :func:`qdq.quantize_and_dequantize`.
    chunk_bytes : int, default 64 MiB
        Bytes per chunk.
    progress : bool, default False
        Show a progress bar with the bytes per second of each pass (tqdm when
        installed, a plain line on stderr otherwise).
    dtype, shape, order, offset
        For a raw binary ``src``: its element type (``"bfloat16"`` for bit
        patterns), shape, order and the byte offset of its data.
    bfloat16_bits : bool, default False
        The source holds bfloat16 bit patterns (uint16, or the 2-byte void
        dtype of a bfloat16 ``.npy`` written through ml_dtypes).

    Returns
    -------
    QuantizationParams
        The parameters used.

    Raises
    ------
    ValueError
        For a corrupt, truncated or non-``.npy`` source, object arrays, a file
        truncated while being read, a bad ``dst``; and as the op does.
    TypeError
        For unsupported element types.
    OSError
        When the output cannot be written (a full disk, no permission); the
        source is untouched and no partial file is left under ``dst``.
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    return run_file(src, dst, input_min, input_max, args, axis, chunk_bytes=chunk_bytes,
                    progress=progress, dtype=dtype, shape=shape, order=order, offset=offset,
                    bfloat16_bits=bfloat16_bits)[0]


def _open_for_op(src, input_min, input_max, args: OpArgs, axis, chunk_bytes, dtype, shape,
                 order, offset, bfloat16_bits):
    """Open a source and check the op's arguments against it.

    Returns (source, items per chunk, normalised axis, the given range or None);
    the source is closed again if a check fails.
    """
    source = open_source(src, dtype, shape, order, offset,
                         check_flag("bfloat16_bits", bfloat16_bits))
    try:
        chunk_items = _chunk_items(chunk_bytes, source.dtype.itemsize)
        ax = check_axis(axis, len(source.shape))
        given = (given_range(input_min, input_max, source.fmt, source.shape, ax)
                 if args.range_given else None)
    except BaseException:
        source.close()
        raise
    return source, chunk_items, ax, given


def run_file(src, dst, input_min, input_max, args: OpArgs, axis, *, chunk_bytes, progress,
             dtype, shape, order, offset, bfloat16_bits, codes: bool = False):
    """The file API's work: the op (or, with ``codes``, :func:`qdq.quantize`) over a file.

    Returns (QuantizationParams, timings dict).
    """
    from ._codes import _INT_INDEX, _code_dtype, check_codes

    show = check_flag("progress", progress)
    source, chunk_items, ax, given = _open_for_op(src, input_min, input_max, args, axis,
                                                  chunk_bytes, dtype, shape, order, offset,
                                                  bfloat16_bits)
    timings = {"bytes": source.nbytes}
    try:
        fmt = source.fmt
        if given is not None:
            lo, hi = given
        if codes:
            out_dtype = _code_dtype(fmt, args.signed, args.bits, args.narrow)
            op, itype = _kernels.QUANTIZE, _INT_INDEX[out_dtype]
        else:
            out_dtype, op, itype = source.result_dtype, _kernels.APPLY, 0
        with _sigterm_as_exit():
            dest = open_dest(dst, source, out_dtype)
            try:
                if not args.range_given:
                    t0 = time.perf_counter()
                    lo, hi, _ = _range_pass(source, ax, chunk_items, show)
                    timings["range_seconds"] = time.perf_counter() - t0
                p = compute_params(lo, hi, fmt, args.qmin, args.qmax)
                nt = _threads._threads
                storage = fmt.storage if op == _kernels.APPLY else out_dtype

                def kernel(data, target, b):
                    ch = b.channels
                    stats = _kernels.run(op, data, None, target, fmt.code, itype, *b.extents,
                                         p[0, ch], p[1, ch], p[2, ch], p[3, ch], args.mode, nt)
                    if codes:
                        check_codes(stats, out_dtype)

                t0 = time.perf_counter()
                _write_pass(source, dest, ax, chunk_items, show,
                            "qdq pass 2/2, codes" if codes else "qdq pass 2/2, write", kernel,
                            np.dtype(storage))
                dest.commit()
                timings["write_seconds"] = time.perf_counter() - t0
            except BaseException:
                dest.abort()
                raise
    finally:
        source.close()
    params = make_params(p, fmt, args.qmin, args.qmax, args.bits, args.signed, args.narrow, ax,
                         ax is not None, args.round_mode)
    return params, timings


def default_params_path(path) -> str:
    """Where the parameters of a codes file go: ``codes.npy`` -> ``codes.params.json``."""
    path = os.fspath(path)
    root = path[:-4] if path.endswith(".npy") else path
    return root + ".params.json"


def quantize_file(src: Any, dst: Any, input_min: Any = None, input_max: Any = None,
                  signed_input: bool = True, num_bits: int = 8, range_given: bool = False,
                  round_mode: str = "HALF_TO_EVEN", narrow_range: bool = False,
                  axis: int | None = None, *, params_path: Any = None,
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
                  dtype: Any = None, shape: Any = None, order: str = "C", offset: int = 0,
                  bfloat16_bits: bool = False) -> QuantizationParams:
    """Integer codes of a file or array (:func:`qdq.quantize`), streamed to a ``.npy``.

    Two passes with bounded memory, as :func:`quantize_and_dequantize_file`
    (same sources, destinations and guarantees); the codes file has the
    source's shape and memory order and the dtype :func:`qdq.code_dtype` gives.
    The parameters are written beside it as JSON, atomically, after the codes:
    to ``params_path``, by default ``codes.params.json`` for ``codes.npy``
    (no default when ``dst`` is an array).

    Returns
    -------
    QuantizationParams
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    if params_path is None and isinstance(dst, (str, os.PathLike)):
        params_path = default_params_path(dst)
    params, _ = run_file(src, dst, input_min, input_max, args, axis, chunk_bytes=chunk_bytes,
                         progress=progress, dtype=dtype, shape=shape, order=order, offset=offset,
                         bfloat16_bits=bfloat16_bits, codes=True)
    if params_path is not None:
        params.save(params_path)
    return params


def dequantize_file(src: Any, dst: Any, params: Any = None, *,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
                    bfloat16_bits: bool = False) -> QuantizationParams:
    """Values from a file of integer codes (:func:`qdq.dequantize`), streamed to a ``.npy``.

    Parameters
    ----------
    src : path or numpy.ndarray
        A ``.npy`` of integer codes, or an integer array or memmap.
    dst : path or numpy.ndarray
        As for :func:`quantize_and_dequantize_file`.
    params : QuantizationParams or path, optional
        The parameters, or the JSON file holding them; by default the file
        :func:`quantize_file` wrote beside ``src``.
    chunk_bytes, progress
        As for :func:`quantize_and_dequantize_file`.
    bfloat16_bits : bool, default False
        For bfloat16, write uint16 bit patterns (a ``.npy`` of ``uint16``)
        instead of the 2-byte void dtype ml_dtypes arrays are saved as.

    Returns
    -------
    QuantizationParams
        The parameters used.
    """
    from ._codes import _itype, _param_rows, params_axis

    show = check_flag("progress", progress)
    bits_flag = check_flag("bfloat16_bits", bfloat16_bits)
    if params is None:
        if not isinstance(src, (str, os.PathLike)):
            raise TypeError("params is required when the codes are an array")
        params = default_params_path(src)
    if not isinstance(params, QuantizationParams):
        params = QuantizationParams.load(params)
    fmt = format_named(params.dtype)
    source = open_source(src, codes=True)
    try:
        itype = _itype(source.dtype)
        chunk_items = _chunk_items(chunk_bytes, source.dtype.itemsize)
        ax = params_axis(params, tuple(source.shape))
        if fmt is BFLOAT16:
            out_dtype = np.dtype(np.uint16) if bits_flag else np.dtype("V2")
        else:
            out_dtype = np.dtype(fmt.name)
        p = _param_rows(params, fmt)
        nt = _threads._threads

        def kernel(data, target, b):
            ch = b.channels
            _kernels.run(_kernels.DEQUANTIZE, data, None, target, fmt.code, itype, *b.extents,
                         p[0, ch], p[1, ch], p[2, ch], p[3, ch], 0, nt)

        with _sigterm_as_exit():
            dest = open_dest(dst, source, out_dtype, result_fmt=fmt)
            try:
                _write_pass(source, dest, ax, chunk_items, show, "qdq dequantize", kernel,
                            np.dtype(fmt.storage))
                dest.commit()
            except BaseException:
                dest.abort()
                raise
    finally:
        source.close()
    return params


def _values(data: np.ndarray, fmt: Format) -> np.ndarray:
    """Storage-type block -> float64 values."""
    if fmt.name == "float16":
        return data.view(np.float16).astype(np.float64)
    if fmt is BFLOAT16:
        return (data.astype(np.uint32) << np.uint32(16)).view(np.float32).astype(np.float64)
    return data.astype(np.float64)


def analyze_file(src, input_min, input_max, args: OpArgs, axis, *, chunk_bytes, progress,
                 dtype=None, shape=None, order="C", offset=0, bfloat16_bits=False) -> dict:
    """The range, the parameters and the error the op would introduce; writes nothing.

    Returns a dict with ``params`` (QuantizationParams), ``elements``, ``nan``
    (NaN inputs), ``clipped`` (elements the clamp changes; only with a given
    range), ``max_abs_error`` and ``sqnr_db`` (10 log10 of signal over error
    energy, over finite inputs with finite outputs).
    """
    show = check_flag("progress", progress)
    source, chunk_items, ax, given = _open_for_op(src, input_min, input_max, args, axis,
                                                  chunk_bytes, dtype, shape, order, offset,
                                                  bfloat16_bits)
    try:
        fmt = source.fmt
        if given is not None:
            lo, hi = given
        else:
            lo, hi, _ = _range_pass(source, ax, chunk_items, show)
        p = compute_params(lo, hi, fmt, args.qmin, args.qmax)
        stats = {"elements": 0, "nan": 0, "clipped": 0, "max_abs_error": 0.0,
                 "signal": 0.0, "noise": 0.0, "nonfinite_out": 0}
        buf = _buffer(source, chunk_items)
        out = _buffer(source, chunk_items)
        cax = source.canon_axis(ax)
        prog = Progress(source.nbytes, "qdq error pass", show)
        try:
            for b in iter_blocks(source.canon_shape, cax, chunk_items):
                data, _ = source.read(b, buf)
                target = out[:data.nbytes].view(data.dtype).reshape(data.shape)
                ch = b.channels
                _kernels.apply(data, target, p[0, ch], p[1, ch], p[2, ch], p[3, ch], fmt.code,
                               *b.extents, args.mode, _threads._threads)
                x = _values(data, fmt).reshape(b.extents)
                y = _values(target, fmt).reshape(b.extents)
                stats["elements"] += x.size
                stats["nan"] += int(np.isnan(x).sum())
                if args.range_given:
                    lo_c = p[2, ch].astype(np.float64)[None, :, None]
                    hi_c = p[3, ch].astype(np.float64)[None, :, None]
                    stats["clipped"] += int(((x < lo_c) | (x > hi_c)).sum())
                ok = np.isfinite(x) & np.isfinite(y)
                stats["nonfinite_out"] += int((np.isfinite(x) & ~np.isfinite(y)).sum())
                err = np.abs(y[ok] - x[ok])
                if err.size:
                    stats["max_abs_error"] = max(stats["max_abs_error"], float(err.max()))
                stats["signal"] += float(np.square(x[ok]).sum())
                stats["noise"] += float(np.square(err).sum())
                source.release(b, final=True)
                prog.update(b.count * source.dtype.itemsize)
        finally:
            prog.close()
    finally:
        source.close()
    signal_e, noise_e = stats.pop("signal"), stats.pop("noise")
    stats["sqnr_db"] = (math.inf if noise_e == 0 else
                        10 * math.log10(signal_e / noise_e) if signal_e > 0 else -math.inf)
    stats["params"] = make_params(p, fmt, args.qmin, args.qmax, args.bits, args.signed,
                                  args.narrow, ax, ax is not None, args.round_mode)
    stats["range"] = (to_public(np.asarray(lo, dtype=fmt.compute).reshape(-1), fmt, None),
                      to_public(np.asarray(hi, dtype=fmt.compute).reshape(-1), fmt, None))
    stats["shape"], stats["dtype"] = tuple(source.shape), source.fmt.name
    return stats
