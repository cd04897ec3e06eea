"""The op over chunks: with a known range (one pass) or the data's (two passes).

* :func:`quantize_and_dequantize_chunks` applies the op with a known range.
* :func:`stream` does both passes over re-iterable chunks.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator

import numpy as np

from .._calibrate.range import RangeTracker
from .._core import engine
from .._core.arrays import as_input, fresh_like, kernel_view, result_dtype
from .._core.blocks import check_block_size, given_block_range, transform_blocks
from .._core.diagnostics import Float16Overflow
from .._core.formats import Format
from .._core.validate import OpArgs, check_axis, check_flag, given_range, normalize_axis_arg

__all__ = ["quantize_and_dequantize_chunks", "stream", "is_one_tensor"]


def is_one_tensor(obj: Any) -> bool:
    """Whether obj is one array (NumPy, torch, Dask, JAX, xarray...) rather than chunks."""
    return isinstance(obj, np.ndarray) or any(
        hasattr(obj, attr) for attr in ("__array__", "__array_interface__", "__dlpack__",
                                        "__cuda_array_interface__"))


def _as_chunk(chunk: Any, bits: bool) -> tuple[np.ndarray, Format]:
    if isinstance(chunk, (list, tuple)) or np.ndim(chunk) == 0 and not hasattr(chunk, "ndim"):
        raise TypeError(f"each chunk must be an array, got {type(chunk).__name__}: chunks are "
                        "slices along axis 0 of one tensor (for example np.array_split(x, k)); "
                        "a list of rows is one tensor, pass np.asarray(rows) as one chunk")
    return as_input(chunk, bits)


def _chunk_params(lo: Any, hi: Any, fmt: Format, args: OpArgs, axis_len: int | None,
                  given: bool) -> np.ndarray:
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
    return engine.compute_params(lo_arr, hi_arr, fmt, args.qmin, args.qmax)


def quantize_and_dequantize_chunks(chunks: Iterable, input_min: Any, input_max: Any,
                                   signed_input: bool = True, num_bits: int = 8,
                                   range_given: bool = True, round_mode: str = "HALF_TO_EVEN",
                                   narrow_range: bool = False, axis: int | None = None, *,
                                   bfloat16_bits: bool = False,
                                   block_size: int | None = None) -> Iterator[np.ndarray]:
    """Apply the op with a known range to each chunk; yields the output chunks.

    Parameters
    ----------
    chunks : iterable of array_like
        Consecutive slices along axis 0 of one tensor.
    input_min, input_max : float or array_like
        The range: scalars, or with ``axis`` one value per channel (along axis
        0: one per row of the whole tensor).
    signed_input : bool, default True
        A signed grid, as for :func:`qdq.quantize_and_dequantize`.
    num_bits : int, default 8
        The grid's bit width.
    range_given : bool, default True
        True: a given range, clamped, as the op with ``range_given=True``.
        False: ``input_min``/``input_max`` are the data's own range (from a
        :class:`RangeTracker` or :func:`qdq.compute_range`); no clamp, so the
        chunks come out exactly as the op with ``range_given=False`` gives them.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking, as the op.
    narrow_range : bool, default False
        The signed grid loses its most negative value.
    axis : int, optional
        Per channel along this axis.
    bfloat16_bits : bool, default False
        The chunks hold bfloat16 bit patterns in ``uint16``.
    block_size : int, optional
        Per block along ``axis``: a given range has the blocked shape of the
        whole tensor (or broadcasts to it), and ``range_given=False`` takes
        each block's range from the block itself.

    Returns
    -------
    iterator of numpy.ndarray
        One output chunk per input chunk (block-wise along axis 0: output
        chunks are cut at block boundaries). Arguments are checked on the call;
        chunks are checked as they come.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> parts = [np.array([-1.0, 0.3]), np.array([0.6, 1.0])]
    >>> t = qdq.RangeTracker()
    >>> for c in parts:
    ...     _ = t.update(c)
    >>> out = qdq.quantize_and_dequantize_chunks(parts, *t.raw(), num_bits=4,
    ...                                          range_given=False)
    >>> [c.tolist() for c in out]
    [[-1.0, 0.2857142857142857], [0.5714285714285714, 1.0]]
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    bits_flag = check_flag("bfloat16_bits", bfloat16_bits)
    normalize_axis_arg(axis)
    bs = check_block_size(block_size, axis)
    if bs is not None:
        if is_one_tensor(chunks):
            raise TypeError("chunks must be an iterable of chunk arrays (for example "
                            "np.array_split(x, k)), not one array")
        return _blocks_gen(iter(chunks), input_min, input_max, args, axis, bits_flag, bs)
    if input_min is None or input_max is None:
        raise TypeError("input_min and input_max are required (the given range, or with "
                        "range_given=False the data's own range from a RangeTracker)")
    if is_one_tensor(chunks):
        raise TypeError("chunks must be an iterable of chunk arrays (for example "
                        "np.array_split(x, k)), not one array")
    return _chunks_gen(iter(chunks), input_min, input_max, args, axis, bits_flag)


