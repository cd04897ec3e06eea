"""A safetensors checkpoint through qdq against the file API on the same bytes as one .npy.

    python benchmarks/bench_checkpoint.py --size 1GiB --repeat 5
    python benchmarks/bench_checkpoint.py --size 1GiB --repeat 5 --memory 1GiB

The checkpoint: two shards of float32 (4096, 1024) weights (16 MiB each;
``--dtype F16`` or ``BF16`` for 8 MiB ones) with a float32 bias (copied)
after each; the .npy: the same weights' bytes as one (rows, 1024) array.
Rounds interleave the two methods; before each step every source is evicted
from the page cache (``posix_fadvise`` DONTNEED after fsync), so each step
reads from disk. Medians are reported, and the ratio of the checkpoint's
throughput to the file API's. The checkpoint also measures each tensor's
error (max abs error, SQNR, NaN count) unless ``--no-error-stats``; the file
API computes no such figures, so the comparison counts that work against
the checkpoint.

``--memory LIMIT`` (Linux, cgroup v1 memory controller, root) also builds a
3.5 GiB checkpoint with a 1.25 GiB tensor, runs ``qdq run`` on it inside a
memory cgroup limited to LIMIT, reports the group's peak usage (page cache
included), the run's peak anonymous memory (RssAnon, sampled every 2 ms) and
GiB/s, and checks the big tensor against the in-memory op bit for bit.
Writes ``benchmarks/results/bench_checkpoint.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

import qdq
from qdq._io.safetensors import read_header, tensor_memmap
from qdq._io.safetensors_index import write_index
from qdq._io.safetensors_writer import SafetensorsWriter
from qdq.cli.main import parse_size

HERE = os.path.dirname(os.path.abspath(__file__))
COLS = 1024


def evict(path: str) -> None:
    """Drop a file (or every file of a directory) from the page cache."""
    paths = [os.path.join(path, n) for n in os.listdir(path)] if os.path.isdir(path) else [path]
    for p in paths:
        with open(p, "rb") as f:
            os.fsync(f.fileno())
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


#: safetensors dtype -> (.npy descr, bytes per element)
DTYPES = {"F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2)}


def _rows(rng: np.random.Generator, rows: int, dtype: str = "F32") -> np.ndarray:
    x = rng.standard_normal((rows, COLS), dtype=np.float32)
    if dtype == "F16":
        return x.astype(np.float16)
    if dtype == "BF16":  # bfloat16 bits (truncated float32)
        return (x.view(np.uint32) >> 16).astype(np.uint16)
    return x


def build(directory: str, shards: list[list[tuple[str, int]]], seed: int = 0,
          npy: str | None = None, dtype: str = "F32") -> int:
    """Shards of float32 (rows, COLS) weights, each followed by a (COLS,) bias.

    Written chunk by chunk with qdq's safetensors writer (bounded memory);
    with ``npy`` the weights' bytes are also written, in the same order, as
    one (total rows, COLS) float32 .npy. Returns the bytes of weight data.
    """
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    total_rows = sum(r for s in shards for _, r in s)
    out = open(npy, "wb") if npy else None
    descr, size = DTYPES[dtype]
    if out is not None:
        np.lib.format.write_array_header_1_0(
            out, {"descr": descr, "fortran_order": False, "shape": (total_rows, COLS)})
    weight_map = {}
    total = 0
    step = (64 << 20) // (COLS * size)
    for k, tensors in enumerate(shards):
        fname = f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors"
        entries = []
        for name, rows in tensors:
            entries += [(f"{name}.weight", dtype, (rows, COLS)),
                        (f"{name}.bias", "F32", (COLS,))]
        with open(os.path.join(directory, fname), "wb") as f:
            w = SafetensorsWriter(f, entries, {"format": "pt"})
            for name, rows in tensors:
                for r in range(0, rows, step):
                    block = _rows(rng, min(step, rows - r), dtype)
                    w.write(f"{name}.weight", block)
                    if out is not None:
                        out.write(block.tobytes())
                w.write(f"{name}.bias", rng.standard_normal(COLS, dtype=np.float32))
                weight_map[f"{name}.weight"] = weight_map[f"{name}.bias"] = fname
                total += rows * COLS * size + COLS * 4
            w.finish()
            os.fsync(f.fileno())
    if out is not None:
        os.fsync(out.fileno())
        out.close()
    write_index(os.path.join(directory, "model.safetensors.index.json"), weight_map, total)
    return total


def time_checkpoint(src: str, dst: str, chunk: int, error_stats: bool = True) -> float:
    evict(src)
    t0 = time.perf_counter()
    qdq.quantize_and_dequantize_checkpoint(src, dst, chunk_bytes=chunk, error_stats=error_stats)
    dt = time.perf_counter() - t0
    shutil.rmtree(dst)
    return dt


def time_file(src: str, dst: str, chunk: int, bits: bool = False) -> float:
    evict(src)
    t0 = time.perf_counter()
    qdq.quantize_and_dequantize_file(src, dst, chunk_bytes=chunk, bfloat16_bits=bits)
    dt = time.perf_counter() - t0
    os.unlink(dst)
    return dt


PEAK_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    from qdq.cli.main import main

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.002)

    base = rss_anon()
    threading.Thread(target=sample, daemon=True).start()
    t0 = time.perf_counter()
    rc = main(["run", sys.argv[1], sys.argv[2], "--quiet"])
    seconds = time.perf_counter() - t0
    stop.set()
    print(json.dumps({"rc": rc, "base": base, "peak": max(peak[0], rss_anon()),
                      "seconds": seconds}))
""")


