"""The in-memory op: validation, layout and dispatch to the compiled kernels."""

from __future__ import annotations

import math
import operator
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from numpy.exceptions import AxisError

from . import _kernels, _threads
from ._formats import (BFLOAT16, FLOAT16, Format, format_named,
                       format_of, is_bfloat16_dtype, round_to)

__all__ = ["quantize_and_dequantize", "quantize_and_dequantize_v2", "compute_range",
           "quantization_params", "QuantizationParams"]

ROUND_MODES = ("HALF_TO_EVEN", "HALF_UP")
_MODE_BITS = {"HALF_TO_EVEN": 0, "HALF_UP": _kernels.HALF_UP}

# Elements per block when an input cannot go to the kernels as it is
# (non-contiguous, byte-swapped, misaligned, or an out that differs in layout).
_BLOCK_ITEMS = 1 << 18


# ---------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------

def check_flag(name: str, value: Any) -> bool:
    """A bool argument; TypeError for anything else (0, 1, "False", None...)."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}")


def check_num_bits(num_bits: Any, signed: bool) -> int:
    """num_bits as an int in TensorFlow's bounds: 1..61 signed, 1..62 unsigned."""
    if isinstance(num_bits, (bool, np.bool_)):
        raise TypeError(f"num_bits must be an int, got {num_bits!r}")
    try:
        bits = operator.index(num_bits)
    except TypeError:
        raise TypeError(f"num_bits must be an int, got {type(num_bits).__name__}") from None
    top = 61 if signed else 62
    if not 1 <= bits <= top:
        kind = "signed" if signed else "unsigned"
        raise ValueError(f"num_bits must be in 1..{top} for {kind} output "
                         f"(signed_input={signed}), got {bits}")
    return bits


def integer_grid(signed: bool, num_bits: int, narrow: bool) -> tuple[int, int]:
    """The integer bounds (qmin, qmax) of the quantization grid (SPEC step 2)."""
    if signed:
        qmin = -(1 << (num_bits - 1)) + (1 if narrow else 0)
        qmax = (1 << (num_bits - 1)) - 1
    else:
        qmin, qmax = 0, (1 << num_bits) - 1
    return qmin, qmax


def check_round_mode(round_mode: Any) -> str:
    if isinstance(round_mode, str) and round_mode in _MODE_BITS:
        return round_mode
    raise ValueError(f"round_mode must be 'HALF_TO_EVEN' or 'HALF_UP', got {round_mode!r}")


def check_axis(axis: Any, ndim: int) -> int | None:
    """None, or the axis normalised to [0, ndim); AxisError when out of range."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an int or None, got {axis!r}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an int or None, got {type(axis).__name__}") from None
    if not -ndim <= ax < ndim:
        raise AxisError(ax, ndim, "qdq: per-channel axis")
    return ax + ndim if ax < 0 else ax


class OpArgs:
    """The op's validated arguments: flags, bit width, round mode, grid and kernel mode."""

    __slots__ = ("signed", "narrow", "range_given", "bits", "round_mode", "qmin", "qmax", "mode")

    def __init__(self, signed_input: Any, num_bits: Any, range_given: Any, round_mode: Any,
                 narrow_range: Any):
        self.signed = check_flag("signed_input", signed_input)
        self.narrow = check_flag("narrow_range", narrow_range)
        self.range_given = check_flag("range_given", range_given)
        self.bits = check_num_bits(num_bits, self.signed)
        self.round_mode = check_round_mode(round_mode)
        self.qmin, self.qmax = integer_grid(self.signed, self.bits, self.narrow)
        self.mode = _MODE_BITS[self.round_mode] | (_kernels.CLAMP if self.range_given else 0)


def as_input(input: Any, bfloat16_bits: Any) -> tuple[np.ndarray, Format]:
    """The input as an ndarray and its format; TypeError for unsupported types."""
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    if isinstance(input, np.ma.MaskedArray):
        raise TypeError("masked arrays are not supported: fill or compress them first")
    x = input if type(input) is np.ndarray else np.asarray(input)
    return x, format_of(x.dtype, bits)


