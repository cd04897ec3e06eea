"""Integer codes, dequantization and the straight-through gradient."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import engine
from .arrays import as_input, kernel_view, prepare_out, result_dtype
from .blocks import (
    blocked_shape,
    check_block_size,
    dequantize_blocks,
    given_block_range,
    gradient_blocks,
    quantize_blocks,
)
from .diagnostics import Float16Overflow
from .foreign import NOT_FOREIGN, Kind, dispatch
from .formats import Format, format_named, value_dtype
from .params import QuantizationParams, code_dtype_for, param_rows, params_from_rows
from .validate import (
    OpArgs,
    check_axis,
    check_code_dtype,
    check_flag,
    check_grid,
    code_type_index,
    given_range,
)

__all__ = ["quantize", "dequantize", "quantize_and_dequantize_grad", "code_dtype",
           "check_codes", "overflow_of", "params_axis"]


def code_dtype(dtype: DTypeLike, signed_input: bool = True, num_bits: int = 8,
               narrow_range: bool = False) -> np.dtype:
    """The integer dtype of :func:`quantize`'s codes.

    The smallest of int8/uint8, int16/uint16, int32/uint32, int64/uint64
    (signed as the grid) that holds every code the op can produce: the grid
    ``[qmin, qmax]`` as the op has it in the type T, and the codes T's rounding
    can add beyond it. ``qmax = 2**(b-1) - 1`` becomes ``2**(b-1)`` when T has
    fewer significant bits than the grid (signed float32 with 32 bits: int64),
    and where T has about as many bits as the grid the rounded scale can move
    the clamped maximum past ``qmax``: bfloat16 (8 significant bits) with an
    8-bit grid can give code 128 (signed) or 256 (unsigned), so its codes are
    int16 / uint16. float32 and float64 grids up to 24 and 53 bits keep to
    ``[qmin, qmax]``.

    Parameters
    ----------
    dtype : dtype-like
        The type T: ``float16``, ``"bfloat16"`` (or ``ml_dtypes.bfloat16``),
        ``float32`` or ``float64``.
    signed_input : bool, default True
        A signed grid.
    num_bits : int, default 8
        The grid's bit width.
    narrow_range : bool, default False
        The signed grid loses its most negative value.

    Returns
    -------
    numpy.dtype
        The integer type of the codes.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> qdq.code_dtype(np.float32), qdq.code_dtype(np.float32, False, 12)
    (dtype('int8'), dtype('uint16'))
    >>> qdq.code_dtype("bfloat16"), qdq.code_dtype("bfloat16", num_bits=7)
    (dtype('int16'), dtype('int8'))
    """
    return code_dtype_for(format_named(dtype), check_grid(signed_input, num_bits, narrow_range))


def params_axis(params: QuantizationParams, shape: tuple) -> int | None:
    """The channel (or block) axis of the parameters for codes of this shape (None per tensor).

    Per block, the parameters' blocked shape must be that of ``shape``.
    """
    if params.block_size is not None:
        ax = check_axis(params.axis, len(shape))
        assert ax is not None
        want = blocked_shape(tuple(shape), ax, params.block_size)
        if np.shape(params.scale) != want:
            raise ValueError(f"the parameters have the blocked shape {np.shape(params.scale)} "
                             f"but codes of shape {tuple(shape)} in blocks of "
                             f"{params.block_size} along axis {ax} need {want}")
        return ax
    if not params.per_channel:
        return None
    ax = check_axis(params.axis if params.axis is not None else 0, len(shape))
    assert ax is not None
    if shape[ax] != np.shape(params.scale)[0]:
        raise ValueError(f"the parameters have {np.shape(params.scale)[0]} channels but the "
                         f"codes have {shape[ax]} along axis {ax}")
    return ax


def quantize(input: ArrayLike, input_min: ArrayLike | None = None,
             input_max: ArrayLike | None = None, signed_input: bool = True, num_bits: int = 8,
             range_given: bool = False, round_mode: str = "HALF_TO_EVEN",
             narrow_range: bool = False, axis: int | None = None, *,
             out: np.ndarray | None = None, code_dtype: DTypeLike | None = None,
             bfloat16_bits: bool = False,
             block_size: int | None = None) -> tuple[np.ndarray, QuantizationParams]:
    """The integer codes of the op: ``round(clamp(x) * scale)``, and the parameters.

    The codes are exactly the integers the op rounds to before it rescales,
    so ``dequantize(*quantize(x, ...))`` equals ``quantize_and_dequantize(x,
    ...)`` bit for bit for every finite input.

    Parameters
    ----------
    input : array_like
        The data, as for :func:`qdq.quantize_and_dequantize`.
    input_min, input_max : float or array_like, optional
        The range when ``range_given`` (scalars, per channel or per block).
    signed_input : bool, default True
        A signed grid (signed codes).
    num_bits : int, default 8
        The grid's bit width.
    range_given : bool, default False
        Use and clamp to the given range instead of the data's min/max.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking, as the op.
    narrow_range : bool, default False
        The signed grid loses its most negative value.
    axis : int, optional
        Per channel along this axis.
    out : numpy.ndarray, optional
        An integer array of the code dtype and the input's shape to write into.
    code_dtype : dtype-like, optional
        Store the codes in this integer type instead of :func:`code_dtype`'s
        (for example int8 for bfloat16 with 8 bits); a code that does not fit
        it is then a ValueError.
    bfloat16_bits : bool, default False
        The input is ``uint16`` holding bfloat16 bit patterns.
    block_size : int, optional
        Per block along ``axis`` (the parameters hold arrays of the blocked
        shape).

    Returns
    -------
    codes : numpy.ndarray
        Integers of :func:`code_dtype` (int8 for the default 8 signed bits).
    params : QuantizationParams
        The parameters used (per channel with ``axis``), ``round_mode`` included.

    Raises
    ------
    ValueError
        When a code cannot be stored: NaN has no integer code (replace NaN
        first, e.g. with ``np.nan_to_num``, or use the op, which keeps it);
        and TensorFlow's unclamped cases without a given range (unsigned
        output with negative data, an infinite value, an infinite or
        overflowing scale) give codes outside the code type, which are refused
        rather than wrapped. With a given range every finite input has a code,
        unless the grid is degenerate (num_bits=1 signed has qmax 0; float16
        cannot hold a 16-bit unsigned grid), where the op's own output is not
        finite either.
        Otherwise as :func:`qdq.quantize_and_dequantize`.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> codes, p = qdq.quantize(np.array([-1.0, -0.3, 0.7, 2.0], np.float32))
    >>> codes, float(p.scale)
    (array([-64, -19,  44, 127], dtype=int8), 63.5)
    >>> qdq.dequantize(codes, p)
    array([-1.007874 , -0.2992126,  0.6929134,  2.       ], dtype=float32)
    """
    if type(input) is not np.ndarray or out is not None and type(out) is not np.ndarray:
        foreign = dispatch(quantize, Kind.PAIR, locals())
        if foreign is not NOT_FOREIGN:
            return foreign
    x, fmt = as_input(input, bfloat16_bits)
    a = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    bs = check_block_size(block_size, axis)
    ax = check_axis(axis, x.ndim)
    cdt = code_dtype_for(fmt, a.grid) if code_dtype is None else check_code_dtype(code_dtype)
    if bs is not None:
        assert ax is not None
        return _quantize_blocks(x, fmt, a, ax, bs, input_min, input_max, out, cdt)
    xk = kernel_view(x, fmt)
    if x.ndim == 0:
        xk = xk.reshape(1)
    if a.range_given:
        lo, hi = given_range(input_min, input_max, fmt, x.shape, ax)
    else:
        lo, hi = engine.reduce_range(xk, fmt, ax)
    p = engine.compute_params(lo, hi, fmt, a.qmin, a.qmax)
    params = params_from_rows(p, fmt, a.grid, ax, ax is not None, a.round_mode)
    codes = prepare_out(out, x, cdt, "the codes need")
    ck = codes.reshape(1) if codes.ndim == 0 else codes
    stats = engine.elementwise(engine.QUANTIZE, xk, ck, fmt, ax, p, a.mode,
                                code_type_index(cdt))
    check_codes(stats, cdt, a.range_given, overflow_of(fmt, p))
    return codes, params


def _quantize_blocks(x: np.ndarray, fmt: Format, a: OpArgs, ax: int, bs: int, input_min: Any,
                     input_max: Any, out: Any, cdt: np.dtype
                     ) -> tuple[np.ndarray, QuantizationParams]:
    given = (given_block_range(input_min, input_max, fmt, x.shape, ax, bs)
             if a.range_given else None)
    codes = prepare_out(out, x, cdt, "the codes need")
    p_all = quantize_blocks(kernel_view(x, fmt), codes, fmt, ax, bs, a, given,
                            code_type_index(cdt),
                            lambda stats, p: check_codes(stats, cdt, a.range_given,
                                                         overflow_of(fmt, p, "blocks")))
    return codes, params_from_rows(p_all, fmt, a.grid, ax, False, a.round_mode, bs)


def overflow_of(fmt: Format, rows: np.ndarray, unit: str = "channels",
                name: str | None = None) -> Float16Overflow:
    """The float16 scale overflow of parameter rows ``(4, ...)`` (inactive for other formats)."""
    overflow = Float16Overflow(fmt, name, unit)
    overflow.add_rows(rows)
    return overflow


def check_codes(stats: tuple[float, float, bool], cdt: np.dtype, range_given: bool,
                overflow: Float16Overflow | None = None) -> None:
    """Raise ValueError when the kernel saw NaN or codes outside the code dtype.

    With ``overflow`` (the float16 scale check of the parameters used), a
    scale that overflowed is named as the cause: its codes are inf/NaN.
    """
    lo, hi, nan = stats
    info = np.iinfo(cdt)
    failed = nan or lo < info.min or hi > info.max  # (no element: lo = inf, hi = -inf)
    if failed and overflow is not None and overflow.overflowed:
        raise ValueError(overflow.message(codes=True, given=range_given))
    if nan:
        raise ValueError("the input has NaN (or a value the op maps to NaN, such as an inf "
                         "without a given range), which has no integer code; replace it first "
                         "(for example with np.nan_to_num) or use quantize_and_dequantize, "
                         "which keeps NaN")
    if lo < info.min or hi > info.max:
        why = ("a degenerate grid (num_bits=1 signed, or a grid float16 cannot hold) or a "
               "narrower code_dtype than qdq.code_dtype() cannot hold them" if range_given else
               "without a given range TensorFlow's op does not clamp (unsigned output with "
               "negative data, or an infinite or overflowing scale), and a degenerate grid "
               "(num_bits=1 signed) or a narrower code_dtype than qdq.code_dtype() cannot "
               "hold them")
        raise ValueError(f"codes from {lo:g} to {hi:g} do not fit the code type {cdt} "
                         f"[{info.min}, {info.max}]: {why}")


def dequantize(codes: ArrayLike, params: QuantizationParams, *, out: np.ndarray | None = None,
               bfloat16_bits: bool = False) -> np.ndarray:
    """Integer codes back to values: ``codes * inverse_scale`` in the type T.

    Parameters
    ----------
    codes : array_like of integers
        Codes from :func:`quantize` (any integer dtype that holds them; any layout).
    params : QuantizationParams
        The parameters :func:`quantize` returned (or loaded from JSON); per
        channel along ``params.axis``.
    out : numpy.ndarray, optional
        Where to write the values (the codes' shape, the type T).
    bfloat16_bits : bool, default False
        For bfloat16 parameters, return ``uint16`` bit patterns instead of an
        ``ml_dtypes.bfloat16`` array (which needs ml_dtypes).

    Returns
    -------
    numpy.ndarray
        Values of the type T (``params.dtype``).

    Examples
    --------
    >>> import numpy as np, qdq
    >>> p = qdq.quantization_params(-1.0, 1.0, np.float32, num_bits=4)
    >>> qdq.dequantize(np.array([-8, 0, 7], np.int8), p)
    array([-1.1428572,  0.       ,  1.       ], dtype=float32)
    """
    if type(codes) is not np.ndarray or out is not None and type(out) is not np.ndarray:
        foreign = dispatch(dequantize, Kind.CODES, locals())
        if foreign is not NOT_FOREIGN:
            return foreign
    if not isinstance(params, QuantizationParams):
        raise TypeError("params must be a QuantizationParams (QuantizationParams.load reads "
                        f"one from JSON), got {type(params).__name__}")
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    fmt = format_named(params.dtype)
    c = codes if type(codes) is np.ndarray else np.asarray(codes)
    itype = code_type_index(c.dtype)
    ax = params_axis(params, c.shape)
    res = prepare_out(out, c, value_dtype(fmt, bits))
    rk = kernel_view(res, fmt)
    prow = param_rows(params, fmt)
    if params.block_size is not None:
        assert ax is not None
        dequantize_blocks(c, rk, fmt, ax, params.block_size, prow, itype)
        return res
    ck = c
    if c.ndim == 0:
        ck, rk = c.reshape(1), rk.reshape(1)
    engine.elementwise(engine.DEQUANTIZE, ck, rk, fmt, ax, prow, 0, itype)
    return res


def quantize_and_dequantize_grad(gradients: ArrayLike, input: ArrayLike, input_min: ArrayLike,
                                 input_max: ArrayLike, axis: int | None = None, *,
                                 out: np.ndarray | None = None,
                                 bfloat16_bits: bool = False,
                                 block_size: int | None = None) -> np.ndarray:
    """The straight-through gradient: TensorFlow's QuantizeAndDequantizeV4Grad.

    ``gradients * (input_min <= input <= input_max)``, both bounds inclusive,
    compared in the type T with the range the caller gives (not the adjusted
    one), per channel with ``axis``. Being a multiply, an inf or NaN gradient
    outside the range gives NaN, and a NaN input is outside. As in TensorFlow,
    ``input_min > input_max`` is not an error (the gradient is then zero).

    Parameters
    ----------
    gradients, input : array_like
        The same shape and type (float16, bfloat16, float32, float64).
    input_min, input_max : float or array_like
        Scalars, or with ``axis`` one value per channel (a scalar broadcasts).
    axis : int, optional
        The channel axis.
    out : numpy.ndarray, optional
        Where to write the result (may be ``gradients`` itself).
    bfloat16_bits : bool, default False
        Both arrays hold bfloat16 bit patterns.
    block_size : int, optional
        Per block along ``axis``: the bounds have the blocked shape (see
        :func:`qdq.quantize_and_dequantize`).

    Returns
    -------
    numpy.ndarray
        The gradient with respect to ``input``, of the gradients' type.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> x = np.array([-1.0, -0.3, 0.7, 2.0], np.float32)
    >>> qdq.quantize_and_dequantize_grad(np.ones_like(x), x, -0.5, 1.0)
    array([0., 1., 1., 0.], dtype=float32)
    """
    if (type(gradients) is not np.ndarray or type(input) is not np.ndarray
            or out is not None and type(out) is not np.ndarray):
        foreign = dispatch(quantize_and_dequantize_grad, Kind.ARRAY, locals())
        if foreign is not NOT_FOREIGN:
            return foreign
    g, fmt = as_input(gradients, bfloat16_bits)
    x, fmt_x = as_input(input, bfloat16_bits)
    if fmt is not fmt_x or g.dtype.newbyteorder("=") != x.dtype.newbyteorder("="):
        raise TypeError(f"gradients ({g.dtype}) and input ({x.dtype}) must have the same type")
    if g.shape != x.shape:
        raise ValueError(f"gradients and input must have the same shape, got {g.shape} and "
                         f"{x.shape}")
    bs = check_block_size(block_size, axis)
    ax = check_axis(axis, x.ndim)
    if bs is not None:
        assert ax is not None
        return _grad_blocks(g, x, fmt, ax, bs, input_min, input_max, out)
    lo, hi = given_range(input_min, input_max, fmt, x.shape, ax, check=False)
    lo = np.ascontiguousarray(lo, dtype=fmt.compute).reshape(-1)
    hi = np.ascontiguousarray(hi, dtype=fmt.compute).reshape(-1)
    p = np.ascontiguousarray(np.stack([lo, lo, lo, hi]))
    res = prepare_out(out, g, result_dtype(g))
    gk, xk, rk = kernel_view(g, fmt), kernel_view(x, fmt), kernel_view(res, fmt)
    if g.ndim == 0:
        gk, xk, rk = gk.reshape(1), xk.reshape(1), rk.reshape(1)
    engine.elementwise(engine.GRAD, gk, rk, fmt, ax, p, 0, 0, xk)
    return res


def _grad_blocks(g: np.ndarray, x: np.ndarray, fmt: Format, ax: int, bs: int, input_min: Any,
                 input_max: Any, out: Any) -> np.ndarray:
    lo_b, hi_b = given_block_range(input_min, input_max, fmt, x.shape, ax, bs, check=False)
    res = prepare_out(out, g, result_dtype(g))
    gradient_blocks(kernel_view(g, fmt), kernel_view(x, fmt), kernel_view(res, fmt), fmt, ax, bs,
                    lo_b, hi_b)
    return res
