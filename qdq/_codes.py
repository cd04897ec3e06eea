"""Integer codes, dequantization and the straight-through gradient."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from . import _kernels
from ._api import (OpArgs, QuantizationParams, as_input, check_axis, check_flag,
                   check_num_bits, check_round_mode, compute_params, elementwise, given_range,
                   integer_grid, kernel_view, make_params, prepare_out, reduce_range,
                   to_public)
from ._formats import BFLOAT16, Format, bfloat16_dtype, format_named

__all__ = ["quantize", "dequantize", "quantize_and_dequantize_grad", "code_dtype",
           "params_to_dict", "params_from_dict"]

_INT_INDEX = {np.dtype(name): k for k, name in enumerate(_kernels.INT_TYPES)}


def _itype(dtype: np.dtype) -> int:
    """The kernels' index of an integer dtype (any byte order); TypeError otherwise."""
    k = _INT_INDEX.get(dtype.newbyteorder("="))
    if k is None or dtype.kind not in "iu":
        raise TypeError(f"codes must be an integer array (int8 ... uint64), got dtype {dtype}")
    return k


# Significant bits of each format (for how far T's rounding can move a code).
_PRECISION = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


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

    Examples
    --------
    >>> import numpy as np, qdq
    >>> qdq.code_dtype(np.float32), qdq.code_dtype(np.float32, False, 12)
    (dtype('int8'), dtype('uint16'))
    >>> qdq.code_dtype("bfloat16"), qdq.code_dtype("bfloat16", num_bits=7)
    (dtype('int16'), dtype('int8'))
    """
    fmt = format_named(dtype)
    signed = check_flag("signed_input", signed_input)
    narrow = check_flag("narrow_range", narrow_range)
    bits = check_num_bits(num_bits, signed)
    return _code_dtype(fmt, signed, bits, narrow)


def code_bounds(fmt: Format, signed: bool, bits: int, narrow: bool) -> tuple[int, int]:
    """The smallest and largest code the op can produce on this grid in T.

    The grid's bounds are rounded to T; then the clamped extremes times the
    rounded scale, rounded again (and, rounding half up, after adding 0.5 in
    T), stay within ``q * (1 + 6u)`` of a bound ``q`` (``u`` = 2**-precision),
    so a code can pass the bound only when that margin reaches half a unit.
    """
    qmin, qmax = integer_grid(signed, bits, narrow)
    u = 2.0 ** -_PRECISION[fmt.name]
    lo, hi = qmin, qmax
    for q in (qmin, qmax):
        t = _kernels.round_value(fmt.code, float(q))
        if not math.isfinite(t):
            continue  # a grid T cannot hold: the op's output is NaN or inf anyway
        margin = abs(t) * 6 * u
        step = math.ceil(margin + 0.5) if margin >= 0.5 else 0
        lo, hi = min(lo, int(t) - step if t < 0 else int(t)), max(hi, int(t) + step)
    return lo, hi


def _code_dtype(fmt: Format, signed: bool, bits: int, narrow: bool) -> np.dtype:
    lo, hi = code_bounds(fmt, signed, bits, narrow)
    width = 8 if bits <= 8 else 16 if bits <= 16 else 32 if bits <= 32 else 64
    while True:
        dt = np.dtype(f"{'int' if signed else 'uint'}{width}")
        info = np.iinfo(dt)
        if (info.min <= lo and hi <= info.max) or width == 64:
            return dt
        width *= 2


def _check_code_dtype(value: Any) -> np.dtype:
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"code_dtype must be an integer dtype, got {value!r}") from None
    if dt.kind not in "iu" or dt.newbyteorder("=") not in _INT_INDEX:
        raise TypeError(f"code_dtype must be an integer dtype (int8 ... uint64), got {dt}")
    return dt.newbyteorder("=")


def params_axis(params: QuantizationParams, shape: tuple) -> int | None:
    """The channel axis of per-channel parameters for codes of this shape (None per tensor)."""
    if not params.per_channel:
        return None
    ax = check_axis(params.axis if params.axis is not None else 0, len(shape))
    if shape[ax] != np.shape(params.scale)[0]:
        raise ValueError(f"the parameters have {np.shape(params.scale)[0]} channels but the "
                         f"codes have {shape[ax]} along axis {ax}")
    return ax


def _param_rows(params: QuantizationParams, fmt: Format) -> np.ndarray:
    """(4, C) compute-type rows (scale, inverse, min, max) from QuantizationParams."""
    rows = [np.asarray(v).astype(fmt.compute).reshape(-1)
            for v in (params.scale, params.inverse_scale, params.min_range, params.max_range)]
    return np.ascontiguousarray(np.stack(rows))


def quantize(input: ArrayLike, input_min: ArrayLike | None = None,
             input_max: ArrayLike | None = None, signed_input: bool = True, num_bits: int = 8,
             range_given: bool = False, round_mode: str = "HALF_TO_EVEN",
             narrow_range: bool = False, axis: int | None = None, *,
             out: np.ndarray | None = None, code_dtype: DTypeLike | None = None,
             bfloat16_bits: bool = False) -> tuple[np.ndarray, QuantizationParams]:
    """The integer codes of the op: ``round(clamp(x) * scale)``, and the parameters.

    The codes are exactly the integers the op rounds to before it rescales,
    so ``dequantize(*quantize(x, ...))`` equals ``quantize_and_dequantize(x,
    ...)`` bit for bit for every finite input.

    Parameters
    ----------
    input, input_min, input_max, signed_input, num_bits, range_given, round_mode, \
