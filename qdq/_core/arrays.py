"""Arrays on their way to the kernels: inputs, outputs, byte order, layout and slabs.

The kernels take native, aligned, C- or Fortran-contiguous buffers in their
storage types; everything else is cut into contiguous slabs here
(:func:`iter_blocks`), which the streaming pipeline uses as its chunks too.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any, Iterator, Literal

import numpy as np

from .._ext import bufcache
from .formats import Format, format_of
from .validate import check_flag, check_int

__all__ = ["Block", "BLOCK_ITEMS", "DEFAULT_BUFFER_CACHE", "as_input", "check_next_chunk",
           "extents", "fresh_like", "get_buffer_cache", "iter_blocks", "kernel_copy",
           "kernel_layout", "kernel_view", "layout_extents", "overlaps", "prepare_out",
           "result_dtype", "same_memory", "same_type", "set_block_items", "set_buffer_cache",
           "slab_items", "whole_order"]

# Elements per slab when an input cannot go to the kernels as it is
# (non-contiguous, byte-swapped, misaligned, or an out that differs in layout).
BLOCK_ITEMS = 1 << 18
_block_items = BLOCK_ITEMS


def set_block_items(n: int | None) -> int:
    """Set the slab size of the slow path (tests cut slabs at every depth); returns the old."""
    global _block_items
    previous = _block_items
    _block_items = BLOCK_ITEMS if n is None else int(n)
    return previous


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


# The buffer cache's default limit: 1 GiB (four 64 Mi-element float32 outputs),
# and no more than an eighth of the machine's memory.
DEFAULT_BUFFER_CACHE = min(1 << 30, (_physical_memory() or 1 << 33) // 8)
bufcache.set_limit(DEFAULT_BUFFER_CACHE)


def set_buffer_cache(nbytes: int | None) -> int:
    """Set how many bytes of freed output buffers qdq keeps for reuse; returns the old limit.

    A fresh output of 1 MiB or more (the default ``out=None`` of
    :func:`quantize_and_dequantize`, :func:`quantize`, :func:`dequantize` and
    the gradient) takes its memory from buffers that earlier outputs held
    when they were freed, instead of new pages from the kernel, which must
    be faulted in and zeroed. The returned array is still a new ordinary
    NumPy array that owns its data: a buffer is reused only after the array
    that held it was freed, so no two live arrays share memory, and results
    are bit-identical with or without the cache. When an output is freed its
    buffer goes back to the cache if it fits under the limit (the oldest held
    buffers are released to make room), otherwise to the system.

    Parameters
    ----------
    nbytes : int or None
        The most bytes the cache holds; 0 disables it and releases every
        held buffer now; None restores the default, the smaller of 1 GiB and
        an eighth of the machine's physical memory. Lowering the limit
        releases held buffers down to it at once.

    Returns
    -------
    int
        The limit in force before the call.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> previous = qdq.set_buffer_cache(0)      # no cache: fresh pages every call
    >>> qdq.get_buffer_cache()
    0
    >>> x = np.linspace(-1, 1, 1 << 20, dtype=np.float32)
    >>> y = qdq.quantize_and_dequantize(x)
    >>> _ = qdq.set_buffer_cache(previous)
    """
    if nbytes is None:
        n = DEFAULT_BUFFER_CACHE
    else:
        n = check_int("the buffer cache size", nbytes, 0)
        if n > sys.maxsize:
            raise ValueError(f"the buffer cache size must be at most {sys.maxsize}, got {n}")
    return int(bufcache.set_limit(n))


def get_buffer_cache() -> int:
    """The most bytes of freed output buffers qdq keeps for reuse (see :func:`set_buffer_cache`).

    Returns
    -------
    int
        The limit in bytes; 0 when the cache is off.

    Examples
    --------
    >>> import qdq
    >>> qdq.get_buffer_cache() >= 0
    True
    """
    return int(bufcache.get_limit())


def as_input(input: Any, bfloat16_bits: Any) -> tuple[np.ndarray, Format]:
    """The input as an ndarray and its format; TypeError for unsupported types."""
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    if isinstance(input, np.ma.MaskedArray):
        raise TypeError("masked arrays are not supported: fill or compress them first")
    x = input if type(input) is np.ndarray else np.asarray(input)
    return x, format_of(x.dtype, bits)


def check_next_chunk(x: np.ndarray, fmt: Format, first_fmt: Format | None,
                     first_dtype: np.dtype | None, rest: tuple | None) -> None:
    """That a chunk continues the tensor of the earlier chunks (a slice along axis 0)."""
    if fmt is not first_fmt or x.dtype.newbyteorder("=") != first_dtype:
        raise TypeError(f"a chunk of dtype {x.dtype} cannot continue a tensor of dtype "
                        f"{first_dtype}")
    if x.ndim == 0 or tuple(x.shape[1:]) != rest:
        raise ValueError(f"chunk of shape {x.shape} does not continue a tensor whose chunks "
                         f"have shape (n, {', '.join(map(str, rest or ()))}) (slices along "
                         "axis 0 of one tensor)")


def result_dtype(x: np.ndarray) -> np.dtype:
    """The dtype of the op's result for input x: x's type in native byte order."""
    dt = x.dtype
    return dt if dt.isnative else dt.newbyteorder("=")


def same_type(a: np.dtype, b: np.dtype) -> bool:
    """Equal dtypes up to byte order."""
    return a == b or (a.kind == b.kind and a.itemsize == b.itemsize and a.name == b.name)


def whole_order(x: np.ndarray) -> Literal["C", "F"] | None:
    """'C' or 'F' when the kernels take x whole as it is (at least 1-d, native, aligned,
    contiguous), else None."""
    if not x.ndim or not x.dtype.isnative:
        return None
    flags = x.flags
    if not flags.aligned:
        return None
    if flags.c_contiguous:
        return "C"
    return "F" if flags.f_contiguous else None


def fresh_like(like: np.ndarray, dtype: np.dtype, order: Literal["C", "F"]) -> np.ndarray:
    """A new array of ``dtype`` in ``like``'s shape, from the buffer cache when it is large."""
    if like.size * dtype.itemsize >= bufcache.MIN_CACHED and bufcache.get_limit():
        return bufcache.empty(like.shape, dtype, order)
    return np.empty(like.shape, dtype=dtype, order=order)


