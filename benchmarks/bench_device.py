"""qdq.torch and qdq.jax on whatever device is here: the parity checks, then the timings.

    python benchmarks/bench_device.py                   # CUDA when available, else the CPU
    python benchmarks/bench_device.py --device cpu --rows 1024 --out results.txt

Parity (the exit status is 1 if any case differs): the framework paths run on
the device and their results are compared, bit for bit (NaN equal to NaN),
with qdq's C kernels on the CPU:

- TensorFlow's golden vectors (tests/conformance/golden/): every op and
  block-wise case through qdq.torch's torch operations, eager; a sample
  through torch.compile and through jax.jit;
- seeded random cases of every format, per tensor, per channel, block-wise,
  given and data ranges, both round modes, with ties after scaling, NaN, inf
  and signed zeros: torch eager (and its gradient) and jax.jit (and jax.grad).

XLA's CPU backend flushes subnormals to zero (as TensorFlow's CPU kernels
do): on a JAX CPU device the cases whose data, range, parameters or result are
subnormal in bfloat16/float32/float64 are counted and left out; on a GPU they
are compared like the rest.

Timings: ``quantize_and_dequantize`` on a rows x 4096 tensor of each format,
per tensor, per channel and in blocks of 32: torch eager, torch.compile and
jax.jit on the device (and qdq's kernels when the device is the CPU), run in
turn round after round (so the machine's noise falls on all of them alike);
the medians, and each path's time relative to the first in the same run.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import qdq

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, os.pardir, "tests", "conformance", "golden")
FORMATS = ["float16", "bfloat16", "float32", "float64"]
DIGITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}
TINY = {"bfloat16": 2.0 ** -126, "float32": 2.0 ** -126, "float64": 2.0 ** -1022}


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def np_dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def same_bits(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    width = f"u{a.dtype.itemsize}"
    va, vb = a.astype(np.float64), b.astype(np.float64)
    return bool(((a.view(width) == b.view(width)) | (np.isnan(va) & np.isnan(vb))).all())


# ---- cases ----

def golden_cases():
    """(name, x, lo, hi, kw, TensorFlow's output or None) of both golden files."""
    import json

    def arr(hexstr, dtype, shape):
        dt = np.dtype(dtype)
        return np.frombuffer(bytes.fromhex(hexstr), dt.newbyteorder("<")).astype(dt) \
            .reshape(shape)

    out = []
    for fname in ("tf_golden.json", "tf_block_golden.json"):
        with open(os.path.join(GOLDEN, fname)) as f:
            cases = json.load(f)["cases"]
        for c in cases:
            if c.get("op") == "grad":
                continue
            kw = {k: c[k] for k in ("signed_input", "num_bits", "range_given", "round_mode",
                                    "narrow_range", "axis")}
            if "block_size" in c:
                kw["block_size"] = c["block_size"]
            x = arr(c["x"], c["dtype"], c["shape"])
            lo = arr(c["input_min"], c["dtype"], c["minmax_shape"])
            hi = arr(c["input_max"], c["dtype"], c["minmax_shape"])
            tf = arr(c["out"], c["dtype"], c["shape"]) if c["known_difference"] is None \
                else None
            if not kw["range_given"]:
                lo = hi = None
            out.append((c["name"], x, lo, hi, kw, tf))
    return out


def random_cases(n, seed=0):
    """Seeded random cases of every format and layout (ties, specials, signed zeros)."""
    rng = np.random.default_rng(seed)
    specials = np.array([0.0, -0.0, 0.5, -0.5, 1.5, -2.5, np.inf, -np.inf, np.nan, 127.0,
                         -128.0, 65504.0, 3e38, 1e-3])
    out = []
    for i in range(n):
        name = FORMATS[i % 4]
        p = DIGITS[name]
        shape = ((int(rng.integers(1, 40)),), (int(rng.integers(1, 9)), int(rng.integers(1, 40))),
                 (3, int(rng.integers(1, 6)), int(rng.integers(1, 20))))[int(rng.integers(3))]
        size = int(np.prod(shape))
        style = int(rng.integers(4))
        if style == 0:
            v = rng.standard_normal(size) * 10.0 ** rng.integers(-3, 4)
        elif style == 1:
            v = np.where(rng.random(size) < 0.5, rng.integers(-300, 300, size) + 0.5,
                         2.0 ** (p - 1) + 2 * rng.integers(0, 2 ** min(p - 2, 20), size) + 1)
            v = v * rng.choice([1.0, -1.0], size) * 2.0 ** rng.integers(-4, 3)
        elif style == 2:
            v = np.where(rng.random(size) < 0.3, rng.choice(specials, size),
                         rng.standard_normal(size) * 5)
        else:
            v = rng.standard_normal(size) * 10.0 ** rng.integers(-6, 7, size)
        with np.errstate(over="ignore"):
            x = v.reshape(shape).astype(np_dtype(name))
        signed = bool(rng.integers(2))
        kw = dict(signed_input=signed, narrow_range=bool(rng.integers(2)),
                  round_mode=("HALF_TO_EVEN", "HALF_UP")[int(rng.integers(2))],
                  num_bits=int(rng.choice([1, 3, 4, 8, p + 1])),
                  range_given=bool(rng.integers(2)), axis=None)
        layout = int(rng.integers(3))
        if layout and x.ndim:
            kw["axis"] = int(rng.integers(-x.ndim, x.ndim))
            if layout == 2:
                kw["block_size"] = int(rng.integers(1, 9))
        lo = hi = None
        if kw["range_given"]:
            ax = kw["axis"]
            if ax is None:
                rshape = ()
            elif "block_size" in kw:
                rshape = _blocked(shape, ax, kw["block_size"])
            else:
                rshape = (shape[ax],)
            a = rng.standard_normal(rshape) * 10.0 ** rng.integers(-2, 3)
            b = rng.standard_normal(rshape) * 10.0 ** rng.integers(-2, 3)
            lo, hi = np.minimum(a, b), np.maximum(a, b)
            if name != "float64":
                lo, hi = lo.astype(np.float32), hi.astype(np.float32)
        out.append((f"random {i} {name}", x, lo, hi, kw, None))
    return out


def _blocked(shape, ax, bs):
    ax %= len(shape)
    return shape[:ax] + (-(-shape[ax] // bs),) + shape[ax + 1:]


def flush_sensitive(x, lo, hi, kw, want) -> bool:
    """Whether flushing subnormals to zero can change this case."""
    name = x.dtype.name
    if name == "float16":
        return False
    axis, bs = kw.get("axis"), kw.get("block_size")
    if not kw["range_given"]:
        lo, hi = quiet(qdq.compute_range, x, axis, block_size=bs)
    lo, hi = np.broadcast_arrays(np.asarray(lo, np.float64).ravel(),
                                 np.asarray(hi, np.float64).ravel())
    p = quiet(qdq.quantization_params, lo, hi, x.dtype, kw["signed_input"], kw["num_bits"],
              kw["narrow_range"])
    with np.errstate(all="ignore"):   # both candidate scales and inverses, as SPEC step 3
        candidates = (float(p.qmin) / lo, float(p.qmax) / hi, lo / float(p.qmin),
                      hi / float(p.qmax))
    for a in (x, lo, hi, p.scale, p.inverse_scale, p.min_range, p.max_range, want, *candidates):
        v = np.abs(np.asarray(a, np.float64))
        if ((v > 0) & (v < TINY[name])).any():
            return True
    return False


# ---- the framework paths ----

class TorchPath:
    def __init__(self, device):
        import torch

        import qdq.torch

        self.torch, self.qt, self.device = torch, qdq.torch, device
        self.compiled = {}
        # every sampled case compiles its own graph from one lambda: let it
        torch._dynamo.config.recompile_limit = 1 << 16
        torch._dynamo.config.accumulated_recompile_limit = 1 << 16

    def tensor(self, a):
        torch = self.torch
        a = np.array(a, order="C")   # (ascontiguousarray makes 0-d arrays 1-d)
        if a.dtype == np_dtype("bfloat16"):
            return torch.from_numpy(a.view(np.uint16).copy()).view(torch.bfloat16).to(
                self.device)
        return torch.from_numpy(a.copy()).to(self.device)

    def back(self, t, like):
        torch = self.torch
        t = t.detach().cpu()
        if t.dtype == torch.bfloat16:
            return t.view(torch.uint16).numpy().view(like.dtype)
        return t.numpy()

    def run(self, x, lo, hi, kw, compiled=False):
        fn = self.qt.quantize_and_dequantize
        if compiled:
            key = tuple(sorted(kw.items()))
            if key not in self.compiled:
                self.compiled[key] = self.torch.compile(
                    lambda t, a, b, kw=kw: self.qt.quantize_and_dequantize(t, a, b, **kw),
                    fullgraph=True, dynamic=False)
            fn = self.compiled[key]
            return self.back(fn(self.tensor(x), *self.bounds(lo, hi)), x)
        return self.back(fn(self.tensor(x), *self.bounds(lo, hi), **kw, backend="torch"), x)

    def bounds(self, lo, hi):
        return (None, None) if lo is None else (self.tensor(lo), self.tensor(hi))

    def grad(self, x, lo, hi, kw, g):
        t = self.tensor(x).requires_grad_()
        y = self.qt.quantize_and_dequantize(t, *self.bounds(lo, hi), **kw, backend="torch")
        y.backward(self.tensor(g))
        return self.back(t.grad, x)


class JaxPath:
    def __init__(self, device):
        import jax

        import qdq.jax

        self.jax, self.qj, self.device = jax, qdq.jax, device
        self.jit = jax.jit(qdq.jax.quantize_and_dequantize,
                           static_argnames=qdq.jax.STATIC_ARGNAMES)

    def run(self, x, lo, hi, kw):
        jax = self.jax
        with jax.enable_x64(x.dtype == np.float64), jax.default_device(self.device):
            args = [None if a is None else jax.device_put(a, self.device) for a in (x, lo, hi)]
            return np.asarray(self.jit(*args, **kw))

    def grad(self, x, lo, hi, kw, g):
        jax = self.jax
        qj = self.qj

        def loss(t):   # d loss / d y = g exactly, in T
            return (qj.quantize_and_dequantize(t, lo, hi, **kw) * g).sum()

        with jax.enable_x64(x.dtype == np.float64), jax.default_device(self.device):
            return np.asarray(jax.jit(jax.grad(loss))(jax.device_put(x, self.device)))


def parity(paths, log, compile_sample, jax_sample):
    """Run every check; returns the number of mismatches."""
    bad = 0
    goldens = golden_cases()
    randoms = random_cases(240)
    counts = {}

    def tally(label, ok, skipped=False):
        nonlocal bad
        c = counts.setdefault(label, [0, 0, 0])
        if skipped:
            c[2] += 1
        elif ok:
            c[0] += 1
        else:
            c[1] += 1
            bad += 1

    for i, (_, x, lo, hi, kw, tf) in enumerate(goldens + randoms):
        want = quiet(qdq.quantize_and_dequantize, x, lo, hi, **kw)
        source = "golden" if i < len(goldens) else "random"
        if tf is not None:
            tally("kernels = TensorFlow (golden)", same_bits(want, tf))
        if "torch" in paths:
            tally(f"torch eager = kernels ({source})",
                  same_bits(quiet(paths["torch"].run, x, lo, hi, kw), want))
            if i % compile_sample == 0:
                tally(f"torch.compile = kernels ({source}, sample)",
                      same_bits(quiet(paths["torch"].run, x, lo, hi, kw, compiled=True), want))
        if "jax" in paths and (source == "random" or i % jax_sample == 0):
            jp = paths["jax"]
            flush = jp.device.platform == "cpu" and flush_sensitive(x, lo, hi, kw, want)
            got = quiet(jp.run, x, lo, hi, kw)
            tally(f"jax.jit = kernels ({source}{', sample' if source == 'golden' else ''})",
                  same_bits(got, want), skipped=flush)
        if source == "random" and not kw["range_given"] and "block_size" not in kw:
            g = np.random.default_rng(i).standard_normal(x.shape).astype(x.dtype)
            lo_d, hi_d = quiet(qdq.compute_range, x, kw["axis"])
            want_g = quiet(qdq.quantize_and_dequantize_grad, g, x, lo_d, hi_d, kw["axis"])
            if "torch" in paths:
                tally("torch gradient = kernels (random)",
                      same_bits(paths["torch"].grad(x, lo, hi, kw, g), want_g))
            if "jax" in paths:
                tally("jax.grad = kernels (random)",
                      same_bits(paths["jax"].grad(x, lo, hi, kw, g), want_g))
    log("| check | equal | differ | left out (flush to zero) |")
    log("|---|---|---|---|")
    for label, (ok, differ, skipped) in counts.items():
        log(f"| {label} | {ok} | {differ} | {skipped} |")
    return bad


# ---- timings ----

def timings(paths, rows, rounds, log, kernels_too):
    cols = 4096
    log(f"\n{rounds} rounds of each, medians, {rows} x {cols} elements")
    log("| format | layout | path | median | vs first |")
    log("|---|---|---|---|---|")
    for name in ("float32", "bfloat16", "float16"):
        x = np.random.default_rng(1).standard_normal((rows, cols)).astype(np_dtype(name))
        for layout, kw in (("per tensor", {}), ("per channel", {"axis": 0}),
                           ("blocks of 32", {"axis": 1, "block_size": 32})):
            methods = {}
            if "torch" in paths:
                tp = paths["torch"]
                op = tp.qt.quantize_and_dequantize
                t = tp.tensor(x)
                methods["torch eager"] = functools.partial(op, t, **kw, backend="torch")
                comp = tp.torch.compile(functools.partial(op, **kw), fullgraph=True,
                                        dynamic=False)
                methods["torch.compile"] = functools.partial(comp, t)
                if kernels_too:
                    methods["torch, C kernels"] = functools.partial(op, t, **kw,
                                                                    backend="kernels")
            if "jax" in paths:
                jp = paths["jax"]
                methods["jax.jit"] = functools.partial(jp.jit, jp.jax.device_put(x, jp.device),
                                                       **kw)
            if kernels_too:
                methods["NumPy, C kernels"] = functools.partial(qdq.quantize_and_dequantize, x,
                                                                **kw)
            med = time_round_robin(methods, rounds, paths)
            first = next(iter(med.values()))
            for label, m in med.items():
                log(f"| {name} | {layout} | {label} | {m * 1e3:.2f} ms | {m / first:.2f} x |")


def synchronize(result, paths):
    if hasattr(result, "block_until_ready"):
        result.block_until_ready()
    elif "torch" in paths and paths["torch"].device.type == "cuda":
        paths["torch"].torch.cuda.synchronize()


def time_round_robin(methods, rounds, paths):
    times = {label: [] for label in methods}
    for fn in methods.values():   # compile and warm up
        synchronize(fn(), paths)
    for _ in range(rounds):
        for label, fn in methods.items():
            t0 = time.perf_counter()
            synchronize(fn(), paths)
            times[label].append(time.perf_counter() - t0)
    return {label: statistics.median(v) for label, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default=None, help="cuda, cpu, mps (default: cuda if any)")
    parser.add_argument("--rows", type=int, default=None, help="timing tensor rows")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--compile-sample", type=int, default=100,
                        help="every n-th case also through torch.compile (each compiles)")
    parser.add_argument("--jax-sample", type=int, default=8,
                        help="every n-th golden case through jax.jit (each compiles)")
    parser.add_argument("--out", default=None, help="also write the report here")
    args = parser.parse_args(argv)
    lines = []

    def log(s=""):
        print(s, flush=True)
        lines.append(s)

    paths = {}
    try:
        import torch

        name = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(name)
        paths["torch"] = TorchPath(device)
        described = (torch.cuda.get_device_name(device) if device.type == "cuda"
                     else platform.processor() or platform.machine())
        log(f"torch {torch.__version__} on {device} ({described})")
    except ImportError:
        log("torch: not installed")
    try:
        import jax

        platform_name = {"cuda": "gpu", "mps": "METAL"}.get(args.device or "", args.device)
        devices = jax.devices(platform_name) if platform_name else jax.devices()
        paths["jax"] = JaxPath(devices[0])
        log(f"jax {jax.__version__} on {devices[0].platform}: {devices[0].device_kind}")
    except (ImportError, RuntimeError) as exc:
        log(f"jax: not used ({exc})")
    log(f"qdq {qdq.__version__}, numpy {np.__version__}, Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs")
    log("\nParity with qdq's C kernels (bits; NaN equal to NaN):")
    started = time.perf_counter()
    bad = parity(paths, log, args.compile_sample, args.jax_sample)
    log(f"(parity checks: {time.perf_counter() - started:.0f} s)")
    on_cpu = "torch" not in paths or paths["torch"].device.type == "cpu"
    rows = args.rows or (1024 if on_cpu else 8192)
    timings(paths, rows, args.rounds, log, kernels_too=on_cpu)
    log(f"\n{'ALL EQUAL' if not bad else f'{bad} CASES DIFFER'}")
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
