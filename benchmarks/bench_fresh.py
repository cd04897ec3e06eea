"""Fresh outputs: qdq's buffer cache against cold pages from the kernel, and out=.

    python benchmarks/bench_fresh.py            # 64 Mi float32, 15 rounds
    python benchmarks/bench_fresh.py --quick    # 16 Mi, 5 rounds

Every round runs each method once, in turn (interleaved), and the table shows
the median over the rounds. "cache off" is ``qdq.set_buffer_cache(0)``: each
call gets new pages from the kernel (NumPy's allocator, with its
MADV_HUGEPAGE advice); "no huge pages" also turns NumPy's advice off; "cache
on" is the default; "out=" writes into one preallocated array. Each method makes
one untimed call and then the timed one, dropping each result before the next
call, as a loop that replaces its tensor does.
The last line times a 1,024-element float32 call (fresh output, range from
the data): timeit, median of rounds.
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import time
import timeit

import numpy as np

import qdq

try:
    from numpy._core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage
except ImportError:  # NumPy 1.x
    from numpy.core.multiarray import _get_madvise_hugepage, _set_madvise_hugepage


def once(fn) -> float:
    gc.disable()
    t0 = time.perf_counter()
    y = fn()
    dt = time.perf_counter() - t0
    del y
    gc.enable()
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    args = ap.parse_args()
    n = (16 if args.quick else 64) << 20
    rounds = args.rounds or (5 if args.quick else 15)
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32)
    out = np.empty_like(x)
    default = qdq.get_buffer_cache()
    hugepage = _get_madvise_hugepage()

    def cache(limit, huge=hugepage):
        def setup():
            qdq.set_buffer_cache(limit)
            _set_madvise_hugepage(huge)
        return setup

    cases = {
        "range from data": dict(),
        "range given": dict(input_min=-2.0, input_max=2.0, range_given=True),
    }
    methods = [
        ("cache off, no huge pages", cache(0, False), False),
        ("cache off (before)", cache(0), False),
        ("cache on (default)", cache(default), False),
        ("out=", cache(default), True),
    ]
    print(f"qdq {qdq.__version__}; {qdq.get_num_threads()} threads; {n >> 20} Mi float32 "
          f"({x.nbytes >> 20} MiB); buffer cache default {default >> 20} MiB; "
          f"{rounds} rounds, medians")
    for case, kw in cases.items():
        times: dict[str, list[float]] = {m: [] for m, _, _ in methods}
        for r in range(rounds + 1):  # round 0 warms up
            for label, setup, use_out in methods:
                setup()
                call = functools.partial(qdq.quantize_and_dequantize, x,
                                         out=out if use_out else None, **kw)
                once(call)  # the call before, in a loop of such calls
                dt = once(call)
                if r:
                    times[label].append(dt)
        qdq.set_buffer_cache(default)
        _set_madvise_hugepage(hugepage)
        base = statistics.median(times["cache off (before)"])
        for label, _, _ in methods:
            t = times[label]
            print(f"  {case:16s} {label:26s} {statistics.median(t) * 1e3:7.1f} ms "
                  f"(min {min(t) * 1e3:6.1f}, max {max(t) * 1e3:6.1f})  "
                  f"x{base / statistics.median(t):.2f} vs before")

    small = np.random.default_rng(0).standard_normal(1024, dtype=np.float32)
    number = 20000
    per_call = [min(timeit.repeat(lambda: qdq.quantize_and_dequantize(small),
                                  number=number, repeat=3)) / number
                for _ in range(rounds)]
    print(f"  1,024 float32, fresh output, range from data: "
          f"{statistics.median(per_call) * 1e6:.2f} us per call "
          f"(min {min(per_call) * 1e6:.2f}, max {max(per_call) * 1e6:.2f})")


if __name__ == "__main__":
    main()
