"""Quantize-dequantize a whole safetensors checkpoint: shard by shard, tensor by tensor.

Each output shard is planned first (:mod:`qdq._checkpoint.plan`), then written
sequentially through the one atomic writer: its header, then every tensor's
data at its offset, quantized ones through the file pipeline (range pass and
write pass, or one block-wise pass) with an :class:`qdq._stream.sinks.AppendSink`
on the shard's temporary file, copied ones byte for byte. A shard is renamed
into place when complete; the index of a sharded checkpoint is written last.
Memory: a few chunks, whatever the checkpoint or tensor size.
"""

from __future__ import annotations

import concurrent.futures
import fnmatch
import json
import multiprocessing
import os
import shutil
import sys
import time
import warnings
from functools import partial
from typing import Any, Callable

import numpy as np

from .._core.stats import TensorErrorStats
from .._core.threads import fewer_threads, get_num_threads, kernel_threads
from .._core.validate import OpArgs, check_flag, check_positive_int
from .._io.atomic import AtomicFile, remove_stale_temporaries
from .._io.lock import DestinationLock, DestinationLocked
from .._io.pagecache import drop_pages
from .._io.safetensors import load_json, read_header
from .._io.safetensors_index import write_index
from .._io.safetensors_writer import plan_layout
from .._stream.pipeline import Writer, chunk_items, termination_as_exit
from .._stream.plan import DEFAULT_CHUNK_BYTES, TensorRun
from .._stream.progress import Progress
from .._stream.sinks import AppendSink, DiscardSink
from .._stream.sources import FileSource
from .plan import FORMATS, CheckpointPlan, ShardPlan, TensorPlan, plan_checkpoint
from .report import CheckpointReport, TensorRecord

__all__ = ["analyze_checkpoint", "finish_checkpoint", "lock_checkpoint", "prepare_checkpoint",
           "quantize_and_dequantize_checkpoint", "report_of", "run_tensor", "shard_complete",
           "shard_task", "warn_report", "write_shard"]


class _NoProgress:
    def update(self, nbytes: int) -> None:
        pass

    def set_note(self, note: str) -> None:
        pass


def _record(shard: ShardPlan, t: TensorPlan, status: str, **figures: Any) -> TensorRecord:
    e = t.entry
    return TensorRecord(e.name, os.path.basename(shard.dst or shard.src), e.dtype, e.shape,
                        t.action, t.reason, t.settings, status, nbytes=e.nbytes, **figures)


def _stop(writer: Writer) -> None:
    """Stop the writer after an error elsewhere (its own error, if any, is secondary)."""
    writer.cancel()
    try:
        writer.close()
    except BaseException:  # the first error is the one to raise
        pass