def prepare_out(out: Any, like: np.ndarray, dtype: np.dtype,
                needs: str = "the result needs") -> np.ndarray:
    """A fresh array of ``dtype`` in ``like``'s shape and layout, or the checked ``out``."""
    if out is None:
        order: Literal["C", "F"] = ("F" if like.flags.f_contiguous and
                                    not like.flags.c_contiguous else "C")
        return fresh_like(like, dtype, order)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != like.shape:
        raise ValueError(f"out has shape {out.shape}, the input has shape {like.shape}")
    if not same_type(out.dtype, dtype):
        raise ValueError(f"out has dtype {out.dtype}, {needs} {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def kernel_view(a: np.ndarray, fmt: Format) -> np.ndarray:
    """a reinterpreted as the kernels' storage type (uint16 for 16-bit formats)."""
    if fmt.itemsize == 2 and a.dtype.kind != "u":
        return a.view(np.dtype(np.uint16).newbyteorder(a.dtype.byteorder))
    return a


def kernel_copy(a: np.ndarray, dtype: Any) -> np.ndarray:
    """a as the kernels need it: C-contiguous, aligned, native (copied only if it is not).

    (np.ascontiguousarray alone would pass a contiguous but misaligned block through.)
    """
    return np.require(a, dtype=np.dtype(dtype).newbyteorder("="), requirements=("C", "A"))


def _direct(a: np.ndarray) -> bool:
    return a.flags.aligned and a.dtype.isnative


def kernel_layout(xk: np.ndarray, rk: np.ndarray | None) -> str | None:
    """'C' or 'F' when the kernels can run on x (and r) as they are, else None."""
    if not _direct(xk) or (rk is not None and not (_direct(rk) and rk.flags.writeable)):
        return None
    if xk.flags.c_contiguous and (rk is None or rk.flags.c_contiguous):
        return "C"
    if xk.flags.f_contiguous and (rk is None or rk.flags.f_contiguous):
        return "F"
    return None


def same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a and b are views of the same elements in the same order."""
    ai, bi = a.__array_interface__, b.__array_interface__
    return ai["data"][0] == bi["data"][0] and a.strides == b.strides and a.shape == b.shape


def overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether b overlaps a without being exactly a."""
    return a is not b and np.may_share_memory(a, b) and not same_memory(a, b)


def extents(shape: tuple, axis: int | None) -> tuple[int, int, int]:
    """(pre, C, post) of a C-ordered array of this shape along the channel axis."""
    if axis is None:
        return 1, 1, math.prod(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


def layout_extents(a: np.ndarray, layout: str, axis: int | None) -> tuple[int, int, int]:
    """(pre, C, post) of a C- or F-contiguous array in memory order."""
    if layout == "C":
        return extents(a.shape, axis)
    return extents(a.shape[::-1], None if axis is None else a.ndim - 1 - axis)


class Block:
    """One slab of an array in C order (see :func:`iter_blocks`)."""

    __slots__ = ("index", "shape", "start", "count", "extents", "channels", "depth", "blocks")

    def __init__(self, index: tuple, shape: tuple, start: int, count: int,
                 extents: tuple[int, int, int], channels: slice, depth: int = 0,
                 blocks: tuple = ()):
        self.index = index          # x[index] is the slab
        self.shape = shape          # its shape
        self.start = start          # its first element in C order
        self.count = count          # its number of elements
        self.extents = extents      # (pre, C, post) of the slab around the channel axis
        self.channels = channels    # the slice of per-channel parameters it uses
        self.depth = depth          # how many leading axes the slab fixes
        self.blocks = blocks        # block-wise: its part of a blocked-shape array


def slab_items(shape: tuple, axis: int | None, max_items: int,
               block_size: int | None = None) -> int:
    """The most elements a slab of :func:`iter_blocks` holds (at least 1).

    Block-wise a slab may exceed ``max_items``: it holds at least one block
    times the extent after the block axis.
    """
    total = math.prod(shape)
    n = min(max_items, total)
    if block_size is not None and axis is not None:
        n = max(n, min(total, block_size * math.prod(shape[axis + 1:])))
    return max(1, n)


def iter_blocks(shape: tuple, axis: int | None, max_items: int | None = None,
                block_size: int | None = None) -> Iterator[Block]:
    """Cover an array of ``shape`` in C order with slabs of at most ~max_items elements.

    A slab fixes the leading indices and takes a range along one axis (the
    first axis whose trailing extent fits), so it is contiguous in a C-ordered
    array. Yields :class:`Block` objects in memory order.

    With ``block_size`` (blocks along ``axis``), every slab holds whole blocks:
    it never fixes an index of ``axis``, and a range along ``axis`` starts at
    a multiple of the block size (a slab may then exceed ``max_items``, up to
    one block times the trailing extent).
    """
    nd = len(shape)
    if max_items is None:
        max_items = _block_items
    if math.prod(shape) == 0:
        return
    suffix = [1] * (nd + 1)
    for d in range(nd - 1, -1, -1):
        suffix[d] = suffix[d + 1] * shape[d]
    depth = 0
    while depth < nd - 1 and suffix[depth + 1] > max_items:
        depth += 1
    rows = max(1, max_items // suffix[depth + 1])
    if block_size is not None and axis is not None and depth >= axis:
        depth = axis
        rows = max(block_size, max_items // suffix[depth + 1] // block_size * block_size)
    for lead in np.ndindex(*shape[:depth]):
        base = sum(i * suffix[d + 1] for d, i in enumerate(lead))
        for a in range(0, shape[depth], rows):
            b = min(a + rows, shape[depth])
            index = lead + (slice(a, b),)
            block = (b - a,) + tuple(shape[depth + 1:])
            count = (b - a) * suffix[depth + 1]
            start = base + a * suffix[depth + 1]
            ext: tuple[int, int, int]
            if axis is None:
                ext, ch = (1, 1, count), slice(0, 1)
            elif axis < depth:
                ext, ch = (1, 1, count), slice(lead[axis], lead[axis] + 1)
            elif axis == depth:
                ext, ch = (1, b - a, suffix[depth + 1]), slice(a, b)
            else:
                k = axis - depth
                ext = (math.prod(block[:k]), block[k], math.prod(block[k + 1:]))
                ch = slice(None)
            blocks: tuple = ()
            if block_size is not None and axis is not None:
                along = (slice(a // block_size, -(-b // block_size)) if depth == axis
                         else slice(a, b))
                blocks = lead + (along,)
            yield Block(index, block, start, count, ext, ch, depth, blocks)
