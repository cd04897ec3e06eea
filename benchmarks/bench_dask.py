"""Dask benchmark: a zarr array through qdq.dask on a LocalCluster, against a plain Dask
graph of the same shape and the memmap streaming path (qdq.quantize_and_dequantize_file).

    python benchmarks/bench_dask.py                    # 1 GiB float32, 64 MiB chunks

All run the whole op with the range from the data (two passes over the data) and
write the result to disk: qdq.dask reads the zarr store and writes a new one (no
compression either way, like the .npy), on a LocalCluster of 2 worker processes with
one thread each; the plain graph does the same with Dask and NumPy alone (the min and
the max reduced over the chunks, then a NumPy clamp-scale-round-rescale per chunk:
the same graph shape and I/O, a cheaper element step); the file path reads the .npy
and writes a new .npy. Rounds interleave, every step starts with its input evicted
from the page cache, and medians are reported with the ratios of qdq.dask to both.
The guard: the exit status is 1, with a message, when qdq.dask is slower than the
plain graph (``--tolerance``: by more than this factor) or its result differs from the
file API's. Writes benchmarks/results/bench_dask.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from qdq.cli.main import parse_size

HERE = os.path.dirname(os.path.abspath(__file__))


def evict(path: str) -> None:
    """Drop a file, or every file under a directory, from the page cache."""
    files = [path] if os.path.isfile(path) else [
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    for p in files:
        with open(p, "rb") as f:
            os.fsync(f.fileno())
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def plain_graph(x):
    """The op's graph with Dask and NumPy alone: the range reduced over the chunks, then
    per chunk an int8 clamp-scale-round-rescale in float32 (not TensorFlow's bits: the
    baseline of the graph's cost)."""
    import dask.array as da

    def block(b, lo, hi):
        lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
        scale = np.float32(127.0 / max(-lo, hi, 1e-30))
        c = np.clip(b, np.float32(lo), np.float32(hi)) * scale
        return (np.rint(c) * (np.float32(1) / scale)).astype(np.float32)

    return da.map_blocks(block, x, x.min(), x.max(), dtype=np.float32)


def main(argv=None) -> int:
    import dask.array as da
    import distributed
    import zarr

    import qdq.dask

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=parse_size, default=1 << 30)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-mb", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--tolerance", type=float, default=1.0,
                    help="fail when qdq.dask takes more than this times the plain graph")
    a = ap.parse_args(argv)
    cols = 4096
    rows = max(1, a.size // (cols * 4))
    chunk_rows = max(1, (a.chunk_mb << 20) // (cols * 4))
    work = tempfile.mkdtemp(prefix="qdq-bench-dask-", dir=a.dir)
    src_z, src_n = os.path.join(work, "x.zarr"), os.path.join(work, "x.npy")
    cluster = distributed.LocalCluster(n_workers=a.workers, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        x = da.random.default_rng(0).standard_normal((rows, cols), dtype=np.float32,
                                                      chunks=(chunk_rows, cols))
        x.to_zarr(src_z, compressors=None)
        # the same data as a .npy, streamed from the zarr store
        with open(src_n, "wb") as f:
            np.lib.format.write_array_header_1_0(
                f, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)})
            z = zarr.open_array(src_z, mode="r")
            for r in range(0, rows, chunk_rows):
                f.write(np.ascontiguousarray(z[r:r + chunk_rows]).tobytes())
        nbytes = rows * cols * 4
        print(f"{rows:,} x {cols} float32 ({nbytes / 2**30:.2f} GiB), chunks of "
              f"{chunk_rows * cols * 4 >> 20} MiB; LocalCluster: {a.workers} worker processes "
              f"x 1 thread; qdq threads in this process: {qdq.get_num_threads()}")
        dask_key, plain_key = "qdq.dask, zarr -> zarr", "plain Dask graph, zarr -> zarr"
        file_key = "qdq file API, .npy -> .npy"
        times: dict[str, list[float]] = {dask_key: [], plain_key: [], file_key: []}
        for _ in range(a.repeat):
            evict(src_z)
            dst = os.path.join(work, "y.zarr")
            t0 = time.perf_counter()
            qdq.dask.quantize_and_dequantize(da.from_zarr(src_z)).to_zarr(dst, compressors=None)
            times[dask_key].append(time.perf_counter() - t0)
            shutil.rmtree(dst)
            evict(src_z)
            t0 = time.perf_counter()
            plain_graph(da.from_zarr(src_z)).to_zarr(dst, compressors=None)
            times[plain_key].append(time.perf_counter() - t0)
            shutil.rmtree(dst)
            evict(src_n)
            t0 = time.perf_counter()
            qdq.quantize_and_dequantize_file(src_n, os.path.join(work, "y.npy"))
            times[file_key].append(time.perf_counter() - t0)
            os.unlink(os.path.join(work, "y.npy"))
        # the two agree bit for bit
        qdq.dask.quantize_and_dequantize(da.from_zarr(src_z)).to_zarr(
            os.path.join(work, "y.zarr"), compressors=None)
        qdq.quantize_and_dequantize_file(src_n, os.path.join(work, "y.npy"))
        same = np.array_equal(np.asarray(zarr.open_array(os.path.join(work, "y.zarr"))[:])
                              .view(np.uint32), np.load(os.path.join(work, "y.npy"),
                                                        mmap_mode="r").view(np.uint32))
        med = {k: statistics.median(v) for k, v in times.items()}
        print("\n| path | median | min - max | GB/s (of input) | qdq.dask / this |")
        print("|---|---|---|---|---|")
        for k, v in med.items():
            print(f"| {k} | {v:.2f} s | {min(times[k]):.2f} - {max(times[k]):.2f} s | "
                  f"{nbytes / v / 1e9:.2f} | {med[dask_key] / v:.2f} |")
        vs_plain, vs_file = med[dask_key] / med[plain_key], med[dask_key] / med[file_key]
        print(f"\nqdq.dask / plain Dask graph: {vs_plain:.2f} x; qdq.dask / file API: "
              f"{vs_file:.2f} x; load average {os.getloadavg()[0]:.1f}")
        print(f"results bit-identical (qdq.dask, file API): {same}")
        slower = vs_plain > a.tolerance
        if slower:
            print(f"GUARD FAILED: qdq.dask took {vs_plain:.2f} x the plain Dask graph of the "
                  f"same shape (allowed: {a.tolerance} x)", file=sys.stderr)
        if not same:
            print("GUARD FAILED: qdq.dask and the file API give different bits",
                  file=sys.stderr)
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "bench_dask.json"), "w") as f:
            json.dump({"bytes": nbytes, "chunk_rows": chunk_rows, "workers": a.workers,
                       "times": times, "median_s": med, "dask_over_plain": vs_plain,
                       "dask_over_file": vs_file, "identical": bool(same)}, f, indent=1)
        return 0 if same and not slower else 1
    finally:
        client.close()
        cluster.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