def _range_array(value: Any, name: str, fmt: Format, channels: int | None,
                 axis: int | None) -> np.ndarray:
    """A given range bound rounded to T: 0-d per tensor, (channels,) per channel."""
    if value is None:
        raise TypeError(f"{name} is required when range_given=True")
    a = np.asarray(value)
    if not (a.dtype.kind in "fiu" or is_bfloat16_dtype(a.dtype)):
        raise TypeError(f"{name} must be a real number (or numbers), got {value!r}")
    if channels is None:
        if a.ndim != 0:
            raise ValueError(f"{name} must be a scalar for a per-tensor range (axis=None), "
                             f"got shape {a.shape}")
    elif a.ndim == 0:
        a = np.broadcast_to(a, (channels,))
    elif a.ndim != 1:
        raise ValueError(f"{name} must be a scalar or 1-D with one value per channel, "
                         f"got shape {a.shape}")
    elif a.shape[0] != channels:
        raise ValueError(f"{name} has {a.shape[0]} values but axis {axis} has {channels} channels")
    return round_to(a, fmt)


_FAST_SCALARS = frozenset((float, int, np.float64, np.float32, np.float16, np.int64, np.int32))


def given_range(input_min: Any, input_max: Any, fmt: Format, shape: tuple,
                axis: int | None, check: bool = True) -> tuple[Any, Any]:
    """The given range in T, checked min <= max (unless not ``check``).

    Per tensor, two Python floats (1-tuples); per channel, 1-D compute-type arrays.
    """
    if axis is None and type(input_min) in _FAST_SCALARS and type(input_max) in _FAST_SCALARS:
        lo = _kernels.round_value(fmt.code, float(input_min))
        hi = _kernels.round_value(fmt.code, float(input_max))
        if check and not lo <= hi:
            raise ValueError(f"invalid range: input_min ({lo!r}) must be <= input_max "
                             f"({hi!r}), and neither may be NaN")
        return (lo,), (hi,)
    channels = None if axis is None else shape[axis]
    lo = _range_array(input_min, "input_min", fmt, channels, axis)
    hi = _range_array(input_max, "input_max", fmt, channels, axis)
    bad = ~(lo <= hi)
    if check and bad.any():
        if axis is None:
            raise ValueError(f"invalid range: input_min ({float(lo)!r}) must be <= input_max "
                             f"({float(hi)!r}), and neither may be NaN")
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(f"invalid range in channel {c} of axis {axis}: input_min[{c}] "
                         f"({float(lo[c])!r}) must be <= input_max[{c}] ({float(hi[c])!r}), "
                         "and neither may be NaN")
    if axis is None:
        return (float(lo),), (float(hi),)
    return np.ascontiguousarray(lo), np.ascontiguousarray(hi)


def result_dtype(x: np.ndarray, fmt: Format | None) -> np.dtype:
    """The dtype of the op's result for input x: x's type in native byte order."""
    dt = x.dtype
    return dt if dt.isnative else dt.newbyteorder("=")


def _same_type(a: np.dtype, b: np.dtype) -> bool:
    """Equal dtypes up to byte order."""
    return a == b or (a.kind == b.kind and a.itemsize == b.itemsize and a.name == b.name)


