"""The public file functions, each a short wrapper over the pipeline.

A source (``.npy``, raw file, array or memmap) is opened, checked against
the op's arguments, run through the range pass (unless the range is given)
and the write pass into a sink; the sink commits atomically (a path) or in
place (an array or memmap).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._calibrate.methods import check_calibration
from .._core import engine
from .._core.arrays import Block
from .._core.blocks import (
    check_block_size,
    dequantize_blocks,
    given_block_range,
)
from .._core.codes import params_axis
from .._core.formats import file_value_dtype, format_named
from .._core.params import QuantizationParams, code_dtype_for, param_rows
from .._core.validate import OpArgs, check_axis, check_flag, code_type_index, given_range
from .._io.atomic import AtomicFile, commit_together
from .pipeline import chunk_items, termination_as_exit, write_pass
from .plan import DEFAULT_CHUNK_BYTES, TensorRun, swap_order
from .sinks import FileSink, open_sink
from .sources import Source, open_source

__all__ = ["FileOptions", "default_params_path", "dequantize_file", "name_of",
           "open_for_op", "quantize_and_dequantize_file", "quantize_file", "run_op_file"]


@dataclass(frozen=True)
class FileOptions:
    """How to read a source and how to run over it (shared by every file command)."""

    chunk_bytes: int = DEFAULT_CHUNK_BYTES
    progress: bool = False
    dtype: Any = None
    shape: Any = None
    order: str = "C"
    offset: int = 0
    bfloat16_bits: bool = False


def open_for_op(src: Any, input_min: Any, input_max: Any, args: OpArgs, axis: Any,
                opts: FileOptions, block_size: int | None = None
                ) -> tuple[Source, int | None, Any]:
    """Open a source and check the op's arguments against it.

    Returns (source, normalised axis, the given range or None); the source is
    closed again if a check fails. Block-wise, the given range is the blocked
    range in memory order (reversed axes for a Fortran-ordered source).
    """
    source = open_source(src, opts.dtype, opts.shape, opts.order, opts.offset,
                         check_flag("bfloat16_bits", opts.bfloat16_bits))
    try:
        check_flag("progress", opts.progress)
        chunk_items(opts.chunk_bytes, 1)
        ax = check_axis(axis, len(source.shape))
        assert source.fmt is not None
        given: Any = None
        if args.range_given and block_size is not None:
            assert ax is not None
            lo_b, hi_b = given_block_range(input_min, input_max, source.fmt, source.shape, ax,
                                           block_size)
            given = (swap_order(lo_b, source), swap_order(hi_b, source))
        elif args.range_given:
            given = given_range(input_min, input_max, source.fmt, source.shape, ax)
    except BaseException:
        source.close()
        raise
    return source, ax, given


def run_op_file(src: Any, dst: Any, input_min: Any, input_max: Any, args: OpArgs, axis: Any,
                opts: FileOptions, codes: bool = False, params_path: Any = None,
                block_size: Any = None, calibrate: Any = None
                ) -> tuple[QuantizationParams, dict]:
    """The op (or, with ``codes``, :func:`qdq.quantize`) over a file.

    With ``params_path`` the parameters JSON is written there and committed
    together with the codes (both written and synced before either is
    renamed). Block-wise (``block_size``) the range of a block lies inside
    the block, so the source is read once. With ``calibrate`` (a method:
    ``"mse"``, ``"entropy"``, ``"percentile:99.99"``, ``"minmax"``) the first
    pass builds a histogram and the second applies the op with the calibrated
    range, clamped (``range_given``). Returns (QuantizationParams, timings dict);
    the dict also has ``float16_overflow``: the channels (blocks) whose float16
    scale overflowed, warned about (once, naming the file) as the op warns.
    """
    bs = check_block_size(block_size, axis)
    if calibrate is not None:
        check_calibration(calibrate, bs, args.range_given)
    source, ax, given = open_for_op(src, input_min, input_max, args, axis, opts, bs)
    timings: dict = {"bytes": source.nbytes}
    params_file = None
    try:
        fmt = source.fmt
        assert fmt is not None
        run = TensorRun.of_source(source, args, ax, bs, given,
                                  code_dtype=code_dtype_for(fmt, args.grid) if codes else None,
                                  name=name_of(src))
        items = chunk_items(opts.chunk_bytes, max(source.dtype.itemsize,
                                                  run.out_dtype.itemsize))
        with termination_as_exit():
            if params_path is not None:
                params_file = AtomicFile(params_path)
            sink = open_sink(dst, source, source.result_dtype if not codes else run.out_dtype)
            try:
                if run.needs_range_pass:
                    timings["range_seconds"] = run.range_pass(source, items, opts.progress,
                                                              calibrate)
                if bs is not None:
                    label = "qdq block-wise, codes" if codes else "qdq block-wise"
                else:
                    label = "qdq pass 2/2, codes" if codes else "qdq pass 2/2, write"
                t0 = time.perf_counter()
                run.write_pass(source, sink, items, opts.progress, label)
                params = run.params(source)
                if params_file is not None:
                    params_file.file.write((params.to_json() + "\n").encode("utf-8"))
                    if isinstance(sink, FileSink):
                        sink.finish()
                        commit_together([sink.atomic, params_file])
                    else:
                        sink.commit()
                        params_file.commit()
                else:
                    sink.commit()
                timings["write_seconds"] = time.perf_counter() - t0
            except BaseException:
                sink.abort()
                raise
    except BaseException:
        if params_file is not None:
            params_file.abort()
        raise
    finally:
        source.close()
    run.finish(stacklevel=3)  # run_op_file's caller's caller: the user
    timings["float16_overflow"] = run.overflow.count
    return params, timings


def name_of(src: Any) -> str | None:
    """How warnings name a file source (arrays have no name)."""
    return repr(os.fspath(src)) if isinstance(src, (str, os.PathLike)) else None


def quantize_and_dequantize_file(src: Any, dst: Any, input_min: Any = None,
                                 input_max: Any = None, signed_input: bool = True,
                                 num_bits: int = 8, range_given: bool = False,
                                 round_mode: str = "HALF_TO_EVEN", narrow_range: bool = False,
                                 axis: int | None = None, *,
                                 chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
                                 dtype: Any = None, shape: Any = None, order: str = "C",
                                 offset: int = 0,
                                 bfloat16_bits: bool = False,
                                 block_size: int | None = None,
                                 calibrate: str | None = None) -> QuantizationParams:
    """Run a file or array through the op in two passes with bounded memory.

    The first pass reduces the range (unless it is given), the second applies
    the op chunk by chunk; the result equals the in-memory
    :func:`qdq.quantize_and_dequantize` bit for bit. Memory stays at about
    three times ``chunk_bytes`` (a chunk being read, two being written)
    whatever the file size, and pages already processed are released from the
    page cache.

    Parameters
    ----------
    src : path or numpy.ndarray
        A ``.npy`` file (read with plain file I/O; never with pickle), a raw
        binary file (give ``dtype`` and ``shape``), or an array or
        ``np.memmap``. C or Fortran order.
    dst : path or numpy.ndarray
        A ``.npy`` path, written to a temporary file beside it and renamed into
        place once complete and synced (the source path itself works: the file
        is replaced only at the end); or a writable array or memmap of the
        source's shape and result type, which may be ``src`` itself (in place).
        A new file gets mode ``0666 & ~umask``; a replaced file keeps its mode,
        and one without write permission is refused (PermissionError). A
        symbolic link is written through to its target (the link stays); a
        file with other hard links is replaced by a new file, so the other
        links keep the old contents. A raw ``src`` run in place (the same
        path) keeps the bytes before ``offset``.
    input_min, input_max : float or array_like, optional
        The range when ``range_given``, as for :func:`qdq.quantize_and_dequantize`.
    signed_input, range_given, narrow_range : bool
        The op's flags (defaults True, False, False), as for the in-memory op.
    num_bits : int, default 8
        The grid's bit width.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.
    axis : int, optional
        Per channel along this axis.
    chunk_bytes : int, default 64 MiB
        Bytes per chunk.
    progress : bool, default False
        Show a progress bar with the bytes per second of each pass (tqdm when
        installed, a plain line on stderr otherwise).
    dtype, shape, order, offset : dtype-like, tuple of int, {"C", "F"}, int, optional
        For a raw binary ``src``: its element type (``"bfloat16"`` for bit
        patterns), shape, order (``"C"``) and the byte offset of its data (0).
    bfloat16_bits : bool, default False
        The source holds bfloat16 bit patterns (uint16, or the 2-byte void
        dtype of a bfloat16 ``.npy`` written through ml_dtypes).
    block_size : int, optional
        Block-wise along ``axis`` (see :func:`qdq.quantize_and_dequantize`):
        a block's range lies inside the block, so the source is read once.
    calibrate : str, optional
        A calibrated range instead of min/max: ``"mse"``, ``"entropy"``,
        ``"percentile"`` (99.99) or ``"percentile:P"``, or ``"minmax"`` (see
        :func:`qdq.calibrate`). The first pass builds the histogram in the
        same read as the range; the second applies the op with the calibrated
        range, clamped, as ``range_given=True`` does.

    Returns
    -------
    QuantizationParams
        The parameters used.

    Raises
    ------
    ValueError
        For a corrupt, truncated or non-``.npy`` source, object arrays, a file
        truncated while being read, a bad ``dst``; and as the op does.
    TypeError
        For unsupported element types.
    OSError
        When the output cannot be written (a full disk, no permission); the
        source is untouched and no partial file is left under ``dst``.
    KeyboardInterrupt, SystemExit
        Passed on after the same cleanup (SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
        SIGUSR2 and SIGALRM exit with status 128 + the signal's number). When
        ``dst`` is an array or memmap (in place included) the write cannot be
        atomic: the exception's note (and its ``qdq_elements_written``
        attribute) says how many elements, in memory order, were written.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> np.save("w.npy", np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4))
    >>> p = qdq.quantize_and_dequantize_file("w.npy", "w.qdq.npy", num_bits=4, axis=0)
    >>> y = qdq.quantize_and_dequantize(np.load("w.npy"), num_bits=4, axis=0)
    >>> bool((np.load("w.qdq.npy") == y).all()), p.scale.shape
    (True, (3,))
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    opts = FileOptions(chunk_bytes, progress, dtype, shape, order, offset, bfloat16_bits)
    return run_op_file(src, dst, input_min, input_max, args, axis, opts,
                       block_size=block_size, calibrate=calibrate)[0]