def run_tensor(shard: ShardPlan, t: TensorPlan, writer: Writer, chunk_bytes: int,
               prog: Any, records: list[TensorRecord], status: str = "written",
               error_stats: bool = True) -> None:
    """One tensor through the op into the writer's sink; its record is added to ``records``.

    The error statistics of each block are shared between this thread (its
    first half, after the op) and the writer's (its second half, before the
    write), so that neither waits for the other; the record is added on the
    writer's thread once the tensor's last block is written. Without
    ``error_stats`` the record has no error figures (and the input buffers
    do not rotate: one chunk less). A tensor with a ``layout`` (an export)
    is written by it: its codes through the same passes, then its other
    output tensors.
    """
    e, s = t.entry, t.settings
    assert s is not None and e.storage is not None
    t0 = time.perf_counter()
    fmt = FORMATS[e.dtype]
    args = OpArgs(s["signed_input"], s["num_bits"], False, s["round_mode"], s["narrow_range"])
    ax, bs = s["axis"], s["block_size"]
    itemsize = e.storage.itemsize
    layout = t.layout
    source = FileSource(shard.src, e.shape, False, e.storage, e.begin, fmt).open()
    try:
        run = TensorRun.of_source(source, args, ax, bs, name=f"tensor {e.name!r}",
                                  code_dtype=None if layout is None else layout.code_dtype)
        items = chunk_items(chunk_bytes, max(itemsize, run.out_dtype.itemsize))
        if run.needs_range_pass:
            run.range_pass(source, items, False, s.get("calibrate"))
        if layout is not None:
            figures = layout.write(run, source, writer, items, prog.update, error_stats)
        else:
            figures = _write_qdq(run, source, writer, items, prog, error_stats, itemsize)
    except BaseException:
        _stop(writer)
        source.close()
        raise
    p = run.rows
    assert p is not None
    # the float16 overflow goes into the record: the caller warns from the report (a worker
    # process's or a Dask task's own warnings would not reach the caller)
    overflow = run.overflow

    def done() -> None:
        source.close()
        rows = p.reshape(4, -1).astype(np.float64)
        records.append(_record(
            shard, t, status,
            range=(float(np.fmin.reduce(rows[2])), float(np.fmax.reduce(rows[3]))),
            scale=(float(np.fmin.reduce(rows[0])), float(np.fmax.reduce(rows[0]))),
            seconds=time.perf_counter() - t0, float16_overflow=overflow.count,
            warning=overflow.message(), **figures()))

    writer.call(done)


def _write_qdq(run: TensorRun, source: FileSource, writer: Writer, items: int, prog: Any,
               error_stats: bool, itemsize: int) -> Callable[[], dict]:
    """The op's write pass into the writer's sink; a function giving the error figures."""
    fmt = run.fmt
    # the writer's half on its own thread alone: the kernels' threads are busy with the op
    stats, stats_w = TensorErrorStats(fmt), TensorErrorStats(fmt, nthreads=1)

    def kernel(data: np.ndarray, target: np.ndarray, b: Any) -> None:
        run.kernel(data, target, b)
        if error_stats:
            half = b.count // 2
            stats.add(data.reshape(-1)[:half], target.reshape(-1)[:half])
        prog.update(b.count * itemsize)

    def observe(data: np.ndarray, target: np.ndarray) -> None:
        half = data.size // 2
        stats_w.add(data.reshape(-1)[half:], target.reshape(-1)[half:])

    run.write_pass(source, writer.sink, items, False, "", kernel, writer,
                   observe if error_stats else None)

    def figures() -> dict:
        if not error_stats:
            return {}
        stats.merge(stats_w)
        return {"max_abs_error": stats.max_abs_error, "sqnr_db": stats.sqnr_db(),
                "clipped": stats.clipped, "nan": stats.nan,
                "nonfinite_out": stats.total.nonfinite_out}
    return figures


def _copy_tensor(fd: int, shard: ShardPlan, t: TensorPlan, writer: Writer, chunk_bytes: int,
                 prog: Any, records: list[TensorRecord]) -> None:
    """A tensor's bytes, unchanged, through the writer."""
    t0 = time.perf_counter()
    e = t.entry
    pos, end = e.begin, e.end
    while pos < end:
        n = min(chunk_bytes, end - pos)
        buf = writer.buffer(n)
        view = buf.data.cast("B")
        got = 0
        while got < n:
            k = os.preadv(fd, [view[got:n]], pos + got)
            if k == 0:
                raise ValueError(f"{shard.src} was truncated while being read (at byte "
                                 f"{pos + got}, tensor {e.name!r} ends at {end})")
            got += k
        drop_pages(fd, pos, n)
        writer.submit(None, buf[:n], buf)
        prog.update(n)
        pos += n
    writer.call(lambda: records.append(_record(shard, t, "written",
                                               seconds=time.perf_counter() - t0)))


def shard_complete(shard: ShardPlan) -> bool:
    """Whether the output shard exists, complete, from the same source and settings."""
    try:
        h = read_header(shard.dst)
    except (OSError, ValueError):
        return False
    return (h.metadata == shard.metadata
            and [(t.name, t.dtype, t.shape) for t in h.tensors] == shard.entries)


