"""Streaming benchmark: qdq's two passes over a file against plain file I/O.

    python benchmarks/bench_stream.py                       # 2 GiB float32 .npy
    python benchmarks/bench_stream.py --size 3GiB --cgroup 1GiB

Rounds interleave, medians are reported; before each step the source is
evicted from the page cache, so every step reads it from disk:

* ``read``: reading the file in chunks (what the range pass must do),
* ``write``: writing the same number of bytes from memory to a fresh file,
  then fsync,
* ``copy``: a plain copy of the file to a fresh file with fsync (what the
  write pass must do at least: read the same bytes, write them, sync); its
  source is in the page cache when qdq's write pass finds it there too,
* ``qdq``: ``qdq.quantize_and_dequantize_file`` (range pass, then write pass),
  timed per pass.

Then one more qdq run in a child process records its peak anonymous memory
(RssAnon, sampled every 2 ms; not maxrss, which counts file pages), and with
``--cgroup LIMIT`` (Linux, cgroup v1 memory controller, root) a ``qdq run`` in a
memory cgroup limited to LIMIT, with the group's own peak usage. Writes
``benchmarks/results/bench_stream.json``.
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
from qdq._core.validate import OpArgs
from qdq._io.pagecache import memory_available
from qdq._stream.files import FileOptions, run_op_file
from qdq.cli.main import parse_size

HERE = os.path.dirname(os.path.abspath(__file__))


def write_tensor(path: str, nbytes: int, cols: int = 4096) -> tuple:
    rows = max(1, nbytes // (cols * 4))
    rng = np.random.default_rng(0)
    step = max(1, (64 << 20) // (cols * 4))
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)})
        for r in range(0, rows, step):
            f.write(rng.standard_normal((min(step, rows - r), cols), dtype=np.float32).tobytes())
        os.fsync(f.fileno())
    return rows, cols


def evict(path: str) -> None:
    """Drop the file from the page cache, so that every step reads it from disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def plain_read(path: str, chunk: int) -> float:
    buf = bytearray(chunk)
    mv = memoryview(buf)
    t0 = time.perf_counter()
    with open(path, "rb", buffering=0) as f:
        while f.readinto(mv):
            pass
    return time.perf_counter() - t0


def plain_write(dst: str, nbytes: int, chunk: int) -> float:
    """Write nbytes from memory to a fresh file, then fsync."""
    buf = np.random.default_rng(1).integers(0, 255, chunk, dtype=np.uint8).tobytes()
    t0 = time.perf_counter()
    with open(dst, "wb", buffering=0) as f:
        left = nbytes
        while left > 0:
            left -= f.write(buf[:min(left, chunk)])
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    os.unlink(dst)
    return dt


def plain_copy(src: str, dst: str) -> float:
    t0 = time.perf_counter()
    shutil.copyfile(src, dst)
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
    dt = time.perf_counter() - t0
    os.unlink(dst)
    return dt


PEAK_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    import qdq

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
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    qdq.quantize_and_dequantize_file(sys.argv[1], sys.argv[2], chunk_bytes=int(sys.argv[3]))
    stop.set()
    t.join()
    print(json.dumps({"base": base, "peak": max(peak[0], rss_anon())}))
