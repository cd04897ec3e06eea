"""Which tensors of a checkpoint are quantized, and how: rules, skip patterns, defaults.

A plan is made before anything is written: every shard's header is read and
checked, every tensor's settings are resolved and checked against its rank,
every output header is laid out as the writer will lay it out (its errors
come first, naming the file and tensor), and each output shard gets a
*stamp* (the ``qdq`` entry of its ``__metadata__``): the resolved settings
of its tensors and the identity of its source shard. A shard already in the
destination with the same stamp is complete and is not written again (a
rerun resumes).

The source's identity is its file name, size, modification time, status
change time (ctime), inode number and the SHA-256 of its header. Any write
to the file changes its ctime, which no tool can set back (``touch -r``,
``os.utime`` and ``cp -p`` set the mtime only), so a source rewritten in place
is written again even with its mtime restored; a different file under the same
name (another fine-tune of the same base, with the same header, size and a
normalised mtime) has another inode and ctime. A copy of the source is such a
different file, so it is written again too: telling a copy from a different
model with the same name, size, header and mtime takes reading every byte
(about as long as the run itself), which a resume avoids. Renaming or moving
the directory that holds the source keeps its identity; renaming the file
itself, ``chmod``, ``chown`` or a new hard link change its ctime (written again).

Resolution, per tensor: the first rule whose pattern matches the name
(``fnmatch``) decides (its settings over the run's keyword arguments, or
``None``: copy); then the ``skip`` patterns (copy); then the default: a
float16, bfloat16, float32 or float64 tensor of rank 2 or more is
quantize-dequantized with the keyword arguments, anything else is copied.
Integer, bool and other non-float tensors are always copied; a rule's
settings may quantize a float tensor of rank 0 or 1. A negative axis counts
from the end of each tensor's shape. The settings include ``calibrate`` (a
calibration method, or None for the data's range).

An export (:mod:`qdq._checkpoint.export`) gives each tensor to quantize a
*layout*: the output tensors it becomes (names, dtypes, shapes, so that each
output shard's header is planned up front) and how to write them; the stamp
records it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from .._calibrate.methods import check_calibration
from .._core.blocks import check_block_size
from .._core.formats import BFLOAT16, FLOAT16, FLOAT32, FLOAT64, Format
from .._core.validate import OpArgs, check_axis, normalize_axis_arg
from .._io.safetensors import Header, TensorEntry, read_header
from .._io.safetensors_index import INDEX_SUFFIX, Index, find_checkpoint
from .._io.safetensors_writer import plan_layout

__all__ = ["FORMATS", "SETTING_KEYS", "STAMP_KEY", "CheckpointPlan", "ShardPlan", "TensorPlan",
           "check_rules", "check_settings", "model_directory", "plan_checkpoint",
           "resolve_tensor"]

#: The op's keyword arguments a rule may set.
SETTING_KEYS = ("num_bits", "axis", "block_size", "signed_input", "narrow_range", "round_mode",
                "calibrate")

#: The safetensors dtypes qdq quantizes, and their formats.
FORMATS: dict[str, Format] = {"F16": FLOAT16, "BF16": BFLOAT16, "F32": FLOAT32, "F64": FLOAT64}

#: The key of the output's ``__metadata__`` that records how a shard was made.
STAMP_KEY = "qdq"


def check_settings(settings: Any, base: Mapping[str, Any] | None, where: str) -> dict:
    """The op's keyword arguments merged over ``base`` and checked (axis not yet per tensor)."""
    if not isinstance(settings, Mapping):
        raise TypeError(f"{where}: settings must be a mapping of the op's keyword arguments "
                        f"({', '.join(SETTING_KEYS)}) or None, got {type(settings).__name__}")
    unknown = [k for k in settings if k not in SETTING_KEYS]
    if unknown:
        raise ValueError(f"{where}: unknown setting {unknown[0]!r} (known: "
                         f"{', '.join(SETTING_KEYS)})")
    out = {**(base or {}), **settings}
    missing = [k for k in SETTING_KEYS if k not in out]
    if missing:
        raise ValueError(f"{where}: missing settings {missing}")
    try:
        args = OpArgs(out["signed_input"], out["num_bits"], False, out["round_mode"],
                      out["narrow_range"])
        axis = normalize_axis_arg(out["axis"])
        block_size = check_block_size(out["block_size"], axis)
        if out["calibrate"] is not None:
            check_calibration(out["calibrate"], block_size, False)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    return {"num_bits": args.num_bits, "signed_input": args.signed,
            "narrow_range": args.narrow, "round_mode": args.round_mode, "axis": axis,
            "block_size": block_size, "calibrate": out["calibrate"]}


