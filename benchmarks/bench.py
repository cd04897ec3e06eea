"""qdq's benchmark: every figure is a ratio measured in one run, interleaved, medians.

    python benchmarks/bench.py                 # 64 Mi elements (under 10 minutes)
    python benchmarks/bench.py --quick         # 16 Mi elements, fewer rounds

For each dtype it times qdq against the machine's limit and against its peers,
all on the same arrays and the same number of threads:

* the limit: ``benchmarks/bandwidth_probe.c``, built here with the system C
  compiler (``cc -O2 -fopenmp``, no ``-march``) and loaded with ctypes, reads
  the array's bytes (a max) and scale-copies them into the output's bytes with
  ordinary and with non-temporal stores, on all threads;
* TensorFlow's ``tf.quantization.quantize_and_dequantize_v2`` on a
  ``tf.constant`` made beforehand, its result kept as a ``tf.Tensor`` (the
  ``.numpy()`` of a result is timed apart and labelled a conversion);
* ONNX Runtime sessions: ``QuantizeLinear`` + ``DequantizeLinear`` (int8, the
  scale and zero point constants) for a given range, ``DynamicQuantizeLinear``
  + ``DequantizeLinear`` (uint8: ORT's dynamic op) for a range from the data,
  ``session.run`` on the NumPy array;
* PyTorch on tensors (``torch.from_numpy``: ``aminmax`` +
  ``fake_quantize_per_tensor_affine``);
* the pure-NumPy twin ``qdq/_reference.py``.

None of the peers is a dependency of qdq: each is used when importable, and the
run says which it skipped. Each group's methods run in turn, round after round,
so the machine's noise falls on all of them alike; the median of the rounds is
reported. It prints a table and the speed targets with the ratio measured for
each, and writes bench.txt, bench.json and bench.png (with matplotlib) to
``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np

import qdq
from qdq import _reference
from qdq._core import engine as _engine

HERE = os.path.dirname(os.path.abspath(__file__))
MI = 1 << 20
LIMIT_READ, LIMIT_COPY, LIMIT_NT = "limit: read", "limit: scale-copy", "limit: scale-copy NT"
TF_OP = "TF op on a tf.Tensor"
TF_CONV = "TF .numpy() of the result (conversion)"
ORT_DATA = "ORT DynamicQuantizeLinear+DequantizeLinear (uint8)"
ORT_GIVEN = "ORT QuantizeLinear+DequantizeLinear (int8, constant scale)"
TORCH = "torch on a tensor"
# Idle time after each call of a peer: their thread pools spin a while after
# their work, which would take the cores from the next method.
SETTLE = 0.005
PEER_PREFIXES = ("TF", "ORT", "torch")
SLOW_ROUNDS = 3  # rounds for a peer that takes ten times qdq's time or more


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
        "simd": _engine.isa_name(),
    }


class Group:
    """Methods timed round-robin on the same data; medians per method."""

    def __init__(self, name: str, dtype: str, n: int, nbytes: int):
        self.name, self.dtype, self.n, self.nbytes = name, dtype, n, nbytes
        self.methods: list[tuple[str, object, int | None]] = []
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
                if label.startswith(PEER_PREFIXES):
                    time.sleep(SETTLE)

    def has(self, label: str) -> bool:
        return label in self.times

    def median(self, label: str) -> float:
        return statistics.median(self.times[label])

    def limit(self) -> float | None:
        """The time the machine needs for this case's memory traffic (the probe)."""
        if not self.has(LIMIT_NT):
            return None
        nt = self.median(LIMIT_NT)
        return nt if "range given" in self.name else nt + self.median(LIMIT_READ)

    def rows(self) -> list[dict]:
        return [{"group": self.name, "dtype": self.dtype, "n": self.n, "method": label,
                 "median_s": self.median(label), "rounds": len(self.times[label]),
                 "min_s": min(self.times[label]), "max_s": max(self.times[label]),
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


class Probe:
    """bandwidth_probe.c built with the system C compiler and loaded with ctypes."""

    def __init__(self, threads: int):
        self.threads, self.lib, self.why = threads, None, ""
        cc = os.environ.get("CC", "cc")
        if shutil.which(cc) is None:
            self.why = f"no C compiler ({cc})"
            return
        self.dir = tempfile.mkdtemp(prefix="qdq-probe-")
        so = os.path.join(self.dir, "bandwidth_probe.so")
        cmd = [cc, "-O2", "-fopenmp", "-shared", "-fPIC",
               os.path.join(HERE, "bandwidth_probe.c"), "-o", so]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            self.why = f"{' '.join(cmd)} failed: {res.stderr.strip()[:200]}"
            return
        lib = ctypes.CDLL(so)
        shutil.rmtree(self.dir, ignore_errors=True)  # loaded: the file is no longer needed
        for f in ("probe_scale", "probe_scale_stream"):
            getattr(lib, f).argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
                                        ctypes.c_float, ctypes.c_int]
        lib.probe_read.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        lib.probe_read.restype = ctypes.c_float
        self.lib, self.streams = lib, bool(lib.probe_has_stream())

    def add_to(self, g: Group, x: np.ndarray, out: np.ndarray, copies: bool = True):
        """The read and scale-copy passes over x's and out's bytes (as float32 values)."""
        if self.lib is None:
            return
        lib, t, n = self.lib, self.threads, x.nbytes // 4
        xp, op = x.ctypes.data, out.ctypes.data
        g.add(LIMIT_READ, lambda: lib.probe_read(xp, n, t))
        if copies:
            g.add(LIMIT_COPY, lambda: lib.probe_scale(xp, op, n, 1.0, t))
        g.add(LIMIT_NT, lambda: lib.probe_scale_stream(xp, op, n, 1.0, t))


def peers(threads: int) -> dict:
    found = {}
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        found["tensorflow"] = tf
    except ImportError:
        pass
    try:
        import onnx
        import onnxruntime

        found["onnxruntime"] = (onnx, onnxruntime)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(threads)
        found["torch"] = torch
    except ImportError:
        pass
    return found


def ort_session(found: dict, dynamic: bool, threads: int):
    """An ORT session of Q + DQ on a float32 vector: dynamic (uint8, range from the
    data) or with the constant scale 2/127 and zero point 0 (int8)."""
    onnx, ort = found["onnxruntime"]
    h, tp = onnx.helper, onnx.TensorProto
    if dynamic:
        nodes = [h.make_node("DynamicQuantizeLinear", ["X"], ["q", "s", "z"]),
                 h.make_node("DequantizeLinear", ["q", "s", "z"], ["Y"])]
        inits = []
    else:
        nodes = [h.make_node("QuantizeLinear", ["X", "s", "z"], ["q"]),
                 h.make_node("DequantizeLinear", ["q", "s", "z"], ["Y"])]
        inits = [h.make_tensor("s", tp.FLOAT, [], [2.0 / 127]),
                 h.make_tensor("z", tp.INT8, [], [0])]
    graph = h.make_graph(nodes, "qdq", [h.make_tensor_value_info("X", tp.FLOAT, [None])],
                         [h.make_tensor_value_info("Y", tp.FLOAT, [None])], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def add_peers(g: Group, x: np.ndarray, found: dict, given: bool, threads: int):
    dtype = x.dtype.name
    if "tensorflow" in found and dtype in ("float32", "float64"):
        tf = found["tensorflow"]
        xt = tf.constant(x)
        if given:
            def tf_op():
                return tf.quantization.quantize_and_dequantize_v2(xt, -2.0, 2.0, range_given=True)
        else:
            def tf_op():
                return tf.quantization.quantize_and_dequantize_v2(xt, 0.0, 0.0)
        g.add(TF_OP, tf_op)
        result = tf_op()
        g.add(TF_CONV, result.numpy)
    if "onnxruntime" in found and dtype == "float32":
        sess = ort_session(found, not given, threads)
        y = sess.run(None, {"X": x[:65536]})[0]
        assert len(np.unique(y)) <= 256, "the ORT session did not quantize"
        g.add(ORT_GIVEN if given else ORT_DATA, lambda: sess.run(None, {"X": x}))
    if "torch" in found and dtype == "float32":
        torch = found["torch"]
        xt = torch.from_numpy(x)
        if given:
            g.add(TORCH, lambda: torch.fake_quantize_per_tensor_affine(xt, 2.0 / 127, 0, -128, 127),
                  SLOW_ROUNDS)
        else:
            def torch_fq():
                lo, hi = torch.aminmax(xt)
                scale = float(max(hi, -lo)) / 127.0 or 1.0
                return torch.fake_quantize_per_tensor_affine(xt, scale, 0, -128, 127)
            g.add(TORCH, torch_fq, SLOW_ROUNDS)


def build_groups(dtype: str, n: int, args, found, probe: Probe) -> list[Group]:
    x, kw = make_data(dtype, n)
    out = np.empty_like(x)
    nbytes = x.nbytes
    groups = []
    given = {"input_min": -2.0, "input_max": 2.0, "range_given": True}

    def op(**extra):
        return lambda: qdq.quantize_and_dequantize(x, **kw, **extra)

    g = Group("range from data, fresh output", dtype, n, nbytes)
    g.add("qdq", op())
    probe.add_to(g, x, out, copies=False)
    if args.reference:
        g.add("qdq/_reference.py", lambda: _reference.quantize_and_dequantize(x, **kw),
              args.ref_rounds)
    add_peers(g, x, found, False, args.threads)
    groups.append(g)

    g = Group("range given, fresh output", dtype, n, nbytes)
    g.add("qdq", op(**given))
    probe.add_to(g, x, out, copies=False)
    add_peers(g, x, found, True, args.threads)
    groups.append(g)

    for name, extra in (("range from data, out=", {}), ("range given, out=", given)):
        g = Group(name, dtype, n, nbytes)
        g.add("qdq", op(out=out, **extra))
        probe.add_to(g, x, out)
        groups.append(g)

    # Integer codes and the gradient, against the op with the same range and out=.
    codes, params = qdq.quantize(x, -2.0, 2.0, range_given=True, **kw)
    codes_out = np.empty_like(codes)
    grads = x.copy()
    g = Group("codes and gradient (range given, out=)", dtype, n, nbytes)
    g.add("qdq op", op(out=out, **given))
    g.add("quantize", lambda: qdq.quantize(x, -2.0, 2.0, range_given=True, out=codes_out, **kw))
    g.add("dequantize", lambda: qdq.dequantize(codes, params, out=out,
                                               bfloat16_bits="bfloat16_bits" in kw))
    g.add("gradient", lambda: qdq.quantize_and_dequantize_grad(grads, x, -2.0, 2.0, out=out, **kw))
    groups.append(g)

    side = int(round(n ** 0.5))
    if side * side == n and n >= MI:
        x2, out2 = x.reshape(side, side), out.reshape(side, side)
        g = Group(f"per channel ({side} x {side}), out=", dtype, n, nbytes)
        g.add("qdq per tensor", lambda: qdq.quantize_and_dequantize(x2, **kw, out=out2))
        g.add("qdq axis 0", lambda: qdq.quantize_and_dequantize(x2, **kw, axis=0, out=out2))
        g.add("qdq axis -1", lambda: qdq.quantize_and_dequantize(x2, **kw, axis=-1, out=out2))
        groups.append(g)
    return groups


def bf16_f16_group(n: int) -> Group:
    """bfloat16 and float16 arrays of the same element count, out=, in one group."""
    g = Group("bfloat16 and float16, out=", "bfloat16,float16", n, 2 * n)
    for dtype in ("float16", "bfloat16"):
        x, kw = make_data(dtype, n)
        out = np.empty_like(x)
        g.add(f"{dtype} range given", lambda x=x, kw=kw, out=out: qdq.quantize_and_dequantize(
            x, -2.0, 2.0, range_given=True, out=out, **kw))
        g.add(f"{dtype} range from data", lambda x=x, kw=kw, out=out:
              qdq.quantize_and_dequantize(x, out=out, **kw))
    return g


def small_group(dtype: str, n: int) -> Group:
    x, kw = make_data(dtype, n)
    out = np.empty_like(x)
    g = Group(f"small calls ({n} elements)", dtype, n, x.nbytes)
    g.add("qdq", lambda: qdq.quantize_and_dequantize(x, **kw))
    g.add("qdq out=", lambda: qdq.quantize_and_dequantize(x, **kw, out=out))
    g.add("qdq range given", lambda: qdq.quantize_and_dequantize(
        x, -2.0, 2.0, range_given=True, **kw))
    return g


def fmt_time(s: float) -> str:
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.1f} ms"
    return f"{s * 1e6:.1f} us"


def print_table(groups: list[Group], file=sys.stdout):
    print("| dtype | elements | case | method | median | GB/s of input | x limit |", file=file)
    print("|---|---|---|---|---|---|---|", file=file)
    for g in groups:
        lim = g.limit()
        for label, _, _ in g.methods:
            t = g.median(label)
            ratio = f"{t / lim:.2f}" if lim and not label.startswith("limit") else ""
            print(f"| {g.dtype} | {g.n:,} | {g.name} | {label} | {fmt_time(t)} | "
                  f"{g.nbytes / t / 1e9:.2f} | {ratio} |", file=file)


def targets(groups: list[Group], big: int) -> list[dict]:
    by = {(g.dtype, g.n, g.name): g for g in groups}
    res = []

    def check(name, value, limit, kind="max", note="", speed_issue=True):
        ok = value <= limit if kind == "max" else value >= limit
        res.append({"target": name, "measured": round(value, 3), "note": note,
                    "limit": ("<= " if kind == "max" else ">= ") + str(limit), "ok": bool(ok),
                    "speed_issue": speed_issue})

    fresh_note = "fresh outputs: depends on the output buffer cache"
    for dtype, peer_labels in (("float32", ("tensorflow", "onnxruntime")),
                               ("float64", ("tensorflow",))):
        for case, labels in (("range from data, fresh output", (TF_OP, ORT_DATA)),
                             ("range given, fresh output", (TF_OP, ORT_GIVEN))):
            g = by.get((dtype, big, case))
            have = [lbl for lbl in labels if g and g.has(lbl)]
            if have:
                best = min(g.median(lbl) for lbl in have)
                check(f"{dtype} {case}: qdq / the faster of {' and '.join(peer_labels)} "
                      "(goal 0.8)", g.median("qdq") / best, 0.9, note=fresh_note)
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        for case, what in (("range given, out=", "scale-copy NT"),
                           ("range from data, out=", "(read + scale-copy NT)")):
            g = by.get((dtype, big, case))
            if g and g.limit():
                # The speed issue sets this bound for float32; the others are for information.
                check(f"{dtype} {case}: qdq / {what} limit", g.median("qdq") / g.limit(), 1.15,
                      speed_issue=dtype == "float32")
    g = by.get(("bfloat16,float16", big, "bfloat16 and float16, out="))
    if g:
        for case in ("range given", "range from data"):
            check(f"bfloat16 / float16 time, {case}, out= (same element count)",
                  g.median(f"bfloat16 {case}") / g.median(f"float16 {case}"), 1.15)
    g = by.get(("float32", 1024, "small calls (1024 elements)"))
    if g:
        check("float32 1,024-element fresh call, microseconds", g.median("qdq") * 1e6, 4,
              note="depends on the output buffer cache")
    for dtype in ("float16", "bfloat16", "float32", "float64"):
        g = by.get((dtype, big, "range from data, fresh output"))
        if g and g.has("qdq/_reference.py"):
            check(f"{dtype}: qdq/_reference.py / qdq (fresh output)",
                  g.median("qdq/_reference.py") / g.median("qdq"), 4, "min", speed_issue=False)
        g = by.get((dtype, big, "codes and gradient (range given, out=)"))
        if g:
            for m in ("quantize", "dequantize"):
                check(f"{dtype} {m} / the op (range given, out=)",
                      g.median(m) / g.median("qdq op"), 1.3, speed_issue=False)
            # the gradient reads two arrays where the op reads one: compare per byte moved
            check(f"{dtype} gradient / the op, per byte moved",
                  g.median("gradient") / (1.5 * g.median("qdq op")), 1.3, speed_issue=False)
        g = next((g for (d, n, name), g in by.items()
                  if d == dtype and n == big and name.startswith("per channel")), None)
        if g:
            for axis in ("0", "-1"):
                check(f"{dtype} per channel axis {axis} / per tensor",
                      g.median(f"qdq axis {axis}") / g.median("qdq per tensor"), 1.5,
                      speed_issue=False)
    return res


def plot(rows: list[dict], big: int, path: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return False
    cases = ["range from data, fresh output", "range given, fresh output",
             "range from data, out=", "range given, out="]
    dtypes = ["float16", "bfloat16", "float32", "float64"]
    fig, axes = plt.subplots(1, len(cases), figsize=(20, 5), sharey=True)
    palette = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors: dict[str, str] = {}
    for ax, case in zip(axes, cases, strict=True):
        sel = [r for r in rows if r["group"] == case and r["n"] == big
               and r["method"] != TF_CONV and r["method"] != "qdq/_reference.py"]
        methods = list(dict.fromkeys(r["method"] for r in sel))
        width = 0.8 / max(len(methods), 1)
        for k, m in enumerate(methods):
            vals = [next((r["gb_per_s"] for r in sel if r["dtype"] == d and r["method"] == m), 0)
                    for d in dtypes]
            color = colors.setdefault(m, palette[len(colors) % len(palette)])
            ax.bar(np.arange(len(dtypes)) + k * width, vals, width, label=m, color=color)
        ax.set_xticks(np.arange(len(dtypes)) + 0.4 - width / 2, dtypes)
        ax.set_title(case)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("GB/s of input (higher is better)")
    fig.suptitle(f"qdq, {big // MI} Mi elements, all cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return True


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64 * MI, help="elements of the large cases")
    ap.add_argument("--repeat", type=int, default=7, help="rounds per group (medians)")
    ap.add_argument("--ref-rounds", type=int, default=2,
                    help="rounds for the slow NumPy reference on large cases")
    ap.add_argument("--quick", action="store_true", help="16 Mi elements, 5 rounds")
    ap.add_argument("--no-reference", dest="reference", action="store_false")
    ap.add_argument("--no-peers", dest="peers", action="store_false",
                    help="do not import TensorFlow, ONNX Runtime or PyTorch")
    ap.add_argument("--dtypes", default="float32,float64,float16,bfloat16")
    ap.add_argument("--threads", type=int, default=None, help="default: qdq's thread count")
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="directory for bench.txt, bench.json and bench.png")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.repeat, args.ref_rounds = 16 * MI, 5, 1
    if args.threads:
        qdq.set_num_threads(args.threads)
    args.threads = qdq.get_num_threads()
    warnings.simplefilter("ignore", RuntimeWarning)
    info = machine_info()
    found = peers(args.threads) if args.peers else {}
    probe = Probe(args.threads)
    report = io.StringIO()

    def say(*a):
        print(*a)
        print(*a, file=report)

    say("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))
    versions = {name: getattr(mod if name != "onnxruntime" else mod[1], "__version__", "?")
                for name, mod in found.items()}
    say("peers: " + (", ".join(f"{k} {v}" for k, v in versions.items()) or "none"))
    missing = [p for p in ("tensorflow", "onnxruntime", "torch") if p not in found]
    if missing:
        say("not importable or --no-peers, skipped: " + ", ".join(missing))
    if probe.lib is None:
        say(f"limit not measured: {probe.why}")
    elif not probe.streams:
        say("the probe has no non-temporal stores on this target: NT is ordinary stores")
    groups: list[Group] = []
    for dtype in args.dtypes.split(","):
        g = small_group(dtype, 1024)
        g.run(args.repeat, 2000)
        groups.append(g)
        for g in build_groups(dtype, args.size, args, found, probe):
            print(f"  {dtype}: {g.name} ...", file=sys.stderr, flush=True)
            g.run(args.repeat, 1)
            groups.append(g)
        gc.collect()
    if {"float16", "bfloat16"} <= set(args.dtypes.split(",")):
        g = bf16_f16_group(args.size)
        print("  bfloat16 and float16 ...", file=sys.stderr, flush=True)
        g.run(args.repeat, 1)
        groups.append(g)
    say()
    print_table(groups)
    print_table(groups, report)
    spread = sorted(max(v) / min(v) for g in groups for lbl, v in g.times.items()
                    if lbl.startswith("qdq") and g.n == args.size)
    say("\nnoise: the slowest / the fastest round of a qdq method: median "
        f"{spread[len(spread) // 2]:.2f}, worst {spread[-1]:.2f} ({len(spread)} methods; "
        f"load average {os.getloadavg()[0]:.1f} on {info['cpus']} cpus at the end)")
    res = targets(groups, args.size)
    for title, which in (("Targets of the speed issue (ratios from this run):", True),
                         ("Ratios of earlier rounds and for other types (ratios within qdq; "
                          "a faster denominator raises them; benchmarks/compare_builds.py "
                          "compares absolute times of two builds):", False)):
        say("\n" + title)
        for t in res:
            if t["speed_issue"] is which:
                note = f"  [{t['note']}]" if t["note"] else ""
                say(f"  [{'ok' if t['ok'] else 'MISSED'}] {t['target']}: {t['measured']} "
                    f"(target {t['limit']}){note}")
    os.makedirs(args.out, exist_ok=True)
    rows = [r for g in groups for r in g.rows()]
    with open(os.path.join(args.out, "bench.txt"), "w") as f:
        f.write(report.getvalue())
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump({"machine": info, "peers": versions, "size": args.size,
                   "repeat": args.repeat, "skipped": missing, "rows": rows, "targets": res},
                  f, indent=1)
    plot(rows, args.size, os.path.join(args.out, "bench.png"))
    print(f"\nwrote bench.txt, bench.json and bench.png to {args.out}")
    return 0 if all(t["ok"] for t in res if t["speed_issue"]) else 1


if __name__ == "__main__":
    sys.exit(main())
