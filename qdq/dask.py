"""qdq on Dask arrays: lazy, on any scheduler, for data beyond one machine.

Install with ``pip install "qdq[dask]"``. The array functions return lazy
Dask objects, computed by ``.compute()``, ``dask.compute`` or ``to_zarr``;
results equal the in-memory functions bit for bit, for any chunking, on the
threaded, processes and distributed schedulers. Each block runs qdq's
kernels on one thread; Dask supplies the parallelism.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from typing import Any, Callable

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("qdq.dask needs Dask: pip install 'qdq[dask]' (dask[array]; add "
                      "distributed for a cluster, zarr for zarr storage)") from exc

from ._calibrate.calibrate import calibrate as calibrate_np
from ._calibrate.histogram import HistogramTracker
from ._calibrate.methods import check_method
from ._calibrate.range import merge_max, merge_min
from ._checkpoint.export import check_overflow, export_plan, overflow_counts
from ._checkpoint.plan import plan_checkpoint
from ._checkpoint.run import (
    finish_checkpoint,
    lock_checkpoint,
    prepare_checkpoint,
    report_of,
    shard_complete,
    shard_task,
    warn_report,
)
from ._core import engine
from ._core.arrays import as_input, kernel_view, prepare_out, result_dtype
from ._core.blocks import check_block_size, given_block_range, transform_blocks
from ._core.codes import quantize as quantize_np
from ._core.diagnostics import Float16Overflow, warn_unsigned_negative
from ._core.foreign import ARRAY_ARGUMENTS, Kind, out_refused
from ._core.formats import Format, format_of, is_bfloat16_dtype, to_public
from ._core.op import compute_range as compute_range_np
from ._core.op import quantize_and_dequantize as quantize_and_dequantize_np
from ._core.params import code_dtype_for, params_from_rows
from ._core.validate import (
    OpArgs,
    check_axis,
    check_code_dtype,
    check_flag,
    given_range,
)
from ._stream.pipeline import chunk_items
from ._stream.plan import DEFAULT_CHUNK_BYTES, TensorRun

__all__ = ["calibrate", "compute_range", "quantize_and_dequantize", "quantize",
           "quantize_and_dequantize_checkpoint", "quantize_checkpoint"]


def _format(x, bfloat16_bits: bool) -> Format:
    if not isinstance(x, da.Array):
        raise TypeError(f"expected a dask.array.Array, got {type(x).__name__} (use qdq.* for "
                        "NumPy arrays)")
    return format_of(x.dtype, check_flag("bfloat16_bits", bfloat16_bits))


# ---------------------------------------------------------------------------
# The range: a Dask tree reduction
# ---------------------------------------------------------------------------

def _range_chunk(block, axis=None, keepdims=True, computing_meta=False, fmt=None,
                 channel_axis=None, bits=False):
    """Per block: qdq's fused kernel; raw (+inf/-inf where nothing) per channel."""
    if computing_meta:  # Dask asks for the shape of things only
        return block
    shape = [1] * block.ndim
    if channel_axis is not None:
        shape[channel_axis] = block.shape[channel_axis]
    x, _ = as_input(block, bits)
    xk = kernel_view(x, fmt)
    if x.ndim == 0:
        xk = xk.reshape(1)
    mn, mx = engine.reduce_range(xk, fmt, channel_axis, nthreads=1)
    return {"min": mn.reshape(shape), "max": mx.reshape(shape)}


def _range_combine(parts, axis=None, keepdims=True, computing_meta=False):
    """Merge partial ranges along the reduced axes (the RangeTracker merge)."""
    if computing_meta:
        return parts
    if isinstance(parts, dict):
        parts = [parts]
    parts = list(_flatten(parts))
    mn, mx = parts[0]["min"], parts[0]["max"]
    for p in parts[1:]:
        mn, mx = merge_min(mn, p["min"]), merge_max(mx, p["max"])
    return {"min": mn.astype(parts[0]["min"].dtype), "max": mx.astype(parts[0]["max"].dtype)}


def _flatten(parts):
    if isinstance(parts, dict):
        yield parts
    else:
        for p in parts:
            yield from _flatten(p)


def _pair_dtype(fmt: Format) -> np.dtype:
    return np.dtype([("min", fmt.compute), ("max", fmt.compute)])


