"""What ``qdq info`` computes: the range, the parameters and the error of the op on a file."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _engine
from ._arrays import iter_blocks, slab_items
from ._blocks import blocked_shape, check_block_size, parts, transform_blocks
from ._files import Calibration, FileOptions, open_for_op, swap_order
from ._formats import Format, to_public, values_as_float64
from ._histogram_ranges import check_calibration
from ._io.sources import Source
from ._op import finish_range
from ._params import params_from_rows
from ._pipeline import chunk_items, range_pass
from ._progress import Progress
from ._validate import OpArgs

__all__ = ["ErrorStats", "analyze_file"]

# Elements converted to float64 at a time for the error statistics (bounded memory).
_STATS_ITEMS = 1 << 20


class ErrorStats:
    """Running error statistics over (input, output) value pairs."""

    def __init__(self) -> None:
        self.elements = self.nan = self.clipped = self.nonfinite_out = self.finite_pairs = 0
        self.max_abs_error = 0.0
        self.signal = self.noise = 0.0

    def add(self, x: np.ndarray, y: np.ndarray, lo: Any, hi: Any) -> None:
        """x, y: float64 values of shape (pre, C, post); lo, hi: (1, C, 1) clamp bounds or None."""
        self.elements += x.size
        self.nan += int(np.isnan(x).sum())
        if lo is not None:
            self.clipped += int(((x < lo) | (x > hi)).sum())
        finite_x = np.isfinite(x)
        finite_y = np.isfinite(y)
        ok = finite_x & finite_y
        self.nonfinite_out += int((finite_x & ~finite_y).sum())
        self.finite_pairs += int(ok.sum())
        err = np.abs(y[ok] - x[ok])
        if err.size:
            self.max_abs_error = max(self.max_abs_error, float(err.max()))
        self.signal += float(np.square(x[ok]).sum())
        self.noise += float(np.square(err).sum())

    def sqnr_db(self) -> float:
        """10 log10(signal / noise) over finite pairs; NaN when there is none."""
        if not self.finite_pairs:
            return math.nan
        if self.noise == 0:
            return math.inf
        return 10 * math.log10(self.signal / self.noise) if self.signal > 0 else -math.inf


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
    changes; only with a given range), ``nonfinite_out``, ``max_abs_error``
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
                                   max(1, min(_STATS_ITEMS, opts.chunk_bytes // 64)))
        p_minmax = None
        if given is not None:
            lo, hi = given
        else:
            calib = None if calibrate is None else Calibration(calibrate, source, ax)
            lo, hi, _ = range_pass(source, ax, items, opts.progress,
                                   None if calib is None else calib.update)
            if calib is not None:
                p_minmax = _engine.compute_params(lo, hi, fmt, args.qmin, args.qmax)
                lo, hi = calib.range(args)
                args = OpArgs(args.signed, args.num_bits, True, args.round_mode, args.narrow)
        p = _engine.compute_params(lo, hi, fmt, args.qmin, args.qmax)
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
                _engine.run_block(_engine.APPLY, data, target, fmt, 0, b, p, args.mode)
                _stats_of_block(stats, data, target, fmt, b.extents, p, b.channels,
                                args.range_given, limit)
                if p_minmax is not None:
                    mode = args.mode & ~_engine.CLAMP
                    _engine.run_block(_engine.APPLY, data, target, fmt, 0, b, p_minmax, mode)
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
        mn, mx = finish_range(mn, mx, per)
    result = {"elements": stats.elements, "nan": stats.nan, "clipped": stats.clipped,
              "max_abs_error": stats.max_abs_error, "nonfinite_out": stats.nonfinite_out,
              "sqnr_db": stats.sqnr_db(),
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
                    items: int, progress: bool, limit: int) -> dict:
    cax = source.canon_axis(ax)
    assert cax is not None
    p = np.empty((4,) + blocked_shape(source.canon_shape, cax, bs), dtype=fmt.compute)
    stats, blocks = ErrorStats(), _BlockStats()
    n = slab_items(source.canon_shape, cax, items, bs)
    buf = np.empty(n * source.dtype.itemsize, dtype=np.uint8)
    out = np.empty(n * fmt.storage.itemsize, dtype=np.uint8)
    prog = Progress(source.nbytes, "qdq block-wise error pass", progress)
    try:
        for b in iter_blocks(source.canon_shape, cax, items, bs):
            data = source.read(b, buf)
            target = out[:b.count * fmt.storage.itemsize].view(fmt.storage).reshape(b.shape)
            sax = cax - b.depth
            slab_given = None if given is None else (given[0][b.blocks], given[1][b.blocks])
            transform_blocks(data, target, fmt, sax, bs, args, slab_given,
                             p[(slice(None),) + b.blocks])
            _block_slab_stats(stats, blocks, data, target, fmt, sax, bs, limit)
            source.release(b, final=True)
            prog.update(b.count * source.dtype.itemsize)
    finally:
        prog.close()
    p = np.stack([swap_order(row, source) for row in p])
    params = params_from_rows(p, fmt, args.grid, ax, False, args.round_mode, bs)
    if given is not None:
        lo, hi = swap_order(given[0], source), swap_order(given[1], source)
    else:
        lo, hi = np.asarray(params.min_range), np.asarray(params.max_range)
    return {"elements": stats.elements, "nan": stats.nan, "clipped": stats.clipped,
            "max_abs_error": stats.max_abs_error, "nonfinite_out": stats.nonfinite_out,
            "sqnr_db": stats.sqnr_db(), "params": params,
            "range": (to_public(np.asarray(lo, fmt.compute), fmt, None),
                      to_public(np.asarray(hi, fmt.compute), fmt, None)),
            "shape": tuple(source.shape), "dtype": fmt.name, "blocks": blocks.summary()}
