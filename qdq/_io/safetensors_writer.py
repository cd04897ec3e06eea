"""Writing the safetensors format sequentially, with NumPy alone.

The header is planned from the tensors' names, dtypes and shapes before any data is
written, so a file can be written tensor by tensor and chunk by chunk.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np

from .safetensors import (
    DTYPES,
    MAX_HEADER_BYTES,
    MAX_RANK,
    METADATA_KEY,
    lone_surrogate,
    nbytes_of,
)

__all__ = ["SafetensorsWriter", "plan_layout", "write_arrays"]

_ALIGN = 8
# ml_dtypes' names for the formats stored as bits in DTYPES, accepted by the writer.
_ML_NAMES = {"BF16": "bfloat16", "F8_E5M2": "float8_e5m2", "F8_E4M3": "float8_e4m3fn",
             "F8_E8M0": "float8_e8m0fnu", "F8_E4M3FNUZ": "float8_e4m3fnuz",
             "F8_E5M2FNUZ": "float8_e5m2fnuz"}


def _check_names_and_metadata(names: Iterable[str], metadata: Mapping[str, str] | None,
                              ) -> None:
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be strings, not {type(name).__name__}")
        if name == METADATA_KEY or name in seen:
            raise ValueError(f"tensor name {name!r} is "
                             + ("reserved" if name == METADATA_KEY else "repeated"))
        if lone_surrogate(name) is not None:
            raise ValueError(f"tensor name {name!r:.200} is not valid Unicode (a lone "
                             "surrogate): UTF-8 cannot encode it")
        seen.add(name)
    if metadata is not None and not all(
            isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise TypeError("metadata must map strings to strings")
    for k, v in (metadata or {}).items():
        if lone_surrogate(k) is not None or lone_surrogate(v) is not None:
            raise ValueError(f"metadata {k!r:.100}: {v!r:.100} is not valid Unicode (a lone "
                             "surrogate): UTF-8 cannot encode it")


def plan_layout(entries: Sequence[tuple[str, str, Sequence[int]]],
                metadata: Mapping[str, str] | None = None,
                ) -> tuple[bytes, list[tuple[int, int]]]:
    """The header of a safetensors file holding ``entries``, in that order.

    Parameters
    ----------
    entries : sequence of (name, dtype name, shape)
        The tensors, in the order their data will be written.
    metadata : mapping of str to str, optional
        The ``__metadata__`` map (omitted when None).

    Returns
    -------
    header : bytes
        The 8-byte length and the JSON header, padded with spaces so that the data starts
        at a multiple of 8 bytes: the first ``len(header)`` bytes of the file.
    offsets : list of (int, int)
        Each tensor's ``data_offsets``, relative to the data start ``len(header)``.

    Examples
    --------
    >>> header, offsets = plan_layout([("a", "F32", (2,))])
    >>> header[8:].decode()
    '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} '
    >>> header, offsets = plan_layout([("a", "F32", (2,)), ("b", "BF16", ())], {"k": "v"})
    >>> len(header) % 8, offsets
    (0, [(0, 8), (8, 10)])
    """
    _check_names_and_metadata((e[0] for e in entries), metadata)
    doc: dict[str, Any] = {} if metadata is None else {METADATA_KEY: dict(metadata)}
    offsets = []
    pos = 0
    for name, dtype, shape in entries:
        if dtype not in DTYPES:
            raise ValueError(f"tensor {name!r}: unknown dtype {dtype!r}")
        if len(shape) > MAX_RANK:
            raise ValueError(f"tensor {name!r}: the shape has {len(shape)} dimensions, more "
                             f"than the {MAX_RANK} NumPy supports")
        dims = [_dimension(d, name) for d in shape]
        need = nbytes_of(DTYPES[dtype][0], dims)
        if need is None:
            raise ValueError(f"tensor {name!r}: {math.prod(dims)} elements of {dtype} end "
                             "inside a byte")
        doc[name] = {"dtype": dtype, "shape": dims, "data_offsets": [pos, pos + need]}
        offsets.append((pos, pos + need))
        pos += need
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % _ALIGN)
    if len(text) > MAX_HEADER_BYTES:
        raise ValueError(f"the header would take {len(text)} bytes, over the limit of "
                         f"{MAX_HEADER_BYTES}")
    return struct.pack("<Q", len(text)) + text, offsets


def _dimension(d: object, name: str) -> int:
    if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 0:
        raise ValueError(f"tensor {name!r}: dimension {d!r} is not a non-negative integer")
    return int(d)


def _bytes_of(dtype: str, data: object, name: str) -> memoryview:
    """The little-endian bytes of a chunk of tensor ``name`` of safetensors ``dtype``."""
    if not isinstance(data, np.ndarray):
        return memoryview(data).cast("B")  # type: ignore[arg-type]
    storage = DTYPES[dtype][1]
    ok = (storage is not None and data.dtype.newbyteorder("<") == storage) \
        or data.dtype.name == _ML_NAMES.get(dtype) or (storage is None and data.dtype == np.uint8)
    if not ok:
        raise TypeError(f"tensor {name!r} is {dtype}; its data cannot be a {data.dtype} array")
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    return np.ascontiguousarray(data).reshape(-1).view(np.uint8).data


class SafetensorsWriter:
    """Write a safetensors file sequentially into an open binary file.

    The header is written at once; then each tensor's bytes, in the planned order, in as
    many chunks as the caller likes. The file object is neither closed nor renamed here.

    Parameters
    ----------
    f : binary file object
        Open for writing, positioned where the file starts (usually 0).
    entries : sequence of (name, dtype name, shape)
        The tensors, in the order their data will be written.
    metadata : mapping of str to str, optional
        The ``__metadata__`` map.

    Examples
    --------
    >>> from qdq._io.safetensors import read_header, tensor_memmap
    >>> with open("w.safetensors", "wb") as f:
    ...     w = SafetensorsWriter(f, [("x", "F32", (4,)), ("y", "U8", (0,))])
    ...     w.write("x", np.arange(2, dtype=np.float32))
    ...     w.write("x", np.arange(2, 4, dtype=np.float32))
    ...     w.finish()
    >>> tensor_memmap(read_header("w.safetensors"), "x").tolist()
    [0.0, 1.0, 2.0, 3.0]
    """

    def __init__(self, f: BinaryIO, entries: Sequence[tuple[str, str, Sequence[int]]],
                 metadata: Mapping[str, str] | None = None) -> None:
        header, offsets = plan_layout(entries, metadata)
        self._f = f
        self._plan = [(name, dtype, end - begin)
                      for (name, dtype, _), (begin, end) in zip(entries, offsets, strict=True)]
        self._index = 0
        self._done = 0
        self.data_start = len(header)
        self._put(memoryview(header))

    def _put(self, mv: memoryview) -> None:
        written = 0
        while written < len(mv):
            k = self._f.write(mv[written:])
            if not k:
                raise OSError(f"the file accepted no bytes after {written} of {len(mv)}")
            written += k

    def _advance_past_complete(self, name: str | None) -> None:
        """Move past finished tensors until the tensor ``name`` (or an unfinished one)."""
        while (self._index < len(self._plan) and self._plan[self._index][0] != name
               and self._done == self._plan[self._index][2]):
            self._index += 1
            self._done = 0

    def write(self, name: str, data: object) -> None:
        """Append a chunk (an array or bytes, C order) of tensor ``name``'s data.

        Tensors come in the planned order; a chunk may not run past its tensor's end.
        An empty tensor needs no call.
        """
        self._advance_past_complete(name)
        if self._index == len(self._plan):
            raise ValueError(f"tensor {name!r}: every tensor's data is already written")
        current, dtype, total = self._plan[self._index]
        if name != current:
            raise ValueError(f"tensor {name!r} written while {current!r} expects "
                             f"{total - self._done} more bytes")
        mv = _bytes_of(dtype, data, name)
        if self._done + len(mv) > total:
            raise ValueError(f"tensor {name!r}: {len(mv)} more bytes would exceed its "
                             f"{total} (already {self._done})")
        self._put(mv)
        self._done += len(mv)

    def finish(self) -> None:
        """Check that every tensor's data was written in full."""
        self._advance_past_complete(None)
        if self._index < len(self._plan):
            name, _, total = self._plan[self._index]
            raise ValueError(f"tensor {name!r}: {self._done} of its {total} bytes were written")