def default_params_path(path: Any) -> str:
    """Where the parameters of a codes file go: ``codes.npy`` -> ``codes.params.json``."""
    path = os.fspath(path)
    root = path[:-4] if path.endswith(".npy") else path
    return root + ".params.json"


def quantize_file(src: Any, dst: Any, input_min: Any = None, input_max: Any = None,
                  signed_input: bool = True, num_bits: int = 8, range_given: bool = False,
                  round_mode: str = "HALF_TO_EVEN", narrow_range: bool = False,
                  axis: int | None = None, *, params_path: Any = None,
                  chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
                  dtype: Any = None, shape: Any = None, order: str = "C", offset: int = 0,
                  bfloat16_bits: bool = False, block_size: int | None = None
                  ) -> QuantizationParams:
    """Integer codes of a file or array (:func:`qdq.quantize`), streamed to a ``.npy``.

    Two passes with bounded memory, as :func:`quantize_and_dequantize_file`
    (same sources, destinations and guarantees); the codes file has the
    source's shape and memory order and the dtype :func:`qdq.code_dtype` gives.
    The parameters are written beside it as JSON to ``params_path``, by
    default ``codes.params.json`` for ``codes.npy`` (no default when ``dst``
    is an array). Codes and parameters land together: both are written and
    synced to temporary files before either replaces an existing file, so an
    error (a missing directory, a full disk) leaves both old files as they were.

    Parameters
    ----------
    src, dst : path or numpy.ndarray
        The source and the codes' destination, as for
        :func:`quantize_and_dequantize_file`, as are the other arguments.
    input_min, input_max : float or array_like, optional
        The range when ``range_given``.
    signed_input, range_given, narrow_range, progress, bfloat16_bits : bool
        The op's flags (defaults True, False, False), a progress bar, bit patterns.
    num_bits, axis, block_size : int, optional
        The bit width (8), the channel axis, the block size along it.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}, default "HALF_TO_EVEN"
        Tie breaking.
    params_path : path, optional
        Where the parameters' JSON goes.
    chunk_bytes, offset : int
        Bytes per chunk (64 MiB); a raw ``src``'s data offset (0).
    dtype, shape, order : dtype-like, tuple of int, str, optional
        A raw ``src``'s element type, shape and order (``"C"``).

    Returns
    -------
    QuantizationParams
        The parameters, as written to ``params_path``.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> np.save("x.npy", np.array([-1.0, -0.3, 0.7, 2.0], np.float32))
    >>> p = qdq.quantize_file("x.npy", "codes.npy")
    >>> np.load("codes.npy"), qdq.QuantizationParams.load("codes.params.json") == p
    (array([-64, -19,  44, 127], dtype=int8), True)
    """
    args = OpArgs(signed_input, num_bits, range_given, round_mode, narrow_range)
    if params_path is None and isinstance(dst, (str, os.PathLike)):
        params_path = default_params_path(dst)
    opts = FileOptions(chunk_bytes, progress, dtype, shape, order, offset, bfloat16_bits)
    return run_op_file(src, dst, input_min, input_max, args, axis, opts, codes=True,
                       params_path=params_path, block_size=block_size)[0]


