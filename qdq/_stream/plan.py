"""One tensor's run of the op (or its integer codes) over a source: the one plan every path uses.

A :class:`TensorRun` holds what one tensor needs and runs it in the order
every streaming path follows:

1. the range pass (the data's NaN-ignoring range, or a calibrated range from
   a histogram built in the same read), unless the range is given or the run
   is block-wise (a block's range lies inside the block);
2. the parameter rows, from that range (block-wise: as the write pass meets
   the blocks);
3. the write pass, whose kernel applies the op (or writes the codes) to each
   slab with its channels' (blocks') parameters;
4. the diagnostics, once for the tensor: the float16 scale overflow warning.

Files (:mod:`.files`), ``qdq info`` (:mod:`.analysis`), checkpoint tensors
(:mod:`qdq._checkpoint.run.run`) and Dask's blocks (:mod:`qdq.dask`) all run
through it. Shapes, axes and blocked arrays are in the source's memory order
(:attr:`Source.canon_shape`); :meth:`TensorRun.params` gives the parameters
back in the tensor's logical order.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from .._calibrate.histogram import HistogramTracker
from .._calibrate.methods import parse_calibration
from .._core import engine
from .._core.arrays import Block
from .._core.blocks import blocked_shape, quantize_blocks, transform_blocks
from .._core.codes import check_codes, overflow_of
from .._core.diagnostics import Float16Overflow
from .._core.formats import BFLOAT16, FLOAT16, Format
from .._core.params import QuantizationParams, params_from_rows
from .._core.validate import OpArgs, code_type_index
from .pipeline import Writer, range_pass, write_pass
from .sinks import Sink
from .sources import Source

__all__ = ["DEFAULT_CHUNK_BYTES", "Calibration", "TensorRun", "swap_order"]

#: Bytes per chunk of the file and checkpoint functions unless ``chunk_bytes`` says otherwise.
DEFAULT_CHUNK_BYTES = 64 << 20


def swap_order(a: np.ndarray, source: Source) -> np.ndarray:
    """A blocked-shape array (ranges, parameters) between logical and the source's memory order.

    A Fortran-ordered source's memory order reverses the axes, which is its own
    inverse: the same call goes either way.
    """
    return np.ascontiguousarray(a.T) if source.transposed else a


class Calibration:
    """A histogram fed with the range pass's slabs, and the calibrated range it gives.

    Per tensor any slab will do (the histogram is of a multiset); per channel
    every slab must hold every channel (or, along axis 0, whole rows in
    order), which the slabs of :func:`qdq._core.arrays.iter_blocks` do unless a
    single row is larger than the chunk.
    """

    def __init__(self, spec: Any, source: Source, ax: int | None):
        self.method, self.percentile = parse_calibration(spec)
        self.cax = source.canon_axis(ax)
        self.tracker: HistogramTracker | None = None
        self.fmt = source.fmt

    def update(self, data: np.ndarray, b: Block) -> None:
        if self.tracker is None:
            axis = None if self.cax is None else self.cax - b.depth
            if axis is not None and (axis < 0 or (axis == 0 and b.depth > 0)):
                raise ValueError("per-channel calibration of a file needs chunks that hold "
                                 "whole channels; raise chunk_bytes")
            self.tracker = HistogramTracker(axis, bfloat16_bits=self.fmt is BFLOAT16)
        chunk = data if data.ndim else data.reshape(1)
        self.tracker.update(chunk.view(np.uint16) if self.fmt is BFLOAT16 else
                            chunk.view(np.float16) if self.fmt is FLOAT16 else chunk)

    def range(self, args: OpArgs) -> tuple[np.ndarray, np.ndarray]:
        """The calibrated (input_min, input_max) as compute-type values."""
        assert self.tracker is not None and self.fmt is not None
        lo, hi = self.tracker.range(self.method, percentile=self.percentile,
                                    num_bits=args.num_bits, signed_input=args.signed,
                                    narrow_range=args.narrow, round_mode=args.round_mode)
        return (np.asarray(lo).astype(self.fmt.compute).reshape(-1),
                np.asarray(hi).astype(self.fmt.compute).reshape(-1))


class TensorRun:
    """One tensor's op, or its integer codes, over a source (see the module's docstring).

    Parameters
    ----------
    fmt : Format
        The tensor's format.
    args : OpArgs
        The op's arguments.
    shape : tuple of int
        The tensor's shape in the source's memory order.
    ax, cax : int or None
        The channel (block) axis, logical and in memory order.
    block_size : int, optional
        Block-wise along the axis.
    given : tuple of numpy.ndarray, optional
        The given range in T: compute-type rows per tensor or channel, or
        block-wise two arrays of the blocked shape in memory order.
    code_dtype : numpy.dtype, optional
        Write the integer codes of this type instead of the op's values.
    name : str, optional
        How warnings name the tensor.
    saturate : bool, default False
        With ``code_dtype``: codes outside the code type are stored saturated
        (its nearest value, the sign kept) instead of raising ValueError, so
        that the caller counts and clamps them (an export to a grid the format
        holds); NaN and a float16 scale overflow still raise.

    Attributes
    ----------
    rows : numpy.ndarray or None
        The parameter rows (scale, inverse scale, adjusted min, adjusted
        max): ``(4, C)``, or ``(4, *blocked shape)`` block-wise (filled by the
        write pass); None until the range is known.
    range : tuple of numpy.ndarray or None
        The range the rows were computed from (given, the data's or calibrated).
    data_range : tuple of numpy.ndarray or None
        The raw range the range pass reduced (before any calibration).
    overflow : Float16Overflow
        The tensor's float16 scale check.
    """

    def __init__(self, fmt: Format, args: OpArgs, shape: tuple, ax: int | None,
                 cax: int | None, block_size: int | None = None, given: Any = None, *,
                 code_dtype: np.dtype | None = None, name: str | None = None,
                 saturate: bool = False):
        self.fmt, self.args, self.shape, self.ax, self.cax = fmt, args, shape, ax, cax
        self.saturate = saturate
        self.block_size, self.given, self.name = block_size, given, name
        self.codes = code_dtype is not None
        self.op = engine.QUANTIZE if self.codes else engine.APPLY
        self.out_dtype = np.dtype(code_dtype) if self.codes else np.dtype(fmt.storage)
        self.itype = code_type_index(self.out_dtype) if self.codes else 0
        self.overflow = Float16Overflow(fmt, name, "blocks" if block_size else "channels")
        self.rows: np.ndarray | None = None
        self.range: tuple[Any, Any] | None = None
        self.data_range: tuple[np.ndarray, np.ndarray] | None = None
        if block_size is not None:
            assert cax is not None
            self.rows = np.empty((4,) + blocked_shape(shape, cax, block_size), fmt.compute)
        elif given is not None:
            self.set_range(*given)

    @classmethod
    def of_source(cls, source: Source, args: OpArgs, ax: int | None,
                  block_size: int | None = None, given: Any = None, *,
                  code_dtype: np.dtype | None = None, name: str | None = None,
                  saturate: bool = False) -> "TensorRun":
        """The run of a source's tensor (``ax`` logical; ``given`` as :func:`open_for_op` gives)."""
        assert source.fmt is not None
        return cls(source.fmt, args, source.canon_shape, ax, source.canon_axis(ax), block_size,
                   given, code_dtype=code_dtype, name=name, saturate=saturate)

    @property
    def needs_range_pass(self) -> bool:
        """Whether the range comes from a first pass over the data."""
        return self.rows is None

    def set_range(self, lo: Any, hi: Any) -> None:
        """The parameter rows from a per-tensor or per-channel range (compute-type values)."""
        self.range = (lo, hi)
        self.rows = engine.compute_params(lo, hi, self.fmt, self.args.qmin, self.args.qmax)
        self.overflow.add_rows(self.rows)

    def range_pass(self, source: Source, items: int, progress: bool,
                   calibrate: Any = None) -> float:
        """Pass 1: the data's range (or, with ``calibrate``, a calibrated one, clamped).

        Returns the seconds it took.
        """
        t0 = time.perf_counter()
        calib = None if calibrate is None else Calibration(calibrate, source, self.ax)
        lo, hi, _ = range_pass(source, self.ax, items, progress,
                               None if calib is None else calib.update)
        self.data_range = (lo, hi)
        if calib is not None:
            lo, hi = calib.range(self.args)
            a = self.args
            self.args = OpArgs(a.signed, a.num_bits, True, a.round_mode, a.narrow)
        self.set_range(lo, hi)
        return time.perf_counter() - t0

    def check(self, stats: tuple[float, float, bool], overflow: Float16Overflow) -> None:
        """The codes' check (:func:`check_codes`); saturating, only NaN and overflow raise."""
        if self.saturate and not overflow.overflowed:
            info = np.iinfo(self.out_dtype)
            lo, hi, nan = stats
            stats = (max(lo, info.min), min(hi, info.max), nan)
        check_codes(stats, self.out_dtype, self.args.range_given, overflow)

    def kernel(self, data: np.ndarray, target: np.ndarray, b: Block) -> None:
        """The write pass's job on one slab: the op, or the codes (checked as they come)."""
        assert self.rows is not None
        if self.block_size is None:
            stats = engine.run_block(self.op, data, target, self.fmt, self.itype, b, self.rows,
                                     self.args.mode)
            if self.codes:
                self.check(stats, self.overflow)
            return
        assert self.cax is not None
        sax = self.cax - b.depth
        given = self.given
        slab_given = None if given is None else (given[0][b.blocks], given[1][b.blocks])
        rows = self.rows[(slice(None),) + b.blocks]
        if self.op == engine.APPLY:
            transform_blocks(data, target, self.fmt, sax, self.block_size, self.args,
                             slab_given, rows, self.overflow)
            return
        rows[...] = quantize_blocks(
            data, target, self.fmt, sax, self.block_size, self.args, slab_given, self.itype,
            lambda stats, p: self.check(stats, overflow_of(self.fmt, p, "blocks", self.name)))
        self.overflow.add_rows(rows)

    def apply(self, xk: np.ndarray, rk: np.ndarray, axis: int | None, rows: np.ndarray,
              nthreads: int | None = None) -> None:
        """The op (or the codes) of one in-memory block of any layout with its channels' rows."""
        stats = engine.elementwise(self.op, xk, rk, self.fmt, axis, rows, self.args.mode,
                                   self.itype, nthreads=nthreads)
        if self.codes:
            self.check(stats, overflow_of(self.fmt, rows, name=self.name))

    def write_pass(self, source: Source, sink: Sink, items: int, progress: bool, label: str,
                   kernel: Callable[[np.ndarray, np.ndarray, Block], None] | None = None,
                   writer: Writer | None = None,
                   observe: Callable[[np.ndarray, np.ndarray], None] | None = None) -> float:
        """Pass 2 into ``sink`` (``kernel`` wraps :meth:`kernel` when given); its rate."""
        storage = self.fmt.storage if self.op == engine.APPLY else self.out_dtype
        return write_pass(source, sink, self.ax, items, progress, label,
                          self.kernel if kernel is None else kernel, np.dtype(storage),
                          self.block_size, writer, observe)

    def params(self, source: Source) -> QuantizationParams:
        """The parameters used, in the tensor's logical order."""
        assert self.rows is not None
        a = self.args
        if self.block_size is None:
            return params_from_rows(self.rows, self.fmt, a.grid, self.ax, self.ax is not None,
                                    a.round_mode)
        p = np.stack([swap_order(row, source) for row in self.rows])
        return params_from_rows(p, self.fmt, a.grid, self.ax, False, a.round_mode,
                                self.block_size)

    def finish(self, stacklevel: int = 2) -> None:
        """The tensor's diagnostics, once: the float16 scale overflow warning.

        ``stacklevel`` counts as for ``warnings.warn`` called where this is called.
        """
        self.overflow.warn(stacklevel=stacklevel + 1)
