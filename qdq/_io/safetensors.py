"""The safetensors format, read and written with NumPy alone.

A safetensors file is an 8-byte little-endian header length ``N``, ``N`` bytes of UTF-8
JSON, then the tensors' raw little-endian bytes, C-ordered. The JSON maps each tensor name
to ``{"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}`` (offsets relative to
the end of the header) and may hold a ``"__metadata__"`` map of strings to strings.

The reader is as strict as the reference implementation (the tensors tile the data area
exactly: no gap, no overlap, no trailing byte) and stricter where a file is ambiguous
(duplicate JSON keys). Every error is a ValueError naming the file and, when there is one,
the tensor.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DTYPES", "MAX_HEADER_BYTES", "MAX_RANK", "METADATA_KEY", "Header", "TensorEntry",
           "TensorReader", "load_json", "lone_surrogate", "nbytes_of", "parse_json", "read_header",
           "tensor_memmap"]

MAX_HEADER_BYTES = 100_000_000
"""The largest JSON header accepted, as in the reference implementation."""

MAX_RANK = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
"""The largest rank accepted: NumPy's (64 since NumPy 2, 32 before); no array has more."""

METADATA_KEY = "__metadata__"
_ENTRY_KEYS = ("dtype", "shape", "data_offsets")

DTYPES: dict[str, tuple[int, np.dtype | None]] = {
    "BOOL": (8, np.dtype("?")),
    "U8": (8, np.dtype("u1")), "I8": (8, np.dtype("i1")),
    "U16": (16, np.dtype("<u2")), "I16": (16, np.dtype("<i2")),
    "U32": (32, np.dtype("<u4")), "I32": (32, np.dtype("<i4")),
    "U64": (64, np.dtype("<u8")), "I64": (64, np.dtype("<i8")),
    "F16": (16, np.dtype("<f2")), "F32": (32, np.dtype("<f4")), "F64": (64, np.dtype("<f8")),
    "BF16": (16, np.dtype("<u2")),
    "C64": (64, np.dtype("<c8")),
    "F8_E5M2": (8, np.dtype("u1")), "F8_E4M3": (8, np.dtype("u1")),
    "F8_E8M0": (8, np.dtype("u1")), "F8_E4M3FNUZ": (8, np.dtype("u1")),
    "F8_E5M2FNUZ": (8, np.dtype("u1")),
    "F4": (4, None), "F6_E2M3": (6, None), "F6_E3M2": (6, None),
}
"""Each safetensors dtype name: its bits per element and the NumPy dtype that stores it.

bfloat16 and the 8-bit floats are stored as unsigned integers of their width (their bits),
so no optional package is needed; the packed 4- and 6-bit formats have no NumPy dtype.
"""

