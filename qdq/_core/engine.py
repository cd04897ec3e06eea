"""The engine: the one caller of the compiled kernels and of the thread count.

It takes validated arguments and arrays already in the kernels' storage types
(see :mod:`qdq._core.arrays`) and runs the three phases of the op (SPEC section 3):
the range reduction, the parameters, the elementwise transform; and the other
elementwise jobs on the same parameter rows (integer codes, dequantization,
the gradient). Parameter rows are a ``(4, C)`` compute-type array holding
(scale, inverse scale, adjusted min, adjusted max) per channel.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._ext import histogram, kernels, search
from . import threads
from .arrays import Block, iter_blocks, kernel_copy, kernel_layout, layout_extents, overlaps
from .formats import FLOAT16, Format

__all__ = ["APPLY", "CLAMP", "DEQUANTIZE", "GRAD", "ISA_LEVELS", "QUANTIZE", "build_info",
           "compute_params", "elementwise", "error_stats", "finish_range", "get_isa",
           "histogram_update", "isa_available", "isa_name", "op_in_place_layout", "op_rows",
           "op_tensor", "range_in_place_layout", "reduce_block", "reduce_range", "run_block",
           "search_entropy", "search_mse", "set_isa", "transform"]

APPLY = kernels.APPLY
QUANTIZE = kernels.QUANTIZE
DEQUANTIZE = kernels.DEQUANTIZE
GRAD = kernels.GRAD
CLAMP = kernels.CLAMP

#: The instruction-set levels of every compiled kernel (``qdq/_ext/csrc/cpu.h``).
ISA_LEVELS = ("baseline", "AVX2+F16C", "AVX-512 F/BW/VL", "AVX-512 F/BW/VL+BF16")


def set_isa(level: int) -> int:
    """Run every compiled kernel at this instruction-set level; returns the level in use.

    0 baseline (SSE2/NEON vectors), 1 AVX2+F16C, 2 AVX-512 F/BW/VL, 3 AVX-512
    F/BW/VL with AVX512-BF16; -1 or a level above :func:`isa_available`: the
    best available. Every level gives the same bits; lower levels are for tests
    and benchmarks.
    """
    return int(kernels.set_isa(level))


def get_isa() -> int:
    """The instruction-set level every compiled kernel runs at (see :func:`set_isa`)."""
    return int(kernels.get_isa())


def isa_available() -> int:
    """The best instruction-set level this CPU and this build support."""
    return int(kernels.isa_available())


def isa_name() -> str:
    """The level in use and what each kernel runs at it.

    For example ``"level 1 (AVX2+F16C): op AVX2+F16C, bfloat16 op AVX2+F16C,
    error statistics AVX2+F16C, histogram AVX2+F16C, calibration search AVX2+F16C"``.
    """
    level = get_isa()
    parts = [*kernels.kernel_isa(level), *histogram.kernel_isa(level),
             *search.kernel_isa(level)]
    each = ", ".join(f"{kernel} {isa}" for kernel, isa in parts)
    return f"level {level} ({ISA_LEVELS[level]}): {each}"


def build_info() -> str:
    """How the kernels were built and what they run on: OpenMP, threads, instruction set."""
    n = threads.get_num_threads()
    omp = f"OpenMP, {n} threads" if kernels.OPENMP else "no OpenMP, 1 thread"
    return f"{omp}, kernels at instruction-set {isa_name()}"


def reduce_block(data: np.ndarray, mn: np.ndarray, mx: np.ndarray, fmt: Format,
                 extents: tuple[int, int, int]) -> None:
    """Merge the NaN-ignoring min/max of one contiguous native block into mn, mx."""
    kernels.minmax(data, mn, mx, fmt.code, *extents, threads.current())


def reduce_range(xk: np.ndarray, fmt: Format, axis: int | None,
                 mn: np.ndarray | None = None, mx: np.ndarray | None = None,
                 nthreads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Merge the raw NaN-ignoring min/max of xk (a kernel view) into mn, mx.

    Returns the compute-type arrays (length C; 1 per tensor). A channel that
    saw no non-NaN element keeps +inf / -inf.
    """
    channels = 1 if axis is None else xk.shape[axis]
    if mn is None or mx is None:
        mn = np.full(channels, np.inf, dtype=fmt.compute)
        mx = np.full(channels, -np.inf, dtype=fmt.compute)
    nt = threads.current() if nthreads is None else nthreads
    layout = kernel_layout(xk, None)
    if layout is not None:
        kernels.minmax(xk, mn, mx, fmt.code, *layout_extents(xk, layout, axis), nt)
        return mn, mx
    for b in iter_blocks(xk.shape, axis):
        kernels.minmax(kernel_copy(xk[b.index], fmt.storage), mn[b.channels], mx[b.channels],
                        fmt.code, *b.extents, nt)
    return mn, mx


