"""qdq's benchmark: every figure is a ratio measured in one run, interleaved, medians.

    python benchmarks/bench.py                 # 64 Mi elements (about 10 minutes)
    python benchmarks/bench.py --quick         # 16 Mi elements, fewer repeats

For each dtype it times qdq against the memory bound of the same bytes
(``x.max()`` + ``x.copy()`` for a fresh output, ``x.max()`` + ``np.copyto``
with ``out=``, ``np.copyto`` alone with a given range), against the pure-NumPy
twin ``qdq/_reference.py``, and against TensorFlow's
``quantize_and_dequantize_v2`` and PyTorch's ``fake_quantize_per_tensor_affine``
when they are importable (neither is a dependency; the run says what it
skipped). Each group's methods run in turn, round after round, so the machine's
noise falls on all of them alike; the median of the rounds is reported.

It prints a table and the targets of the speed issue with the ratio measured
for each, and writes a JSON file and a PNG plot (with matplotlib) to
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import qdq
from qdq import _kernels, _reference

HERE = os.path.dirname(os.path.abspath(__file__))
MI = 1 << 20


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count()
    return {
        "cpu": cpu, "cpus": cpus, "machine": platform.machine(),
        "python": platform.python_version(), "numpy": np.__version__,
        "qdq": qdq.__version__, "openmp": qdq.openmp_enabled(),
        "threads": qdq.get_num_threads(),
        "simd": ("baseline (SSE2/NEON)", "AVX2+F16C")[_kernels.get_isa()],
    }


class Group:
    """Methods timed round-robin on the same data; medians per method."""

    def __init__(self, name: str, dtype: str, n: int, nbytes: int):
        self.name, self.dtype, self.n, self.nbytes = name, dtype, n, nbytes
        self.methods: list[tuple[str, object, int]] = []
        self.times: dict[str, list[float]] = {}

    def add(self, label: str, fn, rounds: int | None = None):
        self.methods.append((label, fn, rounds))

    def run(self, rounds: int, number: int):
        for label, fn, _ in self.methods:  # warm-up (and first-touch of outputs)
            fn()
            self.times[label] = []
        for r in range(rounds):
            for label, fn, limit in self.methods:
                if limit is not None and r >= limit:
                    continue
                gc.disable()
                t0 = time.perf_counter()
                for _ in range(number):
                    fn()
                dt = (time.perf_counter() - t0) / number
                gc.enable()
                self.times[label].append(dt)

    def median(self, label: str) -> float:
        return statistics.median(self.times[label])

    def rows(self) -> list[dict]:
        return [{"group": self.name, "dtype": self.dtype, "n": self.n, "method": label,
                 "median_s": self.median(label), "rounds": len(self.times[label]),
                 "gb_per_s": self.nbytes / self.median(label) / 1e9}
                for label, _, _ in self.methods]


def make_data(dtype: str, n: int, seed: int = 0):
    """(array, kwargs) for a dtype; bfloat16 as ml_dtypes or, without it, as bits."""
    x = np.random.default_rng(seed).standard_normal(n, dtype=np.float32)
    if dtype == "bfloat16":
        try:
            import ml_dtypes

            return x.astype(ml_dtypes.bfloat16), {}
        except ImportError:
            bits = (x.view(np.uint32) >> 16).astype(np.uint16)
            return bits, {"bfloat16_bits": True}
    return x.astype(dtype), {}


def peers():
    found = {}
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        found["tensorflow"] = tf
    except ImportError:
        pass
    try:
        import torch

        found["torch"] = torch
    except ImportError:
        pass
    return found


def bound_read(x):
    """The read pass over the same bytes: NumPy's max (16-bit formats via uint16)."""
    return x.view(np.uint16).max() if x.dtype.itemsize == 2 else x.max()