@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a safetensors file.

    Attributes
    ----------
    name : str
        The tensor's key in the header.
    dtype : str
        The safetensors dtype name (``"F32"``, ``"BF16"``, ...).
    storage : numpy.dtype or None
        The little-endian NumPy dtype holding its elements (``uint16`` bits for bfloat16),
        None for the packed 4- and 6-bit formats.
    shape : tuple of int
        The tensor's shape (``()`` for a scalar).
    begin, end : int
        Its bytes' absolute offsets in the file, ``end`` excluded.

    Examples
    --------
    >>> e = TensorEntry("w", "F32", np.dtype("<f4"), (2, 3), 80, 104)
    >>> e.nbytes, e.size
    (24, 6)
    """

    name: str
    dtype: str
    storage: np.dtype | None
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def nbytes(self) -> int:
        """The number of bytes of data."""
        return self.end - self.begin

    @property
    def size(self) -> int:
        """The number of elements."""
        return math.prod(self.shape)


@dataclass(frozen=True)
class Header:
    """The validated header of one safetensors file.

    Attributes
    ----------
    path : str
        The file.
    header_length : int
        ``N``, the length of the JSON header (padding included).
    data_start : int
        ``8 + N``: the absolute offset of the data area.
    metadata : dict of str to str, or None
        The ``__metadata__`` map, None when the file has none.
    tensors : tuple of TensorEntry
        The tensors in the order of their data in the file.

    Examples
    --------
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> with open("h.safetensors", "wb") as f:
    ...     write_arrays(f, {"w": np.ones((2, 2), np.float32)}, {"format": "np"})
    >>> h = read_header("h.safetensors")
    >>> h.names, h.metadata, h.data_start % 8
    (['w'], {'format': 'np'}, 0)
    >>> h["w"].shape, h["w"].begin == h.data_start
    ((2, 2), True)
    """

    path: str
    header_length: int
    data_start: int
    metadata: dict[str, str] | None
    tensors: tuple[TensorEntry, ...]
    _by_name: dict[str, TensorEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {t.name: t for t in self.tensors})

    @property
    def names(self) -> list[str]:
        """The tensor names, in data order."""
        return [t.name for t in self.tensors]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __getitem__(self, name: str) -> TensorEntry:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"{self.path} has no tensor {name!r}") from None


def _fail(path: str, problem: str, tensor: str | None = None) -> ValueError:
    where = f"{path}: tensor {tensor!r}" if tensor is not None else path
    return ValueError(f"{where}: {problem}")


class _JSONError(ValueError):
    """A problem found while the JSON is parsed, already worded."""


def _no_duplicate_keys(what: str):
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out = dict(pairs)
        if len(out) != len(pairs):
            seen: set[str] = set()
            for key, _ in pairs:
                if key in seen:
                    raise _JSONError(f"the {what} repeats the key {key!r:.200}")
                seen.add(key)
        return out
    return hook


def parse_json(text: str, what: str, strict: bool = True) -> Any:
    """Parse JSON strictly: no repeated key (in any object), no NaN or Infinity.

    Every problem is a ValueError saying what ``what`` (``"header"``, ``"rules file"``...)
    is: invalid JSON, a repeated key, nesting too deep for the parser (a RecursionError
    otherwise) or an integer too long. Not ``strict`` (a model's ``config.json``, read as
    ``json`` and transformers read it): repeated keys (the last wins), NaN and Infinity pass.

    Examples
    --------
    >>> parse_json('{"a": [1, {"b": null}]}', "rules file")
    {'a': [1, {'b': None}]}
    >>> parse_json('{"a": 1, "a": 2}', "rules file")
    Traceback (most recent call last):
    ValueError: the rules file repeats the key 'a'
    """
    try:
        if not strict:
            return json.loads(text)
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(what),
                          parse_constant=_no_constant)
    except _JSONError as exc:
        raise ValueError(str(exc)) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"the {what} is not valid JSON ({exc.msg} at character {exc.pos})"
                         ) from None
    except RecursionError:
        raise ValueError(f"the {what} is not valid JSON for qdq (nested too deeply)") from None
    except ValueError as exc:  # an integer too long
        raise ValueError(f"the {what} is not valid JSON ({exc})") from None


def load_json(raw: bytes, path: str, what: str, strict: bool = True) -> Any:
    """Parse UTF-8 JSON (see :func:`parse_json`); a ValueError names ``path``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(path, f"the {what} is not UTF-8 ({exc.reason} at byte {exc.start})"
                    ) from None
    try:
        return parse_json(text, what, strict)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def lone_surrogate(text: str) -> int | None:
    """The position of the first lone UTF-16 surrogate in ``text`` (None if it has none).

    JSON's ``\\ud800`` escapes give Python strings that UTF-8 cannot encode; the
    reference implementation refuses them, and no file could be written with them.

    Examples
    --------
    >>> lone_surrogate("w\\ud800"), lone_surrogate("\\U0001f600")
    (1, None)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


def _check_text(path: str, text: str, what: str, tensor: str | None = None) -> None:
    at = lone_surrogate(text)
    if at is not None:
        raise _fail(path, f"{what} {text!r:.200} is not valid Unicode (a lone surrogate "
                          f"{text[at]!r} at character {at})", tensor)


def _uints(xs: object) -> bool:
    """Whether ``xs`` is a JSON list of integers that fit 64 unsigned bits."""
    return isinstance(xs, list) and all(type(x) is int and 0 <= x < 2**64 for x in xs)


def _entry(path: str, name: str, raw: object) -> tuple[str, tuple[int, ...], int, int, int]:
    if not isinstance(raw, dict):
        raise _fail(path, f"the entry is a JSON {type(raw).__name__}, not an object", name)
    try:
        dtype, shape, offsets = raw["dtype"], raw["shape"], raw["data_offsets"]
    except KeyError:
        missing = [k for k in _ENTRY_KEYS if k not in raw]
        raise _fail(path, f"the entry has no {', '.join(missing)}", name) from None
    _check_text(path, name, "the name", name)
    bits = DTYPES[dtype][0] if isinstance(dtype, str) and dtype in DTYPES else None
    if bits is None:
        raise _fail(path, f"unknown dtype {dtype!r:.100} (known: {', '.join(DTYPES)})", name)
    if isinstance(shape, list) and len(shape) > MAX_RANK:
        raise _fail(path, f"the shape has {len(shape)} dimensions, more than the {MAX_RANK} "
                          "NumPy supports", name)
    if not _uints(shape):
        raise _fail(path, f"the shape {shape!r:.300} is not a list of non-negative integers",
                    name)
    if not _uints(offsets) or len(offsets) != 2:
        raise _fail(path, f"data_offsets {offsets!r:.100} is not two non-negative integers",
                    name)
    # The reference multiplies in 64 bits, dimension by dimension: [2**62, 2**62, 0] fails.
    count = 1
    for d in shape:
        count *= d
        if count * bits >= 2**64:
            raise _fail(path, f"the shape {shape} overflows 64 bits of {dtype}", name)
    return dtype, tuple(shape), offsets[0], offsets[1], count


def read_header(path: str | os.PathLike[str]) -> Header:
    """Read and validate the header of a safetensors file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.

    Returns
    -------
    Header
        The metadata and the tensors in the order of their data, with absolute offsets.

    Raises
    ------
    ValueError
        If the file is not a valid safetensors file: a header length beyond the file or over
        100 MB, a header that is not UTF-8 JSON or repeats a key, an entry that is not an
        object or has an unknown dtype, a bad shape or offsets, a size that does not match
        dtype and shape, tensors that overlap or leave a gap or trailing bytes, or metadata
        that is not a map of strings to strings. A tensor name or metadata string with a
        lone surrogate (``\\ud800``), and a shape of more than :data:`MAX_RANK` dimensions
        are refused too: every header read here can be written back. The message names the
        file and the tensor.

    Examples
    --------
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> with open("r.safetensors", "wb") as f:
    ...     write_arrays(f, {"b": np.zeros(3, np.int8), "a": np.arange(4.0)})
    >>> [(t.name, t.dtype, t.shape, t.nbytes) for t in read_header("r.safetensors").tensors]
    [('b', 'I8', (3,), 3), ('a', 'F64', (4,), 32)]
    >>> with open("bad.safetensors", "wb") as f:
    ...     _ = f.write(b"\\x00" * 7)
    >>> read_header("bad.safetensors")
    Traceback (most recent call last):
    ValueError: bad.safetensors: the file has 7 bytes, fewer than the 8 of the header length
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise _fail(path, f"the file has {size} bytes, fewer than the 8 of the header length")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER_BYTES:
            raise _fail(path, f"the header length {n} is over the limit of {MAX_HEADER_BYTES}")
        if 8 + n > size:
            raise _fail(path, f"the header length {n} runs past the end of the file "
                              f"({size} bytes)")
        raw = f.read(n)
    if len(raw) != n:
        raise _fail(path, "the file was truncated while its header was read")
    doc = load_json(raw, path, "header")
    if not isinstance(doc, dict):
        raise _fail(path, f"the header is a JSON {type(doc).__name__}, not an object")
    metadata = doc.pop(METADATA_KEY, None)
    if metadata is not None and not (
            isinstance(metadata, dict)
            and all(isinstance(v, str) for v in metadata.values())):
        raise _fail(path, f"__metadata__ is not a map of strings to strings: {metadata!r:.200}")
    for key, value in (metadata or {}).items():
        _check_text(path, key, "the __metadata__ key")
        _check_text(path, value, f"the __metadata__ value of {key!r:.100}:")
    data_start = 8 + n
    parsed = [(name, *_entry(path, name, raw_entry)) for name, raw_entry in doc.items()]
    # The data order; among empty tensors at one offset, the header's order.
    parsed.sort(key=lambda p: (p[3], p[4]))
    tensors = []
    expected = 0
    for name, dtype, shape, begin, end, count in parsed:
        if begin != expected or end < begin:
            problem = ("overlaps the tensor before it" if begin < expected else
                       f"leaves a gap of {begin - expected} bytes before it" if end >= begin
                       else "ends before it begins")
            raise _fail(path, f"data_offsets [{begin}, {end}] {problem} "
                              "(tensors must tile the data area)", name)
        bits, storage = DTYPES[dtype]
        need, partial = divmod(count * bits, 8)
        if partial:
            raise _fail(path, f"{count} elements of {dtype} end inside a byte", name)
        if end - begin != need:
            raise _fail(path, f"data_offsets [{begin}, {end}] hold {end - begin} bytes, but "
                              f"shape {list(shape)} of {dtype} needs {need}", name)
        if data_start + end > size:
            raise _fail(path, f"data_offsets [{begin}, {end}] run past the end of the file "
                              f"(its data area has {size - data_start} bytes)", name)
        expected = end
        tensors.append(TensorEntry(name, dtype, storage, shape, data_start + begin,
                                   data_start + end))
    if data_start + expected != size:
        raise _fail(path, f"the file has {size - data_start - expected} bytes after its last "
                          "tensor's data")
    return Header(path, n, data_start, metadata, tuple(tensors))


