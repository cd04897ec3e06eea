"""Block-wise (group-wise) quantization: TensorFlow's rule per block of B elements.

With ``axis=a, block_size=B`` every 1-D slice along axis ``a`` is cut into
consecutive blocks of ``B`` elements starting at index 0; the last block has
``D mod B`` elements when ``B`` does not divide the axis length ``D``. Each
block is quantized exactly as TensorFlow quantizes one channel. Ranges and
parameters use the ONNX blocked layout: the input's shape with axis ``a``
replaced by ``ceil(D / B)``.

The work is done on rows: axis ``a`` moved last, the full blocks of every
slice are the rows of a ``(n, B)`` array and the short tail blocks the rows
of an ``(m, D mod B)`` array; each row is one channel of the engine's
per-channel jobs. Rows are views where the memory allows (axis last,
contiguous, ``B`` dividing ``D``) and contiguous copies otherwise.
"""

from __future__ import annotations

import operator
from typing import Any, Callable, NamedTuple

import numpy as np

from . import engine
from .arrays import kernel_copy, overlaps
from .diagnostics import Float16Overflow
from .formats import Format, round_to
from .validate import OpArgs, check_real

__all__ = ["Part", "blocked_shape", "check_block_size", "dequantize_blocks", "for_rows",
           "given_block_range", "gradient_blocks", "parts", "put_rows", "quantize_blocks",
           "take_rows", "transform_blocks"]


def check_block_size(block_size: Any, axis: Any) -> int | None:
    """None, or the block size as a positive int; it needs an axis."""
    if block_size is None:
        return None
    if isinstance(block_size, (bool, np.bool_)):
        raise TypeError(f"block_size must be a positive int, got {block_size!r}")
    try:
        b = operator.index(block_size)
    except TypeError:
        raise TypeError(f"block_size must be a positive int, got "
                        f"{type(block_size).__name__}") from None
    if b < 1:
        raise ValueError(f"block_size must be a positive int, got {b}")
    if axis is None:
        raise ValueError("block_size needs axis (the axis the blocks run along)")
    return b