def build_groups(dtype: str, n: int, args, found) -> list[Group]:
    x, kw = make_data(dtype, n)
    out = np.empty_like(x)
    nbytes = x.nbytes
    ref_rounds = args.ref_rounds if n >= 16 * MI else None
    groups = []

    def op(**extra):
        return lambda: qdq.quantize_and_dequantize(x, **kw, **extra)

    g = Group("range from data, fresh output", dtype, n, nbytes)
    g.add("qdq", op())
    g.add("bound: max + copy", lambda: (bound_read(x), x.copy()))
    if args.reference:
        g.add("qdq/_reference.py", lambda: _reference.quantize_and_dequantize(x, **kw), ref_rounds)
    if "tensorflow" in found and dtype in ("float32", "float64"):
        tf = found["tensorflow"]
        xt = tf.constant(x)
        g.add("tensorflow", lambda: tf.quantization.quantize_and_dequantize_v2(xt, 0.0, 0.0))
    if "torch" in found and dtype == "float32":
        torch = found["torch"]
        xt = torch.from_numpy(x)

        def torch_fq():
            lo, hi = torch.aminmax(xt)
            scale = float(max(hi, -lo)) / 127.0 or 1.0
            return torch.fake_quantize_per_tensor_affine(xt, scale, 0, -128, 127)
        g.add("torch", torch_fq)
    groups.append(g)

    g = Group("range from data, out=", dtype, n, nbytes)
    g.add("qdq", op(out=out))
    g.add("bound: max + copyto", lambda: (bound_read(x), np.copyto(out, x)))
    groups.append(g)

    g = Group("range given, out=", dtype, n, nbytes)
    g.add("qdq", op(input_min=-2.0, input_max=2.0, range_given=True, out=out))
    g.add("bound: copyto", lambda: np.copyto(out, x))
    groups.append(g)

    g = Group("range given, fresh output", dtype, n, nbytes)
    g.add("qdq", op(input_min=-2.0, input_max=2.0, range_given=True))
    g.add("bound: copy", lambda: x.copy())
    if "tensorflow" in found and dtype in ("float32", "float64"):
        tf = found["tensorflow"]
        xt = tf.constant(x)
        g.add("tensorflow", lambda: tf.quantization.quantize_and_dequantize_v2(
            xt, -2.0, 2.0, range_given=True))
    if "torch" in found and dtype == "float32":
        torch = found["torch"]
        xt = torch.from_numpy(x)
        g.add("torch", lambda: torch.fake_quantize_per_tensor_affine(xt, 2.0 / 127, 0, -128, 127))
    groups.append(g)

    # Integer codes and the gradient, against the op with the same range and out=.
    codes, params = qdq.quantize(x, -2.0, 2.0, range_given=True, **kw)
    codes_out = np.empty_like(codes)
    g = x.copy()
    g = Group("codes and gradient (range given, out=)", dtype, n, nbytes)
    g.add("qdq op", op(input_min=-2.0, input_max=2.0, range_given=True, out=out))
    g.add("quantize", lambda: qdq.quantize(x, -2.0, 2.0, range_given=True, out=codes_out, **kw))
    g.add("dequantize", lambda: qdq.dequantize(codes, params, out=out,
                                               bfloat16_bits="bfloat16_bits" in kw))
    grads = x.copy()
    g.add("gradient", lambda: qdq.quantize_and_dequantize_grad(grads, x, -2.0, 2.0, out=out, **kw))
    g.add("bound: copyto", lambda: np.copyto(out, x))
    groups.append(g)

    side = int(round(n ** 0.5))
    if side * side == n and n >= MI:
        x2, out2 = x.reshape(side, side), out.reshape(side, side)
        g = Group(f"per channel ({side} x {side}), out=", dtype, n, nbytes)
        g.add("qdq per tensor", lambda: qdq.quantize_and_dequantize(x2, **kw, out=out2))
        g.add("qdq axis 0", lambda: qdq.quantize_and_dequantize(x2, **kw, axis=0, out=out2))
        g.add("qdq axis -1", lambda: qdq.quantize_and_dequantize(x2, **kw, axis=-1, out=out2))
        g.add("bound: max + copyto", lambda: (bound_read(x2), np.copyto(out2, x2)))
        groups.append(g)
    return groups


def small_groups(dtype: str, n: int, args) -> list[Group]:
    x, kw = make_data(dtype, n)
    out = np.empty_like(x)
    g = Group(f"small calls ({n} elements)", dtype, n, x.nbytes)
    g.add("qdq", lambda: qdq.quantize_and_dequantize(x, **kw))
    g.add("qdq out=", lambda: qdq.quantize_and_dequantize(x, **kw, out=out))
    g.add("qdq range given", lambda: qdq.quantize_and_dequantize(
        x, -2.0, 2.0, range_given=True, **kw))
    if args.reference:
        g.add("qdq/_reference.py", lambda: _reference.quantize_and_dequantize(x, **kw))
    g.add("bound: max + copy", lambda: (bound_read(x), x.copy()))
    return [g]


def fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} us"


def print_table(groups: list[Group], file=sys.stdout):
    print("| dtype | elements | case | method | median | GB/s | x bound |", file=file)
    print("|---|---|---|---|---|---|---|", file=file)
    for g in groups:
        bound = next((lbl for lbl, _, _ in g.methods if lbl.startswith("bound")), None)
        for label, _, _ in g.methods:
            t = g.median(label)
            ratio = f"{t / g.median(bound):.2f}" if bound else ""
            print(f"| {g.dtype} | {g.n:,} | {g.name} | {label} | {fmt_time(t)} | "
                  f"{g.nbytes / t / 1e9:.2f} | {ratio} |", file=file)


