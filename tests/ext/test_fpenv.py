"""The compiled kernels give the same bits whatever the caller's floating-point environment.

A caller may run with flush-to-zero and denormals-are-zero (torch's
``set_flush_denormal(True)`` sets both) or with another rounding mode. The kernels
save the calling thread's MXCSR, run in IEEE's default (round to nearest, no flush)
and put the caller's back (``csrc/fpenv.h``). A child process sets the register
(``qdq._ext.testing.team_mxcsr``, x86-64 only), runs every kind of kernel at every
instruction-set level with one thread and two, and compares the bits with those of
the default environment; it also checks that each call gives the caller its register
back. The histogram's exponent rule (compiled and in Python) and a float64 tracker's
state round trip are compared the same way: rounded toward -inf, an overflow gives the
largest finite value instead of infinity, and a search for the exponent that waited
for the overflow never ended.

The per-channel calibration searches run on OpenMP's threads, which other libraries
(torch) share and may leave in another mode: a second child sets the register on every
thread of an OpenMP team (OpenMP keeps the same threads for the next team of that
size), compares the searches' ranges and checks that each thread gets its own back.
"""

from __future__ import annotations

import platform

import pytest
from _util import run_python

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                                reason="sets the x86-64 MXCSR register")

# What both children share: the register's control bits, the four environments, the data.
COMMON = r"""
import sys
import numpy as np
import qdq
from qdq._core import engine
from qdq._ext import testing

CONTROL = 0xFFC0  # DAZ, the exception masks, the rounding and FTZ (not the flags)
ENVIRONMENTS = (("DAZ and FTZ", 0x1F80 | 0x8040), ("rounding up", 0x1F80 | 0x4000),
                ("rounding down, DAZ", 0x1F80 | 0x2000 | 0x40),
                ("rounding toward zero, FTZ", 0x1F80 | 0x6000 | 0x8000))
if not testing.team_mxcsr(1):
    print("skip: no MXCSR")
    sys.exit(0)


def cases(n):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(n).astype(np.float32)
    x[::5] *= np.float32(2.0 ** -130)  # subnormal float32
    u = x.view(np.uint32)
    return {
        "float32": (x, False),
        "float32 subnormal range": (x * np.float32(2.0 ** -20), False),
        "float64": (x.astype(np.float64) * 2.0 ** -1000, False),
        "float16": ((x * np.float32(2.0 ** -8)).astype(np.float16), False),
        "bfloat16": (((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16), True),
    }
"""

CHILD = COMMON + r"""
from qdq._calibrate.histogram import _kfor
from qdq._ext import histogram

DBL_MAX = float(np.finfo(np.float64).max)


def get():
    return testing.team_mxcsr(1)[0]


def put(value):
    testing.team_mxcsr(1, value)


data = cases(40_000)
changed = []


def call(name, fn):
    before = get()
    r = fn()
    if (get() ^ before) & CONTROL:
        changed.append(f"{name}: MXCSR {before:#x} -> {get():#x}")
    return r


def run():
    out = {}
    for level in range(engine.isa_available() + 1):
        engine.set_isa(level)
        for case, (a, b16) in data.items():
            m = a.reshape(-1, 64)
            for nt in (1, 2):
                key = f"level {level} {case} {nt}t"
                with qdq.num_threads(nt):
                    r = {
                        "op": call(key, lambda: qdq.quantize_and_dequantize(
                            a, bfloat16_bits=b16)),
                        "axis -1": call(key, lambda: qdq.quantize_and_dequantize(
                            m, axis=-1, bfloat16_bits=b16)),
                        "axis 0": call(key, lambda: qdq.quantize_and_dequantize(
                            m, axis=0, bfloat16_bits=b16)),
                        "block 32": call(key, lambda: qdq.quantize_and_dequantize(
                            m, axis=-1, block_size=32, bfloat16_bits=b16)),
                        "range": call(key, lambda: qdq.compute_range(a, bfloat16_bits=b16)),
                        "codes": call(key, lambda: qdq.quantize(a, bfloat16_bits=b16)[0]),
                    }
                    t = qdq.HistogramTracker(bins=256, bfloat16_bits=b16)
                    call(key, lambda: t.update(a))
                    r["histogram"] = (t.counts.copy(), t.min, t.max)
                    r["mse"] = call(key, lambda: qdq.calibrate(
                        m, method="mse", axis=-1, bfloat16_bits=b16))
                    r["exponent rule"] = call(key, lambda: [
                        (histogram.kfor(v, h, -1074), _kfor(v, h, -1074))
                        for v in (0.0, 5e-324, 1e-300, 3.0, 2.0 ** 1023, DBL_MAX)
                        for h in (8, 1000, 1024)])
                    t = qdq.HistogramTracker(bins=64).update(data["float64"][0][:99])
                    r["float64 state"] = call(key, lambda: qdq.HistogramTracker.from_state(
                        t.state_dict()).counts.tobytes())
                    for what, v in r.items():
                        out[f"{key} {what}"] = repr(v) if not isinstance(v, np.ndarray) \
                            else v.tobytes()
    engine.set_isa(-1)
    return out


base = run()
start = get()
bad = []
for name, control in ENVIRONMENTS:
    put((start & ~CONTROL) | control)
    got = run()
    put(start)
    bad += [f"{name}: {k}" for k in base if got[k] != base[k]]
print("ok" if not bad and not changed else "\n".join(bad[:20] + changed[:20]))
"""

TEAM_CHILD = COMMON + r"""
if len(testing.team_mxcsr(2)) < 2:
    print("skip: no OpenMP team of two threads")
    sys.exit(0)
data = cases(8192)  # 128 channels of 64, 64 of 128


def run():
    out = {}
    for level in range(engine.isa_available() + 1):
        engine.set_isa(level)
        for case, (a, b16) in data.items():
            m = a.reshape(-1, 64)
            with qdq.num_threads(2):
                for method in ("mse", "entropy"):
                    for axis in (-1, 0):
                        out[f"level {level} {case} {method} axis {axis}"] = repr(
                            qdq.calibrate(m, method=method, axis=axis, bfloat16_bits=b16))
    engine.set_isa(-1)
    return out


start = testing.team_mxcsr(1)[0]
base = run()
bad = []
for name, control in ENVIRONMENTS:
    testing.team_mxcsr(2, control)  # every thread of the team, the caller too
    testing.team_mxcsr(1, start)    # the caller's back: only OpenMP's other thread keeps it
    got = run()
    after = testing.team_mxcsr(2, start)
    bad += [f"{name}: {k}" for k in base if got[k] != base[k]]
    if (after[1] ^ control) & CONTROL:
        bad.append(f"{name}: OpenMP's thread left with MXCSR {after[1]:#x}")
print("ok" if not bad else "\n".join(bad[:20]))
"""


def _child_says_ok(child, tmp_path):
    r = run_python(["-c", child], tmp_path, timeout=600)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    if out.startswith("skip:"):
        pytest.skip(out)
    assert out == "ok", out


def test_the_kernels_ignore_the_callers_floating_point_mode(tmp_path):
    _child_says_ok(CHILD, tmp_path)


def test_openmps_threads_run_the_searches_in_the_default_mode(tmp_path):
    _child_says_ok(TEAM_CHILD, tmp_path)
