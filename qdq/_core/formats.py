"""The four float formats qdq handles, and conversions of values to them.

float16, float32 and float64 are NumPy dtypes. bfloat16 arrives either as an
``ml_dtypes.bfloat16`` array (recognised by its dtype, without importing
ml_dtypes) or as ``uint16`` bit patterns with ``bfloat16_bits=True``. The
kernels see 16-bit formats as ``uint16`` and compute in float32; float64 is
computed in float64.
"""

from __future__ import annotations

import numpy as np

from .._ext import kernels

__all__ = ["Format", "FLOAT16", "BFLOAT16", "FLOAT32", "FLOAT64", "format_of",
           "format_named", "round_to", "round_scalar", "bfloat16_dtype", "bits_to_values",
           "values_to_bits", "values_as_float64", "to_public", "value_dtype",
           "file_value_dtype", "dtype_name", "dtype_from_name", "is_bfloat16_dtype",
           "integer_value"]

_SUPPORTED = ("float16, bfloat16 (ml_dtypes.bfloat16, or uint16 bits with bfloat16_bits=True), "
              "float32, float64")


class Format:
    """One of qdq's element formats.

    Attributes
    ----------
    name : str
        ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.
    code : int
        The kernel's format code.
    storage : numpy.dtype
        The dtype the kernels read and write (``uint16`` for 16-bit formats).
    compute : numpy.dtype
        The dtype that holds every value of the format exactly and in which
        the kernels take parameters (float32, or float64 for float64).
    max : float
        The largest finite value.
    """

    __slots__ = ("name", "code", "storage", "compute", "max", "itemsize")

    def __init__(self, name, code, storage, compute, max_value):
        self.name = name
        self.code = code
        self.storage = np.dtype(storage)
        self.compute = np.dtype(compute)
        self.max = max_value
        self.itemsize = self.storage.itemsize

    def __repr__(self):
        return f"Format({self.name!r})"

    def __reduce__(self):
        return (format_named, (self.name,))


FLOAT16 = Format("float16", kernels.F16, np.uint16, np.float32, 65504.0)
BFLOAT16 = Format("bfloat16", kernels.BF16, np.uint16, np.float32, 3.3895313892515355e38)
FLOAT32 = Format("float32", kernels.F32, np.float32, np.float32, float(np.finfo(np.float32).max))
FLOAT64 = Format("float64", kernels.F64, np.float64, np.float64, float(np.finfo(np.float64).max))

_BY_NAME = {f.name: f for f in (FLOAT16, BFLOAT16, FLOAT32, FLOAT64)}
# Keyed by (kind, itemsize) so byte-swapped dtypes resolve too.
_BY_KIND = {("f", 2): FLOAT16, ("f", 4): FLOAT32, ("f", 8): FLOAT64}


def is_bfloat16_dtype(dtype: np.dtype) -> bool:
    """Whether ``dtype`` is ml_dtypes' bfloat16 (checked without importing it)."""
    return dtype.kind == "V" and dtype.itemsize == 2 and dtype.name == "bfloat16"


def bfloat16_dtype():
    """``ml_dtypes.bfloat16`` as a NumPy dtype; ImportError if ml_dtypes is missing."""
    try:
        import ml_dtypes
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "bfloat16 arrays need the optional package ml_dtypes (pip install ml_dtypes); "
            "without it, pass uint16 bit patterns with bfloat16_bits=True") from exc
    return np.dtype(ml_dtypes.bfloat16)


def format_of(dtype: np.dtype, bfloat16_bits: bool = False) -> Format:
    """The format of an input dtype; TypeError for anything unsupported."""
    if bfloat16_bits:
        if dtype.kind == "u" and dtype.itemsize == 2:
            return BFLOAT16
        raise TypeError(
            f"bfloat16_bits=True expects uint16 arrays of bfloat16 bit patterns, got dtype {dtype}")
    fmt = _BY_KIND.get((dtype.kind, dtype.itemsize))
    if fmt is not None:
        return fmt
    if is_bfloat16_dtype(dtype):
        return BFLOAT16
    if dtype.kind == "u" and dtype.itemsize == 2:
        raise TypeError(
            "uint16 input is not a float type; pass bfloat16_bits=True if it holds bfloat16 "
            "bit patterns "
            f"(supported types: {_SUPPORTED})")
    raise TypeError(f"unsupported input dtype {dtype}; supported types: {_SUPPORTED}")


def format_named(dtype) -> Format:
    """The format named by a dtype-like (``np.float32``, ``"bfloat16"``, ...)."""
    if isinstance(dtype, Format):
        return dtype
    if isinstance(dtype, str) and dtype in _BY_NAME:
        return _BY_NAME[dtype]
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"unsupported dtype {dtype!r}; supported types: {_SUPPORTED}") from None
    return format_of(dt)


def _f32_to_bf16_bits(f: np.ndarray) -> np.ndarray:
    """float32 array -> bfloat16 bits, round to nearest even, NaN -> 0x7fc0 with sign."""
    b = np.ascontiguousarray(f, dtype=np.float32).view(np.uint32)
    rounded = ((b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16))
    nan = (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000)
    quiet = ((b >> np.uint32(16)) & np.uint32(0x8000)) | np.uint32(0x7FC0)
    return np.where(nan, quiet, rounded).astype(np.uint16)