narrow_range, axis, bfloat16_bits
        As for :func:`qdq.quantize_and_dequantize`.
    out : numpy.ndarray, optional
        An integer array of the code dtype and the input's shape to write into.
    code_dtype : dtype, optional
        Store the codes in this integer type instead of :func:`code_dtype`'s
        (for example int8 for bfloat16 with 8 bits); a code that does not fit
        it is then a ValueError.

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
    >>> codes, p.scale
    (array([-64, -19,  44, 127], dtype=int8), np.float32(63.5))
    >>> qdq.dequantize(codes, p)
    array([-1.007874 , -0.2992126,  0.6929134,  2.       ], dtype=float32)
    """
    x, fmt = as_input(input, bfloat16_bits)
    a = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    ax = check_axis(axis, x.ndim)
    cdt = (_code_dtype(fmt, a.signed, a.bits, a.narrow) if code_dtype is None
           else _check_code_dtype(code_dtype))
    xk = kernel_view(x, fmt)
    if x.ndim == 0:
        xk = xk.reshape(1)
    if a.range_given:
        lo, hi = given_range(input_min, input_max, fmt, x.shape, ax)
    else:
        lo, hi = reduce_range(xk, fmt, ax)
    p = compute_params(lo, hi, fmt, a.qmin, a.qmax)
    params = make_params(p, fmt, a.qmin, a.qmax, a.bits, a.signed, a.narrow, ax, ax is not None,
                         a.round_mode)
    if out is None:
        order = "F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C"
        codes = np.empty(x.shape, dtype=cdt, order=order)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
        if out.shape != x.shape:
            raise ValueError(f"out has shape {out.shape}, the input has shape {x.shape}")
        if out.dtype.newbyteorder("=") != cdt:
            raise ValueError(f"out has dtype {out.dtype}, the codes need {cdt}")
        if not out.flags.writeable:
            raise ValueError("out is read-only")
        codes = out
    ck = codes.reshape(1) if codes.ndim == 0 else codes
    stats = elementwise(_kernels.QUANTIZE, xk, ck, fmt, ax, p, a.mode, _INT_INDEX[cdt])
    check_codes(stats, cdt)
    return codes, params


def check_codes(stats: tuple[float, float, bool], cdt: np.dtype) -> None:
    """Raise ValueError when the kernel saw NaN or codes outside the code dtype."""
    lo, hi, nan = stats
    if nan:
        raise ValueError("the input has NaN (or a value the op maps to NaN, such as an inf "
                         "without a given range), which has no integer code; replace it first "
                         "(for example with np.nan_to_num) or use quantize_and_dequantize, "
                         "which keeps NaN")
    info = np.iinfo(cdt)
    if lo < info.min or hi > info.max:
        raise ValueError(f"codes from {lo:g} to {hi:g} do not fit the code type {cdt} "
                         f"[{info.min}, {info.max}]: without a given range TensorFlow's op does "
                         "not clamp (unsigned output with negative data, or an infinite or "
                         "overflowing scale), and a degenerate grid (num_bits=1 signed) or a "
                         "narrower code_dtype than qdq.code_dtype() cannot hold them")


def _result_dtype(fmt: Format, bfloat16_bits: bool) -> np.dtype:
    if fmt is BFLOAT16:
        return np.dtype(np.uint16) if bfloat16_bits else bfloat16_dtype()
    return np.dtype(fmt.name)


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
    """
    if not isinstance(params, QuantizationParams):
        raise TypeError("params must be a QuantizationParams (QuantizationParams.load reads "
                        f"one from JSON), got {type(params).__name__}")
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    fmt = format_named(params.dtype)
    c = codes if type(codes) is np.ndarray else np.asarray(codes)
    itype = _itype(c.dtype)
    ax = params_axis(params, c.shape)
    rdt = _result_dtype(fmt, bits)
    if out is None:
        order = "F" if c.flags.f_contiguous and not c.flags.c_contiguous else "C"
        res = np.empty(c.shape, dtype=rdt, order=order)
    else:
        res = prepare_out(out, np.broadcast_to(np.zeros((), rdt), c.shape), fmt)
    rk = kernel_view(res, fmt)
    ck = c
    if c.ndim == 0:
        ck, rk = c.reshape(1), rk.reshape(1)
    elementwise(_kernels.DEQUANTIZE, ck, rk, fmt, ax, _param_rows(params, fmt), 0, itype)
    return res


