"""Cost of building a calibration histogram against the range pass.

    python benchmarks/bench_calibrate.py [--mi 64] [--rounds 7] [--threads N]

On the same float32 array (64 Mi elements of Student-t data by default) it
times, interleaved in every round, ``qdq.compute_range`` (the op's fused
min/max pass), ``qdq.HistogramTracker().update`` (the histogram, with its exact
min/max, NaN and inf counts) and, for reference, a NumPy histogram of the same
bins (``floor`` + ``bincount``). It prints the medians and the ratios to the
range pass, measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import qdq


def numpy_histogram(x: np.ndarray, bins: int = 2048) -> np.ndarray:
    """The same bins in pure NumPy (for scale): floor(x / 2**k), k from max |x|."""
    m = float(np.max(np.abs(x)))
    k = int(np.frexp(m)[1]) - int(np.log2(bins // 2))
    while m >= (bins // 2) * 2.0 ** k:
        k += 1
    j = np.floor(x.astype(np.float64) * 2.0 ** -k).astype(np.int64) + bins // 2
    return np.bincount(j, minlength=bins)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mi", type=int, default=64, help="elements, in Mi (2**20)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--numpy", action="store_true", help="also time the NumPy histogram")
    a = ap.parse_args()
    if a.threads:
        qdq.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_t(3, a.mi << 20).astype(np.float32)
    methods = {
        "compute_range": lambda: qdq.compute_range(x),
        "histogram": lambda: qdq.HistogramTracker().update(x),
    }
    if a.numpy:
        methods["numpy floor+bincount"] = lambda: numpy_histogram(x)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for f in methods.values():  # warm-up
        f()
    for _ in range(a.rounds):
        for name, f in methods.items():
            t0 = time.perf_counter()
            f()
            times[name].append(time.perf_counter() - t0)
    base = statistics.median(times["compute_range"])
    print(f"{a.mi} Mi float32, {qdq.get_num_threads()} threads, medians of {a.rounds} "
          "interleaved rounds")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"  {name:22s} {med * 1e3:9.1f} ms   {med / base:5.2f} x compute_range")


if __name__ == "__main__":
    main()