def write_arrays(f: BinaryIO, arrays: Mapping[str, np.ndarray],
                 metadata: Mapping[str, str] | None = None) -> None:
    """Write NumPy arrays as a safetensors file into an open binary file, in mapping order.

    bfloat16 and 8-bit float arrays of ml_dtypes are written as BF16 and F8_*; a ``uint16``
    array is U16 (write bfloat16 bits with :class:`SafetensorsWriter` and ``"BF16"``).

    Examples
    --------
    >>> from qdq._io.safetensors import read_header
    >>> with open("a.safetensors", "wb") as f:
    ...     write_arrays(f, {"s": np.float16(1.5), "m": np.eye(2, dtype=bool)})
    >>> [(t.name, t.dtype, t.shape) for t in read_header("a.safetensors").tensors]
    [('s', 'F16', ()), ('m', 'BOOL', (2, 2))]
    """
    by_ml = {ml: st for st, ml in _ML_NAMES.items()}
    by_np = {storage.newbyteorder("="): st for st, (_, storage) in DTYPES.items()
             if storage is not None and st not in _ML_NAMES}
    entries = []
    for name, arr in arrays.items():
        a = np.asarray(arr)
        dtype = by_ml.get(a.dtype.name) or by_np.get(a.dtype.newbyteorder("="))
        if dtype is None:
            raise TypeError(f"tensor {name!r}: safetensors has no dtype for {a.dtype}")
        entries.append((name, dtype, a.shape))
    w = SafetensorsWriter(f, entries, metadata)
    for name, arr in arrays.items():
        w.write(name, np.asarray(arr))
    w.finish()
