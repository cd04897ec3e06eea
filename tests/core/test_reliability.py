"""Threads, the GIL, and a destination without write permission."""

import os
import shutil
import subprocess
import textwrap
import threading
import time

import numpy as np
import pytest
from _util import assert_bits_equal, run_python

import qdq


def _work(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((300, 257)).astype((np.float32, np.float64, np.float16)[seed % 3])
    return x, dict(axis=(None, 0, 1)[seed % 3], num_bits=2 + seed % 7,
                   round_mode=("HALF_TO_EVEN", "HALF_UP")[seed % 2])


def _all_calls(seed, tmp):
    x, kw = _work(seed)
    out = [qdq.quantize_and_dequantize(x, **kw)]
    mn, mx = qdq.compute_range(x, kw["axis"])
    out += [np.asarray(mn), np.asarray(mx)]
    t = qdq.RangeTracker(kw["axis"])
    for part in np.array_split(x, 5):
        t.update(part)
    out += [np.asarray(t.min), np.asarray(t.max)]
    codes, params = qdq.quantize(x, **kw)
    out += [codes, qdq.dequantize(codes, params)]
    src, dst = os.path.join(tmp, f"x{seed}.npy"), os.path.join(tmp, f"y{seed}.npy")
    np.save(src, x)
    qdq.quantize_and_dequantize_file(src, dst, chunk_bytes=20000, **kw)
    out.append(np.load(dst))
    return out


def test_eight_threads_give_the_serial_bits(tmp_path):
    serial = {s: _all_calls(s, str(tmp_path)) for s in range(8)}
    results, errors = {}, []
    barrier = threading.Barrier(8)

    def worker(seed):
        try:
            barrier.wait()
            for _ in range(3):
                results[seed] = _all_calls(seed, str(tmp_path / f"t{seed}"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    for s in range(8):
        os.makedirs(tmp_path / f"t{s}")
    threads = [threading.Thread(target=worker, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for s in range(8):
        for got, expected in zip(results[s], serial[s], strict=True):
            assert_bits_equal(got, expected)


def test_kernels_release_the_gil():
    """A Python thread keeps running while a large kernel call runs in another."""
    x = np.random.default_rng(0).standard_normal(1 << 24, dtype=np.float32)
    out = np.empty_like(x)
    done = threading.Event()
    elapsed = {}

    def call():
        with qdq.num_threads(1):
            t0 = time.perf_counter()
            for _ in range(4):
                qdq.quantize_and_dequantize(x, out=out)
            elapsed["s"] = time.perf_counter() - t0
        done.set()

    ticks = 0
    t = threading.Thread(target=call)
    t.start()
    t0 = time.perf_counter()
    while not done.is_set():
        ticks += 1
    spin = time.perf_counter() - t0
    t.join()
    # The counting loop ran throughout the kernel calls: the GIL was free.
    assert spin >= 0.9 * elapsed["s"] and ticks > 10_000


NO_WRITE = textwrap.dedent("""
    import sys, qdq
    try:
        qdq.quantize_and_dequantize_file(sys.argv[1], sys.argv[2])
    except PermissionError as exc:
        print("PermissionError", exc)
""")


def test_destination_without_write_permission(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(100, dtype=np.float32))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        args = ["-c", NO_WRITE, tmp_path / "x.npy", ro / "y.npy"]
        if os.geteuid() == 0:
            # root ignores permission bits: drop the capabilities that let it
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
            import sys

            env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(qdq.__file__)))
            res = subprocess.run([setpriv, "--bounding-set=-dac_override,-dac_read_search",
                                  "--inh-caps=-dac_override,-dac_read_search", sys.executable,
                                  *map(str, args)], capture_output=True, text=True,
                                 cwd=tmp_path, env=env)
        else:
            res = run_python(args, cwd=tmp_path)
        assert "PermissionError" in res.stdout and "cannot create the output" in res.stdout, \
            res.stdout + res.stderr
        assert os.listdir(ro) == []
    finally:
        ro.chmod(0o755)