def prepare_out(out: Any, x: np.ndarray, fmt: Format) -> np.ndarray:
    """A fresh result array in x's layout, or the checked ``out``."""
    rdt = result_dtype(x, fmt)
    if out is None:
        order = "F" if x.flags.f_contiguous and not x.flags.c_contiguous else "C"
        return np.empty(x.shape, dtype=rdt, order=order)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.shape != x.shape:
        raise ValueError(f"out has shape {out.shape}, the input has shape {x.shape}")
    if not _same_type(out.dtype, rdt):
        raise ValueError(f"out has dtype {out.dtype}, the result needs {rdt}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    return out


def kernel_view(a: np.ndarray, fmt: Format) -> np.ndarray:
    """a reinterpreted as the kernels' storage type (uint16 for 16-bit formats)."""
    if fmt.itemsize == 2 and a.dtype.kind != "u":
        return a.view(np.dtype(np.uint16).newbyteorder(a.dtype.byteorder))
    return a


def _direct(a: np.ndarray) -> bool:
    return a.flags.aligned and a.dtype.isnative


def _layout(xk: np.ndarray, rk: np.ndarray | None) -> str | None:
    """'C' or 'F' when the kernels can run on x (and r) as they are, else None."""
    if not _direct(xk) or (rk is not None and not (_direct(rk) and rk.flags.writeable)):
        return None
    if xk.flags.c_contiguous and (rk is None or rk.flags.c_contiguous):
        return "C"
    if xk.flags.f_contiguous and (rk is None or rk.flags.f_contiguous):
        return "F"
    return None


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    ai, bi = a.__array_interface__, b.__array_interface__
    return ai["data"][0] == bi["data"][0] and a.strides == b.strides and a.shape == b.shape


def _layout_extents(a: np.ndarray, layout: str, axis: int | None) -> tuple[int, int, int]:
    """(pre, C, post) of a C- or F-contiguous array in memory order."""
    if layout == "C":
        return _extents(a.shape, axis)
    return _extents(a.shape[::-1], None if axis is None else a.ndim - 1 - axis)


def _extents(shape: tuple, axis: int | None) -> tuple[int, int, int]:
    """(pre, C, post) of a C-ordered array of this shape along the channel axis."""
    if axis is None:
        return 1, 1, math.prod(shape)
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:])


class Block:
    """One slab of an array in C order (see :func:`iter_blocks`)."""

    __slots__ = ("index", "shape", "start", "count", "extents", "channels")

    def __init__(self, index, shape, start, count, extents, channels):
        self.index = index          # x[index] is the slab
        self.shape = shape          # its shape
        self.start = start          # its first element in C order
        self.count = count          # its number of elements
        self.extents = extents      # (pre, C, post) of the slab around the channel axis
        self.channels = channels    # the slice of per-channel parameters it uses