def blocked_shape(shape: tuple, ax: int, block_size: int) -> tuple:
    """The ONNX blocked shape: ``shape`` with axis ``ax`` replaced by ceil(D / B)."""
    return shape[:ax] + (-(-shape[ax] // block_size),) + shape[ax + 1:]


class Part(NamedTuple):
    """The full blocks, or the tail blocks, of every slice along the axis."""

    elements: slice   # along the axis
    blocks: slice     # along the blocked axis
    length: int       # elements per block


def parts(length: int, block_size: int) -> list[Part]:
    """The one or two row sets of a slice of ``length`` elements."""
    full = length // block_size
    out = []
    if full:
        out.append(Part(slice(0, full * block_size), slice(0, full), block_size))
    tail = length - full * block_size
    if tail:
        out.append(Part(slice(full * block_size, length), slice(full, full + 1), tail))
    return out


def _moved(a: np.ndarray, ax: int, sl: slice) -> np.ndarray:
    return np.moveaxis(a, ax, -1)[..., sl]


def take_rows(blocked: np.ndarray, ax: int, part: Part) -> np.ndarray:
    """The blocked-layout values of a part's rows, in row order (1-D, contiguous)."""
    return np.ascontiguousarray(_moved(blocked, ax, part.blocks)).reshape(-1)


def put_rows(blocked: np.ndarray, ax: int, part: Part, values: np.ndarray) -> None:
    """Write per-row values into a blocked-layout array."""
    target = _moved(blocked, ax, part.blocks)
    target[...] = values.reshape(target.shape)


def for_rows(inputs: list[np.ndarray], out: np.ndarray, ax: int, block_size: int,
             fn: Callable[[Part, list[np.ndarray], np.ndarray], None]) -> None:
    """Call ``fn(part, input_rows, output_rows)`` for each part and write the output back.

    Inputs and outputs are kernel views of one shape. Input rows are native,
    aligned and C-contiguous (views where possible); output rows are views of
    ``out`` where possible, else temporaries copied back. An output that
    overlaps an input without being it is computed into a temporary first.
    """
    if any(overlaps(a, out) for a in inputs):
        tmp = np.empty(out.shape, dtype=out.dtype.newbyteorder("="))
        for_rows(inputs, tmp, ax, block_size, fn)
        out[...] = tmp
        return
    for part in parts(out.shape[ax], block_size):
        rows_in = []
        for a in inputs:
            r = _moved(a, ax, part.elements).reshape(-1, part.length)
            rows_in.append(kernel_copy(r, a.dtype))
        moved = _moved(out, ax, part.elements)
        target = moved.reshape(-1, part.length)
        direct = (target.size == 0 or np.may_share_memory(target, out)) and \
            target.flags.c_contiguous and target.flags.aligned and \
            target.dtype.isnative and target.flags.writeable
        if not direct:
            target = np.empty(target.shape, dtype=target.dtype.newbyteorder("="))
        if target.shape[0]:
            fn(part, rows_in, target)
        if not direct:
            moved[...] = target.reshape(moved.shape)


def given_block_range(input_min: Any, input_max: Any, fmt: Format, shape: tuple, ax: int,
                      block_size: int, check: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The given per-block range in T, in the blocked shape; min <= max checked per block."""
    bshape = blocked_shape(shape, ax, block_size)
    out = []
    for name, value in (("input_min", input_min), ("input_max", input_max)):
        if value is None:
            raise TypeError(f"{name} is required when range_given=True")
        a = check_real(name, value)
        try:
            b = np.broadcast_to(a, bshape)
        except ValueError:
            raise ValueError(
                f"{name} of shape {a.shape} does not fit the blocked shape {bshape} (the "
                f"input's shape {shape} with axis {ax} replaced by ceil({shape[ax]} / "
                f"{block_size}) = {bshape[ax]} blocks)") from None
        out.append(np.ascontiguousarray(round_to(b, fmt)))
    lo, hi = out
    if check:
        bad = ~(lo <= hi)
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(f"invalid range in block {idx} (axis {ax}, block size "
                             f"{block_size}): input_min ({float(lo[idx])!r}) must be <= "
                             f"input_max ({float(hi[idx])!r}), and neither may be NaN")
    return lo, hi


def row_params(part: Part, rows: np.ndarray, fmt: Format, ax: int, qmin: int, qmax: int,
               given: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """Parameter rows (4, n) of a part: from the given blocked range or each row's data."""
    if given is not None:
        lo, hi = take_rows(given[0], ax, part), take_rows(given[1], ax, part)
    else:
        lo, hi = engine.reduce_range(rows, fmt, 0)
    return engine.compute_params(lo, hi, fmt, qmin, qmax)


def _given_rows(given: tuple[np.ndarray, np.ndarray] | None, ax: int,
                part: Part) -> tuple[np.ndarray | None, np.ndarray | None]:
    if given is None:
        return None, None
    return take_rows(given[0], ax, part), take_rows(given[1], ax, part)


def transform_blocks(xk: np.ndarray, rk: np.ndarray, fmt: Format, ax: int, bs: int,
                     a: OpArgs, given: tuple[np.ndarray, np.ndarray] | None,
                     params_out: np.ndarray | None = None,
                     overflow: Float16Overflow | None = None) -> bool:
    """The op per block of kernel views (``given``: the blocked range in T, or None).

    Returns whether a block's range has a negative bound (for the unsigned
    warning). ``params_out`` (4, *blocked shape), if given, receives the
    parameter rows; ``overflow`` sees every block's scale (float16).
    """
    negative = False

    def one(part: Part, rows: list[np.ndarray], target: np.ndarray) -> None:
        nonlocal negative
        xr = rows[0]
        lo, hi = _given_rows(given, ax, part)
        # the fused row kernel, which hands back the parameters when they are wanted
        # (the blocked parameters of a file or checkpoint run, the float16 scale check)
        want = params_out is not None or (overflow is not None and overflow.active)
        prow = np.empty((4, xr.shape[0]), dtype=fmt.compute) if want else None
        fused = engine.op_rows(xr, target, fmt, lo, hi, a.qmin, a.qmax, a.mode,
                                a.range_given, prow)
        if fused is None:
            if lo is None or hi is None:
                lo, hi = engine.reduce_range(xr, fmt, 0)
            prow = engine.compute_params(lo, hi, fmt, a.qmin, a.qmax)
            fused = bool(np.any(lo < 0))
            engine.transform(xr, target, fmt, 0, prow, a.mode)
        negative = negative or fused
        if prow is not None:
            if params_out is not None:
                for k in range(4):
                    put_rows(params_out[k], ax, part, prow[k])
            if overflow is not None:
                overflow.add_rows(prow)

    for_rows([xk], rk, ax, bs, one)
    return negative


def quantize_blocks(xk: np.ndarray, ck: np.ndarray, fmt: Format, ax: int, bs: int, a: OpArgs,
                    given: tuple[np.ndarray, np.ndarray] | None, itype: int,
                    check: Callable[[tuple[float, float, bool], np.ndarray], None]
                    ) -> np.ndarray:
    """Integer codes per block into ``ck``; returns the parameter rows (4, *blocked shape).

    ``check`` is given each slab's kernel statistics and parameter rows.
    """
    p_all = np.empty((4,) + blocked_shape(xk.shape, ax, bs), dtype=fmt.compute)

    def one(part: Part, rows: list[np.ndarray], target: np.ndarray) -> None:
        p = row_params(part, rows[0], fmt, ax, a.qmin, a.qmax, given)
        for k in range(4):
            put_rows(p_all[k], ax, part, p[k])
        check(engine.elementwise(engine.QUANTIZE, rows[0], target, fmt, 0, p, a.mode, itype), p)

    for_rows([xk], ck, ax, bs, one)
    return p_all


def dequantize_blocks(ck: np.ndarray, rk: np.ndarray, fmt: Format, ax: int, bs: int,
                      prow: np.ndarray, itype: int) -> None:
    """Values from codes per block, with parameter rows of the blocked shape (4, ...)."""
    def one(part: Part, rows: list[np.ndarray], target: np.ndarray) -> None:
        p = np.stack([take_rows(prow[k], ax, part) for k in range(4)])
        engine.elementwise(engine.DEQUANTIZE, rows[0], target, fmt, 0, p, 0, itype)

    for_rows([ck], rk, ax, bs, one)


def gradient_blocks(gk: np.ndarray, xk: np.ndarray, rk: np.ndarray, fmt: Format, ax: int,
                    bs: int, lo_b: np.ndarray, hi_b: np.ndarray) -> None:
    """The straight-through gradient per block, with bounds of the blocked shape."""
    def one(part: Part, rows: list[np.ndarray], target: np.ndarray) -> None:
        lo, hi = take_rows(lo_b, ax, part), take_rows(hi_b, ax, part)
        p = np.ascontiguousarray(np.stack([lo, lo, lo, hi]))
        engine.elementwise(engine.GRAD, rows[0], target, fmt, 0, p, 0, 0, rows[1])

    for_rows([gk, xk], rk, ax, bs, one)
