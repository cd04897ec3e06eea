"""The in-memory op: quantize_and_dequantize, compute_range, quantization_params.

Each function validates its arguments (:mod:`qdq._core.validate`), brings the
arrays to the kernels' terms (:mod:`qdq._core.arrays`) and hands them to the
engine (:mod:`qdq._core.engine`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from . import engine
from .arrays import (
    as_input,
    fresh_like,
    kernel_copy,
    kernel_view,
    prepare_out,
    result_dtype,
    whole_order,
)
from .blocks import (
    blocked_shape,
    check_block_size,
    given_block_range,
    parts,
    put_rows,
    transform_blocks,
)
from .diagnostics import Float16Overflow, warn_unsigned_negative
from .foreign import NOT_FOREIGN, Kind, dispatch
from .formats import FLOAT16, Format, format_named, format_of, round_to, to_public
from .params import QuantizationParams, params_from_rows
from .validate import (
    OpArgs,
    check_axis,
    check_grid,
    check_real,
    given_range,
    normalize_axis_arg,
    op_args,
)

__all__ = ["quantize_and_dequantize", "quantize_and_dequantize_v2", "compute_range",
           "quantization_params"]

RoundMode = Literal["HALF_TO_EVEN", "HALF_UP"]


def quantize_and_dequantize(input: ArrayLike, input_min: ArrayLike | None = None,
                            input_max: ArrayLike | None = None, signed_input: bool = True,
                            num_bits: int = 8, range_given: bool = False,
                            round_mode: RoundMode = "HALF_TO_EVEN", narrow_range: bool = False,
                            axis: int | None = None, *, out: np.ndarray | None = None,
                            bfloat16_bits: bool = False,
                            block_size: int | None = None) -> np.ndarray:
    """Quantize to an integer grid and back, as TensorFlow's QuantizeAndDequantizeV2.

    Returns, bit for bit, what TensorFlow's CPU kernel returns for float32
    and float64 (apart from the documented deliberate differences: NaN in the
    data is always ignored by the range reduction, subnormals follow IEEE
    instead of flushing to zero), and the same computation in the type's own
    arithmetic for float16 and bfloat16.

    Parameters
    ----------
    input : array_like
        The data: float16, bfloat16 (an ``ml_dtypes.bfloat16`` array, or
        ``uint16`` bit patterns with ``bfloat16_bits=True``), float32 or
        float64; any shape (0-d included) and memory layout.
    input_min, input_max : float or array_like, optional
        The range, used only when ``range_given``: scalars, or with ``axis``
        one value per channel (a scalar broadcasts). Converted to the input's
        type (rounded to nearest even).
    signed_input : bool, default True
        Quantize to a signed grid (TensorFlow's name: the flag is about the
        output grid, not the data).
    num_bits : int, default 8
        Bit width: 1..61 when signed, 1..62 when unsigned.
    range_given : bool, default False
        Use ``input_min``/``input_max`` (and clamp to the adjusted range)
        instead of the data's NaN-ignoring min and max (no clamp).
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking: ``rint``, or ``floor(x * scale + 0.5)`` computed in T.
    narrow_range : bool, default False
        The signed grid loses its most negative value ([-127, 127] for 8 bits).
    axis : int, optional
        Quantize per channel along this axis (negative counts from the end);
        None quantizes the whole tensor with one range.
    out : numpy.ndarray, optional
        Where to write the result: the input's shape and type, writable. May
        be the input itself (in place) or overlap it.
    bfloat16_bits : bool, default False
        The input is ``uint16`` holding bfloat16 bit patterns; the result is
        bit patterns too.
    block_size : int, optional
        Block-wise (group-wise): with ``axis``, every slice along the axis is
        cut into consecutive blocks of ``block_size`` elements from index 0
        (the last one shorter when the size does not divide the axis), and
        each block is quantized as TensorFlow quantizes one channel. Given
        ranges then have the blocked shape: the input's shape with ``axis``
        replaced by the number of blocks (or anything that broadcasts to it).

    Returns
    -------
    numpy.ndarray
        The result, of the input's type in native byte order and its shape
        (``out`` when given).

    Raises
    ------
    TypeError
        For an unsupported input type or a wrongly typed argument.
    ValueError
        For ``num_bits`` out of range, an unknown ``round_mode``, a given
        range with ``input_min > input_max`` or NaN (per channel: the channel
        is named), per-channel bounds of the wrong length, or a bad ``out``.
    numpy.exceptions.AxisError
        For an axis outside ``[-ndim, ndim)``.

    See Also
    --------
    compute_range : The range the op reduces from the data.
    quantization_params : The grid the op derives from a range.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> x = np.array([-10, -3.3, 0.01, 5, 9.921875, 10], dtype=np.float32)
    >>> qdq.quantize_and_dequantize(x, -10, 5, range_given=True)
    array([-10.      ,  -3.28125 ,   0.      ,   5.      ,   9.921875,
             9.921875], dtype=float32)

    int4 with one scale per block of 4 along the last axis:

    >>> w = np.array([[0.1, -0.2, 0.3, 0.05, 8.0, -6.0]], dtype=np.float32)
    >>> qdq.quantize_and_dequantize(w, num_bits=4, axis=-1, block_size=4)
    array([[ 0.08571429, -0.21428572,  0.3       ,  0.04285714,  8.        ,
            -5.714286  ]], dtype=float32)
    """
    if type(input) is not np.ndarray or out is not None and type(out) is not np.ndarray:
        foreign = dispatch(quantize_and_dequantize, Kind.ARRAY, locals())
        if foreign is not NOT_FOREIGN:
            return foreign
    a = op_args(signed_input, num_bits, range_given, round_mode, narrow_range)
    if (out is None and axis is None and block_size is None and bfloat16_bits is False
            and type(input) is np.ndarray and (order := whole_order(input)) is not None):
        return _op_whole(input, order, input_min, input_max, a)
    x, fmt = as_input(input, bfloat16_bits)
    bs = None if block_size is None else check_block_size(block_size, axis)
    ax = check_axis(axis, x.ndim)
    if bs is not None:
        assert ax is not None
        res, negative, overflow = _op_blocks(x, fmt, a, ax, bs, input_min, input_max, out)
    else:
        res, negative, overflow = _op_general(x, fmt, a, ax, input_min, input_max, out)
    _warn(a, negative, overflow)
    return res


quantize_and_dequantize_v2 = quantize_and_dequantize


def _warn(a: OpArgs, negative: bool, overflow: Float16Overflow | None,
          stacklevel: int = 3) -> None:
    """The op's warnings, raised here only (``stacklevel`` as for ``warnings.warn`` here)."""
    if overflow is not None:
        overflow.warn(stacklevel=stacklevel)
    if negative and not a.signed and not a.range_given:
        warn_unsigned_negative(stacklevel=stacklevel + 1)


