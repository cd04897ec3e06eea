"""Every argument check of qdq: one function per rule, one message per rule.

Higher layers (the op, codes, streaming, files, the CLI, Dask) call these and
pass the validated values down; nothing below this module checks arguments
again.
"""

from __future__ import annotations

import operator
from typing import Any, NamedTuple

import numpy as np
from numpy.exceptions import AxisError

from .._ext import kernels
from .formats import Format, is_bfloat16_dtype, round_scalar, round_to

__all__ = ["ROUND_MODES", "Grid", "OpArgs", "op_args", "as_int", "check_axis", "check_code_dtype",
           "check_flag", "check_grid", "check_int", "code_type_index",
           "check_num_bits", "check_positive_int", "check_real", "check_round_mode",
           "given_range", "integer_grid", "normalize_axis_arg"]

ROUND_MODES = ("HALF_TO_EVEN", "HALF_UP")
_MODE_BITS = {"HALF_TO_EVEN": 0, "HALF_UP": kernels.HALF_UP}


def check_flag(name: str, value: Any) -> bool:
    """A bool argument; TypeError for anything else (0, 1, "False", None...)."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {value!r}")


def as_int(name: str, value: Any) -> int:
    """An int given by the user (bool and non-integers: TypeError naming it)."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None


def check_int(name: str, value: Any, smallest: int) -> int:
    """An int given by the user, at least ``smallest`` (TypeError, ValueError otherwise)."""
    n = as_int(name, value)
    if n < smallest:
        raise ValueError(f"{name} must be at least {smallest}, got {n}")
    return n


def check_positive_int(name: str, value: Any) -> int:
    """A count given by the user: an int of at least 1 (TypeError, ValueError otherwise)."""
    return check_int(name, value, 1)


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


class Grid(NamedTuple):
    """The validated integer grid: sign, width, narrowness and its bounds."""

    signed: bool
    num_bits: int
    narrow: bool
    qmin: int
    qmax: int


def check_grid(signed_input: Any, num_bits: Any, narrow_range: Any) -> Grid:
    """The flag/num_bits/grid triple, checked once for every caller."""
    signed = check_flag("signed_input", signed_input)
    narrow = check_flag("narrow_range", narrow_range)
    bits = check_num_bits(num_bits, signed)
    return Grid(signed, bits, narrow, *integer_grid(signed, bits, narrow))


def check_round_mode(round_mode: Any) -> str:
    """'HALF_TO_EVEN' or 'HALF_UP'; ValueError for anything else."""
    if isinstance(round_mode, str) and round_mode in _MODE_BITS:
        return round_mode
    raise ValueError(f"round_mode must be 'HALF_TO_EVEN' or 'HALF_UP', got {round_mode!r}")


def normalize_axis_arg(axis: Any) -> int | None:
    """An axis argument as an int or None, before the rank is known."""
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an int or None, got {axis!r}")
    try:
        return operator.index(axis)
    except TypeError:
        raise TypeError(f"axis must be an int or None, got {type(axis).__name__}") from None


def check_axis(axis: Any, ndim: int) -> int | None:
    """None, or the axis normalised to [0, ndim); AxisError when out of range."""
    ax = normalize_axis_arg(axis)
    if ax is None:
        return None
    if not -ndim <= ax < ndim:
        raise AxisError(ax, ndim, "per-channel axis")
    return ax + ndim if ax < 0 else ax


class OpArgs:
    """The op's validated arguments: grid, range_given, round mode and kernel mode.

    Immutable once built; :func:`op_args` hands out cached instances.
    """

    __slots__ = ("grid", "range_given", "round_mode", "mode", "signed", "num_bits", "narrow",
                 "qmin", "qmax")

    def __init__(self, signed_input: Any, num_bits: Any, range_given: Any, round_mode: Any,
                 narrow_range: Any):
        self.grid = check_grid(signed_input, num_bits, narrow_range)
        self.range_given = check_flag("range_given", range_given)
        self.round_mode = check_round_mode(round_mode)
        self.mode = _MODE_BITS[self.round_mode] | (kernels.CLAMP if self.range_given else 0)
        self.signed, self.num_bits, self.narrow, self.qmin, self.qmax = self.grid