def _check_position(sink: AppendSink, name: str, expect: int) -> None:
    if sink.position != expect:  # pragma: no cover - a bug
        raise RuntimeError(f"{sink.path}: tensor {name!r} ended at {sink.position}, its "
                           f"header says {expect}")


def write_shard(shard: ShardPlan, chunk_bytes: int, prog: Any = None,
                error_stats: bool = True,
                guard: Callable[[], None] | None = None) -> list[TensorRecord]:
    """Write one output shard (temporary file, renamed when complete); its records.

    One writer thread serves the whole shard, so the writes of a tensor
    overlap the reads and the op of the next. ``guard``, called just before
    the rename, may still refuse it (:meth:`qdq._io.lock.LockOwner.check`:
    a worker whose run ended must not write into the destination).
    """
    prog = prog if prog is not None else _NoProgress()
    remove_stale_temporaries(shard.dst)
    header, offsets = plan_layout(shard.entries, shard.metadata)
    records: list[TensorRecord] = []
    sink = AppendSink(AtomicFile(shard.dst), 0, sys.byteorder == "big")
    try:
        sink.write_bytes(memoryview(header))
        writer = Writer(sink)
        try:
            fd = os.open(shard.src, os.O_RDONLY)
            try:
                k = 0
                for t in shard.tensors:
                    k += len(t.outputs)
                    end = offsets[k - 1][1]
                    prog.set_note(t.entry.name)
                    if t.settings is None:
                        _copy_tensor(fd, shard, t, writer, chunk_bytes, prog, records)
                    else:
                        run_tensor(shard, t, writer, chunk_bytes, prog, records,
                                   error_stats=error_stats)
                    writer.call(partial(_check_position, sink, t.entry.name,
                                        len(header) + end))
            finally:
                os.close(fd)
            writer.close()
        except BaseException:
            _stop(writer)
            raise
        if guard is not None:
            guard()
        sink.commit()
    except BaseException:
        sink.abort()
        raise
    return records


def shard_task(shard: ShardPlan, chunk_bytes: int, threads: int = 1,
               error_stats: bool = True,
               guard: Callable[[], None] | None = None) -> list[TensorRecord]:
    """One shard as a task of a process pool or a Dask graph (no progress bar).

    The kernels use ``threads`` threads (the pool or Dask supplies the
    parallelism); ``guard`` as for :func:`write_shard`.
    """
    with termination_as_exit(), kernel_threads(threads):
        return write_shard(shard, chunk_bytes, None, error_stats, guard)


def _skipped(shard: ShardPlan) -> list[TensorRecord]:
    return [_record(shard, t, "skipped") for t in shard.tensors]


def prepare_checkpoint(plan: CheckpointPlan) -> list[ShardPlan]:
    """Make the destination directory; the shards still to write (the others are complete).

    When some shard must be written, an index already in the destination is
    removed first, so that the directory is not taken for a complete
    checkpoint until the new index lands.
    """
    todo = [s for s in plan.shards if not shard_complete(s)]
    if plan.to_directory:
        os.makedirs(plan.dst_dir, exist_ok=True)
    if todo and plan.index_dst is not None and os.path.lexists(plan.index_dst):
        os.unlink(plan.index_dst)
    return todo


#: Files of a model directory that are not copied with the rest: weights in any format.
WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "*.bin", "*.bin.index.json", "*.pt",
                "*.pth", "*.ckpt", "*.h5", "*.msgpack", "*.gguf", "*.onnx")


