"""Two builds of the kernels in one process: per channel along the last axis / per tensor.

    python benchmarks/bench_layouts_builds.py OLD_KERNELS_SO NEW_KERNELS_SO \\
        --shapes 3x3x512x512 --dtypes float32,bfloat16 --levels 1,2,3 --threads 1,2

Each argument is a built ``qdq/_ext/kernels*.so`` (for instance a copy of the installed
one taken before a change). Both are loaded side by side; before each call the engine
is pointed at one of them (``qdq._core.engine.kernels``, the engine's only handle on the
kernels), so the same Python code runs on either build. For each shape, dtype,
instruction-set level and thread count, the calls of :mod:`bench_layouts`
(``quantize_and_dequantize`` per tensor and with ``axis=-1``, ``out=`` and fresh) run in
turn for each build, round after round: the load of a shared machine falls on all alike.
It prints the medians of the process's CPU time and, per build, the ratios axis -1 /
per tensor (target of the speed issue: at most 1.2 x), after checking that both builds
give the same bits.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import statistics
import sys
import time
import warnings

import numpy as np

import qdq
from qdq._core import engine as _engine

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_layouts import TARGET, make_data  # noqa: E402


def load(path: str, i: int):
    spec = importlib.util.spec_from_file_location(f"build{i}.kernels", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def calls(x: np.ndarray, o: np.ndarray, kw: dict) -> dict:
    op = qdq.quantize_and_dequantize
    return {"tensor out=": lambda: op(x, out=o, **kw),
            "axis -1 out=": lambda: op(x, axis=-1, out=o, **kw),
            "tensor fresh": lambda: op(x, **kw),
            "axis -1 fresh": lambda: op(x, axis=-1, **kw)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--shapes", default="3x3x512x512")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16,float64")
    ap.add_argument("--levels", default="all")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=31)
    a = ap.parse_args()
    builds = {"old": load(a.old, 0), "new": load(a.new, 1)}
    installed = _engine.kernels
    best = _engine.isa_available()
    levels = (list(range(best + 1)) if a.levels == "all"
              else [int(v) for v in a.levels.split(",") if int(v) <= best])
    print(f"qdq {qdq.__version__}; {_engine.build_info()}; medians of {a.rounds} interleaved "
          "rounds, ms CPU (process); ratios axis -1 / per tensor")
    op = qdq.quantize_and_dequantize
    missed = {b: 0 for b in builds}
    try:
        for shape_text in a.shapes.split(","):
            shape = tuple(int(v) for v in shape_text.split("x"))
            for dtype in a.dtypes.split(","):
                x, kw = make_data(dtype, shape)
                o = np.empty_like(x)
                cases = calls(x, o, kw)
                for level in levels:
                    for mod in builds.values():
                        mod.set_isa(level)
                    for nt in (int(v) for v in a.threads.split(",")):
                        cpu: dict[tuple[str, str], list[float]] = {}
                        with qdq.num_threads(nt), warnings.catch_warnings():
                            warnings.simplefilter("ignore", RuntimeWarning)
                            bits = {}
                            for b, mod in builds.items():
                                _engine.kernels = mod
                                bits[b] = op(x, axis=-1, **kw).view(np.uint8).copy()
                                for f in cases.values():
                                    f()
                            if not np.array_equal(bits["old"], bits["new"]):
                                raise SystemExit(f"{shape_text} {dtype} level {level}: "
                                                 "the builds differ")
                            for _ in range(a.rounds):
                                for b, mod in builds.items():
                                    _engine.kernels = mod
                                    for k, f in cases.items():
                                        gc.disable()
                                        c0 = time.process_time()
                                        f()
                                        cpu.setdefault((b, k), []).append(
                                            time.process_time() - c0)
                                        gc.enable()
                        med = {key: statistics.median(v) * 1e3 for key, v in cpu.items()}
                        parts = []
                        for b in builds:
                            ro = med[b, "axis -1 out="] / med[b, "tensor out="]
                            rf = med[b, "axis -1 fresh"] / med[b, "tensor fresh"]
                            miss = max(ro, rf) > TARGET
                            missed[b] += miss
                            parts.append(f"{b} out= {ro:.2f} fresh {rf:.2f}"
                                         f"{' MISSED' if miss else ''} (tensor "
                                         f"{med[b, 'tensor out=']:.2f}, axis -1 "
                                         f"{med[b, 'axis -1 out=']:.2f})")
                        print(f"{shape_text} {dtype} level {level} {nt}t: " + "; ".join(parts),
                              flush=True)
                for mod in builds.values():
                    mod.set_isa(-1)
    finally:
        _engine.kernels = installed
    print(f"target: axis -1 at most {TARGET} x per tensor (CPU-time medians): missed "
          + ", ".join(f"{b} {n}" for b, n in missed.items()))
    return 1 if missed["new"] else 0


if __name__ == "__main__":
    sys.exit(main())