_OP_ARGS: dict = {}


def op_args(signed_input: Any, num_bits: Any, range_given: Any, round_mode: Any,
            narrow_range: Any) -> OpArgs:
    """:class:`OpArgs`, cached by the arguments' types and values (the op's hot path)."""
    key = (type(signed_input), signed_input, type(num_bits), num_bits, type(range_given),
           range_given, type(round_mode), round_mode, type(narrow_range), narrow_range)
    try:
        return _OP_ARGS[key]
    except (KeyError, TypeError):
        pass
    a = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    try:
        if len(_OP_ARGS) < 512:
            _OP_ARGS[key] = a
    except TypeError:  # unhashable arguments (validated anyway)
        pass
    return a


def check_real(name: str, value: Any) -> np.ndarray:
    """A bound given by the user as an array of real numbers (TypeError otherwise).

    Python ints too large for float64 (``10**400``) are a ValueError rather
    than NumPy's OverflowError.
    """
    try:
        a = np.asarray(value)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float: {value!r}") from None
    if a.dtype == object:
        try:
            a = a.astype(np.float64)
        except (TypeError, ValueError, OverflowError):
            raise TypeError(f"{name} must be a real number (or numbers), got {value!r}") \
                from None
    if not (a.dtype.kind in "fiu" or is_bfloat16_dtype(a.dtype)):
        raise TypeError(f"{name} must be a real number (or numbers), got {value!r}")
    return a


def _range_array(value: Any, name: str, fmt: Format, channels: int | None,
                 axis: int | None) -> np.ndarray:
    """A given range bound rounded to T: 0-d per tensor, (channels,) per channel."""
    if value is None:
        raise TypeError(f"{name} is required when range_given=True")
    a = check_real(name, value)
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
        try:
            lo = round_scalar(fmt, float(input_min))
            hi = round_scalar(fmt, float(input_max))
        except OverflowError:
            raise ValueError(f"input_min/input_max too large for a float: {input_min!r}, "
                             f"{input_max!r}") from None
        if check and not lo <= hi:
            raise ValueError(f"invalid range: input_min ({lo!r}) must be <= input_max "
                             f"({hi!r}), and neither may be NaN")
        return (lo,), (hi,)
    channels = None if axis is None else shape[axis]
    lo_arr = _range_array(input_min, "input_min", fmt, channels, axis)
    hi_arr = _range_array(input_max, "input_max", fmt, channels, axis)
    bad = ~(lo_arr <= hi_arr)
    if check and bad.any():
        if axis is None:
            raise ValueError(f"invalid range: input_min ({float(lo_arr)!r}) must be <= "
                             f"input_max ({float(hi_arr)!r}), and neither may be NaN")
        c = int(np.flatnonzero(bad)[0])
        raise ValueError(f"invalid range in channel {c} of axis {axis}: input_min[{c}] "
                         f"({float(lo_arr[c])!r}) must be <= input_max[{c}] "
                         f"({float(hi_arr[c])!r}), and neither may be NaN")
    if axis is None:
        return (float(lo_arr),), (float(hi_arr),)
    return np.ascontiguousarray(lo_arr), np.ascontiguousarray(hi_arr)



_INT_INDEX = {np.dtype(name): k for k, name in enumerate(kernels.INT_TYPES)}


def code_type_index(dtype: np.dtype) -> int:
    """The kernels' index of an integer code dtype (any byte order); TypeError otherwise."""
    k = _INT_INDEX.get(dtype.newbyteorder("=")) if dtype.kind in "iu" else None
    if k is None:
        raise TypeError(f"codes must be an integer array (int8 ... uint64), got dtype {dtype}")
    return k


def check_code_dtype(value: Any) -> np.dtype:
    """A code_dtype argument: a native integer dtype the kernels write."""
    try:
        dt = np.dtype(value)
    except TypeError:
        raise TypeError(f"code_dtype must be an integer dtype, got {value!r}") from None
    if dt.kind not in "iu" or dt.newbyteorder("=") not in _INT_INDEX:
        raise TypeError(f"code_dtype must be an integer dtype (int8 ... uint64), got {dt}")
    return dt.newbyteorder("=")