def model_files(plan: CheckpointPlan) -> list[str]:
    """The other files of the source's model directory (config, tokenizer, ...), by name.

    Regular files only (no subdirectory, no hidden file), no weights
    (:data:`WEIGHT_FILES`); empty when the destination is not a directory.
    """
    if plan.model_dir is None:
        return []
    out = []
    for name in sorted(os.listdir(plan.model_dir)):
        path = os.path.join(plan.model_dir, name)
        if name.startswith(".") or not os.path.isfile(path) \
                or any(fnmatch.fnmatchcase(name, p) for p in WEIGHT_FILES):
            continue
        out.append(name)
    return out


def _copy_file(src: str, dst: str, data: bytes | None = None) -> None:
    remove_stale_temporaries(dst)
    with AtomicFile(dst) as f:
        if data is not None:
            f.file.write(data)
        else:
            with open(src, "rb") as g:
                shutil.copyfileobj(g, f.file, 1 << 20)


def output_weight_map(plan: CheckpointPlan) -> dict[str, str]:
    """The output index's ``weight_map``: each output tensor's file, in the source's order."""
    assert plan.index is not None
    outs = {t.entry.name: ([o[0] for o in t.outputs], os.path.basename(s.dst))
            for s in plan.shards for t in s.tensors}
    weight_map = {}
    for name in plan.index.weight_map:
        names, shard = outs[name]
        for n in names:
            weight_map[n] = shard
    return weight_map


def lock_checkpoint(plan: CheckpointPlan, wait: bool = False, show: bool = False
                    ) -> DestinationLock:
    """The lock of a run's destination, to take before :func:`prepare_checkpoint`.

    ``with lock_checkpoint(plan, wait) as lock:`` holds the destination for
    the run (see :mod:`qdq._io.lock`): a directory of shards (or a model
    directory) as a whole, one file as itself. Another run holding it raises
    :class:`qdq._io.lock.DestinationLocked` at once, or with ``wait`` is
    waited for (``show``: saying so on stderr). Processes writing the shards
    get ``lock.owner`` as their ``guard``.
    """
    def say(text: str) -> None:
        if show:
            print(f"qdq: {text}", file=sys.stderr, flush=True)

    if plan.to_directory:
        os.makedirs(plan.dst_dir, exist_ok=True)
    if plan.index is not None or plan.model_dir is not None or len(plan.shards) != 1:
        # shards, or a model directory's files with them: the directory is the run's
        return DestinationLock(plan.dst_dir, directory=True, wait=wait, on_wait=say)
    return DestinationLock(plan.shards[0].dst, wait=wait, on_wait=say)


def finish_checkpoint(plan: CheckpointPlan,
                      config: Callable[[dict], dict] | None = None) -> list[str]:
    """Copy the model directory's other files, then write the index of a sharded checkpoint.

    ``config.json`` goes through ``config`` (the parsed document in, the one
    to write out) when given, and is otherwise copied byte for byte like the
    rest. Each file lands atomically; the index, last, says the checkpoint
    is complete. Returns the names of the files copied. Every shard is
    checked first to be this run's (complete, with this plan's stamp): the
    index never lands over shards of another run.
    """
    for s in plan.shards:
        if not shard_complete(s):
            raise DestinationLocked(
                f"{s.dst} is not the shard this run wrote (something else wrote into the "
                "destination meanwhile): the index was not written; run again")
    copied = model_files(plan)
    assert plan.model_dir is not None or not copied
    for name in copied:
        src = os.path.join(plan.model_dir or "", name)
        data = None
        if name == "config.json" and config is not None:
            with open(src, "rb") as f:
                doc = load_json(f.read(), src, "model config", strict=False)
            data = (json.dumps(config(doc), indent=2, ensure_ascii=False) + "\n").encode()
        _copy_file(src, os.path.join(plan.dst_dir, name), data)
    if plan.index is None or plan.index_dst is None:
        return copied
    total = sum(t.nbytes for s in plan.shards for t in read_header(s.dst).tensors)
    meta = {k: v for k, v in plan.index.metadata.items() if k != "total_size"}
    remove_stale_temporaries(plan.index_dst)
    with AtomicFile(plan.index_dst) as f:
        write_index(f.file, output_weight_map(plan), total, meta)
    return copied


