"""What ``qdq info`` computes: the range, the parameters and the error of the op on a file."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._calibrate.methods import check_calibration
from .._core import engine
from .._core.arrays import iter_blocks, slab_items
from .._core.blocks import check_block_size, parts
from .._core.formats import Format, to_public, values_as_float64
from .._core.params import params_from_rows
from .._core.stats import ErrorStats
from .._core.validate import OpArgs
from .files import FileOptions, name_of, open_for_op
from .pipeline import chunk_items
from .plan import TensorRun, swap_order
from .progress import Progress
from .sources import Source

__all__ = ["analyze_file"]

# Elements converted to float64 at a time for the error statistics (bounded memory).
_STATS_ITEMS = 1 << 20


def _stats_of_block(stats: ErrorStats, data: np.ndarray, target: np.ndarray, fmt: Format,
                    extents: tuple[int, int, int], p: np.ndarray, ch: slice,
                    clamp: bool, limit: int) -> None:
    """Add a block to the statistics, at most ``limit`` elements converted at a time."""
    pre, channels, post = extents
    xs = data.reshape(pre, channels, post)
    ys = target.reshape(pre, channels, post)
    lo = p[2, ch].astype(np.float64)[None, :, None] if clamp else None
    hi = p[3, ch].astype(np.float64)[None, :, None] if clamp else None

    def add(i: slice, c: slice, k: slice) -> None:
        stats.add(values_as_float64(xs[i, c, k], fmt), values_as_float64(ys[i, c, k], fmt),
                  None if lo is None else lo[:, c], None if hi is None else hi[:, c])

    # Slices of the block so that the float64 copies stay small.
    every = slice(None)
    if channels * post <= limit:
        step = max(1, limit // max(1, channels * post))
        for i in range(0, pre, step):
            add(slice(i, i + step), every, every)
    elif post <= limit:
        step = max(1, limit // max(1, post))
        for i in range(pre):
            for c in range(0, channels, step):
                add(slice(i, i + 1), slice(c, c + step), every)
    else:
        for i in range(pre):
            for c in range(channels):
                for k in range(0, post, limit):
                    add(slice(i, i + 1), slice(c, c + 1), slice(k, k + limit))


class _BlockStats:
    """Per-block error statistics: the worst block's error and SQNR, the mean SQNR."""

    def __init__(self) -> None:
        self.count = 0
        self.worst_error = 0.0
        self.min_sqnr = math.inf
        self.sqnr_sum = 0.0
        self.sqnr_finite = 0

    def add_rows(self, x: np.ndarray, y: np.ndarray) -> None:
        """x, y: float64 (blocks, length) values of the same blocks."""
        ok = np.isfinite(x) & np.isfinite(y)
        err = np.where(ok, np.abs(y - x), 0.0)
        sig = np.where(ok, x * x, 0.0).sum(axis=1)
        noise = (err * err).sum(axis=1)
        self.count += x.shape[0]
        if err.size:
            self.worst_error = max(self.worst_error, float(err.max()))
        with np.errstate(divide="ignore", invalid="ignore"):
            sqnr = 10 * np.log10(sig / noise)
        sqnr = np.where(noise == 0, np.inf, sqnr)
        has = ok.any(axis=1) & (sig > 0)
        if has.any():
            self.min_sqnr = min(self.min_sqnr, float(sqnr[has].min()))
            fin = has & np.isfinite(sqnr)
            self.sqnr_sum += float(sqnr[fin].sum())
            self.sqnr_finite += int(fin.sum())

    def summary(self) -> dict:
        return {"count": self.count, "worst_max_abs_error": self.worst_error,
                "min_sqnr_db": self.min_sqnr if self.count else math.nan,
                "mean_sqnr_db": (self.sqnr_sum / self.sqnr_finite if self.sqnr_finite
                                 else math.nan)}