# The general paths return (result, whether a range has a negative bound, the float16
# overflow check of the tensor or None when no scale can have overflowed).
_Done = tuple[np.ndarray, bool, "Float16Overflow | None"]


def _op_whole(x: np.ndarray, order: Literal["C", "F"], input_min: Any, input_max: Any,
              a: OpArgs) -> np.ndarray:
    """The common case, lean: per tensor, a fresh output, an input the kernels take whole.

    The same checks, warnings and bits as the general path, in one fused kernel call.
    """
    fmt = format_of(x.dtype)
    lo: Any = None
    hi: Any = None
    if a.range_given:
        lo, hi = given_range(input_min, input_max, fmt, x.shape, None)
    res = fresh_like(x, x.dtype, order)
    negative, scale, adjusted_min, adjusted_max = engine.op_tensor(
        kernel_view(x, fmt), kernel_view(res, fmt), fmt, lo, hi, a.qmin, a.qmax, a.mode,
        a.range_given)
    # (tested here before any call: this path is the small calls' whole cost)
    if (negative and not a.signed and not a.range_given) or (fmt is FLOAT16
                                                             and math.isinf(scale)):
        _warn(a, negative, _overflow(fmt, x.size, scale, adjusted_min, adjusted_max), 4)
    return res


def _overflow(fmt: Format, size: int, scale: float, lo: float, hi: float
              ) -> Float16Overflow | None:
    """The overflow check of a per-tensor result (built only when the scale is inf)."""
    if fmt is not FLOAT16 or not math.isinf(scale) or not size:
        return None
    overflow = Float16Overflow(fmt)
    overflow.add(scale, lo, hi)
    return overflow