def report_of(plan: CheckpointPlan, done: dict[str, list[TensorRecord]],
              t0: float) -> CheckpointReport:
    """The report: records of written shards, ``skipped`` records of the others."""
    report = CheckpointReport(nbytes=plan.nbytes)
    for s in plan.shards:
        if s.dst in done:
            report.tensors.extend(done[s.dst])
            report.shards_written.append(s.dst)
        else:
            report.tensors.extend(_skipped(s))
            report.shards_skipped.append(s.dst)
    report.seconds = time.perf_counter() - t0
    return report


def run_checkpoint(plan: CheckpointPlan, chunk_bytes: int, show: bool, workers: int | None,
                   error_stats: bool, t0: float,
                   before: Callable[[list[ShardPlan]], None] | None = None,
                   config: Callable[[dict], dict] | None = None,
                   wait: bool = False) -> CheckpointReport:
    """Write the shards still to write (locally, or in ``workers`` processes), then finish.

    The destination is locked for all of it (:func:`lock_checkpoint`;
    ``wait``: wait for another run holding it). ``before(todo)`` runs before
    anything is written (a check over the shards still to write that may
    still refuse); ``config`` edits ``config.json`` (see :func:`finish_checkpoint`).
    """
    with termination_as_exit(), lock_checkpoint(plan, wait, show) as lock:
        if before is not None:
            before([s for s in plan.shards if not shard_complete(s)])
        todo = prepare_checkpoint(plan)
        if workers is not None and workers > 1 and len(todo) > 1:
            done = _run_workers(todo, chunk_bytes, show, workers, error_stats, lock.owner)
        else:
            with kernel_threads(fewer_threads()):
                done = _run_serial(todo, chunk_bytes, show, error_stats)
        copied = finish_checkpoint(plan, config)
    report = report_of(plan, done, t0)
    report.files_copied = copied
    return warn_report(report, stacklevel=3)


def warn_report(report: CheckpointReport, stacklevel: int = 2) -> CheckpointReport:
    """Raise the tensors' warnings (float16 scale overflow), once each, in this process.

    The records carry them from wherever the tensors ran (this thread, a
    worker process, a Dask task), so every path warns the same way, naming
    the tensor; ``stacklevel`` 2 points at the caller of the function calling this.
    """
    for t in report:
        if t.warning is not None:
            warnings.warn(t.warning, RuntimeWarning, stacklevel=stacklevel + 1)
    return report


def _run_serial(todo: list[ShardPlan], chunk_bytes: int, show: bool, error_stats: bool
                ) -> dict[str, list[TensorRecord]]:
    done = {}
    prog = Progress(sum(s.nbytes for s in todo), "qdq checkpoint", show)
    try:
        for s in todo:
            done[s.dst] = write_shard(s, chunk_bytes, prog, error_stats)
    finally:
        prog.close()
    return done


