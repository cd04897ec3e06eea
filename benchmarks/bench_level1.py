"""CPUs without AVX-512: the level-1 (AVX2 + F16C) loops against the speed issue's targets.

    python benchmarks/bench_level1.py                 # 32 Mi elements, 1 and 2 threads
    python benchmarks/bench_level1.py --mi 256 --rounds 5     # beyond the cache
    python benchmarks/bench_level1.py --data normal           # normal instead of Student-t

Forces the kernels to level 1 with ``engine.set_isa(1)`` (as on an AVX2-only CPU; on
such a CPU that is the level anyway) and times, round after round, every call in turn
on the same Student-t data (bfloat16 and float16 as their bit patterns or float16
values, no optional dependency):

- the op per tensor with ``out=`` (range from the data) on bfloat16 and on float16:
  target bfloat16 / float16 <= 1.15;
- ``qdq.HistogramTracker().update`` against ``qdq.compute_range`` for float16, bfloat16,
  float32 and float64: target histogram / compute_range <= 1.5;

each with 1 and 2 threads; then at level 2 (when the CPU has it) the bfloat16 histogram
with 2 threads against ``compute_range``: target <= 1.5. With 32 Mi elements (64-256 MiB
per format) a CPU whose last-level cache holds several hundred MiB (printed in the header,
from sysfs) serves part of the data from that cache; ``--mi 256`` (0.5-2 GiB per format)
measures both calls from memory. With ``--data normal`` the histogram's range is set by
tails only about five standard deviations out, its bins are fine next to the spread and
almost every element falls outside the 16 central bins that the histogram counts in
registers, so every element's bin index is stored and counted one at a time: the ratio
then measures that path (the targets above were set on the Student-t data).
It prints the medians of wall time and of the process's CPU time (all threads) and the
ratios of both, measured in the same run. A target counts as missed when the ratio of
CPU-time medians is above it (on a busy machine wall time mostly measures the other
processes); exit status 1 then.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys

import numpy as np

import qdq
from qdq._core import engine as _engine

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_layouts import measure  # noqa: E402  (the same interleaved medians)

OP_TARGET = 1.15
HIST_TARGET = 1.5


def data(mi: int, dist: str = "student-t") -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    n = mi << 20
    x = (rng.standard_t(3, n) if dist == "student-t" else rng.standard_normal(n)).astype(np.float32)
    u = x.view(np.uint32)
    b16 = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    return {"float16": x.astype(np.float16), "bfloat16": b16, "float32": x,
            "float64": x.astype(np.float64)}


def level_methods(xs: dict[str, np.ndarray], outs: dict[str, np.ndarray],
                  dtypes: list[str]) -> dict:
    op = qdq.quantize_and_dequantize
    m: dict = {}
    if "bfloat16" in dtypes and "float16" in dtypes:
        m["op float16 out="] = lambda: op(xs["float16"], out=outs["float16"])
        m["op bfloat16 out="] = lambda: op(xs["bfloat16"], out=outs["bfloat16"],
                                           bfloat16_bits=True)
    for dt in dtypes:
        b = dt == "bfloat16"
        x = xs[dt]
        m[f"{dt} compute_range"] = lambda x=x, b=b: qdq.compute_range(x, bfloat16_bits=b)
        m[f"{dt} histogram"] = lambda x=x, b=b: qdq.HistogramTracker(bfloat16_bits=b).update(x)
    return m


def last_level_cache() -> str:
    """The largest cache of cpu0 as sysfs gives it (Linux), in MiB, or "unknown"."""
    kib = 0
    for f in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        with open(f) as fh:
            v = fh.read().strip()
        shift = {"K": 0, "M": 10, "G": 20}.get(v[-1:])
        if shift is not None and v[:-1].isdigit():
            kib = max(kib, int(v[:-1]) << shift)
    return f"{kib >> 10} MiB" if kib else "unknown"


def report(label: str, m: dict, num: str, den: str, target: float, missed: list) -> None:
    rw, rc = (m[num][i] / m[den][i] for i in (0, 1))
    miss = rc > target
    if miss:
        missed.append(f"{label}: {num} / {den}")
    print(f"  {num:24s} {m[num][0] * 1e3:8.1f} ms wall {m[num][1] * 1e3:8.1f} ms cpu   "
          f"/ {den}: {rw:5.2f} wall {rc:5.2f} cpu  (target <= {target})"
          f"{'  MISSED' if miss else ''}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mi", type=int, default=32, help="elements, in Mi (2**20)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--data", choices=["student-t", "normal"], default="student-t",
                    help="the elements' distribution (Student-t with 3 degrees of freedom)")
    a = ap.parse_args()
    best = _engine.isa_available()
    if best < 1:
        print(f"this CPU (level {best}) has no level 1: nothing to measure")
        return 0
    xs = data(a.mi, a.data)
    outs = {k: np.empty_like(v) for k, v in xs.items()}
    dtypes = ["float16", "bfloat16", "float32", "float64"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"qdq {qdq.__version__}; best level {best}; load average {load:.1f} on "
          f"{os.cpu_count()} CPUs; last-level cache {last_level_cache()}; {a.mi} Mi "
          f"{a.data} elements; medians of {a.rounds} interleaved rounds")
    missed: list[str] = []
    runs = [(1, nt, dtypes) for nt in (int(v) for v in a.threads.split(","))]
    if best >= 2:
        runs.append((2, 2, ["bfloat16"]))
    try:
        for level, nt, dts in runs:
            _engine.set_isa(level)
            with qdq.num_threads(nt):
                m = measure(level_methods(xs, outs, dts), a.rounds)
            label = f"level {level}, {nt} thread{'s' if nt > 1 else ''}"
            print(f"{label} ({_engine.isa_name()})")
            if "op bfloat16 out=" in m:
                report(label, m, "op bfloat16 out=", "op float16 out=", OP_TARGET, missed)
            for dt in dts:
                report(label, m, f"{dt} histogram", f"{dt} compute_range", HIST_TARGET, missed)
    finally:
        _engine.set_isa(-1)
    print("targets: " + ("met in every case" if not missed
                         else f"missed in {len(missed)}: {missed}"))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
