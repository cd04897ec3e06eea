"""qdq's thread pool (qdq/_ext/csrc/pool.h), which runs every kernel's pieces of work.

The calling thread works from the first piece on, the workers take pieces as they come;
one job at a time per pool, a second caller runs its pieces alone. The results never
depend on which thread ran a piece, on the thread count, on calls from several Python
threads at once, or on a fork() after the pool started.
"""

from __future__ import annotations

import multiprocessing
import sys
import threading

import numpy as np
import pytest

import qdq


def _work(seed: int) -> list[np.ndarray]:
    """Every pooled kernel once: the op per tensor and along both axes, block-wise,
    codes, the gradient, the range, the histogram (per tensor and per channel)."""
    x = np.random.default_rng(seed).standard_normal((768, 1024)).astype(np.float32)
    codes, _ = qdq.quantize(x, axis=1)
    x[5, 7] = np.nan
    t = qdq.HistogramTracker().update(x)
    tc = qdq.HistogramTracker(axis=1).update(x)
    return [qdq.quantize_and_dequantize(x), qdq.quantize_and_dequantize(x, axis=-1),
            qdq.quantize_and_dequantize(x, axis=0),
            qdq.quantize_and_dequantize(x, axis=-1, block_size=32), codes,
            qdq.quantize_and_dequantize_grad(x, x, -1, 1),
            np.asarray(qdq.compute_range(x, axis=-1)), t.counts, tc.counts]


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(u.tobytes() == w.tobytes() for u, w in zip(a, b, strict=True))


def test_every_thread_count_gives_the_same_bits():
    with qdq.num_threads(1):
        expected = _work(0)
    for n in (2, 3, 7, 300):
        with qdq.num_threads(n):
            assert _same(_work(0), expected), n


def test_python_threads_at_once():
    # Kernels release the GIL: several callers reach the pool together; one runs its job
    # on the pool, the others alone. Every result is still the one-thread result.
    with qdq.num_threads(1):
        expected = [_work(s) for s in range(4)]
    got: list = [None] * 8
    errors: list = []

    def run(k):
        try:
            for _ in range(3):
                got[k] = _work(k % 4)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(e)

    with qdq.num_threads(2):
        threads = [threading.Thread(target=run, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors
    for k in range(8):
        assert _same(got[k], expected[k % 4]), k


def _child(q):
    with qdq.num_threads(2):
        q.put(_work(1)[0].tobytes())


@pytest.mark.skipif(sys.platform == "win32" or "fork" not in
                    multiprocessing.get_all_start_methods(), reason="no fork()")
def test_a_forked_child_gets_a_pool_of_its_own():
    with qdq.num_threads(2):
        _work(1)  # the parent's workers exist
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(q,))
    p.start()
    got = q.get(timeout=120)
    p.join(timeout=120)
    assert p.exitcode == 0
    with qdq.num_threads(1):
        assert got == _work(1)[0].tobytes()
