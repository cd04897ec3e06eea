"""Deployable checkpoints: the op's integer codes and scales in the compressed-tensors format.

TensorFlow's signed grids have zero point 0, so for a Linear weight
``X.weight`` of shape ``(out, in)`` the op's codes and ``inverse_scale`` (in
the weight's type T) are compressed-tensors' symmetric integer scheme, which
transformers and vLLM load: per channel ``axis=0`` is the strategy ``"channel"`` (scale
``(out, 1)``), blocks ``axis=-1, block_size=B`` the strategy ``"group"`` with
``group_size=B`` (scale ``(out, in / B)``; the loader needs whole groups), per
tensor ``"tensor"`` (scale ``(1,)``). The loader computes ``code * scale`` in
T, which is the op's value bit for bit (zero signs aside: a code has no -0).

An unsigned grid (``signed_input=False``: codes ``q`` in ``[0, 2**b - 1]``,
``narrow_range`` changes nothing there) is its asymmetric scheme: ``q`` is
stored as ``q - 2**(b-1)`` (the b-bit signed field compressed-tensors packs)
with ``X.weight_zero_point = -2**(b-1)`` (int8 shaped as the scale; packed
into int32 along the output dimension for pack-quantized channels and
groups, as its compressor packs it). Its loader computes
``(code.to(T) - zero_point.to(T)) * scale``: the subtraction is exact in T
(integers up to 256 are exact even in bfloat16), so the loaded value is
``q * scale``, the op's value bit for bit. Negative data on an unsigned grid
without a given range is not clamped by TensorFlow: its codes are below 0,
outside the grid, and are treated as codes past the grid (below).

Each such tensor is written as ``X.weight_packed`` (int32, the codes packed as
compressed-tensors packs them, :mod:`qdq._core.packing`), ``X.weight_scale``
(T) and ``X.weight_shape`` (int64) for ``"pack-quantized"``, or ``X.weight``
(int8) and ``X.weight_scale`` for ``"int-quantized"``; every other tensor is
copied. The pipeline is the checkpoint one (:mod:`qdq._checkpoint.run`):
the plan gives each quantized tensor a :class:`CompressedLayout`, which names
its output tensors (the shard's header is planned up front) and writes them
(the codes through the same range and write passes, then the scale and shape).

Settings the format cannot hold are refused before anything is written,
naming the tensor and the setting. So are codes one step past the grid
(``x * scale`` rounded in bfloat16 can reach ``qmax + 1``: TensorFlow keeps
it, int8 storage cannot), found by a first pass over the tensors where T's
rounding allows them, unless ``codes_overflow="clamp"`` stores the nearest
grid code and counts it in the report.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np

from .._core import engine
from .._core.blocks import dequantize_blocks
from .._core.formats import BFLOAT16, FLOAT16, FLOAT64, Format, values_to_bits
from .._core.packing import RowPacker, pack_int32, packed_words
from .._core.params import code_bounds, code_dtype_for
from .._core.stats import TensorErrorStats
from .._core.threads import fewer_threads, kernel_threads
from .._core.validate import OpArgs, check_flag, check_grid, check_positive_int, code_type_index
from .._io.safetensors import load_json, lone_surrogate
from .._stream.pipeline import Writer, chunk_items
from .._stream.plan import DEFAULT_CHUNK_BYTES, TensorRun
from .._stream.sinks import AppendSink, DiscardSink
from .._stream.sources import FileSource
from .plan import FORMATS, CheckpointPlan, ShardPlan, TensorPlan, plan_checkpoint
from .report import CheckpointReport
from .run import run_checkpoint

__all__ = ["CODES_OVERFLOW", "DEFAULT_SKIP", "EXPORT_FORMATS", "CompressedLayout",
           "check_overflow", "export_plan", "overflow_counts", "quantization_config",
           "quantize_checkpoint"]

#: The format names :func:`quantize_checkpoint` takes, and the compressed-tensors format each is.
EXPORT_FORMATS = {"compressed-tensors": "pack-quantized", "pack-quantized": "pack-quantized",
                  "int-quantized": "int-quantized"}

#: What to do with codes outside the grid.
CODES_OVERFLOW = ("error", "clamp")

#: Tensors an export copies unless a rule quantizes them: embeddings (not Linear
#: modules) and the output head (kept dense, as llm-compressor's presets do).
DEFAULT_SKIP = ("*embed*", "lm_head.*")

_SUFFIX = ".weight"


def _le(arr: np.ndarray) -> memoryview:
    """An array's little-endian bytes."""
    a = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    return a.reshape(-1).view(np.uint8).data