def _op_general(x: np.ndarray, fmt: Format, a: OpArgs, ax: int | None, input_min: Any,
                input_max: Any, out: Any) -> _Done:
    """Per tensor or per channel, any layout, ``out=`` (in place, overlapping) included."""
    rg = a.range_given
    lo: Any = None
    hi: Any = None
    if rg:
        lo, hi = given_range(input_min, input_max, fmt, x.shape, ax)
    res = prepare_out(out, x, result_dtype(x))
    xk, rk = kernel_view(x, fmt), kernel_view(res, fmt)
    if x.ndim == 0:
        xk, rk = xk.reshape(1), rk.reshape(1)
    fused = None
    if out is None or out is x or not np.may_share_memory(x, out):
        # The kernels run on the arrays as they are: one compiled call.
        fused = engine.op_in_place_layout(xk, rk, fmt, ax, lo, hi, a.qmin, a.qmax, a.mode, rg)
    if fused is not None:
        negative, scale, adjusted_min, adjusted_max, rows = fused
        if rows is None:
            return res, negative, _overflow(fmt, x.size, scale, adjusted_min, adjusted_max)
        overflow = None
        if x.size:
            overflow = Float16Overflow(fmt)
            overflow.add_rows(rows)
        return res, negative, overflow
    if not rg:
        lo, hi = engine.reduce_range(xk, fmt, ax)
    p = engine.compute_params(lo, hi, fmt, a.qmin, a.qmax)
    negative = bool(np.any(np.asarray(lo) < 0))
    engine.transform(xk, rk, fmt, ax, p, a.mode)
    overflow = None
    if fmt is FLOAT16 and x.size:
        overflow = Float16Overflow(fmt)
        overflow.add_rows(p)
    return res, negative, overflow


def _op_blocks(x: np.ndarray, fmt: Format, a: OpArgs, ax: int, bs: int, input_min: Any,
               input_max: Any, out: Any) -> _Done:
    """The block-wise op: each block as one channel (see :mod:`qdq._core.blocks`)."""
    given = (given_block_range(input_min, input_max, fmt, x.shape, ax, bs)
             if a.range_given else None)
    res = prepare_out(out, x, result_dtype(x))
    overflow = Float16Overflow(fmt, unit="blocks")
    negative = transform_blocks(kernel_view(x, fmt), kernel_view(res, fmt), fmt, ax, bs, a,
                                given, overflow=overflow)
    return res, negative, overflow