def memory_proof(work: str, limit: int) -> dict:
    """A 3.5 GiB checkpoint with a 1.25 GiB tensor through `qdq run` in a memory cgroup."""
    root = "/sys/fs/cgroup/memory"
    if not os.path.isdir(root):
        return {"skipped": "no cgroup v1 memory controller at /sys/fs/cgroup/memory"}
    src, dst = os.path.join(work, "big"), os.path.join(work, "big-out")
    big_rows = (1280 << 20) // (COLS * 4)           # 1.25 GiB
    other = (256 << 20) // (COLS * 4)               # 256 MiB each
    shards = [[("big", big_rows), ("a", other)], [(f"b{i}", other) for i in range(4)],
              [(f"c{i}", other) for i in range(4)]]
    nbytes = build(src, shards, seed=1)
    evict(src)
    group = os.path.join(root, f"qdq-bench-ckpt-{os.getpid()}")
    os.mkdir(group)
    try:
        for name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            try:
                with open(os.path.join(group, name), "w") as f:
                    f.write(str(limit))
            except OSError:
                if name == "memory.limit_in_bytes":
                    raise
        script = f"echo $$ > {group}/cgroup.procs && exec {sys.executable} -c \"$0\" \"$@\""
        res = subprocess.run(["sh", "-c", script, PEAK_CHILD, src, dst], capture_output=True,
                             text=True)
        with open(os.path.join(group, "memory.max_usage_in_bytes")) as f:
            group_peak = int(f.read())
        with open(os.path.join(group, "memory.failcnt")) as f:
            failcnt = int(f.read())
    finally:
        os.rmdir(group)
    out = {"bytes": nbytes, "limit": limit, "returncode": res.returncode,
           "stderr": res.stderr[-500:], "group_peak": group_peak, "failcnt": failcnt}
    if res.returncode == 0:
        child = json.loads(res.stdout.strip().splitlines()[-1])
        out.update(child)
        shard = os.path.join(dst, "model-00001-of-00003.safetensors")
        x = tensor_memmap(read_header(os.path.join(src, os.path.basename(shard))),
                          "big.weight")
        y = tensor_memmap(read_header(shard), "big.weight")
        out["big_tensor_bit_exact"] = bool(np.array_equal(
            qdq.quantize_and_dequantize(np.asarray(x)).view(np.uint32), y.view(np.uint32)))
        del x, y
    shutil.rmtree(src)
    shutil.rmtree(dst, ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, default=1 << 30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk-mb", type=float, default=64)
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="F32",
                    help="the weights' dtype (the .npy of BF16 holds bit patterns)")
    ap.add_argument("--no-error-stats", dest="error_stats", action="store_false",
                    help="run the checkpoint without its error statistics")
    ap.add_argument("--dir", default=None, help="where to put the files (default: temp dir)")
    ap.add_argument("--memory", type=parse_size, default=None,
                    help="also the memory proof in a cgroup with this limit")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args(argv)
    chunk = int(a.chunk_mb * 2**20)
    work = tempfile.mkdtemp(prefix="qdq-bench-ckpt-", dir=a.dir)
    try:
        rows = 4096
        n = max(2, a.size // (rows * COLS * DTYPES[a.dtype][1]))
        half = n // 2
        shards = [[(f"layers.{i}", rows) for i in range(half)],
                  [(f"layers.{i}", rows) for i in range(half, n)]]
        src, npy = os.path.join(work, "ckpt"), os.path.join(work, "x.npy")
        nbytes = build(src, shards, npy=npy, dtype=a.dtype)
        print(f"error statistics: {'on' if a.error_stats else 'off'}; "
              f"checkpoint: 2 shards, {n} {a.dtype} ({rows}, {COLS}) weights + {n} F32 biases, "
              f"{nbytes / 2**30:.3f} GiB; .npy: {os.path.getsize(npy) / 2**30:.3f} GiB; "
              f"chunks of {chunk >> 20} MiB; qdq threads {qdq.get_num_threads()}")
        times: dict[str, list[float]] = {"checkpoint": [], "file": []}
        for r in range(a.repeat):
            order = ("checkpoint", "file") if r % 2 == 0 else ("file", "checkpoint")
            for method in order:
                if method == "checkpoint":
                    times[method].append(time_checkpoint(src, os.path.join(work, "out"), chunk,
                                                         a.error_stats))
                else:
                    times[method].append(time_file(npy, os.path.join(work, "y.npy"), chunk,
                                                   a.dtype == "BF16"))
        med = {k: statistics.median(v) for k, v in times.items()}
        rate = {"checkpoint": nbytes / med["checkpoint"], "file": os.path.getsize(npy)
                / med["file"]}
        ratio = rate["checkpoint"] / rate["file"]
        print("\n| method | median | GB/s |\n|---|---|---|")
        for k in times:
            print(f"| {k} | {med[k]:.2f} s | {rate[k] / 1e9:.2f} |")
        print(f"\ncheckpoint throughput / file API throughput: {ratio:.2f}")
        result = {"dtype": a.dtype, "error_stats": a.error_stats, "bytes": nbytes,
                  "npy_bytes": os.path.getsize(npy), "chunk_bytes": chunk,
                  "repeat": a.repeat, "times": times, "median_s": med,
                  "bytes_per_s": rate, "ratio": ratio}
        shutil.rmtree(src)
        os.unlink(npy)
        if a.memory:
            mp = memory_proof(work, a.memory)
            result["memory"] = mp
            if "skipped" in mp:
                print(f"memory proof skipped: {mp['skipped']}")
            elif mp["returncode"] != 0:
                print(f"memory proof FAILED (exit {mp['returncode']}): {mp['stderr']}")
            else:
                print(f"memory proof: {mp['bytes'] / 2**30:.2f} GiB checkpoint with a 1.25 GiB "
                      f"tensor, `qdq run` in a cgroup limited to {mp['limit'] / 2**30:.2f} GiB: "
                      f"{mp['seconds']:.1f} s ({mp['bytes'] / mp['seconds'] / 2**30:.2f} GiB/s), "
                      f"group peak {mp['group_peak'] / 2**20:.0f} MiB (page cache included), "
                      f"limit hits {mp['failcnt']}, RssAnon peak "
                      f"{(mp['peak'] - mp['base']) / 2**20:.0f} MiB above start "
                      f"({mp['peak'] / 2**20:.0f} MiB in all); big tensor bit-exact: "
                      f"{mp['big_tensor_bit_exact']}")
        os.makedirs(a.out, exist_ok=True)
        suffix = ("" if a.dtype == "F32" else f"_{a.dtype.lower()}") + \
            ("" if a.error_stats else "_nostats")
        with open(os.path.join(a.out, f"bench_checkpoint{suffix}.json"), "w") as f:
            json.dump(result, f, indent=1)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