def _scale_values(inv: np.ndarray, fmt: Format) -> np.ndarray:
    """Compute-type values of the format -> its safetensors storage (bfloat16 as bits)."""
    if fmt is BFLOAT16:
        return values_to_bits(np.asarray(inv, np.float32))
    if fmt is FLOAT16:
        return np.asarray(inv).astype(np.float16)
    return np.asarray(inv).astype(np.float64 if fmt is FLOAT64 else np.float32)


def _count_outside(codes: np.ndarray, lo: int, hi: int) -> int:
    return int(np.count_nonzero(codes < lo)) + int(np.count_nonzero(codes > hi))


class _CodesSink:
    """The writer's sink while a tensor's codes pass: packs or narrows them, appends the bytes."""

    def __init__(self, base: AppendSink, layout: "CompressedLayout"):
        self.base = base
        self.offset = layout.offset
        self.packer = (RowPacker(layout.shape[1], layout.num_bits, self._emit)
                       if layout.format == "pack-quantized" else None)

    def _emit(self, words: np.ndarray) -> None:
        self.base.write_bytes(_le(words.astype("<u4", copy=False)))

    def write(self, block: Any, data: np.ndarray) -> None:
        if self.offset:  # an unsigned grid's codes q, stored as q - 2**(b-1)
            data = np.subtract(data, self.offset, dtype=np.int16)
        if self.packer is not None:
            self.packer.feed(np.ascontiguousarray(data))
        else:
            self.base.write_bytes(_le(np.asarray(data).astype(np.int8, copy=False)))

    def commit(self) -> None:  # pragma: no cover - the shard's sink commits
        pass

    def abort(self) -> None:  # pragma: no cover - the shard's sink aborts
        pass