def _block_slab_stats(stats: ErrorStats, blocks: _BlockStats, data: np.ndarray,
                      target: np.ndarray, fmt: Format, sax: int, bs: int, limit: int) -> None:
    for part in parts(data.shape[sax], bs):
        xr = np.moveaxis(data, sax, -1)[..., part.elements].reshape(-1, part.length)
        yr = np.moveaxis(target, sax, -1)[..., part.elements].reshape(-1, part.length)
        step = max(1, limit // part.length)
        for i in range(0, xr.shape[0], step):
            x = values_as_float64(xr[i:i + step], fmt)
            y = values_as_float64(yr[i:i + step], fmt)
            stats.add(x, y, None, None)
            blocks.add_rows(x, y)


def analyze_file(src: Any, input_min: Any, input_max: Any, args: OpArgs, axis: Any,
                 opts: FileOptions, block_size: Any = None, calibrate: Any = None) -> dict:
    """The range, the parameters and the error the op would introduce; writes nothing.

    Returns a dict with ``params`` (QuantizationParams), ``range``,
    ``elements``, ``nan`` (NaN inputs), ``clipped`` (elements the clamp
    changes; only with a given range), ``nonfinite_out`` (finite inputs with
    an inf/NaN output), ``float16_overflow`` (the channels or blocks whose
    float16 scale overflows, warned about as the op warns), ``max_abs_error``
    and ``sqnr_db`` (10 log10 of signal over error energy, over finite inputs
    with finite outputs; NaN when there are none). Memory: two chunks plus
    float64 statistics of under a chunk, whatever the file size. Block-wise,
    one pass, and ``blocks`` summarises the error per block (worst block's
    max error, lowest and mean SQNR). With ``calibrate`` the range is the
    calibrated one (clamped), and ``minmax`` holds the error statistics of
    the data's min/max range, from the same read.
    """
    bs = check_block_size(block_size, axis)
    if calibrate is not None:
        check_calibration(calibrate, bs, args.range_given)
    source, ax, given = open_for_op(src, input_min, input_max, args, axis, opts, bs)
    try:
        fmt = source.fmt
        assert fmt is not None
        items = chunk_items(opts.chunk_bytes, source.dtype.itemsize)
        if bs is not None:
            assert ax is not None
            return _analyze_blocks(source, fmt, args, ax, bs, given, items, opts.progress,
                                   max(1, min(_STATS_ITEMS, opts.chunk_bytes // 64)),
                                   name_of(src))
        run = TensorRun.of_source(source, args, ax, None, given, name=name_of(src))
        p_minmax = None
        if run.needs_range_pass:
            run.range_pass(source, items, opts.progress, calibrate)
            if calibrate is not None:
                assert run.data_range is not None
                p_minmax = engine.compute_params(*run.data_range, fmt, args.qmin, args.qmax)
        args = run.args
        p = run.rows
        assert p is not None
        assert run.range is not None
        lo, hi = run.range
        stats, stats_minmax = ErrorStats(), ErrorStats()
        # The float64 copies of the statistics (and their temporaries, about six
        # times their size) stay below a chunk.
        limit = max(1, min(_STATS_ITEMS, opts.chunk_bytes // 64))
        n = slab_items(source.canon_shape, None, items)
        buf = np.empty(n * source.dtype.itemsize, dtype=np.uint8)
        out = np.empty(n * fmt.storage.itemsize, dtype=np.uint8)
        prog = Progress(source.nbytes, "qdq error pass", opts.progress)
        try:
            for b in iter_blocks(source.canon_shape, source.canon_axis(ax), items):
                data = source.read(b, buf)
                target = out[:b.count * fmt.storage.itemsize].view(fmt.storage).reshape(b.shape)
                engine.run_block(engine.APPLY, data, target, fmt, 0, b, p, args.mode)
                _stats_of_block(stats, data, target, fmt, b.extents, p, b.channels,
                                args.range_given, limit)
                if p_minmax is not None:
                    mode = args.mode & ~engine.CLAMP
                    engine.run_block(engine.APPLY, data, target, fmt, 0, b, p_minmax, mode)
                    _stats_of_block(stats_minmax, data, target, fmt, b.extents, p_minmax,
                                    b.channels, False, limit)
                source.release(b, final=True)
                prog.update(b.count * source.dtype.itemsize)
        finally:
            prog.close()
    finally:
        source.close()
    mn = np.asarray(lo, dtype=fmt.compute).reshape(-1)
    mx = np.asarray(hi, dtype=fmt.compute).reshape(-1)
    if given is None and p_minmax is None:
        count = math.prod(source.shape)
        per = count // max(1, mn.shape[0]) if mn.shape[0] else 0
        mn, mx = engine.finish_range(mn, mx, per)
    run.finish(stacklevel=2)
    result = {"elements": stats.elements, "nan": stats.nan, "clipped": stats.clipped,
              "max_abs_error": stats.max_abs_error, "nonfinite_out": stats.nonfinite_out,
              "float16_overflow": run.overflow.count, "sqnr_db": stats.sqnr_db(),
              "params": params_from_rows(p, fmt, args.grid, ax, ax is not None,
                                         args.round_mode),
              "range": (to_public(mn, fmt, None), to_public(mx, fmt, None)),
              "shape": tuple(source.shape), "dtype": fmt.name}
    if p_minmax is not None:
        result["calibrate"] = calibrate
        result["minmax"] = {"max_abs_error": stats_minmax.max_abs_error,
                            "sqnr_db": stats_minmax.sqnr_db()}
    return result


def _analyze_blocks(source: Source, fmt: Format, args: OpArgs, ax: int, bs: int, given: Any,
                    items: int, progress: bool, limit: int, name: str | None) -> dict:
    run = TensorRun.of_source(source, args, ax, bs, given, name=name)
    cax = run.cax
    assert cax is not None
    stats, blocks = ErrorStats(), _BlockStats()
    n = slab_items(source.canon_shape, cax, items, bs)
    buf = np.empty(n * source.dtype.itemsize, dtype=np.uint8)
    out = np.empty(n * fmt.storage.itemsize, dtype=np.uint8)
    prog = Progress(source.nbytes, "qdq block-wise error pass", progress)
    try:
        for b in iter_blocks(source.canon_shape, cax, items, bs):
            data = source.read(b, buf)
            target = out[:b.count * fmt.storage.itemsize].view(fmt.storage).reshape(b.shape)
            run.kernel(data, target, b)
            _block_slab_stats(stats, blocks, data, target, fmt, cax - b.depth, bs, limit)
            source.release(b, final=True)
            prog.update(b.count * source.dtype.itemsize)
    finally:
        prog.close()
    params = run.params(source)
    if given is not None:
        lo, hi = swap_order(given[0], source), swap_order(given[1], source)
    else:
        lo, hi = np.asarray(params.min_range), np.asarray(params.max_range)
    run.finish(stacklevel=3)
    return {"elements": stats.elements, "nan": stats.nan, "clipped": stats.clipped,
            "max_abs_error": stats.max_abs_error, "nonfinite_out": stats.nonfinite_out,
            "float16_overflow": run.overflow.count, "sqnr_db": stats.sqnr_db(),
            "params": params,
            "range": (to_public(np.asarray(lo, fmt.compute), fmt, None),
                      to_public(np.asarray(hi, fmt.compute), fmt, None)),
            "shape": tuple(source.shape), "dtype": fmt.name, "blocks": blocks.summary()}
