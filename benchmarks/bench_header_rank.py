"""How long the safetensors reader takes to refuse a header with a huge rank (issue 24 item 8).

    python benchmarks/bench_header_rank.py [--dims 100000] [--rounds 5] [--reader FILE]

``--reader`` times the ``read_header`` of another copy of ``qdq/_io/safetensors.py`` (it
imports only NumPy), for example the one before the fix:
``git show 63ce44f:qdq/_io/safetensors.py > /tmp/old_safetensors.py``.

Two headers of one tensor: ``dims`` dimensions of 1, and ``dims`` dimensions of 2**63 then a
0 (the element count is 0, but the running product overflows at once). Prints the median
and fastest time of ``read_header`` (JSON parsing included) over the rounds.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import struct
import sys
import tempfile
import time

from qdq._io.safetensors import read_header


def _file(directory: str, name: str, dims: list[int]) -> str:
    head = json.dumps({"t": {"dtype": "F32", "shape": dims, "data_offsets": [0, 4]}}).encode()
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"\0" * 4)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dims", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reader", help="a safetensors.py whose read_header to time instead")
    ns = ap.parse_args()
    reader = read_header
    if ns.reader:
        spec = importlib.util.spec_from_file_location("other_safetensors", ns.reader)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # (its dataclasses look themselves up there)
        spec.loader.exec_module(module)
        reader = module.read_header
    with tempfile.TemporaryDirectory() as d:
        cases = {"ones": _file(d, "ones.safetensors", [1] * ns.dims),
                 "overflowing": _file(d, "ovf.safetensors", [2**63] * ns.dims + [0])}
        times: dict[str, list[float]] = {k: [] for k in cases}
        outcome: dict[str, str] = {}
        for _ in range(ns.rounds):
            for name, path in cases.items():  # interleaved
                t0 = time.perf_counter()
                try:
                    reader(path)
                    outcome[name] = "accepted"
                except ValueError as exc:
                    outcome[name] = str(exc)[len(path) + 2:][:60] + "..."
                times[name].append(time.perf_counter() - t0)
        for name in cases:
            print(f"{name:12} {ns.dims:,} dims: median {statistics.median(times[name]) * 1e3:.1f} "
                  f"ms, fastest {min(times[name]) * 1e3:.1f} ms: {outcome[name]}")


if __name__ == "__main__":
    main()