def quantize_and_dequantize_grad(gradients: ArrayLike, input: ArrayLike, input_min: ArrayLike,
                                 input_max: ArrayLike, axis: int | None = None, *,
                                 out: np.ndarray | None = None,
                                 bfloat16_bits: bool = False) -> np.ndarray:
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

    Returns
    -------
    numpy.ndarray
        The gradient with respect to ``input``, of the gradients' type.
    """
    g, fmt = as_input(gradients, bfloat16_bits)
    x, fmt_x = as_input(input, bfloat16_bits)
    if fmt is not fmt_x or g.dtype.newbyteorder("=") != x.dtype.newbyteorder("="):
        raise TypeError(f"gradients ({g.dtype}) and input ({x.dtype}) must have the same type")
    if g.shape != x.shape:
        raise ValueError(f"gradients and input must have the same shape, got {g.shape} and "
                         f"{x.shape}")
    ax = check_axis(axis, x.ndim)
    lo, hi = given_range(input_min, input_max, fmt, x.shape, ax, check=False)
    lo = np.ascontiguousarray(lo, dtype=fmt.compute).reshape(-1)
    hi = np.ascontiguousarray(hi, dtype=fmt.compute).reshape(-1)
    p = np.ascontiguousarray(np.stack([lo, lo, lo, hi]))
    res = prepare_out(out, g, fmt)
    gk, xk, rk = kernel_view(g, fmt), kernel_view(x, fmt), kernel_view(res, fmt)
    if g.ndim == 0:
        gk, xk, rk = gk.reshape(1), xk.reshape(1), rk.reshape(1)
    elementwise(_kernels.GRAD, gk, rk, fmt, ax, p, 0, 0, xk)
    return res


# ---------------------------------------------------------------------------
# QuantizationParams as JSON
# ---------------------------------------------------------------------------

_FIELDS = ("scale", "inverse_scale", "min_range", "max_range", "qmin", "qmax")


def params_to_dict(p: QuantizationParams) -> dict:
    """A plain dict of the parameters; floats as exact hex strings (``float.hex``)."""
    def one(x: float) -> str:
        # NaN keeps its exact bits (float.hex would drop the sign and payload)
        if x != x:
            return "nan:" + hex(int(np.array(x, np.float64).view(np.uint64)))
        return x.hex()

    def enc(v):
        a = np.asarray(v, dtype=np.float64)
        return [one(x) for x in a.tolist()] if a.ndim else one(float(a))

    d: dict[str, Any] = {"qdq_params": 1, "dtype": p.dtype, "axis": p.axis,
                         "per_channel": p.per_channel, "num_bits": p.num_bits,
                         "signed_input": p.signed_input, "narrow_range": p.narrow_range,
                         "round_mode": p.round_mode,
                         "code_dtype": _code_dtype(format_named(p.dtype), p.signed_input,
                                                   p.num_bits, p.narrow_range).name}
    for f in _FIELDS:
        d[f] = enc(getattr(p, f))
    return d


def params_from_dict(d: dict) -> QuantizationParams:
    """QuantizationParams from :func:`params_to_dict`'s dict, bit for bit."""
    if not isinstance(d, dict) or d.get("qdq_params") != 1:
        raise ValueError("not qdq quantization parameters (missing 'qdq_params': 1)")
    try:
        fmt = format_named(d["dtype"])
        signed = check_flag("signed_input", d["signed_input"])
        narrow = check_flag("narrow_range", d["narrow_range"])
        bits = check_num_bits(d["num_bits"], signed)
        rmode = check_round_mode(d["round_mode"])
        axis = d["axis"]
        per_channel = bool(d["per_channel"])

        def one(text: str) -> float:
            if text.startswith("nan:"):
                return float(np.array(int(text[4:], 16), np.uint64).view(np.float64))
            return float.fromhex(text)

        def dec(v):
            if per_channel and isinstance(v, list):
                return np.array([one(t) for t in v], dtype=np.float64)
            return np.array([one(v)], dtype=np.float64)

        vals = {f: dec(d[f]) for f in _FIELDS}
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed qdq quantization parameters: {exc}") from None
    rows = np.stack([vals[f].astype(fmt.compute) for f in _FIELDS[:4]])
    for f in _FIELDS[:4]:
        if not np.array_equal(rows[_FIELDS.index(f)].astype(np.float64), vals[f],
                              equal_nan=True):
            raise ValueError(f"malformed qdq quantization parameters: {f} holds values that "
                             f"are not {fmt.name} values")
    qmin, qmax = integer_grid(signed, bits, narrow)
    p = make_params(rows, fmt, qmin, qmax, bits, signed, narrow, axis, per_channel, rmode)
    if to_public(vals["qmin"], fmt, None)[0] != p.qmin and not math.isnan(vals["qmin"][0]):
        raise ValueError("malformed qdq quantization parameters: qmin does not match the grid")
    return p


def write_json_atomic(path, text: str) -> None:
    """Write text to path through a temporary file renamed into place."""
    import tempfile

    path = os.fspath(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.",
                               suffix=".qdq-tmp", dir=os.path.dirname(os.path.abspath(path)))
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