def _run_workers(todo: list[ShardPlan], chunk_bytes: int, show: bool, workers: int,
                 error_stats: bool, guard: Callable[[], None] | None = None
                 ) -> dict[str, list[TensorRecord]]:
    done = {}
    prog = Progress(sum(s.nbytes for s in todo), "qdq checkpoint", show)
    ctx = multiprocessing.get_context("spawn")  # no fork after OpenMP threads started
    ex = concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
    try:
        threads = max(1, get_num_threads() // min(workers, len(todo)) - 1)
        futures = {ex.submit(shard_task, s, chunk_bytes, threads, error_stats, guard): s
                   for s in todo}
        for fut in concurrent.futures.as_completed(futures):
            s = futures[fut]
            done[s.dst] = fut.result()
            prog.set_note(os.path.basename(s.dst))
            prog.update(s.nbytes)
    except BaseException:
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        prog.close()
    ex.shutdown(wait=True)
    return done


def quantize_and_dequantize_checkpoint(
        src: Any, dst: Any, *, rules: Any = None, skip: Any = (), num_bits: int = 8,
        signed_input: bool = True, narrow_range: bool = False,
        round_mode: str = "HALF_TO_EVEN", axis: int | None = None,
        block_size: int | None = None, calibrate: str | None = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
        workers: int | None = None, error_stats: bool = True,
        wait: bool = False) -> CheckpointReport:
    """Quantize-dequantize every weight of a safetensors checkpoint, streaming, with resume.

    Every float16, bfloat16, float32 or float64 tensor of rank 2 or more goes
    through :func:`qdq.quantize_and_dequantize` with the keyword arguments
    (bit for bit); other tensors (rank 0 and 1, integers, bool) are copied
    byte for byte. ``rules`` and ``skip`` change that per tensor name. The
    output keeps the names, dtypes, shapes, data order, ``__metadata__``
    (plus a ``qdq`` entry recording the settings and the source), shard file
    names and index (same ``weight_map``), so it loads wherever the source does.
    Written to a directory from a model directory (one holding ``config.json``),
    the model's other files (``config.json``, ``generation_config.json``,
    tokenizer files, ...; not weights in other formats) are copied too, so the
    output is a model directory ``from_pretrained`` loads.

    Tensors go one at a time through the file pipeline (two passes, one
    block-wise): memory stays at a few chunks whatever the tensor size. Each
    shard is written to a temporary file and renamed when complete, the index
    last; an interrupted run leaves no partial file under a final name, and
    a rerun skips the shards already complete with the same settings.

    Parameters
    ----------
    src : path
        A ``.safetensors`` file, an index (``*.safetensors.index.json``), or a
        directory holding an index and its shards (or one ``.safetensors`` file).
    dst : path
        For a sharded checkpoint, a directory (created if needed; shards and
        index keep their names). For one file, a file path, or an existing
        directory to write it into under its name. Never the source itself.
    rules : sequence of (pattern, settings), or mapping, optional
        In order, the first whose ``fnmatch`` pattern matches a tensor's name
        decides: ``settings`` is a dict of the op's keyword arguments
        (``num_bits``, ``axis``, ``block_size``, ``signed_input``,
        ``narrow_range``, ``round_mode``) over the ones given here, or None
        to copy the tensor. A rule may quantize float tensors of rank 0 or 1;
        non-float tensors are always copied.
    skip : sequence of str
        Glob patterns of tensors to copy unchanged (after the rules).
    num_bits : int, default 8
        The op's arguments (see :func:`qdq.quantize_and_dequantize`); the
        range is each tensor's (or channel's, or block's) own.
    signed_input : bool, default True
        A signed grid.
    narrow_range : bool, default False
        The signed grid loses its most negative value.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.
    axis : int, optional
        Per channel; a negative axis counts from the end of each tensor's shape.
    block_size : int, optional
        Per block of this many elements along ``axis``.
    calibrate : str, optional
        A calibrated range for each tensor (per tensor or channel) instead of
        its min/max: ``"mse"``, ``"entropy"``, ``"percentile"``,
        ``"percentile:P"`` or ``"minmax"`` (see :func:`qdq.calibrate`); the
        histogram is built in the range pass, the op clamps to the range.
    chunk_bytes : int, default 64 MiB
        Bytes per chunk.
    progress : bool, default False
        One bar for the checkpoint's bytes, with the current tensor's name.
    workers : int, optional
        Write this many shards at once in local processes (the output is the
        same, bit for bit).
    error_stats : bool, default True
        Measure each tensor's error (max abs error, SQNR). The measurement
        runs beside the writes; for float16 it is the slowest part of a run
        (NumPy converts float16 slowly), so ``False`` buys speed; the records
        then have no error figures.
    wait : bool, default False
        When another run is writing into ``dst``, wait for it to end instead
        of raising BlockingIOError at once (see Raises).

    Returns
    -------
    CheckpointReport
        One :class:`TensorRecord` per tensor (name, dtype, shape, action,
        settings, adjusted range and scale, max abs error, SQNR, clipped
        count, seconds); ``shards_written``, ``shards_skipped`` and
        ``files_copied``.

    Raises
    ------
    ValueError
        For a corrupt header or index, a bad rule or setting (an axis a
        tensor does not have), or ``dst`` equal to ``src``: before anything
        is written.
    FileNotFoundError
        If ``src`` does not exist.
    BlockingIOError
        When another run (of any process) is writing into ``dst``: the
        message names it (pid, host, start). The destination is locked for
        the run: a directory of shards as a whole (``DST/.qdq.lock``), one
        file as itself (``.NAME.qdq.lock`` beside it); the lock goes with the
        process however it ends, so a killed run never blocks the next.
    KeyboardInterrupt, SystemExit
        After removing the shard being written (SIGTERM and the other
        termination signals exit with 128 + the signal's number).

    Examples
    --------
    >>> import numpy as np, qdq
    >>> from qdq._io.safetensors_writer import write_arrays
    >>> from qdq._io.safetensors import read_header, tensor_memmap
    >>> w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    >>> with open("model.safetensors", "wb") as f:
    ...     write_arrays(f, {"w": w, "b": np.ones(4, np.float32)}, {"format": "np"})
    >>> report = qdq.quantize_and_dequantize_checkpoint("model.safetensors", "out.safetensors",
    ...                                                 num_bits=4)
    >>> [(r.name, r.action) for r in report]
    [('w', 'qdq'), ('b', 'copy')]
    >>> h = read_header("out.safetensors")
    >>> out = tensor_memmap(h, "w")
    >>> bool((out == qdq.quantize_and_dequantize(w, num_bits=4)).all()), h.metadata["format"]
    (True, 'np')
    >>> qdq.quantize_and_dequantize_checkpoint("model.safetensors", "out.safetensors",
    ...                                        num_bits=4).shards_skipped
    ['out.safetensors']
    """
    t0 = time.perf_counter()
    show = check_flag("progress", progress)
    stats = check_flag("error_stats", error_stats)
    chunk_items(chunk_bytes, 1)
    nworkers = None if workers is None else check_positive_int("workers", workers)
    settings = {"num_bits": num_bits, "signed_input": signed_input, "narrow_range": narrow_range,
                "round_mode": round_mode, "axis": axis, "block_size": block_size,
                "calibrate": calibrate}
    waiting = check_flag("wait", wait)
    plan = plan_checkpoint(src, dst, rules, skip, settings)
    return run_checkpoint(plan, chunk_bytes, show, nworkers, stats, t0, wait=waiting)


def analyze_checkpoint(src: Any, rules: Any, skip: Any, settings: dict, chunk_bytes: int,
                       progress: bool) -> CheckpointReport:
    """What the op would do to each tensor (range, scale, error); writes nothing."""
    t0 = time.perf_counter()
    plan = plan_checkpoint(src, None, rules, skip, settings)
    total = sum(t.entry.nbytes for s in plan.shards for t in s.tensors if t.settings)
    prog = Progress(total, "qdq info", progress)
    report = CheckpointReport(nbytes=plan.nbytes)
    writer = Writer(DiscardSink())
    try:
        with kernel_threads(fewer_threads()):
            for s in plan.shards:
                for t in s.tensors:
                    prog.set_note(t.entry.name)
                    if t.settings is None:
                        writer.call(partial(report.tensors.append, _record(s, t, "analyzed")))
                    else:
                        run_tensor(s, t, writer, chunk_bytes, prog, report.tensors, "analyzed")
            writer.close()
    finally:
        _stop(writer)
        prog.close()
    report.seconds = time.perf_counter() - t0
    return warn_report(report)
