"""Two builds of qdq side by side: is anything slower? Single-thread CPU time, medians.

    python benchmarks/compare_builds.py OLD_TREE NEW_TREE [--rounds 3]

Each tree is a checkout with its kernels built in place (``python setup.py
build_ext --inplace``). The two run in alternating child processes
(``PYTHONPATH`` chooses the build, ``OMP_NUM_THREADS=1``), each timing the same
calls with ``time.thread_time`` (CPU time of the calling thread, which the
load of other processes on a shared machine disturbs far less than wall
time): the op per tensor, range given, per channel on both axes, block-wise,
codes, dequantize, the gradient, ``stream``, ``compute_range`` and the
calibration histogram (per tensor and per channel), for every dtype, and 2,000
calls on 1,024 elements. It prints new/old per case (the median of the
rounds' medians). ``--isa LEVEL`` runs both at that instruction-set level
(``engine.set_isa``; level 1 is what a CPU without AVX-512 runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r'''
import json, os, statistics, time
import ml_dtypes
import numpy as np
import qdq
from qdq._core import engine

if os.environ.get("QDQ_COMPARE_ISA"):
    engine.set_isa(int(os.environ["QDQ_COMPARE_ISA"]))

rng = np.random.default_rng(0)
res = {}


def t(name, f, reps=7):
    f()
    xs = []
    for _ in range(reps):
        a = time.thread_time()
        f()
        xs.append(time.thread_time() - a)
    res[name] = statistics.median(xs) * 1e3


for dt in ("float32", "float16", "bfloat16", "float64"):
    d = ml_dtypes.bfloat16 if dt == "bfloat16" else np.dtype(dt)
    x = rng.standard_normal((4096, 4096), dtype=np.float32).astype(d)
    o = np.empty_like(x)
    t(f"{dt} per tensor, out=", lambda: qdq.quantize_and_dequantize(x, out=o))
    t(f"{dt} range given, out=",
      lambda: qdq.quantize_and_dequantize(x, -2, 2, range_given=True, out=o))
    t(f"{dt} axis 0, out=", lambda: qdq.quantize_and_dequantize(x, axis=0, out=o))
    t(f"{dt} axis -1, out=", lambda: qdq.quantize_and_dequantize(x, axis=-1, out=o))
    t(f"{dt} block 32, out=",
      lambda: qdq.quantize_and_dequantize(x, axis=-1, block_size=32, out=o))
    t(f"{dt} quantize", lambda: qdq.quantize(x, -2, 2, range_given=True))
    c, p = qdq.quantize(x, -2, 2, range_given=True)
    t(f"{dt} dequantize", lambda: qdq.dequantize(c, p))
    t(f"{dt} gradient", lambda: qdq.quantize_and_dequantize_grad(x, x, -2, 2))
    chunks = np.array_split(x, 16)
    t(f"{dt} stream (16 chunks)", lambda: list(qdq.stream(chunks)), reps=3)
    t(f"{dt} compute_range", lambda: qdq.compute_range(x))
    t(f"{dt} histogram", lambda: qdq.HistogramTracker().update(x))
    t(f"{dt} histogram, axis -1", lambda: qdq.HistogramTracker(axis=-1).update(x), reps=3)
    xt = rng.standard_t(3, (4096, 4096)).astype(np.float32).astype(d)
    t(f"{dt} histogram, Student-t", lambda: qdq.HistogramTracker().update(xt))
small = rng.standard_normal(1024).astype(np.float32)


def calls():
    for _ in range(2000):
        qdq.quantize_and_dequantize(small)


t("1,024 elements x 2,000 calls", calls)
print(json.dumps(res))
'''


def run(tree: str, isa: int | None) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS="1")
    if isa is not None:
        env["QDQ_COMPARE_ISA"] = str(isa)
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, check=True,
                         capture_output=True, text=True, cwd="/").stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--isa", type=int, default=None, metavar="LEVEL",
                    help="instruction-set level for both builds (default: the best)")
    args = ap.parse_args()
    old, new = [], []
    for _ in range(args.rounds):
        old.append(run(args.old, args.isa))
        new.append(run(args.new, args.isa))
    if args.isa is not None:
        print(f"instruction-set level {args.isa}")
    print(f"{'case':34s} {'old ms':>9s} {'new ms':>9s} {'new/old':>8s}")
    for k in old[0]:
        o = statistics.median(d[k] for d in old)
        n = statistics.median(d[k] for d in new)
        print(f"{k:34s} {o:9.2f} {n:9.2f} {n / o:8.2f}")


if __name__ == "__main__":
    main()
