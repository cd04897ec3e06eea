"""Sharded safetensors checkpoints: the ``*.safetensors.index.json`` file and its shards.

A sharded checkpoint is a directory with shard files and an index
``{"metadata": {"total_size": ...}, "weight_map": {tensor name: shard file name}}``.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any

from .safetensors import Header, load_json, read_header

__all__ = ["INDEX_SUFFIX", "Index", "find_checkpoint", "read_index", "write_index"]

INDEX_SUFFIX = ".safetensors.index.json"
"""How an index file's name ends (``model.safetensors.index.json``)."""


@dataclass(frozen=True)
class Index:
    """A validated safetensors index and the headers of its shards.

    Attributes
    ----------
    path : str
        The index file.
    metadata : dict
        The index's ``metadata`` object (``{}`` when it has none).
    total_size : int or None
        ``metadata["total_size"]`` as the index declares it (the bytes of tensor data).
    weight_map : dict of str to str
        Each tensor's shard file name, in the index's order.
    shards : tuple of str
        The shard file names, sorted.
    headers : dict of str to Header
        Each shard's header, by shard file name.

    Examples
    --------
    >>> import numpy as np
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> os.mkdir("ckpt")
    >>> for i, names in enumerate([["a"], ["b", "c"]]):
    ...     with open(f"ckpt/model-{i + 1:05}-of-00002.safetensors", "wb") as f:
    ...         write_arrays(f, {n: np.zeros(2, np.float32) for n in names})
    >>> with open("ckpt/model.safetensors.index.json", "w") as f:
    ...     write_index(f, {"a": "model-00001-of-00002.safetensors",
    ...                     "b": "model-00002-of-00002.safetensors",
    ...                     "c": "model-00002-of-00002.safetensors"}, 24)
    >>> index = read_index("ckpt")
    >>> index.shards, index.total_size, index.tensor_bytes
    (('model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'), 24, 24)
    """

    path: str
    metadata: dict[str, Any]
    total_size: int | None
    weight_map: dict[str, str]
    shards: tuple[str, ...]
    headers: dict[str, Header]

    @property
    def directory(self) -> str:
        """The directory holding the index and its shards."""
        return os.path.dirname(self.path)

    @property
    def shard_paths(self) -> list[str]:
        """The shards' paths, sorted."""
        return [os.path.join(self.directory, s) for s in self.shards]

    @property
    def tensor_bytes(self) -> int:
        """The bytes of tensor data in all shards (what ``total_size`` should say)."""
        return sum(t.nbytes for h in self.headers.values() for t in h.tensors)


def _fail(path: str, problem: str) -> ValueError:
    return ValueError(f"{path}: {problem}")


def _plain_file_name(name: object) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..")
            and os.path.basename(name) == name and "/" not in name and "\\" not in name)


def _find_index_file(directory: str) -> str | None:
    found = sorted(n for n in os.listdir(directory) if n.endswith(INDEX_SUFFIX))
    if len(found) > 1:
        raise ValueError(f"{directory} has several index files ({', '.join(found)}); "
                         "name the one to use")
    return os.path.join(directory, found[0]) if found else None


def read_index(src: str | os.PathLike[str]) -> Index:
    """Read and validate a sharded checkpoint's index and its shards' headers.

    Parameters
    ----------
    src : str or os.PathLike
        The index file, or the directory holding it (and only one).

    Returns
    -------
    Index

    Raises
    ------
    FileNotFoundError
        If there is no index.
    ValueError
        If the index is not a JSON object with a ``weight_map`` of tensor names to plain
        file names, repeats a key, has a ``total_size`` that is not a non-negative integer,
        names a shard that does not exist, lists a tensor its shard lacks, or if a shard
        holds a tensor the index does not list, or any shard is not valid safetensors.
        The message names the index and the shard or tensor.

    Examples
    --------
    >>> read_index("nowhere")
    Traceback (most recent call last):
    FileNotFoundError: nowhere: no such file or directory
    """
    path = os.fspath(src)
    if os.path.isdir(path):
        found = _find_index_file(path)
        if found is None:
            raise FileNotFoundError(f"{path} has no *{INDEX_SUFFIX} file")
        path = found
    elif not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    with open(path, "rb") as f:
        doc = load_json(f.read(), path, "index")
    if not isinstance(doc, dict):
        raise _fail(path, "the index is not a JSON object")
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise _fail(path, "the index's metadata is not a JSON object")
    total = metadata.get("total_size")
    if total is not None and (isinstance(total, bool) or not isinstance(total, int)
                              or total < 0):
        raise _fail(path, f"total_size {total!r} is not a non-negative integer")
    weight_map = doc.get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise _fail(path, "the index has no weight_map of tensor names to shard files")
    for name, shard in weight_map.items():
        if not _plain_file_name(shard):
            raise _fail(path, f"tensor {name!r}: shard {shard!r} is not a file name in the "
                              "index's directory")
    directory = os.path.dirname(path)
    shards = tuple(sorted(set(weight_map.values())))
    headers = {}
    for shard in shards:
        shard_path = os.path.join(directory, shard)
        if not os.path.isfile(shard_path):
            raise _fail(path, f"shard {shard} does not exist (expected at {shard_path})")
        headers[shard] = read_header(shard_path)
    for name, shard in weight_map.items():
        if name not in headers[shard]:
            raise _fail(path, f"tensor {name!r} is not in its shard {shard}")
    for shard, header in headers.items():
        for t in header.tensors:
            if weight_map.get(t.name) != shard:
                raise _fail(path, f"shard {shard} holds tensor {t.name!r}, which the index "
                                  f"maps to {weight_map.get(t.name, 'no shard')}")
    return Index(path, metadata, total, dict(weight_map), shards, headers)