def _range_aggregate(parts, axis=None, keepdims=False, computing_meta=False, channel_axis=None,
                     fmt=None):
    """The raw range of the channels of this output block, as (min, max) records."""
    if computing_meta:
        return np.empty((0,) * (0 if channel_axis is None else 1), dtype=_pair_dtype(fmt))
    d = _range_combine(parts, axis, True)
    shape = () if channel_axis is None else (d["min"].size,)
    out = np.empty(shape, dtype=_pair_dtype(fmt))
    out["min"] = d["min"].reshape(shape)
    out["max"] = d["max"].reshape(shape)
    return out


def _raw_range(x: "da.Array", fmt: Format, ax: int | None, bits: bool) -> "da.Array":
    """Lazy raw range: (min, max) records, 0-d per tensor, (C,) per channel."""
    reduced = tuple(d for d in range(x.ndim) if d != ax)
    if x.ndim == 0:
        x = x.reshape((1,))
        reduced = (0,)
    pair = _pair_dtype(fmt)
    return da.reduction(
        x, partial(_range_chunk, fmt=fmt, channel_axis=ax, bits=bits),
        partial(_range_aggregate, channel_axis=ax, fmt=fmt), combine=_range_combine,
        axis=reduced, keepdims=False, dtype=pair, concatenate=False,
        meta=np.empty((0,) * (0 if ax is None else 1), dtype=pair), name="qdq-range")


