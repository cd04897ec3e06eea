"""Cost of building a calibration histogram against the range pass; range quality.

    python benchmarks/bench_calibrate.py [--mi 64] [--rounds 7] [--threads N] [--numpy]
                                         [--dtype float32] [--avx2]
    python benchmarks/bench_calibrate.py --quality
    python benchmarks/bench_calibrate.py --per-channel 4096 [--threads N]
    python benchmarks/bench_calibrate.py --search [--shape 4096 4096] [--data t3|normal]
                                         [--thread-counts 2 1] [--rounds 5] [--old-rounds 1]

On the same array (64 Mi elements of Student-t data by default; float32, or
float16, float64 or bfloat16 given as bit patterns with ``bfloat16_bits``) it
times, interleaved in every round, ``qdq.compute_range`` (the op's fused
min/max pass), ``qdq.HistogramTracker().update`` (the histogram, with its exact
min/max, NaN and inf counts) and, for reference, a NumPy histogram of the same
bins (``floor`` + ``bincount``). It prints the medians and the ratios to the
range pass, measured in one run. ``--avx2`` runs both with their AVX2 loops (as on
a CPU without AVX-512).

With ``--quality`` it prints instead, on heavy-tailed data (Student-t with 3
degrees of freedom, 1 in 40 000 elements replaced by an outlier of magnitude
40-80; 1 Mi float32), the mean squared error of the op with each method's range
at 4 and 8 bits, relative to min/max and to a brute-force search over clip
values (symmetric, then asymmetric around the best), and how far the
percentile ends lie from np.quantile, in bins.

With ``--per-channel C`` it times ``range(method)`` of a per-channel tracker of
(C, 1024) float32 Student-t weights (axis 0: C channels of 1024 values).

With ``--search`` it times the compiled per-channel searches on a weight matrix
(``--shape 4096 4096`` float32 by default, Student-t with 3 degrees of freedom, or
``--data normal``): ``qdq.calibrate(w, method, axis=0)`` for "mse" and "entropy"
with each thread count of ``--thread-counts`` (default 2 1), against the same call
with the NumPy searches they replaced (tests/calibrate/search_reference.py, the
old code path) in the same process, and checks that both give the same bits.
Each new figure is the median of ``--rounds`` calls interleaved with
``--old-rounds`` old ones (0: the new ones only; an old call of the 4096 x 4096
case takes minutes).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

import qdq
from qdq._calibrate import histogram as _histogram
from qdq._core import engine as _engine


def numpy_histogram(x: np.ndarray, bins: int = 2048) -> np.ndarray:
    """The same bins in pure NumPy (for scale): floor(x / 2**k), k from max |x|."""
    m = float(np.max(np.abs(x)))
    k = int(np.frexp(m)[1]) - int(np.log2(bins // 2))
    while m >= (bins // 2) * 2.0 ** k:
        k += 1
    j = np.floor(x.astype(np.float64) * 2.0 ** -k).astype(np.int64) + bins // 2
    return np.bincount(j, minlength=bins)


def heavy_tailed(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, n)
    pick = rng.choice(n, size=n // 40_000, replace=False)
    x[pick] = rng.choice([-1, 1], pick.size) * rng.uniform(40, 80, pick.size)
    return x.astype(np.float32)


def op_mse(x: np.ndarray, lo, hi, num_bits: int) -> float:
    y = qdq.quantize_and_dequantize(x, lo, hi, num_bits=num_bits, range_given=True)
    return float(np.mean((y.astype(np.float64) - x.astype(np.float64)) ** 2))


def brute_force(x: np.ndarray, num_bits: int) -> float:
    mn, mx = (float(v) for v in qdq.compute_range(x))
    top = max(-mn, mx)
    grid = np.geomspace(top / 2000, top, 400)
    errs = [op_mse(x, -c, c, num_bits) for c in grid]
    c0, best = float(grid[int(np.argmin(errs))]), min(errs)
    for c in np.linspace(0.8 * c0, 1.2 * c0, 41):
        for r in (0.5, 0.8, 0.9, 1.1, 1.25, 2.0):
            best = min(best, op_mse(x, -c, c * r, num_bits))
    return best


def quality() -> None:
    x = heavy_tailed(1 << 20)
    t = qdq.HistogramTracker().update(x)
    mn, mx = qdq.compute_range(x)
    for bits in (4, 8):
        e_mm = op_mse(x, mn, mx, bits)
        e_bf = brute_force(x, bits)
        print(f"{bits} bits: min/max MSE {e_mm:.5g}, brute-force best {e_bf:.5g}")
        for method in ("mse", "percentile", "entropy"):
            lo, hi = t.range(method, num_bits=bits)
            e = op_mse(x, lo, hi, bits)
            print(f"  {method:10s} [{float(lo):9.4f}, {float(hi):9.4f}]  MSE {e:.5g}  "
                  f"{e / e_mm - 1:+7.1%} vs min/max  {e / e_bf - 1:+7.2%} vs brute force")
    w = float(t.edges[1] - t.edges[0])
    for p in (99.0, 99.9, 99.99):
        lo, hi = t.range("percentile", percentile=p)
        q_lo, q_hi = np.quantile(x.astype(np.float64), [1 - p / 100, p / 100])
        print(f"percentile {p}: ends off np.quantile by {(float(lo) - q_lo) / w:+.3f} and "
              f"{(float(hi) - q_hi) / w:+.3f} bins (bin width {w})")


def per_channel(channels: int) -> None:
    x = np.random.default_rng(0).standard_t(3, (channels, 1024)).astype(np.float32)
    t = qdq.HistogramTracker(axis=0).update(x)
    print(f"range() of {channels} channels of 1024 float32, {qdq.get_num_threads()} threads")
    for m in ("minmax", "percentile", "mse", "entropy"):
        t0 = time.perf_counter()
        t.range(m, num_bits=8)
        dt = time.perf_counter() - t0
        print(f"  {m:10s} {dt:8.2f} s  {dt / channels * 1e3:7.3f} ms per channel")


def search(shape: tuple[int, int], data: str, thread_counts: list[int], rounds: int,
           old_rounds: int) -> None:
    """The issue's case: per-channel mse/entropy of a weight matrix, new and old code paths."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                    "calibrate"))
    import search_reference  # the NumPy searches before they were compiled

    rng = np.random.default_rng(0)
    w = (rng.standard_t(3, shape) if data == "t3" else rng.standard_normal(shape))
    w = w.astype(np.float32)
    new_range = _histogram.histogram_range

    def call(method: str, old: bool):
        _histogram.histogram_range = search_reference.histogram_range if old else new_range
        try:
            c0, t0 = time.process_time(), time.perf_counter()
            res = qdq.calibrate(w, method=method, axis=0)
            return time.perf_counter() - t0, time.process_time() - c0, res
        finally:
            _histogram.histogram_range = new_range

    load = os.getloadavg()
    print(f"qdq.calibrate(w, method, axis=0), w = {shape[0]} x {shape[1]} float32 ({data}), "
          f"{_engine.isa_name()}; new: median of {rounds}, old (NumPy searches): "
          f"{old_rounds} per case, interleaved; load average before "
          f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}")
    for n in thread_counts:
        qdq.set_num_threads(n)
        for method in ("mse", "entropy"):
            new_t, new_c, old_t, old_c = [], [], [], []
            res_new = res_old = None
            schedule = [False] * rounds
            for j in range(old_rounds):  # spread the old calls among the new ones
                schedule.insert((j + 1) * len(schedule) // (old_rounds + 1), True)
            call(method, False)  # warm-up
            for old in schedule:
                wall, cpu, res = call(method, old)
                (old_t if old else new_t).append(wall)
                (old_c if old else new_c).append(cpu)
                if old:
                    res_old = res
                else:
                    res_new = res
            assert res_new is not None
            nt, nc = statistics.median(new_t), statistics.median(new_c)
            line = (f"  {n} thread{'s' if n > 1 else ' '} {method:8s} new {nt:7.2f} s "
                    f"(cpu {nc:6.2f} s, spread {min(new_t):.2f}-{max(new_t):.2f})")
            if res_old is not None:
                same = all(np.array_equal(a.view(np.uint32), b.view(np.uint32))
                           for a, b in zip(res_new, res_old, strict=True))
                ot, oc = statistics.median(old_t), statistics.median(old_c)
                line += (f"   old {ot:7.2f} s (cpu {oc:7.2f} s)   old/new {ot / nt:6.1f} x   "
                         f"same bits: {same}")
            print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mi", type=int, default=64, help="elements, in Mi (2**20)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--numpy", action="store_true", help="also time the NumPy histogram")
    ap.add_argument("--dtype", default="float32",
                    choices=("float16", "bfloat16", "float32", "float64"))
    ap.add_argument("--quality", action="store_true", help="range quality instead of speed")
    ap.add_argument("--per-channel", type=int, default=0, metavar="C",
                    help="time the per-channel ranges of C channels instead")
    ap.add_argument("--avx2", action="store_true",
                    help="run both with their AVX2 loops, as on a CPU without AVX-512")
    ap.add_argument("--search", action="store_true",
                    help="time the per-channel mse/entropy searches, new against old")
    ap.add_argument("--shape", type=int, nargs=2, default=(4096, 4096))
    ap.add_argument("--data", default="t3", choices=("t3", "normal"))
    ap.add_argument("--thread-counts", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--old-rounds", type=int, default=1)
    a = ap.parse_args()
    if a.search:
        search(tuple(a.shape), a.data, a.thread_counts, a.rounds, a.old_rounds)
        return
    if a.quality:
        quality()
        return
    if a.threads:
        qdq.set_num_threads(a.threads)
    if a.per_channel:
        per_channel(a.per_channel)
        return
    if a.avx2:
        _engine.set_isa(1)
    rng = np.random.default_rng(0)
    x = rng.standard_t(3, a.mi << 20).astype(np.float32)
    b16 = a.dtype == "bfloat16"
    if b16:  # bfloat16 bit patterns (round to nearest even), no optional dependency
        u = x.view(np.uint32)
        x = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    else:
        x = x.astype(a.dtype)
    methods = {
        "compute_range": lambda: qdq.compute_range(x, bfloat16_bits=b16),
        "histogram": lambda: qdq.HistogramTracker(bfloat16_bits=b16).update(x),
    }
    if a.numpy:
        methods["numpy floor+bincount"] = lambda: numpy_histogram(
            (x.astype(np.uint32) << 16).view(np.float32) if b16 else x)
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for f in methods.values():  # warm-up
        f()
    for _ in range(a.rounds):
        for name, f in methods.items():
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    base = statistics.median(times["compute_range"])
    cbase = statistics.median(cpu["compute_range"])
    print(f"{a.mi} Mi {a.dtype}, {qdq.get_num_threads()} threads, {_engine.isa_name()}, "
          f"medians of {a.rounds} interleaved rounds (wall time; CPU time of the process)")
    for name in methods:
        med, cmed = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"  {name:22s} {med * 1e3:9.1f} ms  {med / base:5.2f} x compute_range   "
              f"cpu {cmed * 1e3:9.1f} ms  {cmed / cbase:5.2f} x")


if __name__ == "__main__":
    main()