def iter_blocks(shape: tuple, axis: int | None, max_items: int | None = None):
    """Cover an array of ``shape`` in C order with slabs of at most ~max_items elements.

    A slab fixes the leading indices and takes a range along one axis (the
    first axis whose trailing extent fits), so it is contiguous in a C-ordered
    array. Yields :class:`Block` objects in memory order.
    """
    nd = len(shape)
    if max_items is None:
        max_items = _BLOCK_ITEMS
    if math.prod(shape) == 0:
        return
    suffix = [1] * (nd + 1)
    for d in range(nd - 1, -1, -1):
        suffix[d] = suffix[d + 1] * shape[d]
    depth = 0
    while depth < nd - 1 and suffix[depth + 1] > max_items:
        depth += 1
    rows = max(1, max_items // suffix[depth + 1])
    for lead in np.ndindex(*shape[:depth]):
        base = sum(i * suffix[d + 1] for d, i in enumerate(lead))
        for a in range(0, shape[depth], rows):
            b = min(a + rows, shape[depth])
            index = lead + (slice(a, b),)
            block = (b - a,) + tuple(shape[depth + 1:])
            count = (b - a) * suffix[depth + 1]
            start = base + a * suffix[depth + 1]
            if axis is None:
                ext, ch = (1, 1, count), slice(0, 1)
            elif axis < depth:
                ext, ch = (1, 1, count), slice(lead[axis], lead[axis] + 1)
            elif axis == depth:
                ext, ch = (1, b - a, suffix[depth + 1]), slice(a, b)
            else:
                k = axis - depth
                ext, ch = (math.prod(block[:k]), block[k], math.prod(block[k + 1:])), slice(None)
            yield Block(index, block, start, count, ext, ch)


def kernel_copy(a: np.ndarray, dtype) -> np.ndarray:
    """a as the kernels need it: C-contiguous, aligned, native (copied only if it is not).

    (np.ascontiguousarray alone would pass a contiguous but misaligned block through.)
    """
    return np.require(a, dtype=np.dtype(dtype).newbyteorder("="), requirements=("C", "A"))


def _native_block(xk: np.ndarray, index: tuple, fmt: Format) -> np.ndarray:
    return kernel_copy(xk[index], fmt.storage)


# ---------------------------------------------------------------------------
# The three phases: range, parameters, transform
# ---------------------------------------------------------------------------

def reduce_range(xk: np.ndarray, fmt: Format, axis: int | None,
                 mn: np.ndarray | None = None, mx: np.ndarray | None = None,
                 nthreads: int | None = None):
    """Merge the raw NaN-ignoring min/max of xk (a kernel view) into mn, mx.

    Returns the compute-type arrays (length C; 1 per tensor). A channel that
    saw no non-NaN element keeps +inf / -inf.
    """
    channels = 1 if axis is None else xk.shape[axis]
    if mn is None:
        mn = np.full(channels, np.inf, dtype=fmt.compute)
        mx = np.full(channels, -np.inf, dtype=fmt.compute)
    nt = _threads._threads if nthreads is None else nthreads
    layout = _layout(xk, None)
    if layout is not None:
        _kernels.minmax(xk, mn, mx, fmt.code, *_layout_extents(xk, layout, axis), nt)
        return mn, mx
    for b in iter_blocks(xk.shape, axis):
        _kernels.minmax(_native_block(xk, b.index, fmt), mn[b.channels], mx[b.channels], fmt.code,
                        *b.extents, nt)
    return mn, mx


def compute_params(mn: np.ndarray, mx: np.ndarray, fmt: Format, qmin: int, qmax: int):
    """Per-channel (scale, inverse, lo, hi) compute-type arrays, SPEC step 3."""
    mn = np.ascontiguousarray(mn, dtype=fmt.compute).reshape(-1)
    mx = np.ascontiguousarray(mx, dtype=fmt.compute).reshape(-1)
    out = np.empty((4, mn.shape[0]), dtype=fmt.compute)
    _kernels.params(mn, mx, out[0], out[1], out[2], out[3], fmt.code, qmin, qmax)
    return out


def _overlaps(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether b overlaps a without being exactly a."""
    return a is not b and np.may_share_memory(a, b) and not _same_memory(a, b)


def elementwise(op: int, xk: np.ndarray, rk: np.ndarray, fmt: Format, axis: int | None,
                p: np.ndarray, mode: int = 0, itype: int = 0,
                x2k: np.ndarray | None = None,
                nthreads: int | None = None) -> tuple[float, float, bool]:
    """Run a compiled elementwise operation over arrays of any layout.

    ``xk`` (and ``x2k`` for the gradient) are inputs and ``rk`` the output, all
    in the kernels' storage types; ``p`` holds the parameter rows (s, inv, lo,
    hi) per channel. The kernels run on the arrays themselves when all share a
    C or Fortran layout (native, aligned); otherwise on contiguous copies of
    slabs. An output overlapping an input without being it is computed into a
    temporary first, as NumPy's ufuncs do. Returns the kernels' code statistics.
    """
    nt = _threads._threads if nthreads is None else nthreads
    inputs = [xk] if x2k is None else [xk, x2k]
    if any(_overlaps(a, rk) for a in inputs):
        tmp = np.empty(rk.shape, dtype=rk.dtype.newbyteorder("="))
        stats = elementwise(op, xk, tmp, fmt, axis, p, mode, itype, x2k, nthreads)
        rk[...] = tmp
        return stats
    layouts = {_layout(a, rk) for a in inputs}
    if len(layouts) == 1 and None not in layouts:
        pre, C, post = _layout_extents(xk, layouts.pop(), axis)
        return _kernels.run(op, xk, x2k, rk, fmt.code, itype, pre, C, post,
                            p[0], p[1], p[2], p[3], mode, nt)
    lo, hi, nan = math.inf, -math.inf, False
    out_dtype = rk.dtype.newbyteorder("=")
    for b in iter_blocks(xk.shape, axis):
        xb = kernel_copy(xk[b.index], xk.dtype)
        x2b = None if x2k is None else kernel_copy(x2k[b.index], x2k.dtype)
        ob = np.empty(b.shape, dtype=out_dtype)
        ch = b.channels
        s = _kernels.run(op, xb, x2b, ob, fmt.code, itype, *b.extents,
                         p[0, ch], p[1, ch], p[2, ch], p[3, ch], mode, nt)
        lo, hi, nan = min(lo, s[0]), max(hi, s[1]), nan or s[2]
        rk[b.index] = ob
    return lo, hi, nan


def transform(xk: np.ndarray, rk: np.ndarray, fmt: Format, axis: int | None,
              p: np.ndarray, mode: int) -> None:
    """Write the op of xk into rk with the parameter rows p = (s, inv, lo, hi)."""
    elementwise(_kernels.APPLY, xk, rk, fmt, axis, p, mode)


def _warn_unsigned_negative() -> None:
    """Warn about unsigned output with negative data and no given range."""
    warnings.warn(
        "signed_input=False with negative data and range_given=False: like TensorFlow, qdq "
        "does not clamp, so the negative values come out meaningless; pass range_given=True "
        "(the clamp then maps them to 0) or use signed_input=True",
        RuntimeWarning, stacklevel=3)


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

RoundMode = Literal["HALF_TO_EVEN", "HALF_UP"]


def quantize_and_dequantize(input: ArrayLike, input_min: ArrayLike | None = None,
                            input_max: ArrayLike | None = None, signed_input: bool = True,
                            num_bits: int = 8, range_given: bool = False,
                            round_mode: RoundMode = "HALF_TO_EVEN", narrow_range: bool = False,
                            axis: int | None = None, *, out: np.ndarray | None = None,
                            bfloat16_bits: bool = False) -> np.ndarray:
    """Quantize to an integer grid and back, as TensorFlow's QuantizeAndDequantizeV2.

    Returns, bit for bit, what TensorFlow's CPU kernel returns for float32
    and float64 (apart from the documented deliberate differences: NaN in the
    data is always ignored by the range reduction, subnormals follow IEEE
    instead of flushing to zero), and the same computation in the type's own
    arithmetic for float16 and bfloat16.

    Parameters
    ----------
    input : array_like
        float16, bfloat16 (an ``ml_dtypes.bfloat16`` array, or ``uint16`` bit
        patterns with ``bfloat16_bits=True``), float32 or float64; any shape
        (0-d included) and memory layout.
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
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}
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
    compute_range, quantization_params

    Examples
    --------
    >>> import numpy as np, qdq
    >>> x = np.array([-10, -3.3, 0.01, 5, 9.921875, 10], dtype=np.float32)
    >>> qdq.quantize_and_dequantize(x, -10, 5, range_given=True)
    array([-10.      ,  -3.28125 ,   0.      ,   5.      ,   9.921875,
             9.921875], dtype=float32)
    """
    x, fmt = as_input(input, bfloat16_bits)
    a = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    ax = check_axis(axis, x.ndim)
    rg = a.range_given
    if rg:
        lo, hi = given_range(input_min, input_max, fmt, x.shape, ax)
    res = prepare_out(out, x, fmt)
    xk, rk = kernel_view(x, fmt), kernel_view(res, fmt)
    if x.ndim == 0:
        xk, rk = xk.reshape(1), rk.reshape(1)
    layout = _layout(xk, rk)
    if layout is not None and (out is None or out is x or not np.may_share_memory(x, out)):
        # The kernels run on the arrays as they are: one compiled call.
        nt = _threads._threads
        if ax is None:
            negative = _kernels.qdq_tensor(
                xk, rk, fmt.code, rg, lo[0] if rg else 0.0, hi[0] if rg else 0.0,
                a.qmin, a.qmax, a.mode, nt)[0] < 0
        else:
            negative = _kernels.qdq_channels(xk, rk, fmt.code, *_layout_extents(xk, layout, ax),
                                             lo if rg else None, hi if rg else None,
                                             a.qmin, a.qmax, a.mode, nt)
    else:
        if not rg:
            lo, hi = reduce_range(xk, fmt, ax)
        negative = bool(np.any(np.asarray(lo) < 0))
        transform(xk, rk, fmt, ax, compute_params(lo, hi, fmt, a.qmin, a.qmax), a.mode)
    if negative and not a.signed and not rg:
        _warn_unsigned_negative()
    return res


quantize_and_dequantize_v2 = quantize_and_dequantize


def finish_range(mn: np.ndarray, mx: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw reduction results -> reported range: NaN for channels of only NaN."""
    if count > 0:
        empty = mn > mx
        if empty.any():
            mn = np.where(empty, np.nan, mn).astype(mn.dtype)
            mx = np.where(empty, np.nan, mx).astype(mx.dtype)
    return mn, mx