""")


def peak_rss_anon(src: str, dst: str, chunk: int) -> dict:
    out = subprocess.run([sys.executable, "-c", PEAK_CHILD, src, dst, str(chunk)],
                         capture_output=True, text=True, check=True)
    os.unlink(dst)
    return json.loads(out.stdout)


def cgroup_run(src: str, dst: str, limit: int, chunk: int) -> dict:
    """A `qdq run` inside a cgroup v1 memory group limited to `limit` bytes."""
    root = "/sys/fs/cgroup/memory"
    if not os.path.isdir(root):
        return {"skipped": "no cgroup v1 memory controller at /sys/fs/cgroup/memory"}
    group = os.path.join(root, f"qdq-bench-{os.getpid()}")
    try:
        os.mkdir(group)
    except OSError as exc:
        return {"skipped": f"cannot create a memory cgroup: {exc}"}
    try:
        for name, value in (("memory.limit_in_bytes", limit),
                            ("memory.memsw.limit_in_bytes", limit)):
            try:
                with open(os.path.join(group, name), "w") as f:
                    f.write(str(value))
            except OSError:
                if name == "memory.limit_in_bytes":
                    raise
        script = (f"echo $$ > {group}/cgroup.procs && exec {sys.executable} -m qdq run "
                  f"{src} {dst} --quiet --chunk-mb {chunk / 2**20}")
        t0 = time.perf_counter()
        res = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        with open(os.path.join(group, "memory.max_usage_in_bytes")) as f:
            peak = int(f.read())
        with open(os.path.join(group, "memory.failcnt")) as f:
            failcnt = int(f.read())
        ok = res.returncode == 0
        if ok:
            out = np.load(dst, mmap_mode="r")
            ok = out.shape == np.load(src, mmap_mode="r").shape
            del out
            os.unlink(dst)
        return {"limit": limit, "returncode": res.returncode, "ok": ok, "seconds": seconds,
                "group_peak": peak, "failcnt": failcnt, "stderr": res.stderr[-500:]}
    finally:
        try:
            os.rmdir(group)
        except OSError:
            pass


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, default=2 << 30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--chunk-mb", type=float, default=64)
    ap.add_argument("--dir", default=None, help="where to put the files (default: temp dir)")
    ap.add_argument("--cgroup", type=parse_size, default=None,
                    help="also run in a memory cgroup with this limit")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    a = ap.parse_args(argv)
    chunk = int(a.chunk_mb * 2**20)
    work = tempfile.mkdtemp(prefix="qdq-bench-stream-", dir=a.dir)
    src, dst = os.path.join(work, "x.npy"), os.path.join(work, "y.npy")
    try:
        rows, cols = write_tensor(src, a.size)
        nbytes = os.path.getsize(src)
        print(f"file: {rows:,} x {cols} float32, {nbytes / 2**30:.2f} GiB in {work}; "
              f"chunks of {chunk >> 20} MiB; qdq threads {qdq.get_num_threads()}")
        times: dict[str, list[float]] = {k: [] for k in
                                         ("read", "write", "copy", "qdq range pass",
                                          "qdq write pass", "qdq total")}
        args = OpArgs(True, 8, False, "HALF_TO_EVEN", False)
        warm = nbytes <= memory_available() // 4
        for _ in range(a.repeat):
            evict(src)
            times["read"].append(plain_read(src, chunk))
            times["write"].append(plain_write(dst, nbytes, chunk))
            # The write pass reads a source the range pass left in the page cache
            # (qdq keeps it when the file is under a quarter of the available
            # memory), so the copy it is measured against starts the same way.
            if warm:
                plain_read(src, chunk)
            else:
                evict(src)
            times["copy"].append(plain_copy(src, dst))
            evict(src)
            _, t = run_op_file(src, dst, None, None, args, None, FileOptions(chunk_bytes=chunk))
            os.unlink(dst)
            times["qdq range pass"].append(t["range_seconds"])
            times["qdq write pass"].append(t["write_seconds"])
            times["qdq total"].append(t["range_seconds"] + t["write_seconds"])
        med = {k: statistics.median(v) for k, v in times.items()}
        print("\n| step | median | GB/s | ratio |")
        print("|---|---|---|---|")
        ratios = {"read": 1.0, "write": 1.0, "copy": 1.0,
                  "qdq range pass": med["qdq range pass"] / med["read"],
                  "qdq write pass": med["qdq write pass"] / med["copy"],
                  "qdq write pass / write": med["qdq write pass"] / med["write"],
                  "qdq total": med["qdq total"] / (med["read"] + med["copy"])}
        names = {"qdq range pass": "x read", "qdq write pass": "x copy",
                 "qdq total": "x (read + copy)"}
        for k, v in med.items():
            r = f"{ratios[k]:.2f} {names[k]}" if k in names else ""
            if k == "qdq write pass":
                r += f", {ratios['qdq write pass / write']:.2f} x write"
            print(f"| {k} | {v:.2f} s | {nbytes / v / 1e9:.2f} | {r} |")
        peak = peak_rss_anon(src, dst, chunk)
        print(f"\npeak RssAnon of a qdq run (child process): "
              f"{(peak['peak'] - peak['base']) / 2**20:.0f} MiB above its start "
              f"({peak['peak'] / 2**20:.0f} MiB in all) for a {nbytes / 2**30:.2f} GiB file "
              f"and {chunk >> 20} MiB chunks")
        result = {"bytes": nbytes, "chunk_bytes": chunk, "repeat": a.repeat, "times": times,
                  "median_s": med, "ratios": ratios, "rss_anon": peak}
        if a.cgroup:
            cg = cgroup_run(src, dst, a.cgroup, chunk)
            result["cgroup"] = cg
            if "skipped" in cg:
                print(f"cgroup run skipped: {cg['skipped']}")
            else:
                print(f"in a memory cgroup limited to {a.cgroup / 2**30:.2f} GiB: "
                      f"{'succeeded' if cg['ok'] else 'FAILED'} in {cg['seconds']:.1f} s, "
                      f"group peak {cg['group_peak'] / 2**20:.0f} MiB (page cache included), "
                      f"limit hits {cg['failcnt']}")
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "bench_stream.json"), "w") as f:
            json.dump(result, f, indent=1)
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