def dequantize_file(src: Any, dst: Any, params: Any = None, *,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: bool = False,
                    bfloat16_bits: bool = False) -> QuantizationParams:
    """Dequantize a file of integer codes (:func:`qdq.dequantize`), streaming to a ``.npy``.

    Parameters
    ----------
    src : path or numpy.ndarray
        A ``.npy`` of integer codes, or an integer array or memmap.
    dst : path or numpy.ndarray
        As for :func:`quantize_and_dequantize_file`.
    params : QuantizationParams or path, optional
        The parameters, or the JSON file holding them; by default the file
        :func:`quantize_file` wrote beside ``src``.
    chunk_bytes : int, default 64 MiB
        Bytes per chunk.
    progress : bool, default False
        Show a progress bar.
    bfloat16_bits : bool, default False
        For bfloat16, write uint16 bit patterns (a ``.npy`` of ``uint16``)
        instead of the 2-byte void dtype ml_dtypes arrays are saved as.

    Returns
    -------
    QuantizationParams
        The parameters used.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> np.save("x.npy", np.array([-1.0, -0.3, 0.7, 2.0], np.float32))
    >>> _ = qdq.quantize_file("x.npy", "codes.npy")
    >>> _ = qdq.dequantize_file("codes.npy", "values.npy")
    >>> np.load("values.npy")
    array([-1.007874 , -0.2992126,  0.6929134,  2.       ], dtype=float32)
    """
    show = check_flag("progress", progress)
    bits_flag = check_flag("bfloat16_bits", bfloat16_bits)
    if params is None:
        if not isinstance(src, (str, os.PathLike)):
            raise TypeError("params is required when the codes are an array")
        params = default_params_path(src)
    if not isinstance(params, QuantizationParams):
        params = QuantizationParams.load(params)
    fmt = format_named(params.dtype)
    source = open_source(src, codes=True)
    try:
        itype = code_type_index(source.dtype)
        out_dtype = file_value_dtype(fmt, bits_flag)
        items = chunk_items(chunk_bytes, max(source.dtype.itemsize, out_dtype.itemsize))
        ax = params_axis(params, tuple(source.shape))
        p = param_rows(params, fmt)
        bs = params.block_size
        cax = source.canon_axis(ax)
        if bs is not None:
            p = np.stack([swap_order(row, source) for row in p])

        def kernel(data: np.ndarray, target: np.ndarray, b: Block) -> None:
            if bs is not None:
                assert cax is not None
                dequantize_blocks(data, target, fmt, cax - b.depth, bs,
                                  p[(slice(None),) + b.blocks], itype)
                return
            engine.run_block(engine.DEQUANTIZE, data, target, fmt, itype, b, p, 0)

        with termination_as_exit():
            sink = open_sink(dst, source, out_dtype, result_fmt=fmt)
            try:
                write_pass(source, sink, ax, items, show, "qdq dequantize", kernel,
                           np.dtype(fmt.storage), bs)
                sink.commit()
            except BaseException:
                sink.abort()
                raise
    finally:
        source.close()
    return params