def _f64_to_f32_round_to_odd(d: np.ndarray) -> np.ndarray:
    """float64 -> float32, rounding toward zero and setting the last bit when inexact.

    Rounding to odd first makes the later rounding to bfloat16 a correct single
    rounding of the float64 value (float32 has more than 8 + 2 bits).
    """
    d = np.asarray(d, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        f = d.astype(np.float32)
        away = np.abs(f.astype(np.float64)) > np.abs(d)
        f = np.where(away, np.nextafter(f, np.float32(0)), f).astype(np.float32)
        inexact = f.astype(np.float64) != d
    bits = f.view(np.uint32) | np.where(inexact & ~np.isnan(d), np.uint32(1), np.uint32(0))
    return bits.astype(np.uint32).view(np.float32)


def round_to(values, fmt: Format) -> np.ndarray:
    """Round float64-representable values to the format, once, to nearest even.

    Returns an array of ``fmt.compute`` holding the rounded values exactly.
    """
    v = np.asarray(values)
    if fmt is FLOAT64:
        return v.astype(np.float64)
    if v.dtype == np.float32 and fmt is FLOAT32:
        return v.copy()
    if is_bfloat16_dtype(v.dtype):
        v = v.astype(np.float32)
    v = v.astype(np.float64) if v.dtype != np.float64 else v
    if fmt is FLOAT32:
        with np.errstate(over="ignore"):
            return v.astype(np.float32)
    if fmt is FLOAT16:
        with np.errstate(over="ignore"):
            return v.astype(np.float16).astype(np.float32)
    bits = _f32_to_bf16_bits(_f64_to_f32_round_to_odd(v)).astype(np.uint32) << np.uint32(16)
    return bits.view(np.float32).reshape(v.shape)


def _round_integer(q: int, digits: int) -> int:
    """``q`` rounded to ``digits`` significant bits, ties to even."""
    magnitude = abs(q)
    shift = magnitude.bit_length() - digits
    if shift <= 0:
        return q
    kept, rest = magnitude >> shift, magnitude & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    if rest > half or (rest == half and kept & 1):
        kept += 1
    return (kept << shift) * (-1 if q < 0 else 1)


_DIGITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def integer_value(fmt: Format, q: int) -> float:
    """An integer grid bound in the format, as the kernels convert it (SPEC step 2).

    The kernels convert the int64 bound to float64, or for the other formats
    to float32 and then to the format (both round to nearest even; float16
    overflows to inf). Pure Python, so that the framework adapters can call it
    while torch.compile or JAX trace them.
    """
    v = _round_integer(q, 53 if fmt.name == "float64" else 24)
    v = _round_integer(v, _DIGITS[fmt.name])
    if abs(v) > fmt.max:
        return float("inf") if v > 0 else float("-inf")
    return float(v)


def round_scalar(fmt: Format, value: float) -> float:
    """One Python float rounded to the format (nearest even), as a Python float."""
    return kernels.round_value(fmt.code, value)


def bits_to_values(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns (uint16) -> float32 values, exactly."""
    return (np.asarray(bits, dtype=np.uint16).astype(np.uint32) << np.uint32(16)).view(np.float32)


def values_as_float64(data: np.ndarray, fmt: Format) -> np.ndarray:
    """Values held in the kernels' storage type (uint16 for 16-bit formats) as float64."""
    if fmt is FLOAT16:
        return data.view(np.float16).astype(np.float64)
    if fmt is BFLOAT16:
        return bits_to_values(data).astype(np.float64)
    return data.astype(np.float64)


def to_public(values: np.ndarray, fmt: Format, dtype: np.dtype | None) -> np.ndarray:
    """Compute-type values -> arrays of the user's type (bfloat16 bits mode: float32)."""
    if fmt is FLOAT16:
        return values.astype(np.float16)
    if fmt is BFLOAT16 and dtype is not None and is_bfloat16_dtype(dtype):
        return values.astype(dtype)
    return values


def value_dtype(fmt: Format, bfloat16_bits: bool) -> np.dtype:
    """The dtype of values of the format in memory: bfloat16 is ml_dtypes' (or uint16 bits)."""
    if fmt is BFLOAT16:
        return np.dtype(np.uint16) if bfloat16_bits else bfloat16_dtype()
    return np.dtype(fmt.name)


def file_value_dtype(fmt: Format, bfloat16_bits: bool) -> np.dtype:
    """The dtype of values of the format in a ``.npy``: ml_dtypes' bfloat16 is saved as V2."""
    if fmt is BFLOAT16:
        return np.dtype(np.uint16) if bfloat16_bits else np.dtype("V2")
    return np.dtype(fmt.name)


def dtype_name(dt: np.dtype) -> str:
    """A dtype as text that :func:`dtype_from_name` reads back (bfloat16 by name)."""
    return "bfloat16" if is_bfloat16_dtype(dt) else dt.str


def dtype_from_name(name: str) -> np.dtype:
    """The dtype :func:`dtype_name` wrote."""
    if name == "bfloat16":
        return bfloat16_dtype()
    return np.dtype(name)


def values_to_bits(values: np.ndarray) -> np.ndarray:
    """float32 values (already bfloat16-representable) -> bfloat16 bit patterns."""
    return _f32_to_bf16_bits(values)