@dataclass(frozen=True)
class CompressedLayout:
    """How one quantized tensor ``X.weight`` is written in the compressed-tensors format.

    Attributes
    ----------
    format : {"pack-quantized", "int-quantized"}
        The compressed-tensors format.
    module : str
        ``X``, the Linear module's name.
    dtype : str
        The weight's safetensors dtype (the scale's too).
    shape : tuple of int
        ``(out, in)``.
    num_bits, narrow : int, bool
        The grid's width and narrowness.
    strategy : {"channel", "group", "tensor"}
        The scheme's strategy.
    group_size : int or None
        The group size of ``"group"``.
    overflow : {"error", "clamp"}
        What codes outside the grid do.
    signed : bool, default True
        The op's grid is signed (symmetric, no zero point); unsigned
        (``signed_input=False``), its codes ``q`` in ``[0, 2**b - 1]`` are
        stored as ``q - 2**(b-1)`` with the zero point ``-2**(b-1)``.
    clamped : bool, default False
        The op clamps to a given (calibrated) range, so that codes stay on
        the grid but for the type's rounding.
    """

    format: str
    module: str
    dtype: str
    shape: tuple[int, int]
    num_bits: int
    narrow: bool
    strategy: str
    group_size: int | None
    overflow: str
    signed: bool = True
    clamped: bool = False

    action = "quantize"

    @property
    def grid(self) -> tuple[int, int]:
        """The op's codes the format holds: ``(qmin, qmax)``."""
        g = check_grid(self.signed, self.num_bits, self.narrow)
        return int(g.qmin), int(g.qmax)

    @property
    def offset(self) -> int:
        """What is subtracted from a code to store it (``-zero_point``): 0 when signed."""
        return 0 if self.signed else 1 << (self.num_bits - 1)

    @property
    def zero_point_output(self) -> tuple[str, str, tuple[int, ...]] | None:
        """The zero point tensor of an unsigned grid, as compressed-tensors stores it.

        int8 shaped as the scale, but packed into int32 along the output
        dimension (``pack_to_int32(zp, b, packed_dim=0)``) for pack-quantized
        channels and groups; None for a signed grid (symmetric: no zero point).
        """
        if self.signed:
            return None
        name = f"{self.module}.weight_zero_point"
        shape = self.scale_shape
        if self.format == "pack-quantized" and self.strategy != "tensor":
            return (name, "I32", (packed_words(shape[0], self.num_bits), shape[1]))
        return (name, "I8", shape)

    def zero_point(self) -> np.ndarray:
        """The zero point tensor's values (see :attr:`zero_point_output`)."""
        zp = np.full(self.scale_shape, -self.offset, np.int8)
        out = self.zero_point_output
        assert out is not None
        if out[1] == "I32":
            return pack_int32(np.ascontiguousarray(zp.T), self.num_bits).T.astype("<i4")
        return zp

    @property
    def scale_shape(self) -> tuple[int, ...]:
        if self.strategy == "channel":
            return (self.shape[0], 1)
        if self.strategy == "group":
            assert self.group_size is not None
            return (self.shape[0], self.shape[1] // self.group_size)
        return (1,)

    @property
    def outputs(self) -> list[tuple[str, str, tuple[int, ...]]]:
        """The output tensors (name, safetensors dtype, shape), in file order."""
        x = self.module
        scale = (f"{x}.weight_scale", self.dtype, self.scale_shape)
        zp = [] if self.zero_point_output is None else [self.zero_point_output]
        if self.format == "int-quantized":
            return [(f"{x}.weight", "I8", self.shape), scale] + zp
        return [(f"{x}.weight_packed", "I32",
                 (self.shape[0], packed_words(self.shape[1], self.num_bits))),
                scale, (f"{x}.weight_shape", "I64", (2,))] + zp

    @property
    def stamp(self) -> dict:
        """What the resume stamp records beyond the op's settings."""
        return {"format": self.format, "codes_overflow": self.overflow}

    @property
    def scheme(self) -> dict:
        """The ``weights`` entry of the scheme's config group."""
        return {"num_bits": self.num_bits, "type": "int", "symmetric": self.signed,
                "strategy": self.strategy, "group_size": self.group_size, "dynamic": False}

    @property
    def code_dtype(self) -> np.dtype:
        """The integer type the kernel writes the codes in (wide enough for a step past).

        int16 for an unsigned grid: its codes below 0 (negative data without a
        given range) are written saturated there, to be counted and clamped.
        """
        if not self.signed:
            return np.dtype(np.int16)
        return code_dtype_for(FORMATS[self.dtype], check_grid(True, self.num_bits, self.narrow))

    @property
    def may_overflow(self) -> bool:
        """Whether a code can fall outside the grid.

        T's rounding can put one past it (bfloat16 with 6 bits or more); an
        unsigned grid without a given range does not clamp negative data.
        """
        if not self.signed and not self.clamped:
            return True
        lo, hi = code_bounds(FORMATS[self.dtype],
                             check_grid(self.signed, self.num_bits, self.narrow))
        qmin, qmax = self.grid
        return lo < qmin or hi > qmax

    def overflow_message(self, name: str, count: int) -> str:
        qmin, qmax = self.grid
        if self.signed:
            return (f"tensor {name!r}: {count:,} codes one step past the {self.num_bits}-bit "
                    f"grid [{qmin}, {qmax}] ({self.dtype} rounds x * scale there; TensorFlow "
                    "keeps such a code, int8 and packed storage cannot)")
        hi = code_bounds(FORMATS[self.dtype], check_grid(False, self.num_bits, self.narrow))[1]
        causes = [] if self.clamped else ["negative data: without a given range "
                                          "TensorFlow's unsigned grid does not clamp it, so "
                                          "its codes are below 0"]
        if hi > qmax:
            causes.append(f"one step past {qmax}, where {self.dtype} rounds x * scale")
        why = "; or ".join(causes)
        fix = "" if self.clamped else "; calibrate= gives a range, which clamps it to 0"
        return (f"tensor {name!r}: {count:,} codes outside the unsigned {self.num_bits}-bit "
                f"grid [{qmin}, {qmax}] ({why}; the format's codes cannot hold them{fix})")

    def tail(self, run: TensorRun) -> list[np.ndarray]:
        """The tensors after the codes: the scale (``inverse_scale`` in T), the shape, the
        zero point."""
        assert run.rows is not None
        scale = _scale_values(run.rows[1], run.fmt).reshape(self.scale_shape)
        zp = [] if self.signed else [self.zero_point()]
        if self.format == "int-quantized":
            return [scale] + zp
        return [scale, np.array(self.shape, "<i8")] + zp

    def write(self, run: TensorRun, source: FileSource, writer: Writer, items: int,
              progress: Callable[[int], None], error_stats: bool) -> Callable[[], dict]:
        """The codes' write pass into the writer, then the other tensors; the figures.

        Runs after the range pass. Codes past the grid raise ValueError
        (``"error"``) or are clamped and counted (``"clamp"``); with
        ``error_stats`` the error is the loaded weight's (``code * scale``).
        """
        fmt = run.fmt
        name = f"{self.module}{_SUFFIX}"
        run.saturate = not self.signed   # negative codes are counted, not refused at once
        qmin, qmax = self.grid
        check = self.may_overflow
        clamped = [0]
        itype = code_type_index(run.out_dtype)
        itemsize = source.dtype.itemsize
        stats = TensorErrorStats(fmt) if error_stats else None
        scratch = [np.empty(0, np.uint8)]

        def values(codes: np.ndarray, b: Any) -> np.ndarray:
            need = b.count * fmt.storage.itemsize
            if scratch[0].nbytes < need:
                scratch[0] = np.empty(need, np.uint8)
            vals = scratch[0][:need].view(fmt.storage).reshape(b.shape)
            assert run.rows is not None
            if run.block_size is None:
                engine.run_block(engine.DEQUANTIZE, codes, vals, fmt, itype, b, run.rows, 0)
            else:
                assert run.cax is not None
                dequantize_blocks(codes, vals, fmt, run.cax - b.depth, run.block_size,
                                  run.rows[(slice(None),) + b.blocks], itype)
            return vals

        def kernel(data: np.ndarray, target: np.ndarray, b: Any) -> None:
            run.kernel(data, target, b)
            if check:
                n = _count_outside(target, qmin, qmax)
                if n:
                    if self.overflow == "error":
                        raise ValueError(self.overflow_message(name, n))
                    np.clip(target, qmin, qmax, out=target)
                    clamped[0] += n
            if stats is not None:
                stats.add(data.reshape(-1), values(target, b).reshape(-1))
            progress(b.count * itemsize)

        base = writer.home
        assert isinstance(base, AppendSink)
        sink = _CodesSink(base, self)
        writer.redirect(sink)
        try:
            run.write_pass(source, sink, items, False, "", kernel, writer)
        except ValueError as exc:
            raise ValueError(f"{exc}" if name in str(exc) else f"tensor {name!r}: {exc}") \
                from None
        finally:
            writer.redirect(None)
        for arr in self.tail(run):
            writer.call(partial(base.write_bytes, _le(arr)))

        def figures() -> dict:
            out: dict[str, Any] = {"codes_clamped": clamped[0]}
            if stats is not None:
                out.update(max_abs_error=stats.max_abs_error, sqnr_db=stats.sqnr_db(),
                           clipped=stats.clipped, nan=stats.nan,
                           nonfinite_out=stats.total.nonfinite_out)
            return out
        return figures


def _settings_text(s: dict) -> str:
    parts = [f"num_bits={s['num_bits']}", f"axis={s['axis']}"]
    if s["block_size"] is not None:
        parts.append(f"block_size={s['block_size']}")
    if not s["signed_input"]:
        parts.append("signed_input=False")
    return ", ".join(parts)


def make_layout(t: TensorPlan, where: str, fmt: str, overflow: str) -> TensorPlan:
    """The tensor's export layout; ValueError naming the tensor and the setting it cannot hold."""
    e, s = t.entry, t.settings
    assert s is not None
    name = e.name

    def refuse(why: str) -> None:
        raise ValueError(f"{where}: tensor {name!r} of shape {list(e.shape)} ({t.reason}: "
                         f"{_settings_text(s)}): the compressed-tensors format cannot hold "
                         f"{why}; copy it (skip=[{name!r}] or --skip) or give it a rule the "
                         "format holds (nothing was written)")

    if not name.endswith(_SUFFIX):
        refuse("a quantized tensor not named X.weight (a Linear module X's weight is stored "
               "as X.weight_packed, X.weight_scale, X.weight_shape)")
    if len(e.shape) != 2:
        refuse(f"a tensor of rank {len(e.shape)} (its quantized weights are (out, in) "
               "Linear weights)")
    if s["num_bits"] > 8:
        refuse(f"{s['num_bits']}-bit codes (1 to 8 bits)")
    ax, bs = s["axis"], s["block_size"]
    group_size = None
    if bs is not None:
        if ax != 1:
            refuse(f"blocks along axis {ax} (its groups run along the input dimension, "
                   "axis=-1)")
        if e.shape[1] % bs:
            refuse(f"groups of {bs} that do not divide the input dimension {e.shape[1]} (its "
                   "loader needs whole groups)")
        strategy, group_size = "group", bs
    elif ax is None:
        strategy = "tensor"
    elif ax == 0:
        strategy = "channel"
    else:
        refuse(f"per-channel scales along axis {ax} (its channels are the output rows, "
               "axis=0)")
    layout = CompressedLayout(fmt, name[:-len(_SUFFIX)], e.dtype,
                              (int(e.shape[0]), int(e.shape[1])), s["num_bits"],
                              s["narrow_range"], strategy, group_size, overflow,
                              s["signed_input"], s.get("calibrate") is not None)
    return TensorPlan(e, s, t.reason, layout)


def quantization_config(plan: CheckpointPlan, fmt: str) -> dict:
    """The ``quantization_config`` of ``config.json``: one config group per scheme.

    Each group targets its modules by exact name; ``ignore`` lists the
    modules whose 2-D float weight was copied (``lm_head``, embeddings, ...).
    """
    groups: dict[str, tuple[dict, list[str]]] = {}
    ignore = []
    for s in plan.shards:
        for t in s.tensors:
            if t.layout is not None and t.settings is not None:
                key = json.dumps(t.layout.scheme, sort_keys=True)
                groups.setdefault(key, (t.layout.scheme, []))[1].append(t.layout.module)
            elif (t.entry.name.endswith(_SUFFIX) and len(t.entry.shape) >= 2
                  and t.entry.dtype in FORMATS):
                ignore.append(t.entry.name[:-len(_SUFFIX)])
    config_groups = {
        f"group_{i}": {"targets": sorted(modules), "weights": scheme,
                       "input_activations": None, "output_activations": None, "format": fmt}
        for i, (scheme, modules) in enumerate(groups.values())}
    return {"quant_method": "compressed-tensors", "format": fmt,
            "quantization_status": "compressed", "config_groups": config_groups,
            "ignore": sorted(ignore), "kv_cache_scheme": None}


def _tensor_overflow(shard: ShardPlan, t: TensorPlan, chunk_bytes: int) -> int:
    """The codes of one tensor past the grid: its range pass, then its codes into nothing."""
    e, s, lay = t.entry, t.settings, t.layout
    assert s is not None and lay is not None and e.storage is not None
    fmt = FORMATS[e.dtype]
    args = OpArgs(s["signed_input"], s["num_bits"], False, s["round_mode"], s["narrow_range"])
    qmin, qmax = lay.grid
    count = 0
    source = FileSource(shard.src, e.shape, False, e.storage, e.begin, fmt).open()
    try:
        run = TensorRun.of_source(source, args, s["axis"], s["block_size"],
                                  name=f"tensor {e.name!r}", code_dtype=lay.code_dtype,
                                  saturate=not lay.signed)
        items = chunk_items(chunk_bytes, max(e.storage.itemsize, run.out_dtype.itemsize))
        if run.needs_range_pass:
            run.range_pass(source, items, False, s.get("calibrate"))

        def kernel(data: np.ndarray, target: np.ndarray, b: Any) -> None:
            nonlocal count
            run.kernel(data, target, b)
            count += _count_outside(target, qmin, qmax)

        run.write_pass(source, DiscardSink(), items, False, "", kernel)
    except ValueError as exc:
        raise ValueError(f"tensor {e.name!r}: {exc}") from None
    finally:
        source.close()
    return count


def overflow_counts(shard: ShardPlan, chunk_bytes: int) -> list[tuple[str, int]]:
    """(tensor, codes past the grid) for each tensor of the shard that has any.

    Only tensors whose codes could pass the grid and would be refused
    (``codes_overflow="error"``) are run: the range pass, then the codes into
    nothing, counted. NaN (which has no code) raises ValueError naming the tensor.
    """
    out = []
    for t in shard.tensors:
        lay = t.layout
        if lay is None or t.settings is None or lay.overflow != "error" \
                or not lay.may_overflow:
            continue
        n = _tensor_overflow(shard, t, chunk_bytes)
        if n:
            out.append((t.entry.name, n))
    return out


def check_overflow(found: list[tuple[str, int]], plan: CheckpointPlan) -> None:
    """Refuse (ValueError) when the first pass found codes past the grid."""
    if not found:
        return
    layouts = {t.entry.name: t.layout for s in plan.shards for t in s.tensors}
    first = layouts[found[0][0]]
    shown = "; ".join(first.overflow_message(n, c) if i == 0 else f"{n!r}: {c:,}"
                      for i, (n, c) in enumerate(found[:8]))
    more = f" and {len(found) - 8} more tensors" if len(found) > 8 else ""
    what = "one step past" if first.signed else "outside"
    raise ValueError(f"{len(found)} tensor(s) have codes {what} the grid: {shown}{more}. "
                     "Nothing was written. codes_overflow='clamp' (--codes-overflow clamp) "
                     "stores the nearest grid code (the loaded weight is then clamp(code) * "
                     "scale there, the op's value everywhere else) and counts them in the "
                     "report")


def _source_config(plan: CheckpointPlan) -> dict | None:
    if plan.model_dir is None:
        return None
    path = os.path.join(plan.model_dir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path, "rb") as f:
        doc = load_json(f.read(), path, "model config", strict=False)
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: not a JSON object")
    if lone_surrogate(json.dumps(doc, ensure_ascii=False)) is not None:  # written back later
        raise ValueError(f"{path}: the model config holds a lone surrogate (a \\ud800-\\udfff "
                         "escape on its own), which UTF-8 cannot encode")
    return doc


def export_plan(src: Any, dst: Any, format: Any, rules: Any, skip: Any, settings: dict,
                codes_overflow: Any) -> tuple[CheckpointPlan, Callable[[dict], dict]]:
    """The checked plan of an export, and the edit of its ``config.json``; nothing is written."""
    fmt = EXPORT_FORMATS.get(format) if isinstance(format, str) else None
    if fmt is None:
        raise ValueError(f"format must be one of {', '.join(map(repr, EXPORT_FORMATS))}, got "
                         f"{format!r}")
    if codes_overflow not in CODES_OVERFLOW:
        raise ValueError(f"codes_overflow must be 'error' or 'clamp', got {codes_overflow!r}")
    user_skip = [] if skip is None else [skip] if isinstance(skip, str) else list(skip)
    plan = plan_checkpoint(src, dst, rules, user_skip + list(DEFAULT_SKIP), settings,
                           partial(make_layout, fmt=fmt, overflow=codes_overflow))
    doc = _source_config(plan)
    if doc is not None and "quantization_config" in doc:
        qc = doc["quantization_config"]
        method = qc.get("quant_method") if isinstance(qc, dict) else None
        raise ValueError(f"{os.path.join(plan.model_dir or '', 'config.json')} already has a "
                         f"quantization_config ({method!r}): the source is quantized already")
    qconfig = quantization_config(plan, fmt)

    def config(doc: dict) -> dict:
        return {**doc, "quantization_config": qconfig}
    return plan, config


def quantize_checkpoint(
        src: Any, dst: Any, *, format: str = "compressed-tensors", rules: Any = None,
        skip: Any = None, num_bits: int = 8, axis: int | None = 0,
        block_size: int | None = None, narrow_range: bool = False,
        signed_input: bool = True, round_mode: str = "HALF_TO_EVEN",
        calibrate: str | None = None,
        codes_overflow: str = "error", chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        workers: int | None = 1, progress: bool = False,
        error_stats: bool = True, wait: bool = False) -> CheckpointReport:
    """Export a safetensors checkpoint as integer codes and scales (compressed-tensors).

    Each Linear weight ``X.weight`` of shape ``(out, in)`` becomes the op's
    integer codes (:func:`qdq.quantize`, bit for bit) and its
    ``inverse_scale`` in the weight's type, in the compressed-tensors format
    that transformers and vLLM load: ``X.weight_packed`` (int32),
    ``X.weight_scale`` and ``X.weight_shape`` (``"pack-quantized"``, the
    default), or ``X.weight`` (int8) and ``X.weight_scale``
    (``"int-quantized"``). The loader's ``code * scale`` is
    :func:`qdq.quantize_and_dequantize`'s value bit for bit (zero signs
    aside). Every other tensor is copied byte for byte; ``config.json`` gains
    the ``quantization_config`` and the model directory's other files are
    copied, so the output is a model directory ``from_pretrained`` loads.

    The run is :func:`qdq.quantize_and_dequantize_checkpoint`'s: the same
    rules, skip patterns, streaming with bounded memory, crash safety,
    resume and report. Per channel ``axis=0`` is the strategy ``"channel"``,
    ``axis=-1, block_size=B`` the strategy ``"group"`` (``B`` must divide the
    input dimension), ``axis=None`` the strategy ``"tensor"``. An unsigned
    grid (``signed_input=False``) is the asymmetric scheme, with a zero
    point ``-2**(b-1)`` (exact too). What the format cannot hold (another
    axis, blocks along another axis, a rank other than 2, a name other than
    ``X.weight``, more than 8 bits) is refused before anything is written,
    naming the tensor.

    Parameters
    ----------
    src, dst : path
        As for :func:`qdq.quantize_and_dequantize_checkpoint`: a model
        directory (with ``config.json``), an index, or a ``.safetensors``
        file; a directory (or, for one file, a file path).
    format : {"compressed-tensors", "pack-quantized", "int-quantized"}, default "compressed-tensors"
        ``"compressed-tensors"`` is ``"pack-quantized"`` (what vLLM's
        weight-only kernels read, for any width).
    rules : sequence of (pattern, settings), or mapping, optional
        As for :func:`qdq.quantize_and_dequantize_checkpoint`.
    skip : sequence of str, optional
        Glob patterns of tensors to copy; :data:`DEFAULT_SKIP` (embeddings
        and ``lm_head``) is always added after them (a rule can still
        quantize such a tensor).
    num_bits : int, default 8
        Bits per code, 1 to 8.
    axis : int or None, default 0
        ``0`` per output channel, ``-1`` with ``block_size``, None per tensor.
    block_size : int, optional
        The group size along ``axis=-1``.
    narrow_range : bool, default False
        The grid without its most negative code.
    signed_input : bool, default True
        False: TensorFlow's unsigned grid ``[0, 2**b - 1]``, stored with a
        zero point (``"symmetric": false``). Without ``calibrate`` the op does
        not clamp negative data there: such codes are below 0, outside the
        grid, and ``codes_overflow`` decides (with ``calibrate`` the op clamps
        negative data to 0).
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        The op's tie breaking (the codes are the op's).
    calibrate : str, optional
        A calibrated range per tensor or channel (``"mse"``, ``"entropy"``,
        ``"percentile"``, ``"percentile:P"``, ``"minmax"``): the op clamps to it.
    codes_overflow : {"error", "clamp"}, default "error"
        bfloat16 arithmetic can round ``x * scale`` to ``qmax + 1``, which
        int8 and packed storage cannot hold (nor the codes below 0 of negative
        data on an unsigned grid without a given range). ``"error"`` runs a
        first pass over the tensors where that can happen (bfloat16 with 6
        bits or more; unsigned without ``calibrate``) and refuses before
        anything is written, naming the tensors and the counts; ``"clamp"``
        stores the nearest grid code (the loaded weight is ``clamp(code) *
        scale`` there) and counts them in the report (``codes_clamped``).
    chunk_bytes : int, default 64 MiB
        Bytes per chunk.
    workers : int, default 1
        Shards written at once in local processes.
    progress : bool, default False
        A progress bar.
    error_stats : bool, default True
        Measure each tensor's error (of the loaded weight).
    wait : bool, default False
        Wait for another run writing into ``dst`` to end, instead of raising
        BlockingIOError (the destination is locked as for
        :func:`qdq.quantize_and_dequantize_checkpoint`).

    Returns
    -------
    CheckpointReport
        One record per tensor (action ``"quantize"`` or ``"copy"``), the
        files copied.

    Raises
    ------
    ValueError
        For a setting the format cannot hold, codes past the grid with
        ``codes_overflow="error"``, NaN in a tensor to quantize, a source
        ``config.json`` that already has a ``quantization_config``, and as
        :func:`qdq.quantize_and_dequantize_checkpoint` does.

    Examples
    --------
    >>> import json, os, numpy as np, qdq
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> from qdq._io.safetensors import read_header
    >>> os.makedirs("tiny", exist_ok=True)
    >>> w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)
    >>> with open("tiny/model.safetensors", "wb") as f:
    ...     write_arrays(f, {"fc.weight": w, "fc.bias": np.zeros(2, np.float32)},
    ...                  {"format": "pt"})
    >>> with open("tiny/config.json", "w") as f:
    ...     json.dump({"model_type": "llama"}, f)
    >>> r = qdq.quantize_checkpoint("tiny", "tiny-int4", num_bits=4, axis=-1, block_size=32)
    >>> [(t.name, t.action) for t in r], r.files_copied
    ([('fc.weight', 'quantize'), ('fc.bias', 'copy')], ['config.json'])
    >>> [(t.name, t.dtype, t.shape) for t in read_header("tiny-int4/model.safetensors").tensors]
    [('fc.weight_packed', 'I32', (2, 4)), ('fc.weight_scale', 'F32', (2, 1)), \
('fc.weight_shape', 'I64', (2,)), ('fc.bias', 'F32', (2,))]
    >>> q = json.load(open("tiny-int4/config.json"))["quantization_config"]
    >>> q["format"], q["config_groups"]["group_0"]["weights"]["strategy"]
    ('pack-quantized', 'group')
    """
    t0 = time.perf_counter()
    show = check_flag("progress", progress)
    stats = check_flag("error_stats", error_stats)
    chunk_items(chunk_bytes, 1)
    nworkers = None if workers is None else check_positive_int("workers", workers)
    settings = {"num_bits": num_bits, "signed_input": signed_input,
                "narrow_range": narrow_range,
                "round_mode": round_mode, "axis": axis, "block_size": block_size,
                "calibrate": calibrate}
    plan, config = export_plan(src, dst, format, rules, skip, settings, codes_overflow)

    def before(todo: list[ShardPlan]) -> None:
        with kernel_threads(fewer_threads()):
            found = [f for s in todo for f in overflow_counts(s, chunk_bytes)]
        check_overflow(found, plan)

    return run_checkpoint(plan, chunk_bytes, show, nworkers, stats, t0, before, config,
                          check_flag("wait", wait))