def finish_range(mn: np.ndarray, mx: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw reduction results -> reported range: NaN for channels of only NaN."""
    if count > 0:
        empty = mn > mx
        if empty.any():
            mn = np.where(empty, np.nan, mn).astype(mn.dtype)
            mx = np.where(empty, np.nan, mx).astype(mx.dtype)
    return mn, mx


def range_in_place_layout(xk: np.ndarray, fmt: Format) -> tuple[float, float] | None:
    """The whole tensor's raw range in one fused call, or None if xk needs slabs."""
    if kernel_layout(xk, None) is None:
        return None
    return kernels.range_tensor(xk, fmt.code, threads.current())


def compute_params(mn: np.ndarray, mx: np.ndarray, fmt: Format, qmin: int,
                   qmax: int) -> np.ndarray:
    """Per-channel parameter rows (scale, inverse, lo, hi), SPEC step 3."""
    mn = np.ascontiguousarray(mn, dtype=fmt.compute).reshape(-1)
    mx = np.ascontiguousarray(mx, dtype=fmt.compute).reshape(-1)
    out = np.empty((4, mn.shape[0]), dtype=fmt.compute)
    kernels.params(mn, mx, out[0], out[1], out[2], out[3], fmt.code, qmin, qmax)
    return out


def op_in_place_layout(xk: np.ndarray, rk: np.ndarray, fmt: Format, axis: int | None,
                       lo: Any, hi: Any, qmin: int, qmax: int, mode: int,
                       range_given: bool
                       ) -> tuple[bool, float, float, float, np.ndarray | None] | None:
    """The whole op (range, parameters, transform) in one fused call.

    Returns (whether the range has a negative bound, per tensor the scale and
    the adjusted range, per channel 1.0, 0.0, 0.0, and for float16 per channel
    the parameter rows, whose scales the caller checks for overflow, else None),
    or None when the arrays need the slab path (then nothing was written).
    ``lo``/``hi`` are the given range (1-tuples per tensor, arrays per channel).
    """
    layout = kernel_layout(xk, rk)
    if layout is None:
        return None
    if axis is None:
        return (*op_tensor(xk, rk, fmt, lo, hi, qmin, qmax, mode, range_given), None)
    extents = layout_extents(xk, layout, axis)
    rows = np.empty((4, extents[1]), dtype=fmt.compute) if fmt is FLOAT16 else None
    negative = bool(kernels.qdq_channels(xk, rk, fmt.code, *extents,
                                         lo if range_given else None,
                                         hi if range_given else None, qmin, qmax, mode,
                                         threads.current(), rows))
    return negative, 1.0, 0.0, 0.0, rows


def op_tensor(xk: np.ndarray, rk: np.ndarray, fmt: Format, lo: Any, hi: Any, qmin: int,
              qmax: int, mode: int, range_given: bool) -> tuple[bool, float, float, float]:
    """The per-tensor op in one fused call on arrays the kernels take as they are.

    ``xk`` and ``rk`` are native, aligned and contiguous in the same order
    (:func:`qdq._core.arrays.kernel_layout` says so); ``lo``/``hi`` are 1-tuples
    when ``range_given``. Returns whether the range has a negative bound, the
    scale and the adjusted range.
    """
    mn = lo[0] if range_given else 0.0
    mx = hi[0] if range_given else 0.0
    r = kernels.qdq_tensor(xk, rk, fmt.code, range_given, mn, mx, qmin, qmax, mode,
                            threads.current())
    return r[0] < 0, r[2], r[4], r[5]


def op_rows(xr: np.ndarray, rr: np.ndarray, fmt: Format, lo: Any, hi: Any, qmin: int,
            qmax: int, mode: int, range_given: bool,
            params: np.ndarray | None = None) -> bool | None:
    """The op on each row of a (rows, length) kernel array as its own channel, fused.

    ``params``, a ``(4, rows)`` compute-type array, receives the rows'
    parameter rows when given. Returns whether a row's minimum is negative, or
    None when the arrays need another path (arrays the kernels cannot take as
    they are; then nothing was written).
    """
    if kernel_layout(xr, rr) != "C" or xr.ndim != 2:
        return None
    return bool(kernels.qdq_rows(xr, rr, fmt.code, xr.shape[0], xr.shape[1],
                                  lo if range_given else None, hi if range_given else None,
                                  qmin, qmax, mode, threads.current(), params))


_HIST_CODE = {"float16": histogram.F16, "bfloat16": histogram.BF16,
              "float32": histogram.F32, "float64": histogram.F64}


def histogram_update(xk: np.ndarray, fmt: Format, lut: np.ndarray | None, pre: int, C: int,
                     post: int, k: np.ndarray, counts: np.ndarray, special: np.ndarray,
                     mn: np.ndarray, mx: np.ndarray, k_floor: int) -> None:
    """Add a contiguous (pre, C, post) block to per-channel power-of-two histograms.

    See :mod:`qdq._calibrate.histogram` for the bins; ``k``, ``counts``, ``special``,
    ``mn`` and ``mx`` are the histograms' state, updated in place.
    """
    histogram.update(xk, _HIST_CODE[fmt.name], lut, pre, C, post, k, counts, special, mn, mx,
                       k_floor, threads.current())


def search_mse(counts: np.ndarray, k: np.ndarray, fmt: Format, qmin: int,
               qmax: int) -> tuple[np.ndarray, np.ndarray]:
    """The MSE search of each channel of (C, bins) histograms, over qdq's threads.

    ``counts`` are uint64 and ``k`` the bins' exponents; ``qmin``, ``qmax`` the
    op's grid. Returns float64 arrays (lo, hi): values of the format, NaN for a
    channel without a finite value (see :mod:`qdq._calibrate.methods`).
    """
    counts = np.ascontiguousarray(counts, dtype=np.uint64)
    lo, hi = np.empty(counts.shape[0]), np.empty(counts.shape[0])
    search.mse(counts, np.ascontiguousarray(k, dtype=np.int64), fmt.code, qmin, qmax, lo, hi,
               threads.current())
    return lo, hi


def search_entropy(counts: np.ndarray, k: np.ndarray, num_bits: int,
                   qmin: int) -> tuple[np.ndarray, np.ndarray]:
    """The entropy (KL-divergence) search of each channel, as :func:`search_mse`.

    Returns float64 arrays (lo, hi), not yet rounded to the format.
    """
    counts = np.ascontiguousarray(counts, dtype=np.uint64)
    lo, hi = np.empty(counts.shape[0]), np.empty(counts.shape[0])
    search.entropy(counts, np.ascontiguousarray(k, dtype=np.int64), num_bits, qmin, lo, hi,
                   threads.current())
    return lo, hi


def run_block(op: int, data: np.ndarray, target: np.ndarray, fmt: Format, itype: int,
              block: Block, p: np.ndarray, mode: int) -> tuple[float, float, bool]:
    """One elementwise job over one contiguous block with its channels' parameter rows."""
    ch = block.channels
    return kernels.run(op, data, None, target, fmt.code, itype, *block.extents,
                        p[0, ch], p[1, ch], p[2, ch], p[3, ch], mode, threads.current())


def elementwise(op: int, xk: np.ndarray, rk: np.ndarray, fmt: Format, axis: int | None,
                p: np.ndarray, mode: int = 0, itype: int = 0,
                x2k: np.ndarray | None = None,
                nthreads: int | None = None) -> tuple[float, float, bool]:
    """Run a compiled elementwise job over arrays of any layout.

    ``xk`` (and ``x2k`` for the gradient) are inputs and ``rk`` the output, all
    in the kernels' storage types; ``p`` holds the parameter rows per channel.
    The kernels run on the arrays themselves when all share a C or Fortran
    layout (native, aligned); otherwise on contiguous copies of slabs. An
    output overlapping an input without being it is computed into a
    temporary first, as NumPy's ufuncs do. Returns the kernels' code
    statistics (smallest and largest code, whether NaN was seen).
    """
    nt = threads.current() if nthreads is None else nthreads
    inputs = [xk] if x2k is None else [xk, x2k]
    if any(overlaps(a, rk) for a in inputs):
        tmp = np.empty(rk.shape, dtype=rk.dtype.newbyteorder("="))
        stats = elementwise(op, xk, tmp, fmt, axis, p, mode, itype, x2k, nthreads)
        rk[...] = tmp
        return stats
    layouts = {kernel_layout(a, rk) for a in inputs}
    if len(layouts) == 1 and None not in layouts:
        layout = layouts.pop()
        assert layout is not None
        pre, C, post = layout_extents(xk, layout, axis)
        return kernels.run(op, xk, x2k, rk, fmt.code, itype, pre, C, post,
                            p[0], p[1], p[2], p[3], mode, nt)
    lo, hi, nan = math.inf, -math.inf, False
    out_dtype = rk.dtype.newbyteorder("=")
    for b in iter_blocks(xk.shape, axis):
        xb = kernel_copy(xk[b.index], xk.dtype)
        x2b = None if x2k is None else kernel_copy(x2k[b.index], x2k.dtype)
        ob = np.empty(b.shape, dtype=out_dtype)
        ch = b.channels
        s = kernels.run(op, xb, x2b, ob, fmt.code, itype, *b.extents,
                         p[0, ch], p[1, ch], p[2, ch], p[3, ch], mode, nt)
        lo, hi, nan = min(lo, s[0]), max(hi, s[1]), nan or s[2]
        rk[b.index] = ob
    return lo, hi, nan


def error_stats(xk: np.ndarray, yk: np.ndarray, fmt: Format, lo: float = -math.inf,
                hi: float = math.inf,
                nthreads: int | None = None) -> tuple[int, int, int, int, float, float, float]:
    """The error of the op's output ``yk`` against its input ``xk``, in one compiled pass.

    Both are contiguous arrays of the same size in the kernels' storage type;
    ``lo``, ``hi`` the clamp bounds for the clipped count (none by default).
    Returns ``(nan, clipped, nonfinite_out, finite_pairs, max_abs, signal,
    noise)`` as :class:`qdq._stream.analysis.ErrorStats` counts them: the error and
    the sums over the pairs both finite, in float64. The figures do not depend
    on the thread count or the instruction set.
    """
    nt = threads.current() if nthreads is None else nthreads
    return kernels.error_stats(xk, yk, fmt.code, lo, hi, nt)


def transform(xk: np.ndarray, rk: np.ndarray, fmt: Format, axis: int | None,
              p: np.ndarray, mode: int) -> None:
    """Write the op of xk into rk with the parameter rows p."""
    elementwise(APPLY, xk, rk, fmt, axis, p, mode)
