"""The streaming pipeline: a range pass and a write pass over a source, into a sink.

Memory: the range pass holds one read buffer; the write pass one read buffer
and two output buffers (the writer thread writes one while the next is
computed). Chunk sizes count elements of the larger of the input and output
item sizes, so every file command stays within about three chunks.
"""

from __future__ import annotations

import math
import queue
import signal
import threading
from contextlib import contextmanager
from functools import partial
from typing import Callable, Iterator

import numpy as np

from .._core import engine
from .._core.arrays import Block, iter_blocks, slab_items
from .._core.validate import check_positive_int
from .progress import Progress
from .sinks import ArraySink, Sink
from .sources import Source

__all__ = ["TERMINATION_SIGNALS", "Writer", "chunk_items", "range_pass", "termination_as_exit",
           "write_pass"]

#: Signals that end a process by default and that qdq turns into cleanup + exit.
TERMINATION_SIGNALS = tuple(getattr(signal, name) for name in
                            ("SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM")
                            if hasattr(signal, name))


@contextmanager
def termination_as_exit() -> Iterator[None]:
    """Turn catchable termination signals into SystemExit(128 + signum), so cleanup runs.

    Only in the main thread, and only for signals whose handler is the
    default (a program's own handlers are left alone).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    installed = []
    for sig in TERMINATION_SIGNALS:
        if signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, handler)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            signal.signal(sig, signal.SIG_DFL)


def chunk_items(chunk_bytes: int, itemsize: int) -> int:
    """Elements per chunk: ``chunk_bytes`` of the larger item size of input and output."""
    return max(1, check_positive_int("chunk_bytes", chunk_bytes) // itemsize)


def _buffer(source: Source, items: int) -> np.ndarray:
    return np.empty(slab_items(source.canon_shape, None, items)
                    * source.dtype.itemsize, dtype=np.uint8)


def range_pass(source: Source, ax: int | None, items: int, progress: bool,
               also: Callable[[np.ndarray, Block], None] | None = None
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """Pass 1: the raw per-tensor or per-channel range of the source; and its rate.

    ``also(data, block)``, if given, sees every slab in the same read (the
    calibration histogram is built so).
    """
    fmt = source.fmt
    assert fmt is not None
    channels = 1 if ax is None else source.shape[ax]
    mn = np.full(channels, np.inf, dtype=fmt.compute)
    mx = np.full(channels, -np.inf, dtype=fmt.compute)
    buf = _buffer(source, items)
    prog = Progress(source.nbytes, "qdq pass 1/2, range", progress)
    cax = source.canon_axis(ax)
    try:
        for b in iter_blocks(source.canon_shape, cax, items):
            data = source.read(b, buf)
            engine.reduce_block(data, mn[b.channels], mx[b.channels], fmt, b.extents)
            if also is not None:
                also(data, b)
            source.release(b, final=False)
            prog.update(b.count * source.dtype.itemsize)
    finally:
        prog.close()
    return mn, mx, prog.rate


class Writer:
    """Writes finished blocks on a background thread while the next are computed.

    Buffers rotate between the two threads (at most ``nbufs`` output buffers
    in use, and as many input buffers when an observer must see the input),
    so memory stays at a few chunks; a buffer grows when a block needs more.
    An error in the writer is raised in the caller at its next call;
    :meth:`close` always stops the thread first. One writer may serve several
    tensors in a row (a checkpoint shard): their blocks reach the sink in
    the order submitted, and :meth:`call` runs cleanup (closing a source) on
    the writer's thread after the blocks queued before it.
    """

    def __init__(self, sink: Sink, nbufs: int = 2):
        self.sink = sink
        self.home = sink
        self.free: queue.Queue = queue.Queue()
        self.free_in: queue.Queue = queue.Queue()
        for _ in range(nbufs):
            self.free.put(np.empty(0, dtype=np.uint8))
            self.free_in.put(np.empty(0, dtype=np.uint8))
        self.todo: queue.Queue = queue.Queue()
        self.error: BaseException | None = None
        self.closed = False
        self.cancelled = False
        self.thread = threading.Thread(target=self._run, name="qdq-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            item = self.todo.get()
            if item is None:
                return
            if callable(item):
                try:
                    item()
                except BaseException as exc:  # handed to the caller
                    self.error = self.error or exc
                continue
            source, block, data, target, buf, inbuf, observe = item
            try:
                if self.error is None and not self.cancelled:
                    if observe is not None:
                        observe(data, target)
                    self.sink.write(block, target)
                    if source is not None:
                        source.release(block, final=True)
            except BaseException as exc:  # handed to the caller
                self.error = exc
            finally:
                self.free.put(buf)
                if inbuf is not None:
                    self.free_in.put(inbuf)

    def check(self) -> None:
        """Raise the writer's error, if any."""
        if self.error is not None:
            raise self.error

    @staticmethod
    def _take(pool: queue.Queue, nbytes: int) -> np.ndarray:
        buf = pool.get()
        if buf.nbytes < nbytes:
            buf = np.empty(nbytes, dtype=np.uint8)
        return buf

    def buffer(self, nbytes: int) -> np.ndarray:
        """A free output buffer of at least ``nbytes`` (waits for one)."""
        buf = self._take(self.free, nbytes)
        if self.error is not None:
            self.free.put(buf)
            self.check()
        return buf

    def in_buffer(self, nbytes: int) -> np.ndarray:
        """A free input buffer of at least ``nbytes``, kept until its block is written."""
        buf = self._take(self.free_in, nbytes)
        if self.error is not None:
            self.free_in.put(buf)
            self.check()
        return buf

    def submit(self, block: Block | None, target: np.ndarray, buf: np.ndarray,
               source: Source | None = None, data: np.ndarray | None = None,
               inbuf: np.ndarray | None = None,
               observe: Callable[[np.ndarray, np.ndarray], None] | None = None) -> None:
        """Queue ``target`` (in ``buf``) for the sink; ``observe(data, target)`` runs first."""
        self.check()
        self.todo.put((source, block, data, target, buf, inbuf, observe))

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the writer's thread once the blocks queued so far are written."""
        self.todo.put(fn)

    def redirect(self, sink: Sink | None) -> None:
        """Blocks submitted from now on go to ``sink`` (None: back to the writer's own sink).

        Ordered with the blocks: the writer switches once those queued before are written.
        """
        self.call(partial(setattr, self, "sink", self.home if sink is None else sink))

    def cancel(self) -> None:
        """Skip the blocks still queued (their output is being thrown away)."""
        self.cancelled = True

    def close(self) -> None:
        """Wait for the queued work and stop; raises the writer's error if any."""
        if not self.closed:
            self.closed = True
            self.todo.put(None)
            self.thread.join()
        self.check()