def nbytes_of(bits: int, shape: Sequence[int]) -> int | None:
    """The bytes ``shape`` elements of ``bits`` bits take; None if they end inside a byte."""
    total = math.prod(shape) * bits
    return total // 8 if total % 8 == 0 else None


def _storage(header: Header, name: str) -> tuple[TensorEntry, np.dtype]:
    entry = header[name]
    if entry.storage is None:
        raise TypeError(f"{header.path}: tensor {name!r}: {entry.dtype} packs several "
                        "elements per byte and has no NumPy dtype")
    return entry, entry.storage


def tensor_memmap(header: Header, name: str, mode: Literal["r", "c"] = "r") -> np.ndarray:
    """A memory-mapped view of one tensor's data.

    Parameters
    ----------
    header : Header
        The file's header, from :func:`read_header`.
    name : str
        The tensor.
    mode : {"r", "c"}
        ``"r"``: read-only; ``"c"``: copy-on-write (writes stay in memory, never reach
        the file).

    Returns
    -------
    numpy.ndarray
        The tensor with its storage dtype (``uint16`` bits for bfloat16) and shape. An empty
        tensor is a new empty array (an empty range cannot be mapped).

    Raises
    ------
    KeyError
        If the file has no such tensor.
    TypeError
        For the packed 4- and 6-bit formats.

    Examples
    --------
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> with open("m.safetensors", "wb") as f:
    ...     write_arrays(f, {"w": np.arange(6, dtype=np.float32).reshape(2, 3)})
    >>> w = tensor_memmap(read_header("m.safetensors"), "w")
    >>> w.tolist(), w.flags.writeable
    ([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]], False)
    """
    if mode not in ("r", "c"):
        raise ValueError(f"mode must be 'r' or 'c', not {mode!r}")
    entry, storage = _storage(header, name)
    if entry.nbytes == 0:
        out = np.empty(entry.shape, storage)
        out.flags.writeable = mode == "c"
        return out
    return np.memmap(header.path, dtype=storage, mode=mode, offset=entry.begin,
                     shape=entry.shape, order="C")