def targets(groups: list[Group], big: int) -> list[dict]:
    by = {(g.dtype, g.n, g.name): g for g in groups}
    res = []

    def check(name, value, limit, kind="max"):
        ok = value <= limit if kind == "max" else value >= limit
        res.append({"target": name, "measured": round(value, 3),
                    "limit": ("<= " if kind == "max" else ">= ") + str(limit), "ok": bool(ok)})

    g = by.get(("float32", big, "range from data, fresh output"))
    if g:
        check("float32 range from data, fresh: qdq / (max + copy)",
              g.median("qdq") / g.median("bound: max + copy"), 1.3)
    g = by.get(("float32", big, "range from data, out="))
    if g:
        check("float32 range from data, out=: qdq / (max + copyto)",
              g.median("qdq") / g.median("bound: max + copyto"), 1.3)
    g = by.get(("float32", big, "range given, out="))
    if g:
        check("float32 range given, out=: qdq / copyto",
              g.median("qdq") / g.median("bound: copyto"), 1.3)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        g = by.get((dtype, big, "range from data, fresh output"))
        if g and "qdq/_reference.py" in g.times:
            check(f"{dtype}: qdq/_reference.py / qdq (fresh output)",
                  g.median("qdq/_reference.py") / g.median("qdq"), 4, "min")
        for peer in ("tensorflow", "torch"):
            for case in ("range from data, fresh output", "range given, fresh output"):
                g = by.get((dtype, big, case))
                if g and peer in g.times:
                    check(f"{dtype} {case}: {peer} / qdq", g.median(peer) / g.median("qdq"),
                          1.0, "min")
    for dtype in ("float16", "bfloat16"):
        for case in ("range from data, fresh output", "range from data, out=",
                     "range given, out="):
            g16, g32 = by.get((dtype, big, case)), by.get(("float32", big, case))
            if g16 and g32:
                check(f"{dtype} / float32 time, {case}", g16.median("qdq") / g32.median("qdq"), 2.0)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        g = by.get((dtype, big, "codes and gradient (range given, out=)"))
        if g:
            for m in ("quantize", "dequantize"):
                check(f"{dtype} {m} / the op (range given, out=)",
                      g.median(m) / g.median("qdq op"), 1.3)
            # the gradient reads two arrays where the op reads one: compare per byte moved
            check(f"{dtype} gradient / the op, per byte moved",
                  g.median("gradient") / (1.5 * g.median("qdq op")), 1.3)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        g = next((g for (d, n, name), g in by.items()
                  if d == dtype and n == big and name.startswith("per channel")), None)
        if g:
            for axis in ("0", "-1"):
                check(f"{dtype} per channel axis {axis} / per tensor",
                      g.median(f"qdq axis {axis}") / g.median("qdq per tensor"), 1.5)
    return res


def plot(rows: list[dict], big: int, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    cases = ["range from data, fresh output", "range from data, out=", "range given, out="]
    dtypes = ["float16", "bfloat16", "float32", "float64"]
    fig, axes = plt.subplots(1, len(cases), figsize=(15, 4.5), sharey=True)
    for ax, case in zip(axes, cases, strict=True):
        sel = [r for r in rows if r["group"] == case and r["n"] == big]
        methods = list(dict.fromkeys(r["method"] for r in sel))
        width = 0.8 / max(len(methods), 1)
        for k, m in enumerate(methods):
            vals = [next((r["gb_per_s"] for r in sel if r["dtype"] == d and r["method"] == m), 0)
                    for d in dtypes]
            ax.bar(np.arange(len(dtypes)) + k * width, vals, width, label=m)
        ax.set_xticks(np.arange(len(dtypes)) + 0.4 - width / 2, dtypes)
        ax.set_title(case)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("GB/s of input (higher is better)")
    fig.suptitle(f"qdq, {big // MI} Mi elements")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64 * MI, help="elements of the large cases")
    ap.add_argument("--repeat", type=int, default=7, help="rounds per group (medians)")
    ap.add_argument("--ref-rounds", type=int, default=3,
                    help="rounds for the slow NumPy reference on large cases")
    ap.add_argument("--quick", action="store_true", help="16 Mi elements, 5 rounds")
    ap.add_argument("--no-reference", dest="reference", action="store_false")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16,float64")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="directory for bench.json and bench.png")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.repeat = 16 * MI, 5
    if args.threads:
        qdq.set_num_threads(args.threads)
    warnings.simplefilter("ignore", RuntimeWarning)
    info = machine_info()
    found = peers()
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    missing = [p for p in ("tensorflow", "torch") if p not in found]
    if missing:
        print("not importable, skipped: " + ", ".join(missing))
    groups: list[Group] = []
    for dtype in args.dtypes.split(","):
        for n in (1024, MI):
            for g in small_groups(dtype, n, args):
                g.run(args.repeat, max(1, (4 * MI) // n))
                groups.append(g)
        for g in build_groups(dtype, args.size, args, found):
            print(f"  {dtype}: {g.name} ...", file=sys.stderr, flush=True)
            g.run(args.repeat, 1)
            groups.append(g)
        gc.collect()
    print()
    print_table(groups)
    res = targets(groups, args.size)
    print("\nTargets (speed issue):")
    for t in res:
        print(f"  [{'ok' if t['ok'] else 'MISSED'}] {t['target']}: {t['measured']} "
              f"(target {t['limit']})")
    os.makedirs(args.out, exist_ok=True)
    rows = [r for g in groups for r in g.rows()]
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump({"machine": info, "size": args.size, "repeat": args.repeat,
                   "skipped": missing, "rows": rows, "targets": res}, f, indent=1)
    if plot(rows, args.size, os.path.join(args.out, "bench.png")):
        print(f"\nwrote {os.path.join(args.out, 'bench.json')} and bench.png")
    return 0 if all(t["ok"] for t in res) else 1


if __name__ == "__main__":
    sys.exit(main())
