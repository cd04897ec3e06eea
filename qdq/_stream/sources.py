"""Sources: a logical tensor read block by block in memory order.

A :class:`Source` is a ``.npy`` file, a raw binary file (dtype, shape, order
and byte offset given) or an in-memory array / memmap. The pipeline asks it
for :class:`qdq._core.arrays.Block` slabs of its memory-order shape and gets them
as native arrays in the kernels' storage type.
"""

from __future__ import annotations

import math
import operator
import os
from typing import Any, Protocol

import numpy as np

from .._core.arrays import Block, as_input, kernel_view, result_dtype
from .._core.formats import BFLOAT16, Format, format_of
from .._core.validate import check_flag, check_int, code_type_index
from .._io import npy
from .._io.pagecache import drop_pages, memory_available

__all__ = ["ArraySource", "FileSource", "Source", "open_source"]


class Source(Protocol):
    """What the pipeline reads from."""

    shape: tuple
    fmt: Format | None       # None for integer codes
    dtype: np.dtype          # as stored (file byte order)
    result_dtype: np.dtype   # of the op's output
    transposed: bool         # Fortran order: blocks walk the reversed shape
    nbytes: int

    @property
    def canon_shape(self) -> tuple: ...

    def canon_axis(self, ax: int | None) -> int | None: ...

    def read(self, block: Block, buf: np.ndarray) -> np.ndarray: ...

    def release(self, block: Block, final: bool) -> None: ...

    def close(self) -> None: ...


class _Layout:
    """Memory-order views of a source's logical shape (shared by both kinds)."""

    shape: tuple
    transposed: bool

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


def _storage_dtype(fmt: Format | None, dtype: np.dtype) -> np.dtype:
    if fmt is None or fmt.itemsize != 2:
        return dtype
    return fmt.storage.newbyteorder(dtype.byteorder)


class FileSource(_Layout):
    """A tensor stored in a file at a byte offset, read with positional reads."""

    def __init__(self, path: Any, shape: tuple, fortran: bool, dtype: np.dtype, offset: int,
                 fmt: Format | None, raw: bool = False):
        self.path = os.fspath(path)
        self.raw = raw  # a raw file: in place, the bytes around the tensor are kept
        self.shape, self.transposed, self.dtype, self.offset, self.fmt = (
            tuple(shape), fortran and len(shape) > 1, dtype, offset, fmt)
        self.stored = _storage_dtype(fmt, dtype)
        self.result_dtype = dtype.newbyteorder("=")
        self.nbytes = math.prod(self.shape) * dtype.itemsize
        self.fd = -1
        self.size = 0
        self.drop_after_read = False

    def open(self) -> "FileSource":
        self.fd = os.open(self.path, os.O_RDONLY)
        self.size = os.fstat(self.fd).st_size
        if self.size < self.offset + self.nbytes:
            self.close()
            raise ValueError(f"{self.path} is truncated: its data needs {self.nbytes} bytes "
                             f"after offset {self.offset}, the file has "
                             f"{max(0, self.size - self.offset)}")
        self.drop_after_read = self.nbytes > memory_available() // 4
        return self

    def read(self, block: Block, buf: np.ndarray) -> np.ndarray:
        n = block.count * self.dtype.itemsize
        view = buf.data[:n]
        pos = self.offset + block.start * self.dtype.itemsize
        got = 0
        while got < n:
            k = os.preadv(self.fd, [view[got:]], pos + got)
            if k == 0:
                raise ValueError(f"{self.path} was truncated while being read (at byte "
                                 f"{pos + got} of {self.offset + self.nbytes})")
            got += k
        arr = buf[:n].view(self.stored)
        if not self.stored.isnative:
            arr = arr.byteswap(inplace=True).view(self.stored.newbyteorder("="))
        return arr.reshape(block.shape)

    def release(self, block: Block, final: bool) -> None:
        if final or self.drop_after_read:
            itemsize = self.dtype.itemsize
            drop_pages(self.fd, self.offset + block.start * itemsize, block.count * itemsize)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ArraySource(_Layout):
    """An in-memory array or memmap."""

    def __init__(self, arr: np.ndarray, fmt: Format | None):
        self.arr, self.fmt, self.dtype, self.shape = arr, fmt, arr.dtype, arr.shape
        self.transposed = arr.ndim > 1 and arr.flags.f_contiguous and not arr.flags.c_contiguous
        canon = arr.T if self.transposed else arr
        canon = canon if canon.ndim else canon.reshape(1)
        self.sk = canon if fmt is None else kernel_view(canon, fmt)
        self.result_dtype = result_dtype(arr)
        self.nbytes = arr.nbytes

    def read(self, block: Block, buf: np.ndarray) -> np.ndarray:
        v = self.sk[block.index]
        if v.flags.c_contiguous and v.flags.aligned and v.dtype.isnative:
            return v
        native = v.dtype.newbyteorder("=")
        out = buf[:block.count * v.dtype.itemsize].view(native).reshape(v.shape)
        np.copyto(out, v, casting="equiv")
        return out

    def release(self, block: Block, final: bool) -> None:
        pass

    def close(self) -> None:
        pass