class TensorReader:
    """Positional reads of tensor elements from one safetensors file into given buffers.

    Parameters
    ----------
    header : Header
        The file's header, from :func:`read_header`.

    Examples
    --------
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> with open("c.safetensors", "wb") as f:
    ...     write_arrays(f, {"x": np.arange(10, dtype=np.int16)})
    >>> buf = np.empty(8, np.uint8)
    >>> with TensorReader(read_header("c.safetensors")) as r:
    ...     [c.tolist() for c in r.chunks("x", buf)]
    [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    """

    def __init__(self, header: Header) -> None:
        self.header = header
        self._f: io.FileIO | None = io.FileIO(header.path, "rb")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self._f is not None:
            self._f.close()
            self._f = None

    def read(self, name: str, start: int, count: int, buf: np.ndarray) -> np.ndarray:
        """Read elements ``start`` to ``start + count`` (flat, C order) of a tensor.

        ``buf`` is a C-contiguous byte buffer (a ``uint8`` array) of at least
        ``count * itemsize`` bytes; the result is a native-order view of its start with
        the storage dtype. A ValueError names the file if it shrank since its header was read.
        """
        if self._f is None:
            raise ValueError(f"{self.header.path}: the reader is closed")
        entry, storage = _storage(self.header, name)
        if not 0 <= start <= start + count <= entry.size:
            raise ValueError(f"{self.header.path}: tensor {name!r}: elements [{start}, "
                             f"{start + count}) are outside its {entry.size}")
        n = count * storage.itemsize
        if buf.dtype != np.uint8 or not buf.flags.c_contiguous or buf.nbytes < n:
            raise ValueError(f"the buffer must be a C-contiguous uint8 array of at least {n} "
                             f"bytes, not {buf.dtype} with {buf.nbytes}")
        view = buf.data.cast("B")[:n]
        pos = entry.begin + start * storage.itemsize
        got = 0
        fd = self._f.fileno()
        while got < n:
            k = os.preadv(fd, [view[got:]], pos + got) if hasattr(os, "preadv") \
                else self._read_at(view[got:], pos + got)
            if k == 0:
                raise ValueError(f"{self.header.path} was truncated while being read (at byte "
                                 f"{pos + got}, tensor {name!r} ends at {entry.end})")
            got += k
        arr = buf[:n].view(storage)
        if not storage.isnative:
            arr = arr.byteswap(inplace=True).view(storage.newbyteorder("="))
        return arr

    def _read_at(self, view: memoryview, pos: int) -> int:  # pragma: no cover - no preadv
        assert self._f is not None
        self._f.seek(pos)
        return self._f.readinto(view) or 0

    def chunks(self, name: str, buf: np.ndarray) -> Iterator[np.ndarray]:
        """Yield a tensor's elements in order, as many per chunk as ``buf`` holds.

        Each chunk is a flat view of ``buf`` and is overwritten by the next one.
        """
        _, storage = _storage(self.header, name)
        per = buf.nbytes // storage.itemsize
        if per == 0:
            raise ValueError(f"the buffer ({buf.nbytes} bytes) holds no element of {storage}")
        total = self.header[name].size
        for start in range(0, total, per):
            yield self.read(name, start, min(per, total - start), buf)