def to_public(values: np.ndarray, fmt: Format, dtype: np.dtype | None):
    """Compute-type values -> arrays of the user's type (bfloat16 bits mode: float32)."""
    if fmt is FLOAT16:
        return values.astype(np.float16)
    if fmt is BFLOAT16 and dtype is not None and is_bfloat16_dtype(dtype):
        return values.astype(dtype)
    return values


_SCALAR_TYPE = {"float16": np.float16, "float32": np.float32, "float64": np.float64}


def compute_range(input: ArrayLike, axis: int | None = None, *,
                  bfloat16_bits: bool = False) -> tuple[Any, Any]:
    """The NaN-ignoring minimum and maximum of a tensor, in one fused pass.

    Parameters
    ----------
    input : array_like
        As for :func:`quantize_and_dequantize`.
    axis : int, optional
        Reduce each channel along this axis separately.
    bfloat16_bits : bool, default False
        The input holds bfloat16 bit patterns in ``uint16``.

    Returns
    -------
    min, max : numpy scalar or numpy.ndarray
        Scalars of the input's type, or 1-D arrays with one value per channel.
        bfloat16 bit-pattern input gives float32 values (bfloat16 values held
        exactly). NaN is ignored; a tensor (channel) of only NaN gives NaN; an
        empty one gives ``(+inf, -inf)``. -0.0 counts as smaller than +0.0, so
        the result does not depend on the order of the elements.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> qdq.compute_range(np.array([3.0, np.nan, -1.5]))
    (np.float64(-1.5), np.float64(3.0))
    """
    x, fmt = as_input(input, bfloat16_bits)
    ax = check_axis(axis, x.ndim)
    xk = kernel_view(x, fmt)
    if x.ndim == 0:
        xk = xk.reshape(1)
    if ax is None and _layout(xk, None) is not None:
        lo, hi = _kernels.range_tensor(xk, fmt.code, _threads._threads)
        if lo > hi and x.size:
            lo = hi = math.nan
        scalar = _SCALAR_TYPE.get(fmt.name) if not bfloat16_bits else np.float32
        if scalar is None:  # ml_dtypes.bfloat16
            return np.asarray([lo, hi], np.float32).astype(x.dtype)
        return scalar(lo), scalar(hi)
    mn, mx = reduce_range(xk, fmt, ax)
    count = x.size if ax is None else (x.size // x.shape[ax] if x.shape[ax] else 0)
    mn, mx = finish_range(mn, mx, count)
    dtype = None if bfloat16_bits else x.dtype
    mn, mx = to_public(mn, fmt, dtype), to_public(mx, fmt, dtype)
    if ax is None:
        return mn[0], mx[0]
    return mn, mx


@dataclass(frozen=True, eq=False)
class QuantizationParams:
    """The quantization grid for one range: SPEC step 3, in the type T.

    For a per-tensor range the values are NumPy scalars of T; per channel they
    are read-only 1-D arrays. bfloat16 values are held exactly in float32
    (so that ml_dtypes stays optional).

    Attributes
    ----------
    dtype : str
        The type T: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.
    scale : scalar or ndarray
        The factor from values to the integer grid.
    inverse_scale : scalar or ndarray
        The factor back (computed by its own division, not ``1 / scale``).
    min_range, max_range : scalar or ndarray
        The adjusted range: the clamp bounds when the range is given.
    qmin, qmax : scalar
        The integer bounds converted to T (2**16 - 1 is inf in float16).
    num_bits : int
    signed_input : bool
    narrow_range : bool
    axis : int or None
        The channel axis, None per tensor.
    round_mode : str
        ``"HALF_TO_EVEN"`` or ``"HALF_UP"``.
    """

    dtype: str
    scale: Any
    inverse_scale: Any
    min_range: Any
    max_range: Any
    qmin: Any
    qmax: Any
    num_bits: int
    signed_input: bool = True
    narrow_range: bool = False
    axis: int | None = None
    round_mode: str = "HALF_TO_EVEN"

    @property
    def code_min(self) -> int:
        """The smallest integer code, as a Python int."""
        return integer_grid(self.signed_input, self.num_bits, self.narrow_range)[0]

    @property
    def code_max(self) -> int:
        """The largest integer code, as a Python int."""
        return integer_grid(self.signed_input, self.num_bits, self.narrow_range)[1]

    @property
    def per_channel(self) -> bool:
        """Whether the parameters hold one value per channel."""
        return np.ndim(self.scale) == 1

    def __eq__(self, other):
        if not isinstance(other, QuantizationParams):
            return NotImplemented
        fields = ("dtype", "num_bits", "signed_input", "narrow_range", "axis", "round_mode")
        if any(getattr(self, f) != getattr(other, f) for f in fields):
            return False
        for f in ("scale", "inverse_scale", "min_range", "max_range", "qmin", "qmax"):
            a, b = np.asarray(getattr(self, f)), np.asarray(getattr(other, f))
            if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict:
        """A plain, JSON-serialisable dict; floats as exact hex strings (``float.hex``)."""
        from ._codes import params_to_dict

        return params_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantizationParams":
        """Parameters from :meth:`to_dict`'s dict, bit for bit."""
        from ._codes import params_from_dict

        return params_from_dict(d)

    def to_json(self, indent: int | None = 1) -> str:
        """The parameters as a JSON document that reads back bit for bit."""
        import json

        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "QuantizationParams":
        """Parameters from :meth:`to_json`'s document."""
        import json

        try:
            d = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not a JSON document: {exc}") from None
        return cls.from_dict(d)

    def save(self, path) -> None:
        """Write the JSON document to ``path`` (through a temporary file renamed into place)."""
        from ._codes import write_json_atomic

        write_json_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path) -> "QuantizationParams":
        """Parameters from a JSON file written by :meth:`save`."""
        with open(path) as f:
            return cls.from_json(f.read())


