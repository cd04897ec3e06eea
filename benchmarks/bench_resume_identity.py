"""What a content hash of the source would cost a checkpoint run, against the run itself.

The resume stamp identifies a source shard by name, size, mtime, ctime, inode and
header hash (a few stat calls). A content hash (sha256 of every byte) would also
let a copy resume, but it has to read every source byte on every run, resumes
included. This measures, on a checkpoint of about ``--gib`` GiB (two shards of
float16 or float32 tensors of 4096 x 4096):

* ``run``: ``qdq.quantize_and_dequantize_checkpoint`` into an empty directory;
* ``resume``: the same call again (every shard complete: skipped);
* ``sha256``: reading the source shards and hashing them (hashlib, 16 MiB reads);
* ``stamp``: planning the run (headers read, stamps made), which a resume does.

Cold figures drop the source's pages first (``posix_fadvise(DONTNEED)`` on the
source files only); warm ones read from the page cache. The machine is shared
and noisy: every figure is the median of ``--repeat`` interleaved rounds.

Run: ``python benchmarks/bench_resume_identity.py --gib 1.5 --repeat 3 --dir /tmp/bench``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import time

import numpy as np

import qdq
from qdq._checkpoint.plan import plan_checkpoint
from qdq._io.safetensors_writer import write_arrays

SETTINGS = {"num_bits": 8, "signed_input": True, "narrow_range": False,
            "round_mode": "HALF_TO_EVEN", "axis": None, "block_size": None}


def make_checkpoint(directory: str, dtype: str, gib: float) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    per = 4096 * 4096 * np.dtype(dtype).itemsize
    count = max(2, round(gib * 2**30 / per))
    paths = []
    weight_map = {}
    for s in range(2):
        name = f"model-{s + 1:05d}-of-00002.safetensors"
        path = os.path.join(directory, name)
        arrays = {f"layer{k}.weight": rng.standard_normal((4096, 4096), np.float32)
                  .astype(dtype) for k in range(s, count, 2)}
        with open(path, "wb") as f:
            write_arrays(f, arrays, {"format": "pt"})
        weight_map.update({n: name for n in arrays})
        paths.append(path)
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return paths


def drop(paths: list[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def sha256_files(paths: list[str]) -> float:
    t0 = time.perf_counter()
    for p in paths:
        h = hashlib.sha256()
        with open(p, "rb", buffering=0) as f:
            while chunk := f.read(16 << 20):
                h.update(chunk)
    return time.perf_counter() - t0


def timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default="/tmp/qdq-bench-resume")
    ap.add_argument("--dtypes", default="float16,float32")
    ns = ap.parse_args()
    print(f"qdq {qdq.__version__}, {os.cpu_count()} CPUs, {qdq.get_num_threads()} threads")
    try:
        for dtype in ns.dtypes.split(","):
            src = os.path.join(ns.dir, dtype, "src")
            dst = os.path.join(ns.dir, dtype, "dst")
            paths = make_checkpoint(src, dtype, ns.gib)
            size = sum(os.path.getsize(p) for p in paths)
            figures: dict[str, list[float]] = {k: [] for k in (
                "run (cold source)", "resume", "sha256 (cold)", "sha256 (warm)", "stamp")}
            for _ in range(ns.repeat):
                shutil.rmtree(dst, ignore_errors=True)
                drop(paths)
                figures["run (cold source)"].append(timed(
                    qdq.quantize_and_dequantize_checkpoint, src, dst))
                figures["resume"].append(timed(qdq.quantize_and_dequantize_checkpoint, src, dst))
                drop(paths)
                figures["sha256 (cold)"].append(sha256_files(paths))
                figures["sha256 (warm)"].append(sha256_files(paths))
                figures["stamp"].append(timed(plan_checkpoint, src, dst, None, (), SETTINGS))
            print(f"\n{dtype}: {size / 2**30:.2f} GiB in 2 shards, median of {ns.repeat}")
            run = statistics.median(figures["run (cold source)"])
            for name, values in figures.items():
                m = statistics.median(values)
                print(f"  {name:18s} {m:8.3f} s  ({size / m / 1e9:6.2f} GB/s, "
                      f"{m / run:6.1%} of the run)  [{', '.join(f'{v:.3f}' for v in values)}]")
    finally:
        shutil.rmtree(ns.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