def _chunks_gen(it: Iterator, lo: Any, hi: Any, args: OpArgs, axis: Any,
                bits_flag: bool, stacklevel: int = 2) -> Iterator[np.ndarray]:
    p = np.empty((4, 0))
    fmt: Format | None = None
    overflow: Float16Overflow
    ax = None
    rest: tuple = ()
    offset = 0
    per_row_scalar = False
    for chunk in it:
        x, cfmt = _as_chunk(chunk, bits_flag)
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
                if length is None:  # scalar bounds: the same range for every row
                    per_row_scalar = True
                    p = _chunk_params(lo, hi, fmt, args, 1, args.range_given)
                else:
                    p = _chunk_params(lo, hi, fmt, args, length, args.range_given)
            else:
                p = _chunk_params(lo, hi, fmt, args, x.shape[ax], args.range_given)
            overflow = Float16Overflow(fmt)
            overflow.add_rows(p)
        elif cfmt is not fmt or x.shape[1:] != rest:
            raise ValueError(f"chunk of shape {x.shape} and dtype {x.dtype} does not continue "
                             "the tensor of the earlier chunks")
        xk = kernel_view(x, fmt)
        res = fresh_like(x, result_dtype(x), "C")
        rk = kernel_view(res, fmt)
        if ax == 0:
            if per_row_scalar:
                rows = np.ascontiguousarray(np.broadcast_to(p, (4, x.shape[0])))
            else:
                if offset + x.shape[0] > p.shape[1]:
                    raise ValueError(f"the range has {p.shape[1]} channels along axis 0 but "
                                     f"the chunks have more rows ({offset + x.shape[0]} so far)")
                rows = p[:, offset:offset + x.shape[0]]
        else:
            rows = p
        engine.transform(xk, rk, fmt, ax, rows, args.mode)
        overflow.warn(stacklevel=stacklevel)  # the frame iterating over the chunks
        offset += x.shape[0]
        yield res
    if ax == 0 and not per_row_scalar and offset != p.shape[1]:
        raise ValueError(f"the range has {p.shape[1]} channels along axis 0 but the chunks "
                         f"had {offset} rows")