def check_rules(rules: Any, base: Mapping[str, Any]) -> list[tuple[str, dict | None]]:
    """Rules as (pattern, checked settings or None); a mapping keeps its order."""
    if rules is None:
        return []
    items = list(rules.items()) if isinstance(rules, Mapping) else rules
    if isinstance(items, (str, bytes)):
        raise TypeError("rules must be a list of (pattern, settings) pairs, not a string")
    out = []
    for k, rule in enumerate(items):
        if not (isinstance(rule, (tuple, list)) and len(rule) == 2
                and isinstance(rule[0], str)):
            raise TypeError(f"rules[{k}] must be a (pattern, settings) pair with a str "
                            f"pattern, got {rule!r:.100}")
        pattern, settings = rule
        where = f"rule {pattern!r}"
        out.append((pattern, None if settings is None else check_settings(settings, base, where)))
    return out


def _patterns(skip: Any) -> list[str]:
    items = [skip] if isinstance(skip, str) else list(skip)
    for p in items:
        if not isinstance(p, str):
            raise TypeError(f"skip must hold glob patterns (str), got {p!r}")
    return items


@dataclass(frozen=True)
class TensorPlan:
    """One tensor: its entry, its resolved settings (None: copied) and why.

    ``layout``, when set, writes the tensor as other tensors (an export
    format's integer codes and scales, :mod:`qdq._checkpoint.export`): it
    names them (``outputs``), says how to stamp them, and writes them.
    """

    entry: TensorEntry
    settings: dict | None
    reason: str
    layout: Any = None

    @property
    def action(self) -> str:
        if self.settings is None:
            return "copy"
        return "qdq" if self.layout is None else self.layout.action

    @property
    def outputs(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """The output tensors (name, dtype, shape) this tensor becomes, in file order."""
        if self.layout is None or self.settings is None:
            return [(self.entry.name, self.entry.dtype, self.entry.shape)]
        return list(self.layout.outputs)


def resolve_tensor(entry: TensorEntry, rules: list[tuple[str, dict | None]], skip: list[str],
                   defaults: dict, where: str) -> TensorPlan:
    """The settings of one tensor (see the module's docstring); ValueError for a bad axis."""
    name = entry.name
    settings: dict | None = None
    reason = ""
    for pattern, rule in rules:
        if fnmatch.fnmatchcase(name, pattern):
            settings, reason = rule, f"rule {pattern!r}"
            break
    else:
        for pattern in skip:
            if fnmatch.fnmatchcase(name, pattern):
                return TensorPlan(entry, None, f"skip {pattern!r}")
        if entry.dtype in FORMATS and len(entry.shape) >= 2:
            settings, reason = defaults, "default"
        else:
            reason = ("default: not a float16/bfloat16/float32/float64 tensor"
                      if entry.dtype not in FORMATS else f"default: rank {len(entry.shape)}")
    if settings is None:
        return TensorPlan(entry, None, reason)
    if entry.dtype not in FORMATS:
        return TensorPlan(entry, None, f"{reason}, but {entry.dtype} is not a float format")
    if entry.size == 0:
        return TensorPlan(entry, None, f"{reason}, but the tensor is empty")
    try:
        axis = check_axis(settings["axis"], len(entry.shape))
    except ValueError as exc:
        raise ValueError(f"{where}: tensor {name!r} of shape {list(entry.shape)} ({reason}): "
                         f"{exc}") from None
    return TensorPlan(entry, {**settings, "axis": axis}, reason)


@dataclass(frozen=True)
class ShardPlan:
    """One output file: its source, destination, tensors and stamp."""

    src: str
    dst: str
    header: Header
    tensors: tuple[TensorPlan, ...]
    stamp: str

    @property
    def metadata(self) -> dict[str, str]:
        """The output's ``__metadata__``: the source's, with the stamp."""
        return {**(self.header.metadata or {}), STAMP_KEY: self.stamp}

    @property
    def entries(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """The output file's tensors (name, dtype, shape), in file order."""
        return [o for t in self.tensors for o in t.outputs]

    @property
    def nbytes(self) -> int:
        """The bytes of tensor data."""
        return sum(t.entry.nbytes for t in self.tensors)


@dataclass(frozen=True)
class CheckpointPlan:
    """Every shard to write and, for a sharded checkpoint, the index."""

    shards: tuple[ShardPlan, ...]
    index: Index | None
    index_dst: str | None
    dst_dir: str
    to_directory: bool
    model_dir: str | None = None

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.shards)


def _stamp(path: str, header: Header, tensors: list[TensorPlan]) -> str:
    """The stamp of an output shard: its tensors' settings and its source's identity.

    The source is identified by its name, size, mtime, ctime and inode and the
    hash of its header: a rewrite in place changes the ctime (which, unlike the
    mtime, cannot be set back), another file has another inode and ctime (a
    copy too, ``cp -p`` included: it is written again, never taken for the
    same data). See the module's docstring.
    """
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        head = f.read(header.data_start)
    doc = {"format": 2,
           "source": {"file": os.path.basename(path), "bytes": st.st_size,
                      "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns,
                      "inode": st.st_ino,
                      "header_sha256": hashlib.sha256(head).hexdigest()},
           "tensors": {t.entry.name: t.settings if t.layout is None or t.settings is None
                       else {**t.settings, "layout": t.layout.stamp} for t in tensors}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _destinations(src: str, dst: str, paths: list[str], index: Index | None
                  ) -> tuple[list[str], str | None, str, bool]:
    to_directory = (index is not None or os.path.isdir(src) or os.path.isdir(dst)
                    or dst.endswith(os.sep))
    if to_directory:
        out_dir = dst
        outs = [os.path.join(out_dir, os.path.basename(p)) for p in paths]
    else:
        out_dir = os.path.dirname(os.path.abspath(dst))
        outs = [dst]
    for p, o in zip(paths, outs, strict=True):
        if _same_file(p, o):
            raise ValueError(f"dst {dst!r} would overwrite the source {p}: write the "
                             "checkpoint to another file or directory")
    index_dst = None if index is None else os.path.join(out_dir, os.path.basename(index.path))
    if index is not None and os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"{src} is a sharded checkpoint: dst {dst!r} must be a directory")
    return outs, index_dst, out_dir, to_directory


def model_directory(src: str) -> str | None:
    """The model directory of a checkpoint: a directory given, an index's, or a lone file's
    when it holds ``config.json``; None otherwise."""
    if os.path.isdir(src):
        return src
    parent = os.path.dirname(os.path.abspath(src))
    if src.endswith(INDEX_SUFFIX) or os.path.isfile(os.path.join(parent, "config.json")):
        return parent
    return None


def plan_checkpoint(src: Any, dst: Any, rules: Any, skip: Any, defaults: Mapping[str, Any],
                    layout: Callable[[TensorPlan, str], TensorPlan] | None = None
                    ) -> CheckpointPlan:
    """Read and check every header, resolve every tensor; nothing is written.

    ``layout(tensor, where)``, when given, turns each tensor to quantize into
    its export (or raises ValueError for what the format cannot hold).
    """
    base = check_settings(defaults, None, "the keyword arguments")
    checked_rules = check_rules(rules, base)
    skip_list = _patterns(skip)
    src_path = os.fspath(src)
    dst_path = os.fspath(dst) if dst is not None else None
    paths, index = find_checkpoint(src_path)
    if dst_path is None:  # an analysis: nothing will be written
        outs, index_dst, out_dir, to_dir = [""] * len(paths), None, "", False
    else:
        outs, index_dst, out_dir, to_dir = _destinations(src_path, dst_path, paths, index)
    shards = []
    for path, out in zip(paths, outs, strict=True):
        header = index.headers[os.path.basename(path)] if index is not None \
            else read_header(path)
        tensors = [resolve_tensor(e, checked_rules, skip_list, base, path)
                   for e in header.tensors]
        if layout is not None:
            tensors = [t if t.settings is None else layout(t, path) for t in tensors]
        shard = ShardPlan(path, out, header, tuple(tensors), _stamp(path, header, tensors))
        if dst_path is not None:
            _check_writable(shard)
        shards.append(shard)
    model_dir = model_directory(src_path) if to_dir else None
    return CheckpointPlan(tuple(shards), index, index_dst, out_dir, to_dir, model_dir)


def _check_writable(shard: ShardPlan) -> None:
    """The output header is planned as the writer will plan it: its errors come now.

    The reader refuses what the writer cannot write (lone surrogates, ranks
    above NumPy's); this catches the rest, such as an output header (the
    source's plus the stamp) over the format's size limit, or an export's
    tensor names that collide.
    """
    try:
        plan_layout(shard.entries, shard.metadata)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{shard.src}: its output {shard.dst} cannot be written: {exc}"
                         ) from None