def block_ranges(xk: np.ndarray, fmt: Format, ax: int, bs: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The NaN-ignoring min/max of every block, compute type, blocked shape (NaN: all NaN)."""
    bshape = blocked_shape(xk.shape, ax, bs)
    mn_b = np.empty(bshape, dtype=fmt.compute)
    mx_b = np.empty(bshape, dtype=fmt.compute)
    for part in parts(xk.shape[ax], bs):
        rows = kernel_copy(np.moveaxis(xk, ax, -1)[..., part.elements].reshape(-1, part.length),
                           xk.dtype)
        mn, mx = engine.finish_range(*engine.reduce_range(rows, fmt, 0), part.length)
        put_rows(mn_b, ax, part, mn)
        put_rows(mx_b, ax, part, mx)
    return mn_b, mx_b


_SCALAR_TYPE = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def compute_range(input: ArrayLike, axis: int | None = None, *,
                  bfloat16_bits: bool = False, block_size: int | None = None
                  ) -> tuple[Any, Any]:
    """The NaN-ignoring minimum and maximum of a tensor, in one fused pass.

    Parameters
    ----------
    input : array_like
        As for :func:`quantize_and_dequantize`.
    axis : int, optional
        Reduce each channel along this axis separately.
    bfloat16_bits : bool, default False
        The input holds bfloat16 bit patterns in ``uint16``.
    block_size : int, optional
        One range per block of this many elements along ``axis`` (see
        :func:`quantize_and_dequantize`).

    Returns
    -------
    min : numpy scalar or numpy.ndarray
        A scalar of the input's type, or a 1-D array with one value per
        channel, or per block an array of the blocked shape.
        bfloat16 bit-pattern input gives float32 values (bfloat16 values held
        exactly). NaN is ignored; a tensor (channel) of only NaN gives NaN; an
        empty one gives ``(+inf, -inf)``. -0.0 counts as smaller than +0.0, so
        the result does not depend on the order of the elements.
    max : numpy scalar or numpy.ndarray
        The maximum, in the same form.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> print(*qdq.compute_range(np.array([3.0, np.nan, -1.5])))
    -1.5 3.0
    """
    if type(input) is not np.ndarray:
        foreign = dispatch(compute_range, Kind.RANGE, locals())
        if foreign is not NOT_FOREIGN:
            return foreign
    x, fmt = as_input(input, bfloat16_bits)
    bs = check_block_size(block_size, axis)
    ax = check_axis(axis, x.ndim)
    xk = kernel_view(x, fmt)
    if x.ndim == 0:
        xk = xk.reshape(1)
    dtype = None if bfloat16_bits else x.dtype
    if bs is not None:
        assert ax is not None
        mn, mx = block_ranges(xk, fmt, ax, bs)
        return to_public(mn, fmt, dtype), to_public(mx, fmt, dtype)
    if ax is None:
        fused = engine.range_in_place_layout(xk, fmt)
        if fused is not None:
            lo, hi = fused
            if lo > hi and x.size:
                lo = hi = math.nan
            scalar = _SCALAR_TYPE.get(fmt.name) if not bfloat16_bits else np.float32
            if scalar is None:  # ml_dtypes.bfloat16
                pair = np.asarray([lo, hi], np.float32).astype(x.dtype)
                return pair[0], pair[1]
            return scalar(lo), scalar(hi)
    mn, mx = engine.reduce_range(xk, fmt, ax)
    count = x.size if ax is None else (x.size // x.shape[ax] if x.shape[ax] else 0)
    mn, mx = engine.finish_range(mn, mx, count)
    mn, mx = to_public(mn, fmt, dtype), to_public(mx, fmt, dtype)
    if ax is None:
        return mn[0], mx[0]
    return mn, mx


def quantization_params(input_min: ArrayLike, input_max: ArrayLike, dtype: Any,
                        signed_input: bool = True, num_bits: int = 8,
                        narrow_range: bool = False, *,
                        axis: int | None = None) -> QuantizationParams:
    """The scale, inverse scale and adjusted range for a range, as the op computes them.

    Parameters
    ----------
    input_min, input_max : float or array_like
        The range: scalars, or 1-D arrays with one value per channel (a scalar
        broadcasts against an array). Rounded to ``dtype`` first. No check is
        made that ``input_min <= input_max`` (the op makes it when a range is
        given); NaN or an empty range gives the values the op would use.
    dtype : dtype-like
        ``float16``, ``"bfloat16"`` (or ``ml_dtypes.bfloat16``), ``float32``
        or ``float64``.
    signed_input : bool, default True
        A signed grid (as for :func:`quantize_and_dequantize`).
    num_bits : int, default 8
        The bit width.
    narrow_range : bool, default False
        The signed grid loses its most negative value.
    axis : int, optional
        Recorded in the result for per-channel ranges.

    Returns
    -------
    QuantizationParams
        The scale, inverse scale, adjusted range and grid, in ``dtype``.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> p = qdq.quantization_params(-10.0, 10.0, np.float32)
    >>> print(p.scale, p.min_range, p.scale.dtype)
    12.7 -10.07874 float32
    """
    fmt = format_named(dtype)
    grid = check_grid(signed_input, num_bits, narrow_range)
    arrays = []
    for name, value in (("input_min", input_min), ("input_max", input_max)):
        a = check_real(name, value)
        if a.ndim > 1:
            raise ValueError(f"{name} must be a scalar or 1-D, got shape {a.shape}")
        arrays.append(a)
    lo, hi = arrays
    per_channel = lo.ndim == 1 or hi.ndim == 1
    if per_channel:
        try:
            lo, hi = np.broadcast_arrays(np.atleast_1d(lo), np.atleast_1d(hi))
        except ValueError:
            raise ValueError(f"input_min has {lo.size} values, input_max has {hi.size}") from None
    ax = normalize_axis_arg(axis)
    mn = np.ascontiguousarray(round_to(lo, fmt).reshape(-1))
    mx = np.ascontiguousarray(round_to(hi, fmt).reshape(-1))
    p = engine.compute_params(mn, mx, fmt, grid.qmin, grid.qmax)
    return params_from_rows(p, fmt, grid, ax, per_channel)
