"""Per channel along the last axis against per tensor: every format, level and thread count.

    python benchmarks/bench_layouts.py                        # the speed issue's table
    python benchmarks/bench_layouts.py --shapes 8192x8192 --dtypes float32 --threads 2

For each shape and dtype, each instruction-set level (``engine.set_isa``) and each thread
count, the calls run in turn, round after round (the machine's noise falls on all alike):
``quantize_and_dequantize(x, out=o)`` (per tensor), ``axis=-1`` (per channel along the last
axis: TensorFlow's Dense and Conv kernel layout), both with ``out=`` and fresh, and for
reference ``axis=0`` and block-wise ``axis=-1, block_size=32`` with ``out=``. It prints the
medians of wall time and of the process's CPU time (all threads; on a busy machine wall
time mostly measures the other processes, CPU time the work) and the ratios per channel
axis -1 / per tensor, out= and fresh. Target of the speed issue: at most 1.2 x. The exit
status is 1 when a ratio of CPU-time medians is above the target (``--strict``: of wall
time too).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np

import qdq
from qdq._core import engine as _engine

TARGET = 1.2


def make_data(dtype: str, shape: tuple[int, ...]):
    """(array, kwargs); bfloat16 as ml_dtypes or, without it, as bits."""
    x = np.random.default_rng(0).standard_normal(shape, dtype=np.float32)
    if dtype == "bfloat16":
        try:
            import ml_dtypes

            return x.astype(ml_dtypes.bfloat16), {}
        except ImportError:
            return (x.view(np.uint32) >> 16).astype(np.uint16), {"bfloat16_bits": True}
    return x.astype(dtype), {}


def cases(x: np.ndarray, o: np.ndarray, kw: dict) -> dict:
    op = qdq.quantize_and_dequantize
    return {
        "tensor out=": lambda: op(x, out=o, **kw),
        "axis -1 out=": lambda: op(x, axis=-1, out=o, **kw),
        "tensor fresh": lambda: op(x, **kw),
        "axis -1 fresh": lambda: op(x, axis=-1, **kw),
        "axis 0 out=": lambda: op(x, axis=0, out=o, **kw),
        "block 32 out=": lambda: op(x, axis=-1, block_size=32, out=o, **kw),
    }


def measure(methods: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """Median (wall, CPU) seconds of each method, the methods in turn every round."""
    wall: dict[str, list[float]] = {k: [] for k in methods}
    cpu: dict[str, list[float]] = {k: [] for k in methods}
    for f in methods.values():  # warm-up, first touch of the outputs
        f()
    for _ in range(rounds):
        for k, f in methods.items():
            gc.disable()
            c0, t0 = time.process_time(), time.perf_counter()
            f()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
            gc.enable()
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in methods}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="8192x8192,4096x11008,3x3x512x512")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16,float64")
    ap.add_argument("--levels", default="all", help="comma-separated levels, or all")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--strict", action="store_true", help="the target on wall time too")
    ap.add_argument("--json", help="write the medians here")
    a = ap.parse_args()
    best = _engine.isa_available()
    levels = (list(range(best + 1)) if a.levels == "all"
              else [int(v) for v in a.levels.split(",") if int(v) <= best])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"qdq {qdq.__version__}; {_engine.build_info()}; load average {load:.1f} on "
          f"{os.cpu_count()} CPUs; medians of {a.rounds} interleaved rounds; ms wall / ms CPU")
    rows = []
    missed = []
    for shape_text in a.shapes.split(","):
        shape = tuple(int(v) for v in shape_text.split("x"))
        for dtype in a.dtypes.split(","):
            x, kw = make_data(dtype, shape)
            o = np.empty_like(x)
            for level in levels:
                _engine.set_isa(level)
                for nt in (int(v) for v in a.threads.split(",")):
                    with qdq.num_threads(nt), warnings.catch_warnings():
                        warnings.simplefilter("ignore", RuntimeWarning)
                        m = measure(cases(x, o, kw), a.rounds)
                    r = {k: m["axis -1 out="][i] / m["tensor out="][i] for i, k in
                         enumerate(("wall", "cpu"))}
                    rf = {k: m["axis -1 fresh"][i] / m["tensor fresh"][i] for i, k in
                          enumerate(("wall", "cpu"))}
                    miss = max(r["cpu"], rf["cpu"]) > TARGET or (
                        a.strict and max(r["wall"], rf["wall"]) > TARGET)
                    label = f"{shape_text} {dtype} level {level} {nt}t"
                    if miss:
                        missed.append(label)
                    rows.append({"shape": shape_text, "dtype": dtype, "level": level,
                                 "threads": nt, "ms": {k: [v[0] * 1e3, v[1] * 1e3]
                                                       for k, v in m.items()},
                                 "ratio_out": r, "ratio_fresh": rf})
                    figures = "  ".join(f"{k} {v[0] * 1e3:.1f}/{v[1] * 1e3:.1f}"
                                        for k, v in m.items())
                    print(f"{label:40s} axis -1 / tensor: out= {r['wall']:.2f} wall "
                          f"{r['cpu']:.2f} cpu, fresh {rf['wall']:.2f} wall {rf['cpu']:.2f} cpu"
                          f"{'  MISSED' if miss else ''}\n    {figures}", flush=True)
            _engine.set_isa(-1)
            del x, o
    print(f"target: axis -1 at most {TARGET} x per tensor (CPU-time medians"
          f"{', wall too' if a.strict else ''}): "
          + ("met in every case" if not missed else f"missed in {len(missed)}: {missed}"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"load": load, "rounds": a.rounds, "rows": rows}, f, indent=1)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
