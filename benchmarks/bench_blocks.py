"""Block-wise quantization against per-channel: ratios in one run, interleaved, medians.

    python benchmarks/bench_blocks.py                      # 8192 x 8192 float32
    python benchmarks/bench_blocks.py --rows 4096 --dtypes float32,bfloat16,float64

Times ``quantize_and_dequantize(x, axis=-1, block_size=B, out=out)`` for each
block size against the per-channel call ``quantize_and_dequantize(x, axis=-1,
out=out)`` on the same array: the methods run in turn, round after round, so the
machine's noise falls on all of them alike, and the medians are compared. The
target of the speed issue: float32, B = 32 and 128, at most 1.3 x per-channel.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
import warnings

import numpy as np

import qdq
from qdq._core import engine as _engine

TARGET = 1.3


def make_data(dtype: str, rows: int, cols: int):
    """(array, kwargs); bfloat16 as ml_dtypes or, without it, as bits."""
    x = np.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32)
    if dtype == "bfloat16":
        try:
            import ml_dtypes

            return x.astype(ml_dtypes.bfloat16), {}
        except ImportError:
            return (x.view(np.uint32) >> 16).astype(np.uint16), {"bfloat16_bits": True}
    return x.astype(dtype), {}


def methods_for(x: np.ndarray, out: np.ndarray, kw: dict, blocks: list[int]) -> dict:
    """The per-channel call and one block-wise call per block size, all with out=."""
    methods = {"per channel": lambda: qdq.quantize_and_dequantize(x, axis=-1, out=out, **kw)}
    for b in blocks:
        methods[f"B={b}"] = (lambda b=b: qdq.quantize_and_dequantize(
            x, axis=-1, block_size=b, out=out, **kw))
    return methods


def time_round_robin(methods: dict, rounds: int) -> dict[str, float]:
    """The median time of each method, the methods run in turn each round."""
    times: dict[str, list[float]] = {label: [] for label in methods}
    for fn in methods.values():  # warm-up and first touch of the output
        fn()
    for _ in range(rounds):
        for label, fn in methods.items():
            gc.disable()
            t0 = time.perf_counter()
            fn()
            times[label].append(time.perf_counter() - t0)
            gc.enable()
    return {label: statistics.median(t) for label, t in times.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=8192)
    ap.add_argument("--cols", type=int, default=8192)
    ap.add_argument("--blocks", default="32,128", help="block sizes, comma-separated")
    ap.add_argument("--dtypes", default="float32")
    ap.add_argument("--repeat", type=int, default=15, help="rounds (medians)")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        qdq.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    print(f"threads={qdq.get_num_threads()}, openmp={qdq.openmp_enabled()}, "
          f"simd={_engine.isa_name()}")
    blocks = [int(b) for b in args.blocks.split(",")]
    ok = True
    for dtype in args.dtypes.split(","):
        x, kw = make_data(dtype, args.rows, args.cols)
        out = np.empty_like(x)
        med = time_round_robin(methods_for(x, out, kw, blocks), args.repeat)
        base = med["per channel"]
        print(f"\n{dtype} {args.rows} x {args.cols}, axis -1, out=, {args.repeat} rounds")
        for label, t in med.items():
            ratio = t / base
            line = f"  {label:12s} {t * 1e3:8.1f} ms  {ratio:5.2f} x per channel"
            if label != "per channel" and dtype == "float32":
                hit = ratio <= TARGET
                ok &= hit
                line += f"  [{'ok' if hit else 'MISSED'}: target <= {TARGET}]"
            print(line)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