def _report_partial(exc: BaseException, sink: Sink, total: int) -> None:
    """Say on the exception how far a non-atomic (in place, array) write got."""
    if not isinstance(sink, ArraySink):
        return
    done = sink.elements_written
    exc.qdq_elements_written = done  # type: ignore[attr-defined]
    where = "in place on the source" if sink.in_place else "into the destination array"
    note = (f"qdq: the run was writing {where}, which cannot be atomic: the first {done:,} of "
            f"{total:,} elements (in memory order) were written when it stopped, the rest "
            "are unchanged")
    if hasattr(exc, "add_note"):
        exc.add_note(note)


def write_pass(source: Source, sink: Sink, ax: int | None, items: int, progress: bool,
               label: str, kernel: Callable[[np.ndarray, np.ndarray, Block], None],
               out_dtype: np.dtype, block_size: int | None = None,
               writer: Writer | None = None,
               observe: Callable[[np.ndarray, np.ndarray], None] | None = None) -> float:
    """Pass 2: read each block, compute it into an output buffer, hand it to the writer.

    Memory: one read buffer and two output buffers of a chunk each. Returns
    the rate in bytes per second. Block-wise (``block_size`` along ``ax``)
    every slab holds whole blocks. With ``writer`` (shared by several passes
    into one sink) the writer is left running; with ``observe``, it calls
    ``observe(input, output)`` for each block before writing it (the input
    buffers then rotate too: two more chunks).
    """
    prog = Progress(source.nbytes, label, progress)
    cax = source.canon_axis(ax)
    n = slab_items(source.canon_shape, cax, items, block_size)
    read_buf = None if observe is not None else np.empty(n * source.dtype.itemsize, np.uint8)
    own = writer is None
    w = Writer(sink) if writer is None else writer
    try:
        try:
            for b in iter_blocks(source.canon_shape, cax, items, block_size):
                inbuf = None
                if read_buf is None:
                    inbuf = rbuf = w.in_buffer(n * source.dtype.itemsize)
                else:
                    rbuf = read_buf
                data = source.read(b, rbuf)
                buf = w.buffer(n * out_dtype.itemsize)
                target = buf[:b.count * out_dtype.itemsize].view(out_dtype).reshape(b.shape)
                kernel(data, target, b)
                w.submit(b, target, buf, source, data, inbuf, observe)
                prog.update(b.count * source.dtype.itemsize)
        finally:
            try:
                if own:
                    w.close()
                else:
                    w.check()
            finally:
                prog.close()
    except BaseException as exc:
        _report_partial(exc, sink, math.prod(source.shape))
        raise
    return prog.rate
