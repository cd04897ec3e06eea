"""The .npy header: read (versions 1.0, 2.0, 3.0) and write, with public NumPy only.

A .npy file is the magic ``\\x93NUMPY``, a version (major, minor), the header
length (2 bytes little-endian for 1.0, 4 bytes for 2.0 and 3.0), the header
(a Python dict literal, latin-1 for 1.x/2.x and UTF-8 for 3.0) padded to a
multiple of 64 bytes, then the data. qdq never unpickles: object arrays are
refused by the sources.
"""

from __future__ import annotations

import ast
import struct
from typing import IO, Any, NamedTuple

import numpy as np

__all__ = ["NpyHeader", "read_header", "write_header"]

MAGIC = b"\x93NUMPY"
_LEN_FORMAT = {1: "<H", 2: "<I", 3: "<I"}


class NpyHeader(NamedTuple):
    """A parsed header: shape, Fortran order, dtype and where the data starts."""

    shape: tuple[int, ...]
    fortran: bool
    dtype: np.dtype
    data_offset: int


def _read_exact(f: IO[bytes], n: int, path: Any, what: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ValueError(f"{path}: corrupt .npy header (the file ends inside the {what})")
    return data


def read_header(f: IO[bytes], path: Any) -> NpyHeader:
    """Parse the header of an open .npy file positioned at its start.

    Raises ValueError naming the file for a missing magic string, an unknown
    version, a truncated or malformed header, or a shape with negative or
    non-integer dimensions.
    """
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise ValueError(f"{path} is not a .npy file (bad magic string); for a raw binary "
                         "file pass dtype= and shape=")
    major, minor = _read_exact(f, 2, path, "version")
    if major not in _LEN_FORMAT or minor != 0:
        raise ValueError(f"{path}: unsupported .npy version {major}.{minor} (qdq reads 1.0, "
                         "2.0 and 3.0)")
    fmt = _LEN_FORMAT[major]
    (length,) = struct.unpack(fmt, _read_exact(f, struct.calcsize(fmt), path, "header length"))
    raw = _read_exact(f, length, path, "header")
    try:
        text = raw.decode("utf-8" if major == 3 else "latin1")
        d = ast.literal_eval(text)
    except (UnicodeDecodeError, ValueError, SyntaxError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{path}: corrupt .npy header ({exc.__class__.__name__}: {exc})") \
            from None
    if not isinstance(d, dict) or set(d) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"{path}: corrupt .npy header (expected the keys descr, "
                         f"fortran_order and shape, got {text.strip()!r})")
    shape = d["shape"]
    if not isinstance(shape, tuple) or not all(type(s) is int and s >= 0 for s in shape):
        raise ValueError(f"{path}: corrupt .npy header (the shape must be a tuple of "
                         f"non-negative integers, got {shape!r})")
    if not isinstance(d["fortran_order"], bool):
        raise ValueError(f"{path}: corrupt .npy header (fortran_order must be True or False, "
                         f"got {d['fortran_order']!r})")
    try:
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: corrupt .npy header (descr {d['descr']!r}: {exc})") from None
    return NpyHeader(shape, d["fortran_order"], dtype, f.tell())


def write_header(f: IO[bytes], dtype: np.dtype, fortran: bool, shape: tuple[int, ...]) -> int:
    """Write a .npy header with NumPy's public writers (2.0 only when 1.0 cannot hold it).

    Returns the number of bytes written (where the data starts).
    """
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": bool(fortran),
              "shape": tuple(shape)}
    start = f.tell()
    if len(repr(header)) + 16 > 65535:
        np.lib.format.write_array_header_2_0(f, header)
    else:
        np.lib.format.write_array_header_1_0(f, header)
    return f.tell() - start