def make_params(p: np.ndarray, fmt: Format, qmin: int, qmax: int, num_bits: int,
                signed: bool, narrow: bool, axis: int | None, per_channel: bool,
                round_mode: str = "HALF_TO_EVEN") -> QuantizationParams:
    """QuantizationParams from the compute-type rows p = (s, inv, lo, hi)."""
    vals = [to_public(row, fmt, None) for row in p]
    q = to_public(round_to(np.array([qmin, qmax], dtype=np.float64), fmt), fmt, None)
    if per_channel:
        vals = [v.copy() for v in vals]
        for v in vals:
            v.setflags(write=False)
    else:
        vals = [v[0] for v in vals]
    return QuantizationParams(fmt.name, vals[0], vals[1], vals[2], vals[3], q[0], q[1],
                              num_bits, signed, narrow, axis, round_mode)


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
    num_bits : int, default 8
    narrow_range : bool, default False
    axis : int, optional
        Recorded in the result for per-channel ranges.

    Returns
    -------
    QuantizationParams

    Examples
    --------
    >>> import numpy as np, qdq
    >>> p = qdq.quantization_params(-10.0, 10.0, np.float32)
    >>> p.scale, p.min_range
    (np.float32(12.7), np.float32(-10.07874))
    """
    fmt = format_named(dtype)
    signed = check_flag("signed_input", signed_input)
    narrow = check_flag("narrow_range", narrow_range)
    bits = check_num_bits(num_bits, signed)
    qmin, qmax = integer_grid(signed, bits, narrow)
    arrays = []
    for name, value in (("input_min", input_min), ("input_max", input_max)):
        a = np.asarray(value)
        if not (a.dtype.kind in "fiu" or is_bfloat16_dtype(a.dtype)):
            raise TypeError(f"{name} must be a real number (or numbers), got {value!r}")
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
    if axis is not None:
        if isinstance(axis, (bool, np.bool_)):
            raise TypeError(f"axis must be an int or None, got {axis!r}")
        axis = operator.index(axis)
    mn = np.ascontiguousarray(round_to(lo, fmt).reshape(-1))
    mx = np.ascontiguousarray(round_to(hi, fmt).reshape(-1))
    p = compute_params(mn, mx, fmt, qmin, qmax)
    return make_params(p, fmt, qmin, qmax, bits, signed, narrow, axis, per_channel)
