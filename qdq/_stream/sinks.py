"""Sinks: where the pipeline's output blocks go.

An :class:`AppendSink` appends blocks to a file open through the atomic
writer, handing written data to the disk as it goes and dropping it from the
page cache (a checkpoint shard: several tensors, one after another, at the
offsets its header planned). A :class:`FileSink` is one writing a ``.npy``
(or, in place, the source's raw file, header bytes kept). An
:class:`ArraySink` writes into an array or memmap (in place on a memmap is
not atomic: see the README's reliability section); a :class:`DiscardSink`
keeps nothing.
"""

from __future__ import annotations

import errno
import os
from typing import Any, Callable, Protocol, TypeVar

import numpy as np

from .._core.arrays import Block, kernel_view, same_memory, same_type
from .._core.formats import BFLOAT16, Format, is_bfloat16_dtype
from .._io import npy
from .._io.atomic import AtomicFile
from .._io.pagecache import drop_pages, sync_range
from .sources import ArraySource, FileSource, Source

__all__ = ["AppendSink", "ArraySink", "DiscardSink", "FileSink", "Sink", "open_sink"]

# Written data is synced and dropped from the page cache every this many bytes
# where sync_file_range is not available.
_SYNC_BYTES = 256 << 20

T = TypeVar("T")


class Sink(Protocol):
    """What the pipeline writes to."""

    def write(self, block: Block, data: np.ndarray) -> None: ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class AppendSink:
    """Blocks appended in memory order to a file open through :class:`AtomicFile`.

    ``base`` is where the appended data starts (the file's position when the
    sink is made). Written data is handed to the disk as it goes and dropped
    from the page cache. Several tensors can be appended one after another
    (a checkpoint shard): :meth:`write_bytes` adds raw bytes, :attr:`position`
    says where the next byte goes.
    """

    def __init__(self, atomic: AtomicFile, base: int = 0, swap: bool = False):
        self.atomic = atomic
        self.path = atomic.path
        self.f = atomic.file
        self.swap = swap
        self.written = 0
        self.synced = 0
        self.base = base
        self.pending: tuple[int, int] | None = None

    @property
    def position(self) -> int:
        """The file offset of the next byte written."""
        return self.base + self.written

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise OSError(exc.errno, f"could not write {self.path}: {exc.strerror}; nothing "
                              "was written to it (the partial temporary file is removed)") from exc
            raise

    def _put(self, mv: memoryview) -> None:
        done = 0
        while done < len(mv):
            done += self.f.write(mv[done:])

    def write(self, block: Block, data: np.ndarray) -> None:
        data = np.ascontiguousarray(data)
        if self.swap:
            data = data.byteswap()
        self.write_bytes(data.data.cast("B"))

    def write_bytes(self, mv: memoryview) -> None:
        """Append raw bytes."""
        start = self.base + self.written
        self._guard(lambda: self._put(mv))
        self.written += len(mv)
        fd = self.f.fileno()
        # Keep the disk busy and the page cache small: start writing this
        # chunk back now, wait for the previous one, then drop it.
        if self._guard(lambda: sync_range(fd, start, len(mv), False)):
            if self.pending is not None:
                off, n = self.pending
                self._guard(lambda: sync_range(fd, off, n, True))
                drop_pages(fd, off, n)
            self.pending = (start, len(mv))
        elif self.written - self.synced >= _SYNC_BYTES:
            self._guard(lambda: os.fdatasync(fd))
            drop_pages(fd, 0, self.base + self.written)
            self.synced = self.written

    def finish(self) -> None:
        """Sync the data (the rename is :meth:`commit`'s, or :func:`commit_together`'s)."""
        fd = self.f.fileno()
        self._guard(lambda: os.fsync(fd))
        drop_pages(fd, 0, self.base + self.written)

    def commit(self) -> None:
        self.finish()
        self.atomic.commit()

    def abort(self) -> None:
        self.atomic.abort()


class FileSink(AppendSink):
    """A ``.npy`` (or raw) file written through :class:`AtomicFile`, block after block."""

    def __init__(self, path: Any, source: Source, dtype: np.dtype, as_npy: bool,
                 prefix: bytes = b""):
        # A raw file keeps the source's byte order (it has no header to say otherwise).
        super().__init__(AtomicFile(path), 0, not as_npy and not source.dtype.isnative)
        try:
            if as_npy:
                self.base = self._guard(lambda: npy.write_header(
                    self.f, dtype, bool(source.transposed), tuple(source.shape)))
            elif prefix:
                self._guard(lambda: self._put(memoryview(prefix)))
                self.base = len(prefix)
        except BaseException:
            self.atomic.abort()
            raise


class DiscardSink:
    """A sink that keeps nothing (for runs that only measure the op's error)."""

    def write(self, block: Block, data: np.ndarray) -> None:
        pass

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


class ArraySink:
    """An array or memmap of the source's shape and the result's type."""

    def __init__(self, arr: Any, source: Source, dtype: np.dtype, fmt: Format | None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"dst must be a path, a writable memmap or an array, got "
                            f"{type(arr).__name__}")
        if arr.shape != tuple(source.shape):
            raise ValueError(f"dst has shape {arr.shape}, the source has shape {source.shape}")
        if not (same_type(arr.dtype, dtype) or
                (fmt is BFLOAT16 and dtype.kind == "V" and is_bfloat16_dtype(arr.dtype))):
            raise ValueError(f"dst has dtype {arr.dtype}, the result needs {dtype}")
        if not arr.flags.writeable:
            raise ValueError("dst is read-only")
        if isinstance(source, ArraySource) and np.may_share_memory(arr, source.arr) \
                and not same_memory(arr, source.arr):
            raise ValueError("dst overlaps the source array without being it")
        self.arr = arr
        self.in_place = isinstance(source, ArraySource) and same_memory(arr, source.arr)
        canon = arr.T if source.transposed else arr
        canon = canon if canon.ndim else canon.reshape(1)
        self.dk = canon if (fmt is None or arr.dtype.kind in "iu") else kernel_view(canon, fmt)
        self.elements_written = 0

    def write(self, block: Block, data: np.ndarray) -> None:
        self.dk[block.index] = data
        self.elements_written = block.start + block.count

    def commit(self) -> None:
        if isinstance(self.arr, np.memmap):
            self.arr.flush()

    def abort(self) -> None:
        if isinstance(self.arr, np.memmap):
            self.arr.flush()


def _same_file(a: Any, b: Any) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def open_sink(dst: Any, source: Source, dtype: np.dtype,
              result_fmt: Format | None = None) -> FileSink | ArraySink:
    """The destination: a .npy (or the source's raw) path, or an array of ``dtype``."""
    if isinstance(dst, (str, os.PathLike)):
        path = os.fspath(dst)
        prefix = b""
        if isinstance(source, FileSource) and _same_file(path, source.path):
            # In place: a .npy gets a new header, a raw file keeps its bytes before the
            # tensor (a raw source has no bytes after it) and its byte order.
            as_npy = not source.raw
            if source.raw and source.offset:
                with open(source.path, "rb") as f:
                    prefix = f.read(source.offset)
                if len(prefix) != source.offset:
                    raise ValueError(f"{source.path} changed while being read")
        elif path.endswith(".npy"):
            as_npy = True
        else:
            raise ValueError(f"dst {path!r} must be a .npy path (or the source path itself)")
        return FileSink(path, source, dtype, as_npy, prefix)
    return ArraySink(dst, source, dtype, result_fmt or source.fmt)