def file_format(dtype: np.dtype, bfloat16_bits: bool, path: Any) -> Format:
    """The float format of a file's elements; TypeError/ValueError naming the file."""
    if dtype.hasobject:
        raise ValueError(f"{path}: object arrays are not supported (reading them would need "
                         "pickle, which qdq never uses)")
    if dtype.kind == "V" and dtype.itemsize == 2 and not dtype.names:
        if bfloat16_bits:
            return BFLOAT16
        raise TypeError(f"{path} holds 2-byte void data (a bfloat16 array saved through "
                        "ml_dtypes?): pass bfloat16_bits=True to read it as bfloat16")
    return format_of(dtype, bfloat16_bits)


def _codes_dtype_check(dtype: np.dtype, where: Any) -> None:
    """Integer codes have no float format; TypeError for anything but integers."""
    if dtype.hasobject:
        raise ValueError(f"{where}: object arrays are not supported")
    code_type_index(dtype)


def _raw_shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    out = []
    for s in dims:
        if isinstance(s, (bool, np.bool_)):
            raise TypeError(f"shape must hold integers, got {shape!r}")
        try:
            out.append(operator.index(s))
        except TypeError:
            raise TypeError(f"shape must hold integers, got {shape!r}") from None
    if any(s < 0 for s in out):
        raise ValueError(f"shape must not be negative, got {tuple(out)}")
    return tuple(out)


def open_source(src: Any, dtype: Any = None, shape: Any = None, order: str = "C",
                offset: Any = 0, bfloat16_bits: Any = False, codes: bool = False) -> Source:
    """A source for the file API: a .npy path, a raw path (dtype and shape), or an array.

    With ``codes`` the source holds integer codes (its ``fmt`` is None).
    """
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        off = check_int("offset", offset, 0)
        if dtype is not None or shape is not None:
            if dtype is None or shape is None:
                raise ValueError("a raw binary file needs both dtype= and shape=")
            if order not in ("C", "F"):
                raise ValueError(f"order must be 'C' or 'F', got {order!r}")
            dims = _raw_shape(shape)
            if isinstance(dtype, str) and dtype == "bfloat16":
                dt, bits = np.dtype(np.uint16), True
            else:
                dt = np.dtype(dtype)
            raw = FileSource(path, dims, order == "F", dt, off, file_format(dt, bits, path),
                             raw=True).open()
            if raw.size != off + raw.nbytes:
                raw.close()
                raise ValueError(f"{path} has {raw.size - off} bytes of data after offset {off}, "
                                 f"but shape {dims} of {dt} needs {raw.nbytes}")
            return raw
        if off:
            raise ValueError(f"offset={off} applies to raw binary files; {path} is read as a "
                             ".npy file (its header says where the data starts)")
        with open(path, "rb") as f:
            header = npy.read_header(f, path)
        fmt: Format | None = None
        if codes:
            _codes_dtype_check(header.dtype, path)
        else:
            fmt = file_format(header.dtype, bits, path)
        return FileSource(path, header.shape, header.fortran, header.dtype, header.data_offset,
                          fmt).open()
    if dtype is not None or shape is not None:
        raise ValueError("dtype= and shape= describe raw files; the source here is an array")
    if codes:
        x = src if isinstance(src, np.ndarray) else np.asarray(src)
        _codes_dtype_check(x.dtype, "codes")
        return ArraySource(x, None)
    arr, afmt = as_input(src, bits)
    return ArraySource(arr, afmt)
