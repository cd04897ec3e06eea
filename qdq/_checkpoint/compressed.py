"""Reading a compressed-tensors checkpoint: what it holds, and back to a dense checkpoint.

A module ``X`` is quantized when the checkpoint holds ``X.weight_scale`` with
``X.weight_packed`` (int32) or an int8 ``X.weight``; its scheme (bits,
strategy, group size) comes from ``config.json``'s ``quantization_config``
(the config group whose ``targets`` name ``X``, by exact name, ``re:``
pattern or the class ``Linear``); an asymmetric scheme (``"symmetric": false``)
has ``X.weight_zero_point``: int8 shaped as the scale, or, for pack-quantized
channels and groups, packed into int32 along the output dimension.
:func:`describe_compressed` sums up the checkpoint per module;
:func:`dequantize_checkpoint` writes the dense checkpoint the loader would
compute, ``(code - zero_point) * scale`` in the scale's type (the difference
of two int8 values is exact in every float type, so it is taken as an integer),
row block by row block (bit for bit the op's values, zero signs aside, for a
checkpoint :func:`qdq.quantize_checkpoint` wrote), with the model directory's
other files (``config.json`` without its ``quantization_config``).
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._core import engine
from .._core.blocks import dequantize_blocks
from .._core.formats import BFLOAT16, bits_to_values
from .._core.packing import packed_words, unpack_int32
from .._core.validate import code_type_index
from .._io.atomic import AtomicFile, remove_stale_temporaries
from .._io.lock import DestinationLock
from .._io.safetensors import Header, TensorEntry, load_json, read_header
from .._io.safetensors_index import find_checkpoint, write_index
from .._io.safetensors_writer import plan_layout
from .._stream.pipeline import termination_as_exit
from .._stream.plan import DEFAULT_CHUNK_BYTES
from .._stream.sinks import AppendSink
from .plan import FORMATS, model_directory
from .run import WEIGHT_FILES

__all__ = ["CompressedCheckpoint", "CompressedModule", "dequantize_checkpoint",
           "describe_compressed", "read_compressed"]

_PARTS = ("weight_packed", "weight_scale", "weight_shape", "weight_zero_point")


@dataclass(frozen=True)
class CompressedModule:
    """One quantized module ``X``: its tensors and scheme."""

    name: str
    codes: TensorEntry            # X.weight_packed (I32) or X.weight (I8)
    codes_file: str
    scale: TensorEntry
    scale_file: str
    shape: tuple[int, int]
    num_bits: int
    strategy: str
    group_size: int | None
    others: tuple[TensorEntry, ...] = ()   # X.weight_shape, X.weight_zero_point
    zero_point: TensorEntry | None = None  # asymmetric: X.weight_zero_point
    zero_point_file: str = ""

    @property
    def packed(self) -> bool:
        return self.codes.name.endswith("_packed")

    @property
    def scheme(self) -> str:
        s = f"int{self.num_bits} {self.strategy}"
        s = s + f" {self.group_size}" if self.strategy == "group" else s
        return s if self.zero_point is None else s + " zero-point"

    @property
    def stored_bytes(self) -> int:
        return self.codes.nbytes + self.scale.nbytes + sum(e.nbytes for e in self.others)

    @property
    def dense_bytes(self) -> int:
        return self.shape[0] * self.shape[1] * FORMATS[self.scale.dtype].itemsize


@dataclass
class CompressedCheckpoint:
    """A compressed-tensors checkpoint: its quantized modules and every other tensor."""

    paths: list[str]
    headers: dict[str, Header]
    modules: dict[str, CompressedModule]
    config: dict | None
    index: Any = None
    model_dir: str | None = None
    consumed: set[str] = field(default_factory=set)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for h in self.headers.values() for t in h.tensors)


def _matches(name: str, target: str) -> bool:
    if target.startswith("re:"):
        return re.match(target[3:], name) is not None
    return name == target or target == "Linear"


def _scheme(qc: dict, module: str) -> dict | None:
    """The weights arguments of the config group that targets the module (exact name first)."""
    ignore = qc.get("ignore") or []
    if any(t != "Linear" and _matches(module, t) for t in ignore):
        return None
    groups = list((qc.get("config_groups") or {}).values())
    for rank in (lambda t: t == module, lambda t: t.startswith("re:"), lambda t: True):
        for g in groups:
            for t in g.get("targets", []):
                if rank(t) and _matches(module, t):
                    return g.get("weights")
    return None


def read_compressed(src: Any) -> CompressedCheckpoint | None:
    """The checkpoint's quantized modules, or None when it holds none (a dense checkpoint)."""
    src = os.fspath(src)
    paths, index = find_checkpoint(src)
    headers = {p: index.headers[os.path.basename(p)] if index is not None else read_header(p)
               for p in paths}
    where: dict[str, tuple[str, TensorEntry]] = {}
    for p, h in headers.items():
        for t in h.tensors:
            where[t.name] = (p, t)
    model_dir = model_directory(src)
    config = None
    if model_dir is not None and os.path.isfile(os.path.join(model_dir, "config.json")):
        path = os.path.join(model_dir, "config.json")
        with open(path, "rb") as f:
            config = load_json(f.read(), path, "model config", strict=False)
    qc = (config or {}).get("quantization_config") if isinstance(config, dict) else None
    modules = {}
    for name, (path, entry) in where.items():
        if not name.endswith(".weight_scale"):
            continue
        x = name[:-len(".weight_scale")]
        codes = where.get(f"{x}.weight_packed") or where.get(f"{x}.weight")
        if codes is None or codes[1].dtype not in ("I32", "I8") or entry.dtype not in FORMATS:
            continue
        if not isinstance(qc, dict) or qc.get("quant_method") != "compressed-tensors":
            raise ValueError(f"{src}: {x} holds integer codes and a scale but there is no "
                             "compressed-tensors quantization_config in config.json to say "
                             "how they were made")
        w = _scheme(qc, x)
        if not isinstance(w, dict) or w.get("type", "int") != "int":
            raise ValueError(f"{src}: no integer weights scheme in quantization_config "
                             f"targets {x}")
        zp = where.get(f"{x}.weight_zero_point")
        symmetric = w.get("symmetric", True)
        if (zp is None) != bool(symmetric):
            raise ValueError(f"{src}: {x} " + ("has no weight_zero_point but its scheme is "
                                               "asymmetric" if zp is None else
                                               "has a weight_zero_point but its scheme is "
                                               "symmetric"))
        bits, strategy, gs = int(w["num_bits"]), str(w.get("strategy")), w.get("group_size")
        packed = codes[1].dtype == "I32"
        others = []
        if packed:
            shape_t = where.get(f"{x}.weight_shape")
            if shape_t is None:
                raise ValueError(f"{src}: {x}.weight_packed has no {x}.weight_shape")
            others.append(shape_t[1])
            with open(shape_t[0], "rb") as f:
                f.seek(shape_t[1].begin)
                raw = f.read(shape_t[1].nbytes)
            shape = tuple(int(v) for v in np.frombuffer(raw, shape_t[1].storage))
        else:
            shape = tuple(codes[1].shape)
        if len(shape) != 2 or (packed and codes[1].shape != (shape[0],
                                                             packed_words(shape[1], bits))):
            raise ValueError(f"{src}: {x}: codes of shape {list(codes[1].shape)} do not hold "
                             f"a {bits}-bit weight of shape {list(shape)}")
        want = {"channel": (shape[0], 1), "tensor": (1,),
                "group": (shape[0], shape[1] // int(gs or 1))}.get(strategy)
        if want is None or tuple(entry.shape) != want:
            raise ValueError(f"{src}: {x}.weight_scale has shape {list(entry.shape)}, strategy "
                             f"{strategy!r} needs {list(want) if want else 'a known strategy'}")
        if zp is not None:
            zp_want = (("I32", (packed_words(want[0], bits), want[1]))
                       if packed and strategy != "tensor" else ("I8", want))
            if (zp[1].dtype, tuple(zp[1].shape)) != zp_want:
                raise ValueError(f"{src}: {x}.weight_zero_point is {zp[1].dtype} of shape "
                                 f"{list(zp[1].shape)}, the format stores it as "
                                 f"{zp_want[0]} of shape {list(zp_want[1])}")
            others.append(zp[1])
        modules[x] = CompressedModule(x, codes[1], codes[0], entry, path,
                                      (int(shape[0]), int(shape[1])), bits, strategy,
                                      int(gs) if strategy == "group" and gs else None,
                                      tuple(others), None if zp is None else zp[1],
                                      "" if zp is None else zp[0])
    if not modules:
        return None
    ck = CompressedCheckpoint(paths, headers, modules, config, index, model_dir)
    for m in modules.values():
        ck.consumed.update([m.codes.name, m.scale.name] + [e.name for e in m.others])
    return ck


def describe_compressed(ck: CompressedCheckpoint) -> dict:
    """Per module (scheme, shape, dtype, bytes stored and dense) and totals with the ratio."""
    rows = [{"module": m.name, "scheme": m.scheme, "shape": list(m.shape),
             "dtype": m.scale.dtype, "stored_bytes": m.stored_bytes,
             "dense_bytes": m.dense_bytes} for m in ck.modules.values()]
    stored_q = sum(m.stored_bytes for m in ck.modules.values())
    dense_q = sum(m.dense_bytes for m in ck.modules.values())
    other = ck.nbytes - stored_q
    qc = (ck.config or {}).get("quantization_config") or {}
    return {"format": qc.get("format"), "modules": rows,
            "totals": {"quantized_modules": len(rows), "quantized_stored_bytes": stored_q,
                       "quantized_dense_bytes": dense_q, "other_bytes": other,
                       "stored_bytes": ck.nbytes, "dense_bytes": dense_q + other,
                       "compression_ratio": (dense_q + other) / max(ck.nbytes, 1)}}


def _scale_rows(m: CompressedModule, data: bytes) -> np.ndarray:
    """(4, ...) compute-type parameter rows whose inverse-scale row is the stored scale."""
    fmt = FORMATS[m.scale.dtype]
    raw = np.frombuffer(data, m.scale.storage).reshape(m.scale.shape)
    vals = bits_to_values(raw) if fmt is BFLOAT16 else raw.astype(fmt.compute)
    if m.strategy == "channel":
        vals = vals.reshape(-1)
    elif m.strategy == "tensor":
        vals = vals.reshape(1)
    rows = np.zeros((4,) + vals.shape, fmt.compute)
    rows[1] = vals
    return rows


def _read(path: str, entry: TensorEntry, start: int, nbytes: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(entry.begin + start)
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{path} was truncated while being read (tensor {entry.name!r})")
    return data


def _zero_points(m: CompressedModule) -> np.ndarray | None:
    """The zero points as int16 of shape ``(out, groups)`` (``(1, 1)`` per tensor), or None."""
    e = m.zero_point
    if e is None:
        return None
    raw = np.frombuffer(_read(m.zero_point_file, e, 0, e.nbytes), e.storage).reshape(e.shape)
    if e.dtype == "I32":   # packed along the output dimension
        zp = unpack_int32(np.ascontiguousarray(raw.T), m.num_bits, m.shape[0]).T
    else:
        zp = raw.reshape(-1, 1) if m.strategy != "group" else raw
    return zp.astype(np.int16)


def _write_dense(m: CompressedModule, sink: AppendSink, chunk_bytes: int) -> None:
    """``(code - zero_point) * scale`` in the scale's type, a block of rows at a time."""
    fmt = FORMATS[m.scale.dtype]
    rows_p = _scale_rows(m, _read(m.scale_file, m.scale, 0, m.scale.nbytes))
    zp = _zero_points(m)
    out, cols = m.shape
    row_bytes = m.codes.nbytes // max(out, 1)
    step = max(1, chunk_bytes // max(cols * max(fmt.itemsize, 2), 1))
    with open(m.codes_file, "rb") as f:
        for r0 in range(0, out, step):
            r1 = min(out, r0 + step)
            f.seek(m.codes.begin + r0 * row_bytes)
            raw = f.read((r1 - r0) * row_bytes)
            if len(raw) != (r1 - r0) * row_bytes:
                raise ValueError(f"{m.codes_file} was truncated while being read")
            if m.packed:
                words = np.frombuffer(raw, "<i4").reshape(r1 - r0, -1)
                codes = unpack_int32(words, m.num_bits, cols)
            else:
                codes = np.frombuffer(raw, np.int8).reshape(r1 - r0, cols)
            if zp is not None:   # exact: int8 - int8 fits int16 and every float type
                z = zp if m.strategy == "tensor" else zp[r0:r1]
                codes = codes.astype(np.int16) - np.repeat(z, cols // z.shape[1], axis=1)
            vals = np.empty((r1 - r0, cols), fmt.storage)
            itype = code_type_index(codes.dtype)
            if m.strategy == "group":
                assert m.group_size is not None
                dequantize_blocks(codes, vals, fmt, 1, m.group_size, rows_p[:, r0:r1], itype)
            elif m.strategy == "channel":
                engine.elementwise(engine.DEQUANTIZE, codes, vals, fmt, 0,
                                   np.ascontiguousarray(rows_p[:, r0:r1]), 0, itype)
            else:
                engine.elementwise(engine.DEQUANTIZE, codes, vals, fmt, None, rows_p, 0, itype)
            sink.write_bytes(np.ascontiguousarray(vals, vals.dtype.newbyteorder("<"))
                             .reshape(-1).view(np.uint8).data)


def _copy(path: str, entry: TensorEntry, sink: AppendSink, chunk_bytes: int) -> None:
    pos = 0
    while pos < entry.nbytes:
        n = min(chunk_bytes, entry.nbytes - pos)
        sink.write_bytes(memoryview(_read(path, entry, pos, n)))
        pos += n


def dequantize_checkpoint(src: Any, dst: Any, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES
                          ) -> dict:
    """Write the dense checkpoint a compressed-tensors checkpoint loads as; a summary.

    Each quantized module's ``X.weight`` is ``code * scale`` in the scale's
    type; every other tensor is copied; the shards keep their names, the
    index its order (with ``X.weight`` in place of the module's tensors),
    and the model directory's other files are copied (``config.json``
    without its ``quantization_config``). Each file lands atomically, the
    index last.
    """
    ck = read_compressed(src)
    if ck is None:
        raise ValueError(f"{os.fspath(src)} holds no compressed-tensors weights (no "
                         "X.weight_scale beside X.weight_packed or an int8 X.weight)")
    t0 = time.perf_counter()
    dst = os.fspath(dst)
    to_dir = ck.index is not None or os.path.isdir(dst) or dst.endswith(os.sep)
    outs = [os.path.join(dst, os.path.basename(p)) for p in ck.paths] if to_dir else [dst]
    for p, o in zip(ck.paths, outs, strict=True):
        if os.path.exists(o) and os.path.samefile(p, o):
            raise ValueError(f"dst {dst!r} would overwrite the source {p}")
    by_codes = {m.codes.name: m for m in ck.modules.values()}
    plans = []
    for p in ck.paths:
        items: list[tuple[str, str, tuple, Any]] = []
        for t in ck.headers[p].tensors:
            if t.name in by_codes:
                m = by_codes[t.name]
                items.append((f"{m.name}.weight", m.scale.dtype, m.shape, m))
            elif t.name not in ck.consumed:
                items.append((t.name, t.dtype, t.shape, t))
        plans.append(items)
    if to_dir:
        os.makedirs(dst, exist_ok=True)
    # the destination is this run's (see qdq._io.lock): two runs never write into it at once
    with termination_as_exit(), DestinationLock(dst if to_dir else outs[0], directory=to_dir):
        index_dst = None if ck.index is None else \
            os.path.join(dst, os.path.basename(ck.index.path))
        if index_dst is not None and os.path.lexists(index_dst):
            os.unlink(index_dst)  # the directory is not a complete checkpoint until the end
        for p, o, items in zip(ck.paths, outs, plans, strict=True):
            remove_stale_temporaries(o)
            meta = dict(ck.headers[p].metadata or {})
            header, _ = plan_layout([(n, d, s) for n, d, s, _ in items], meta or None)
            sink = AppendSink(AtomicFile(o), 0, sys.byteorder == "big")
            try:
                sink.write_bytes(memoryview(header))
                for _, _, _, what in items:
                    if isinstance(what, CompressedModule):
                        _write_dense(what, sink, chunk_bytes)
                    else:
                        _copy(p, what, sink, chunk_bytes)
                sink.commit()
            except BaseException:
                sink.abort()
                raise
        copied = []
        if to_dir and ck.model_dir is not None:
            for name in sorted(os.listdir(ck.model_dir)):
                path = os.path.join(ck.model_dir, name)
                if name.startswith(".") or not os.path.isfile(path) or any(
                        fnmatch.fnmatchcase(name, w) for w in WEIGHT_FILES):
                    continue
                remove_stale_temporaries(os.path.join(dst, name))
                with AtomicFile(os.path.join(dst, name)) as f:
                    if name == "config.json" and isinstance(ck.config, dict):
                        doc = {k: v for k, v in ck.config.items() if k != "quantization_config"}
                        f.file.write((json.dumps(doc, indent=2) + "\n").encode())
                    else:
                        with open(path, "rb") as g:
                            f.file.write(g.read())
                copied.append(name)
        if ck.index is not None:
            weight_map = {}
            for o, items in zip(outs, plans, strict=True):
                for n, _, _, _ in items:
                    weight_map[n] = os.path.basename(o)
            order = {n: i for i, n in enumerate(ck.index.weight_map)}
            ordered = sorted(weight_map, key=lambda n: order.get(
                n, order.get(n[:-len(".weight")] + ".weight_packed", len(order))))
            total = sum(t.nbytes for o in outs for t in read_header(o).tensors)
            assert index_dst is not None
            meta = {k: v for k, v in ck.index.metadata.items() if k != "total_size"}
            remove_stale_temporaries(index_dst)
            with AtomicFile(index_dst) as f:
                write_index(f.file, {n: weight_map[n] for n in ordered}, total, meta)
    return {"modules": len(ck.modules), "files": outs, "files_copied": copied,
            "seconds": time.perf_counter() - t0,
            "bytes": sum(os.path.getsize(o) for o in outs)}