def stream(chunks: Any, input_min: Any = None, input_max: Any = None,
           signed_input: bool = True, num_bits: int = 8, range_given: bool = False,
           round_mode: str = "HALF_TO_EVEN", narrow_range: bool = False,
           axis: int | None = None, *, bfloat16_bits: bool = False,
           block_size: int | None = None) -> Iterator[np.ndarray]:
    """The op over chunks, in two passes when the range comes from the data.

    Parameters
    ----------
    chunks : re-iterable of array_like, or a callable returning an iterator
        Consecutive slices along axis 0 of one tensor. With the range from the
        data they are read twice (the range, then the op), so they must be a
        list or another re-iterable, or a function returning a fresh iterator
        each time; a one-shot iterator or generator is a TypeError. With
        ``range_given`` one pass suffices and any iterable works.
    input_min, input_max : float or array_like, optional
        The range when ``range_given`` (scalars, or one value per channel).
    signed_input : bool, default True
        A signed grid, as for :func:`qdq.quantize_and_dequantize`.
    num_bits : int, default 8
        The grid's bit width.
    range_given : bool, default False
        Use and clamp to the given range (one pass) instead of the data's.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking, as the op.
    narrow_range : bool, default False
        The signed grid loses its most negative value.
    axis : int, optional
        Per channel along this axis.
    bfloat16_bits : bool, default False
        The chunks hold bfloat16 bit patterns in ``uint16``.
    block_size : int, optional
        Per block along ``axis``. Block-wise one pass suffices (a block's
        range lies inside the block), so any iterable works.

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
    normalize_axis_arg(axis)
    if is_one_tensor(chunks):
        raise TypeError("chunks must be an iterable of chunk arrays (for example "
                        "np.array_split(x, k)), not one array; for arrays and memmaps use "
                        "quantize_and_dequantize_file")
    bs = check_block_size(block_size, axis)
    if bs is not None:
        if args.range_given and (input_min is None or input_max is None):
            raise TypeError("input_min and input_max are required when range_given=True")
        source = chunks() if callable(chunks) else chunks
        return _blocks_gen(iter(source), input_min, input_max, args, axis, bits_flag, bs)
    if args.range_given:
        if input_min is None or input_max is None:
            raise TypeError("input_min and input_max are required when range_given=True")
        source = chunks() if callable(chunks) else chunks
        return _chunks_gen(iter(source), input_min, input_max, args, axis, bits_flag)
    if callable(chunks):
        def again() -> Iterator:
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

        def again() -> Iterator:
            return iter(chunks)
    return _two_pass(again, args, axis, bits_flag)


def _rows_of_bound(bound: Any, ndim: int, ax: int, bs: int, start: int, n: int) -> Any:
    """The part of a whole-tensor blocked bound that covers rows [start, start + n)."""
    a = np.asarray(bound)
    if a.ndim < ndim or a.shape[0] == 1:
        return a  # broadcasts along axis 0
    if ax == 0:
        return a[start // bs:-(-(start + n) // bs)]
    return a[start:start + n]


def _blocks_gen(it: Iterator, lo: Any, hi: Any, args: OpArgs, axis: Any, bits_flag: bool,
                bs: int) -> Iterator[np.ndarray]:
    """Block-wise op over chunks in one pass (along axis 0, cut at block boundaries)."""
    fmt: Format | None = None
    ax = 0
    rest: tuple = ()
    done = 0
    pending: list[np.ndarray] = []
    overflow: Float16Overflow

    def apply(x: np.ndarray) -> np.ndarray:
        assert fmt is not None
        given = None
        if args.range_given:
            n = x.shape[0]
            given = given_block_range(_rows_of_bound(lo, x.ndim, ax, bs, done, n),
                                      _rows_of_bound(hi, x.ndim, ax, bs, done, n),
                                      fmt, x.shape, ax, bs)
        res = fresh_like(x, result_dtype(x), "C")
        transform_blocks(kernel_view(x, fmt), kernel_view(res, fmt), fmt, ax, bs, args, given,
                         overflow=overflow)
        overflow.warn(stacklevel=3)
        return res

    for chunk in it:
        x, cfmt = _as_chunk(chunk, bits_flag)
        if x.ndim == 0:
            raise ValueError("chunks must have at least one dimension (slices along axis 0)")
        if fmt is None:
            fmt, rest = cfmt, x.shape[1:]
            overflow = Float16Overflow(fmt, unit="blocks")
            overflow.so_far = True  # warned at the first chunk with an overflow
            checked = check_axis(axis, x.ndim)
            assert checked is not None
            ax = checked
        elif cfmt is not fmt or x.shape[1:] != rest:
            raise ValueError(f"chunk of shape {x.shape} and dtype {x.dtype} does not continue "
                             "the tensor of the earlier chunks")
        if ax != 0:
            out = apply(x)
            done += x.shape[0]
            yield out
            continue
        pending.append(x)
        have = sum(p.shape[0] for p in pending)
        take = have // bs * bs
        if take:
            joined = np.concatenate(pending) if len(pending) > 1 else pending[0]
            pending = [joined[take:]] if take < have else []
            out = apply(joined[:take])
            done += take
            yield out
    if pending:
        tail = np.concatenate(pending) if len(pending) > 1 else pending[0]
        if tail.shape[0]:
            yield apply(tail)


def _two_pass(again: Callable[[], Iterator], args: OpArgs, axis: Any,
              bits_flag: bool) -> Iterator[np.ndarray]:
    tracker = RangeTracker(axis, bfloat16_bits=bits_flag)
    for chunk in again():
        tracker.update(_as_chunk(chunk, bits_flag)[0])
    if tracker.format is None:
        return
    mn, mx = tracker.raw()
    n_first = tracker.rows
    rows = 0
    for out in _chunks_gen(again(), mn, mx, args, tracker.axis, bits_flag, stacklevel=3):
        rows += out.shape[0]
        yield out
    if rows != n_first:
        raise ValueError(f"the chunks changed between the two passes ({n_first} rows, then "
                         f"{rows})")
