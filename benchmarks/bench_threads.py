"""Python threads calling qdq at once: the kernels release the GIL.

    python benchmarks/bench_threads.py

Each call runs the op on its own 4 Mi-element float32 array with qdq's OpenMP
threads set to 1, so any speed-up comes from Python threads running kernels
in parallel. The same total work runs on 1, 2, 4 and 8 threads; medians of 5
rounds. On a machine with N cores expect up to N x.
"""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time

import numpy as np

import qdq


def run(nthreads: int, arrays: list, outs: list) -> float:
    per = len(arrays) // nthreads
    barrier = threading.Barrier(nthreads + 1)

    def work(k):
        barrier.wait()
        for i in range(k * per, (k + 1) * per):
            qdq.quantize_and_dequantize(arrays[i], out=outs[i])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(nthreads)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - t0


def main() -> int:
    qdq.set_num_threads(1)
    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(1 << 22, dtype=np.float32) for _ in range(16)]
    outs = [np.empty_like(a) for a in arrays]
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    print(f"16 calls of 4 Mi float32 elements, qdq OpenMP threads 1, {cpus} CPUs")
    times = {n: [] for n in (1, 2, 4, 8)}
    for _ in range(5):
        for n in times:
            times[n].append(run(n, arrays, outs))
    base = statistics.median(times[1])
    print("| Python threads | median | speed-up |")
    print("|---|---|---|")
    for n, ts in times.items():
        m = statistics.median(ts)
        print(f"| {n} | {m * 1e3:.1f} ms | {base / m:.2f} x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
