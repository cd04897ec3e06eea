"""Two threads against one on a busy machine: two must never be slower.

    python benchmarks/bench_busy.py                 # one competing busy process
    python benchmarks/bench_busy.py --torch         # with torch imported (its OpenMP)
    python benchmarks/bench_busy.py --busy 0        # a quiet machine (if it is one)

Starts ``--busy`` processes that spin (``while True: pass``), each pinned to one CPU
where the system allows it, then times, round after round, each call with 1 and with
2 threads (``qdq.num_threads``): the op per tensor and per channel (``axis=-1``) on a
4096 x 4096 float32 array with ``out=``, the calibration histogram, and with ``--torch``
the forward and backward pass of ``qdq.torch.quantize_and_dequantize`` on a 4096 x 4096
tensor (torch imported first: qdq's kernels then share the process with torch's OpenMP
threads). It prints the medians of wall time and the ratio 2 threads / 1 thread per
case; the exit status is 1 when a ratio is above ``--limit`` (1.0 by default).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def spinners(n: int) -> list[subprocess.Popen]:
    procs = []
    for k in range(n):
        p = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        if hasattr(os, "sched_setaffinity"):
            cpus = sorted(os.sched_getaffinity(0))
            try:
                os.sched_setaffinity(p.pid, {cpus[k % len(cpus)]})
            except OSError:
                pass
        procs.append(p)
    return procs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--busy", type=int, default=1, help="competing busy processes")
    ap.add_argument("--torch", action="store_true", help="import torch first; time qdq.torch")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--limit", type=float, default=1.0)
    a = ap.parse_args()
    if a.torch:
        import torch  # noqa: F401  (first: qdq's kernels beside torch's OpenMP runtime)
    import numpy as np

    import qdq
    from qdq._core import engine as _engine

    x = np.random.default_rng(0).standard_normal((4096, 4096), dtype=np.float32)
    o = np.empty_like(x)
    cases = {
        "op per tensor, out=": lambda: qdq.quantize_and_dequantize(x, out=o),
        "op axis -1, out=": lambda: qdq.quantize_and_dequantize(x, axis=-1, out=o),
        "histogram": lambda: qdq.HistogramTracker().update(x),
    }
    if a.torch:
        import torch

        import qdq.torch as qt

        tx = torch.from_numpy(x.copy()).requires_grad_(True)

        def fwd_bwd():
            tx.grad = None
            qt.quantize_and_dequantize(tx).sum().backward()

        cases["qdq.torch forward+backward"] = fwd_bwd
    procs = spinners(a.busy)
    try:
        time.sleep(0.5)
        times: dict[tuple[str, int], list[float]] = {(c, n): [] for c in cases for n in (1, 2)}
        for f in cases.values():
            f()
        for _ in range(a.rounds):
            for c, f in cases.items():
                for n in (1, 2):
                    with qdq.num_threads(n):
                        t0 = time.perf_counter()
                        f()
                        times[(c, n)].append(time.perf_counter() - t0)
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    finally:
        for p in procs:
            p.kill()
            p.wait()
    print(f"qdq {qdq.__version__} from {os.path.dirname(qdq.__file__)}; "
          f"{_engine.build_info()}; {a.busy} busy process(es), torch "
          f"{'imported' if a.torch else 'not imported'}, load average {load:.1f} on "
          f"{os.cpu_count()} CPUs; medians of {a.rounds} interleaved rounds, wall time")
    worst = 0.0
    for c in cases:
        t1 = statistics.median(times[(c, 1)])
        t2 = statistics.median(times[(c, 2)])
        q1 = statistics.quantiles(times[(c, 1)], n=4)
        q2 = statistics.quantiles(times[(c, 2)], n=4)
        worst = max(worst, t2 / t1)
        print(f"  {c:28s} 1 thread {t1 * 1e3:8.1f} ms (IQR {q1[0] * 1e3:.1f}-{q1[2] * 1e3:.1f})"
              f"   2 threads {t2 * 1e3:8.1f} ms (IQR {q2[0] * 1e3:.1f}-{q2[2] * 1e3:.1f})"
              f"   2/1 {t2 / t1:5.2f}")
    ok = worst <= a.limit
    verdict = "met" if ok else "MISSED"
    print(f"2 threads / 1 thread at most {a.limit}: {verdict} (worst {worst:.2f})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
