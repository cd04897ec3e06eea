"""Time ``qdq.calibrate(w, method, axis=0)`` of two builds, interleaved in one run.

Each measurement is a fresh subprocess that imports qdq from one build (``--a``, ``--b``:
directories put first on ``sys.path``; ``""`` is the installed qdq), builds the same
(4096, 4096) float32 tensor (Student-t, seed 0), runs the call once untimed (warm-up) and
then ``--calls`` times, timing each call's CPU time (``time.process_time``, every thread)
and wall time. The builds alternate (A, B, A, B, ...) for ``--rounds`` rounds; the medians
per build and method and their ratios B / A are printed, and the results' bits are compared
between the builds. ``--isa-a`` / ``--isa-b`` set an instruction-set level first
(``qdq._core.engine.set_isa``; -1: the best).

Example (the search's per-level copies against the target_clones build of a copy of the
tree built in /tmp)::

    python benchmarks/bench_search_isa.py --a "" --b /tmp/search_clones_site --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import hashlib, json, sys, time
sys.path.insert(0, {path!r}) if {path!r} else None
import numpy as np
import qdq
from qdq._core import engine
engine.set_isa({isa})
w = (np.random.default_rng(0).standard_t(3, (4096, 4096)) * 0.02).astype(np.float32)
out = {{"file": qdq.__file__, "isa": engine.isa_name(), "runs": {{}}}}
for method in {methods!r}:
    r = qdq.calibrate(w, method=method, axis=0)
    cpu, wall = [], []
    for _ in range({calls}):
        c0, w0 = time.process_time(), time.perf_counter()
        r = qdq.calibrate(w, method=method, axis=0)
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    digest = hashlib.sha256(b"".join(np.asarray(v, np.float64).tobytes() for v in r))
    out["runs"][method] = {{"cpu": cpu, "wall": wall, "bits": digest.hexdigest()}}
print(json.dumps(out))
"""


def run(path: str, isa: int, methods: list[str], calls: int) -> dict:
    code = CHILD.format(path=path, isa=isa, methods=methods, calls=calls)
    env = dict(os.environ)
    cwd = "/" if path else None  # (a build dir must not be shadowed by the current one)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, cwd=cwd, check=True)
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--a", default="", help="build A (sys.path entry; '' = installed)")
    ap.add_argument("--b", required=True, help="build B (sys.path entry)")
    ap.add_argument("--isa-a", type=int, default=-1)
    ap.add_argument("--isa-b", type=int, default=-1)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=1)
    ap.add_argument("--methods", default="mse,entropy")
    args = ap.parse_args()
    methods = args.methods.split(",")
    got: dict[str, dict[str, dict[str, list[float]]]] = {"A": {}, "B": {}}
    bits: dict[str, dict[str, str]] = {"A": {}, "B": {}}
    for rnd in range(args.rounds):
        for name, path, isa in (("A", args.a, args.isa_a), ("B", args.b, args.isa_b)):
            out = run(path, isa, methods, args.calls)
            if rnd == 0:
                print(f"{name}: {out['file']}\n   {out['isa']}")
            for m, v in out["runs"].items():
                d = got[name].setdefault(m, {"cpu": [], "wall": []})
                d["cpu"] += v["cpu"]
                d["wall"] += v["wall"]
                bits[name][m] = v["bits"]
    load = os.getloadavg()
    print(f"rounds {args.rounds} x calls {args.calls}, load average {load[0]:.1f} (end)")
    for m in methods:
        same = bits["A"][m] == bits["B"][m]
        for what in ("cpu", "wall"):
            a, b = got["A"][m][what], got["B"][m][what]
            ma, mb = statistics.median(a), statistics.median(b)
            print(f"{m:8s} {what:4s} A median {ma:6.2f} s [{min(a):.2f}-{max(a):.2f}]  "
                  f"B median {mb:6.2f} s [{min(b):.2f}-{max(b):.2f}]  B/A {mb / ma:.2f}")
        print(f"{m:8s} same bits in A and B: {same}")


if __name__ == "__main__":
    main()