def _split_pairs(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(r).reshape(-1)
    return np.ascontiguousarray(r["min"]), np.ascontiguousarray(r["max"])


def _finish(r, fmt, count, public, per_channel):
    """Raw records -> the public (min, max), as qdq.compute_range gives them."""
    mn, mx = engine.finish_range(*_split_pairs(r), count)
    mn, mx = to_public(mn, fmt, public), to_public(mx, fmt, public)
    return (mn, mx) if per_channel else (mn[0], mx[0])


def compute_range(x, axis=None, *, bfloat16_bits=False):
    """Lazy NaN-ignoring ``(min, max)`` of a Dask array (per channel with ``axis``).

    Same values and types as :func:`qdq.compute_range` on the computed array:
    0-d arrays of the input's type per tensor, 1-D per channel. Both come from
    one tree reduction (each block read once by qdq's fused kernel, partial
    ranges combined by the :class:`qdq.RangeTracker` merge).

    Parameters
    ----------
    x : dask.array.Array
        The data (float16, bfloat16, float32 or float64).
    axis : int, optional
        One range per channel along this axis.
    bfloat16_bits : bool, default False
        The blocks hold bfloat16 bit patterns in ``uint16``.

    Returns
    -------
    min : dask.array.Array
        The lazy minimum.
    max : dask.array.Array
        The lazy maximum.

    Examples
    --------
    >>> import dask.array as da, numpy as np, qdq.dask
    >>> x = da.from_array(np.arange(12.0).reshape(3, 4), chunks=2)
    >>> [v.compute() for v in qdq.dask.compute_range(x, axis=1)]
    [array([0., 1., 2., 3.]), array([ 8.,  9., 10., 11.])]
    """
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    fmt = _format(x, bits)
    ax = check_axis(axis, x.ndim)
    raw = _raw_range(x, fmt, ax, bits)
    count = x.size if ax is None else (x.size // x.shape[ax] if x.shape[ax] else 0)
    public = None if bits else x.dtype
    out_dtype = (np.dtype(np.float32) if bits else
                 (x.dtype if (is_bfloat16_dtype(x.dtype) or fmt.name == "float16") else
                  np.dtype(fmt.compute)))
    shape = () if ax is None else (x.shape[ax],)
    whole = raw.rechunk(-1) if raw.ndim else raw
    # One task finishes both bounds, so that computing both reads each block once.
    pair = dask.delayed(_finish, nout=2)(whole, fmt, count, public, ax is not None)
    return tuple(da.from_delayed(v, shape=shape, dtype=out_dtype,
                                 meta=np.empty((0,) * len(shape), out_dtype)) for v in pair)


# ---------------------------------------------------------------------------
# The op and the codes over blocks
# ---------------------------------------------------------------------------

def _params_rows(raw, run: TensorRun) -> np.ndarray:
    """(4, C) parameter rows from the raw range records (the tensor's warnings raised here)."""
    run.set_range(*_split_pairs(raw))
    run.finish()
    assert run.rows is not None
    return run.rows


def _apply_block(block, *rest, run: TensorRun, ax, bits, out_dtype):
    """The op (or the codes) of one block with its channels' parameter rows."""
    if ax is None:
        (p,) = rest
        rows = p
    else:
        idx, p = rest
        rows = p[:, idx] if idx.size else p[:, :0]
    x, _ = as_input(block, bits)
    xk = kernel_view(x, run.fmt)
    out = np.empty(x.shape, dtype=out_dtype)
    rk = out if run.codes else kernel_view(out, run.fmt)
    if x.ndim == 0:
        xk, rk = xk.reshape(1), rk.reshape(1)
    run.apply(xk, rk, ax, np.ascontiguousarray(rows), nthreads=1)
    return out


def _map(x, p, run: TensorRun, ax, bits, out_dtype):
    """Blockwise over x; p (a one-block (4, C) Dask array) goes whole to every block."""
    ind = tuple(range(x.ndim))
    pind = (x.ndim, x.ndim + 1)
    fn = partial(_apply_block, run=run, ax=ax, bits=bits, out_dtype=out_dtype)
    meta = np.empty((0,) * x.ndim, dtype=out_dtype)
    token = f"qdq-op-{run.op}"  # a prefix: the key is unique to the arguments
    if ax is None:
        return da.blockwise(fn, ind, x, ind, p, pind, dtype=out_dtype, concatenate=True,
                            meta=meta, token=token)
    idx = da.arange(x.shape[ax], chunks=(x.chunks[ax],))
    return da.blockwise(fn, ind, x, ind, idx, (ax,), p, pind, dtype=out_dtype,
                        concatenate=True, meta=meta, token=token)


def _args(x, signed_input, num_bits, range_given, round_mode, narrow_range, axis,
          bfloat16_bits) -> tuple[OpArgs, Format, int | None, bool]:
    """The op's arguments checked against a Dask array: (args, format, axis, bits flag)."""
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    fmt = _format(x, bits)
    a = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    return a, fmt, check_axis(axis, x.ndim), bits


def _param_array(x, run: TensorRun, bits: bool, input_min, input_max) -> "da.Array":
    """Lazy one-block (4, C) parameter rows: from the given range or the data's."""
    ax, fmt = run.ax, run.fmt
    channels = 1 if ax is None else x.shape[ax]
    if run.args.range_given:
        run.set_range(*given_range(input_min, input_max, fmt, x.shape, ax))
        run.finish(stacklevel=3)
        assert run.rows is not None
        return da.from_array(run.rows, chunks=run.rows.shape)
    raw = _raw_range(x, fmt, ax, bits)
    whole = raw.rechunk(-1) if raw.ndim else raw
    rows = dask.delayed(_params_rows)(whole, run)
    return da.from_delayed(rows, shape=(4, channels), dtype=fmt.compute,
                           meta=np.empty((0, 0), fmt.compute))


def _name_of(x: "da.Array") -> str:
    """How warnings name a Dask array."""
    return f"dask array {x.name!r}"


def _aligned_chunks(chunks: tuple, bs: int) -> tuple:
    """Chunk sizes along an axis with every boundary moved up to a multiple of bs."""
    total = sum(chunks)
    bounds: list[int] = []
    edge = 0
    for c in chunks:
        edge += c
        b = min(total, -(-edge // bs) * bs)
        if not bounds or b > bounds[-1]:
            bounds.append(b)
    sizes: list[int] = []
    prev = 0
    for b in bounds:
        sizes.append(b - prev)
        prev = b
    return tuple(sizes) if sizes else chunks


class _ChunkWarnings:
    """The warnings of one lazy array whose chunks are separate tasks: each raised once.

    The chunks' tasks share it, so the float16 scale overflow is warned about
    once for the array (naming it and the first chunk found to overflow), as
    is the unsigned output of negative data. On the threaded and synchronous
    schedulers that is in the computing process; a process or distributed
    worker has its own copy, so there each worker process warns once, in its log.
    """

    def __init__(self, name: str):
        self.name = name
        self.lock = threading.Lock()
        self.raised: set[str] = set()

    def __getstate__(self) -> dict:
        return {"name": self.name}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["name"])  # type: ignore[misc]

    def __dask_tokenize__(self) -> tuple:
        return ("qdq-chunk-warnings", self.name)

    def first(self, kind: str) -> bool:
        """Whether this kind of warning is raised now (not yet for the array)."""
        with self.lock:
            if kind in self.raised:
                return False
            self.raised.add(kind)
            return True


def _op_chunk(block, lo=None, hi=None, *, ax, bs, a, bits, warn, block_info=None):
    """The block-wise op on one chunk (its part of a given blocked range)."""
    x, fmt = as_input(block, bits)
    given = None
    if a.range_given:
        loc = block_info[0]["array-location"]
        index = tuple(slice(s0 // bs, -(-s1 // bs)) if d == ax else slice(s0, s1)
                      for d, (s0, s1) in enumerate(loc))
        given = (np.ascontiguousarray(lo[index]), np.ascontiguousarray(hi[index]))
    res = prepare_out(None, x, result_dtype(x))
    where = "" if block_info is None else f", chunk {tuple(block_info[0]['chunk-location'])}"
    overflow = Float16Overflow(fmt, f"{warn.name}{where}", "blocks")
    negative = transform_blocks(kernel_view(x, fmt), kernel_view(res, fmt), fmt, ax, bs, a,
                                given, overflow=overflow)
    if overflow.overflowed and warn.first("overflow"):
        overflow.warn(stacklevel=1)
    if negative and not a.signed and not a.range_given and warn.first("negative"):
        warn_unsigned_negative(stacklevel=1)
    return res


def _blockwise_op(x, a: OpArgs, fmt: Format, ax: int, bs: int, bits: bool, input_min,
                  input_max):
    name = _name_of(x)
    chunks = list(x.chunks)
    chunks[ax] = _aligned_chunks(x.chunks[ax], bs)
    if tuple(chunks) != x.chunks:
        x = x.rechunk(tuple(chunks))
    kw = dict(ax=ax, bs=bs, a=a, bits=bits, warn=_ChunkWarnings(name))
    if a.range_given:
        lo, hi = given_block_range(input_min, input_max, fmt, x.shape, ax, bs)
        kw.update(lo=lo, hi=hi)
    return x.map_blocks(partial(_op_chunk, **kw), dtype=x.dtype.newbyteorder("="),
                        meta=np.empty((0,) * x.ndim, dtype=x.dtype.newbyteorder("=")),
                        token="qdq-blocks")


def quantize_and_dequantize(x, input_min=None, input_max=None, signed_input=True, num_bits=8,
                            range_given=False, round_mode="HALF_TO_EVEN", narrow_range=False,
                            axis=None, *, bfloat16_bits=False, block_size=None):
    """The op on a Dask array, lazily: :func:`qdq.quantize_and_dequantize` per block.

    With the range from the data, one graph reduces it first (each block read
    once for the range) and maps the op over the blocks with the parameters;
    per channel along any axis, with blocks cut anywhere.

    Block-wise (``block_size`` along ``axis``) a block's range lies inside
    the block: the chunks are realigned so that chunk boundaries along the
    axis fall on block boundaries (when they do not already), and each chunk
    is quantized on its own, in one read. A given range has the blocked shape.

    A float16 scale that overflows (inf/NaN output, as in TensorFlow) is
    warned about once for the array, naming it (block-wise: and the first
    chunk found to overflow), when computed; on the processes and distributed
    schedulers, once per worker process, in that process.

    Parameters
    ----------
    x : dask.array.Array
        The data (float16, bfloat16, float32 or float64).
    input_min, input_max : float or array_like, optional
        As for :func:`qdq.quantize_and_dequantize`, as are the other arguments.
    signed_input, range_given, narrow_range, bfloat16_bits : bool
        The op's flags (defaults True, False, False and False).
    num_bits, axis, block_size : int, optional
        The bit width (8), the channel axis, the block size along it.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.

    Returns
    -------
    dask.array.Array
        Of the input's type and shape; of its chunks, except block-wise when
        they had to be realigned.

    Examples
    --------
    >>> import dask.array as da, numpy as np, qdq, qdq.dask
    >>> x = np.linspace(-1, 1, 10)
    >>> y = qdq.dask.quantize_and_dequantize(da.from_array(x, chunks=3), num_bits=4)
    >>> bool((y.compute() == qdq.quantize_and_dequantize(x, num_bits=4)).all())
    True
    """
    a, fmt, ax, bits = _args(x, signed_input, num_bits, range_given, round_mode, narrow_range,
                             axis, bfloat16_bits)
    bs = check_block_size(block_size, axis)
    if bs is not None:
        assert ax is not None
        return _blockwise_op(x, a, fmt, ax, bs, bits, input_min, input_max)
    run = TensorRun(fmt, a, x.shape, ax, ax, name=_name_of(x))
    p = _param_array(x, run, bits, input_min, input_max)
    return _map(x, p, run, ax, bits, x.dtype.newbyteorder("="))


def quantize(x, input_min=None, input_max=None, signed_input=True, num_bits=8,
             range_given=False, round_mode="HALF_TO_EVEN", narrow_range=False, axis=None, *,
             code_dtype=None, bfloat16_bits=False):
    """Integer codes of a Dask array, lazily: :func:`qdq.quantize` per block.

    Parameters
    ----------
    x : dask.array.Array
        The data (float16, bfloat16, float32 or float64).
    input_min, input_max : float or array_like, optional
        As for :func:`qdq.quantize_and_dequantize`, as are the other arguments.
    signed_input, range_given, narrow_range, bfloat16_bits : bool
        The op's flags (defaults True, False, False and False).
    num_bits, axis : int, optional
        The bit width (8) and the channel axis.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.
    code_dtype : dtype-like, optional
        The codes' integer type instead of :func:`qdq.code_dtype`'s.

    Returns
    -------
    codes : dask.array.Array
        Of :func:`qdq.code_dtype` (or ``code_dtype``); NaN or a code that does
        not fit raises ValueError when computed.
    params : dask.delayed.Delayed
        The :class:`qdq.QuantizationParams`, computed with the codes
        (``dask.compute(codes, params)``).

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np, qdq.dask
    >>> x = da.from_array(np.array([-1.0, -0.3, 0.7, 2.0], np.float32), chunks=2)
    >>> dask.compute(*qdq.dask.quantize(x))[0]
    array([-64, -19,  44, 127], dtype=int8)
    """
    a, fmt, ax, bits = _args(x, signed_input, num_bits, range_given, round_mode, narrow_range,
                             axis, bfloat16_bits)
    cdt = code_dtype_for(fmt, a.grid) if code_dtype is None else check_code_dtype(code_dtype)
    run = TensorRun(fmt, a, x.shape, ax, ax, code_dtype=cdt, name=_name_of(x))
    p = _param_array(x, run, bits, input_min, input_max)
    codes = _map(x, p, run, ax, bits, cdt)
    params = dask.delayed(params_from_rows)(p, fmt, a.grid, ax, ax is not None, a.round_mode)
    return codes, params


def quantize_and_dequantize_checkpoint(src, dst, *, rules=None, skip=(), num_bits=8,
                                       signed_input=True, narrow_range=False,
                                       round_mode="HALF_TO_EVEN", axis=None, block_size=None,
                                       calibrate=None, chunk_bytes=DEFAULT_CHUNK_BYTES,
                                       error_stats=True, wait=False):
    """:func:`qdq.quantize_and_dequantize_checkpoint` with one task per shard on Dask.

    The plan (every header read and checked, every tensor's settings) is made
    here; each shard still to write is one task on the active scheduler
    (workers must see ``src`` and ``dst`` on a shared file system); the index
    is written here once every shard is complete. It computes at once; the
    files are the same, bit for bit, as the local function's.

    Parameters
    ----------
    src, dst : str or os.PathLike
        As for :func:`qdq.quantize_and_dequantize_checkpoint`, as are the others.
    rules, skip : sequence, optional
        Per-tensor settings and copies.
    num_bits, axis, block_size, chunk_bytes : int, optional
        The op's arguments (8, None, None) and the bytes per chunk (64 MiB).
    signed_input, narrow_range, error_stats : bool
        The op's flags (True, False) and the error measurement (True).
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.
    calibrate : str, optional
        A calibrated range per tensor or channel (``"mse"``, ``"entropy"``,
        ``"percentile"``, ``"percentile:P"``, ``"minmax"``), as for
        :func:`qdq.quantize_and_dequantize_checkpoint`.
    wait : bool, default False
        Wait for another run writing into ``dst`` to end, instead of raising
        BlockingIOError. This process holds the destination's lock for the
        run; a task whose run no longer holds it (this process killed) does
        not rename its shard into place.

    Returns
    -------
    CheckpointReport
        One record per tensor.

    Examples
    --------
    >>> import numpy as np, qdq.dask
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> with open("m.safetensors", "wb") as f:
    ...     write_arrays(f, {"w": np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)})
    >>> r = qdq.dask.quantize_and_dequantize_checkpoint("m.safetensors", "q.safetensors")
    >>> r.shards_written, r["w"].action
    (['q.safetensors'], 'qdq')
    """
    t0 = time.perf_counter()
    chunk_items(chunk_bytes, 1)
    settings = {"num_bits": num_bits, "signed_input": signed_input, "narrow_range": narrow_range,
                "round_mode": round_mode, "axis": axis, "block_size": block_size,
                "calibrate": calibrate}
    plan = plan_checkpoint(src, dst, rules, skip, settings)
    return _run_checkpoint(plan, chunk_bytes, error_stats, t0, wait=wait)


def _run_checkpoint(plan, chunk_bytes, error_stats, t0, config=None, before=None, wait=False):
    """The shards still to write as one task each, then the model files and the index.

    All of it holding the destination's lock (``before(todo)`` too: a check
    that may still refuse); the tasks check that this run still holds it
    before renaming their shards into place.
    """
    stats = check_flag("error_stats", error_stats)
    waiting = check_flag("wait", wait)
    with lock_checkpoint(plan, waiting) as lock:
        if before is not None:
            before([s for s in plan.shards if not shard_complete(s)])
        todo = prepare_checkpoint(plan)
        tasks = [dask.delayed(shard_task, pure=False)(s, chunk_bytes, 1, stats, lock.owner)
                 for s in todo]
        results = dask.compute(*tasks)
        copied = finish_checkpoint(plan, config)
    report = report_of(plan, {s.dst: r for s, r in zip(todo, results, strict=True)}, t0)
    report.files_copied = copied
    return warn_report(report, stacklevel=3)


def quantize_checkpoint(src, dst, *, format="compressed-tensors", rules=None, skip=None,
                        num_bits=8, axis=0, block_size=None, narrow_range=False,
                        signed_input=True, round_mode="HALF_TO_EVEN", calibrate=None,
                        codes_overflow="error",
                        chunk_bytes=DEFAULT_CHUNK_BYTES, error_stats=True, wait=False):
    """:func:`qdq.quantize_checkpoint` with one task per shard on Dask.

    The plan is made here; the first pass that looks for codes past the grid
    (``codes_overflow="error"``) is one task per shard still to write, and
    refuses before anything is written; then each shard is one task, and the
    model's other files and the index are written here. It computes at once;
    the files are the same, bit for bit, as the local function's.

    Parameters
    ----------
    src, dst : str or os.PathLike
        As for :func:`qdq.quantize_checkpoint`, as are the others.
    format : str, default "compressed-tensors"
        ``"compressed-tensors"`` (``"pack-quantized"``) or ``"int-quantized"``.
    rules, skip : sequence, optional
        Per-tensor settings and copies (the format's default skips are added).
    num_bits, axis, block_size, chunk_bytes : int, optional
        The op's arguments (8, 0, None) and the bytes per chunk (64 MiB).
    narrow_range, signed_input, error_stats : bool
        The grid without its minimum (False), signed (True; unsigned is
        stored with a zero point), the error measurement (True).
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.
    calibrate : str, optional
        A calibrated range per tensor or channel.
    codes_overflow : {"error", "clamp"}, default "error"
        Codes outside the grid: refused, or stored as the nearest grid code.
    wait : bool, default False
        Wait for another run writing into ``dst`` to end, instead of raising
        BlockingIOError (as for :func:`quantize_and_dequantize_checkpoint`).

    Returns
    -------
    CheckpointReport
        One record per tensor.

    Examples
    --------
    >>> import numpy as np, qdq.dask
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> with open("m.safetensors", "wb") as f:
    ...     write_arrays(f, {"fc.weight": np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32)})
    >>> r = qdq.dask.quantize_checkpoint("m.safetensors", "c.safetensors", num_bits=4)
    >>> r.shards_written, r["fc.weight"].action
    (['c.safetensors'], 'quantize')
    """
    t0 = time.perf_counter()
    chunk_items(chunk_bytes, 1)
    settings = {"num_bits": num_bits, "signed_input": signed_input,
                "narrow_range": narrow_range,
                "round_mode": round_mode, "axis": axis, "block_size": block_size,
                "calibrate": calibrate}
    plan, config = export_plan(src, dst, format, rules, skip, settings, codes_overflow)

    def before(todo):
        found = dask.compute(*[dask.delayed(overflow_counts, pure=False)(s, chunk_bytes)
                               for s in todo])
        check_overflow([f for part in found for f in part], plan)

    return _run_checkpoint(plan, chunk_bytes, error_stats, t0, config, before, wait)


# ---------------------------------------------------------------------------
# Calibration: exact histograms per block, merged
# ---------------------------------------------------------------------------

def _block_histogram(block, axis, bins, bits):
    return HistogramTracker(axis, bins=bins, bfloat16_bits=bits).update(block).state_dict()


def _merged_range(states, method, range_kw):
    tracker = HistogramTracker.from_state(states[0])
    for state in states[1:]:
        tracker.merge(HistogramTracker.from_state(state))
    return tracker.range(method, **range_kw)


def calibrate(x, method="mse", axis=None, *, bins=2048, bfloat16_bits=False, **kw):
    """A calibrated range of a Dask array, lazily: :func:`qdq.calibrate` over its blocks.

    Each block builds an exact power-of-two histogram and the histograms are
    merged (the merge is exact, so the result equals :func:`qdq.calibrate` on
    the whole array bit for bit, whatever the chunking). Per channel, blocks
    are first made slabs along axis 0 that hold whole channels (rechunked
    along the other axes when needed).

    Parameters
    ----------
    x : dask.array.Array
        The data (float16, bfloat16, float32 or float64).
    method : {"mse", "percentile", "entropy", "minmax"}, default "mse"
        As for :func:`qdq.calibrate`, as are the other arguments.
    axis, bins : int, optional
        One range per channel along ``axis``; bins per histogram (2048).
    bfloat16_bits : bool, default False
        The blocks hold bfloat16 bit patterns in ``uint16``.
    **kw
        ``percentile``, ``num_bits``, ``signed_input``, ``narrow_range``, ``round_mode``.

    Returns
    -------
    dask.delayed.Delayed
        Computing to ``(input_min, input_max)``, as :func:`qdq.calibrate` gives.

    Examples
    --------
    >>> import dask, dask.array as da, numpy as np, qdq, qdq.dask
    >>> x = np.random.default_rng(0).standard_t(3, 10_000).astype(np.float32)
    >>> lazy = qdq.dask.calibrate(da.from_array(x, chunks=999), "percentile", num_bits=4)
    >>> dask.compute(lazy)[0] == qdq.calibrate(x, "percentile", num_bits=4)
    True
    """
    bits = check_flag("bfloat16_bits", bfloat16_bits)
    _format(x, bits)
    check_method(method, kw.get("percentile", 99.99))
    ax = check_axis(axis, x.ndim)
    if ax is not None:  # blocks become slabs along axis 0 holding whole channels
        x = x.rechunk({d: -1 for d in range(1, x.ndim)})
    else:  # per tensor the histogram is of a multiset: any block, flattened
        x = x.reshape(-1)
    blocks = list(x.to_delayed().ravel())
    block_axis = None if ax is None else ax
    states = [dask.delayed(_block_histogram)(b, block_axis, bins, bits) for b in blocks]
    return dask.delayed(_merged_range)(states, method, kw)


# ---------------------------------------------------------------------------
# The adapter: qdq's in-memory functions on Dask arrays go to their lazy versions
# ---------------------------------------------------------------------------

#: The lazy version of each core function that has one, keyed by the function itself.
LAZY: dict[Callable, Callable] = {
    quantize_and_dequantize_np: quantize_and_dequantize, compute_range_np: compute_range,
    quantize_np: quantize, calibrate_np: calibrate}


def dispatch(function: Callable, kind: Kind, args: dict[str, Any]) -> Any:
    """The Dask adapter (registered by ``qdq/__init__.py``): a core function's call, lazily.

    ``function`` is the in-memory function called with a Dask array; its
    lazy version (:data:`LAZY`) gets the same arguments.
    """
    names = [n for n in ARRAY_ARGUMENTS if n in args]
    if not any(isinstance(args[n], da.Array) for n in names):
        raise out_refused(args["out"])
    if args.get("out") is not None:
        raise TypeError("out= is not supported for Dask arrays: the result is a lazy Dask "
                        "array (store it with .to_zarr or .compute())")
    lazy = LAZY.get(function)
    if lazy is None or len(names) > 1:
        raise TypeError(f"qdq.{function.__name__} has no Dask version: compute the Dask "
                        "array first (.compute()), or see qdq.dask for the lazy functions")
    rest = {k: v for k, v in args.items() if k not in (names[0], "out") and v is not None}
    return lazy(args[names[0]], **rest)