def write_index(dest: str | os.PathLike[str] | IO[Any], weight_map: Mapping[str, str],
                total_size: int, metadata: Mapping[str, Any] | None = None) -> None:
    """Write a safetensors index as ``transformers`` does (indented, sorted keys).

    Parameters
    ----------
    dest : str, os.PathLike or file object
        The index file to create, or an open text or binary file to write into.
    weight_map : mapping of str to str
        Each tensor's shard file name (a plain name in the index's directory).
    total_size : int
        The bytes of tensor data in all shards.
    metadata : mapping, optional
        More entries of the index's ``metadata`` (``total_size`` is set from the argument).

    Examples
    --------
    >>> buf = io.StringIO()
    >>> write_index(buf, {"w": "model.safetensors"}, 8, {"format": "pt"})
    >>> print(buf.getvalue(), end="")
    {
      "metadata": {
        "format": "pt",
        "total_size": 8
      },
      "weight_map": {
        "w": "model.safetensors"
      }
    }
    """
    if isinstance(total_size, bool) or not isinstance(total_size, int) or total_size < 0:
        raise ValueError(f"total_size must be a non-negative integer, not {total_size!r}")
    for name, shard in weight_map.items():
        if not isinstance(name, str) or not _plain_file_name(shard):
            raise ValueError(f"weight_map must map tensor names to plain file names; "
                             f"{name!r} -> {shard!r} does not")
    doc = {"metadata": {**(metadata or {}), "total_size": total_size},
           "weight_map": dict(weight_map)}
    text = json.dumps(doc, indent=2, sort_keys=True) + "\n"
    if isinstance(dest, (str, os.PathLike)):
        with open(dest, "w", encoding="utf-8") as f:
            f.write(text)
    elif isinstance(dest, io.TextIOBase):
        dest.write(text)
    else:
        dest.write(text.encode("utf-8"))


def find_checkpoint(src: str | os.PathLike[str]) -> tuple[list[str], Index | None]:
    """The files of a checkpoint: one safetensors file, or an index and its shards.

    Parameters
    ----------
    src : str or os.PathLike
        A ``.safetensors`` file, an index file, or a directory holding either one index
        (and its shards) or exactly one ``.safetensors`` file.

    Returns
    -------
    paths : list of str
        The safetensors files, shards sorted by name.
    index : Index or None
        The validated index, None for a single file.

    Examples
    --------
    >>> import numpy as np
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> os.mkdir("single")
    >>> with open("single/model.safetensors", "wb") as f:
    ...     write_arrays(f, {"w": np.zeros(1, np.float32)})
    >>> find_checkpoint("single")
    (['single/model.safetensors'], None)
    """
    path = os.fspath(src)
    if os.path.isfile(path):
        if path.endswith(INDEX_SUFFIX):
            index = read_index(path)
            return index.shard_paths, index
        return [path], None
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such file or directory")
    index_path = _find_index_file(path)
    if index_path is not None:
        index = read_index(index_path)
        return index.shard_paths, index
    files = sorted(n for n in os.listdir(path) if n.endswith(".safetensors"))
    if len(files) != 1:
        raise ValueError(f"{path} has {len(files)} .safetensors files and no index"
                         + (f" ({', '.join(files)})" if files else ""))
    return [os.path.join(path, files[0])], None
