"""The kernels' thread count: set_num_threads and OMP_NUM_THREADS are validated."""

import os
import textwrap

import numpy as np
import pytest
from _util import run_python

import qdq


@pytest.mark.parametrize("n", [2**31, 2**31 - 1, 2**32 + 1, 2**63, 10**30, 5000])
def test_too_many_threads_is_refused_up_front(n):
    before = qdq.get_num_threads()
    with pytest.raises(ValueError, match="at most"):
        qdq.set_num_threads(n)
    assert qdq.get_num_threads() == before
    qdq.quantize_and_dequantize(np.linspace(-1, 1, 1 << 18, dtype=np.float32))


@pytest.mark.parametrize("n, exc", [(0, ValueError), (-1, ValueError), (1.5, TypeError),
                                    ("4", TypeError), (True, TypeError)])
def test_bad_thread_counts(n, exc):
    with pytest.raises(exc):
        qdq.set_num_threads(n)


def test_the_largest_count_works():
    with qdq.num_threads(qdq._core.threads.MAX_THREADS):
        x = np.linspace(-1, 1, 1 << 20, dtype=np.float32)
        with qdq.num_threads(1):
            expected = qdq.quantize_and_dequantize(x)
        assert np.array_equal(qdq.quantize_and_dequantize(x).view(np.uint32),
                              expected.view(np.uint32))


ENV_CHILD = textwrap.dedent("""
    import warnings
    warnings.simplefilter("always")
    import numpy as np, qdq
    y = qdq.quantize_and_dequantize(np.linspace(-1, 1, 1 << 20, dtype=np.float32))
    print("threads", qdq.get_num_threads(), "ok", bool(np.isfinite(y).all()))
""")


@pytest.mark.parametrize("value", ["3000000000", "99999999999999999999", "5000"])
def test_huge_omp_num_threads_is_clamped_with_a_warning(tmp_path, value):
    env = dict(os.environ, OMP_NUM_THREADS=value)
    res = run_python(["-c", ENV_CHILD], cwd=tmp_path, env=env)
    assert res.returncode == 0, res.stderr
    expected = qdq._core.threads.MAX_THREADS if qdq.openmp_enabled() else 1
    assert f"threads {expected} ok True" in res.stdout
    if qdq.openmp_enabled():
        assert "RuntimeWarning" in res.stderr and f"OMP_NUM_THREADS={value}" in res.stderr


def test_threadpoolctl_limits_apply():
    """qdq reads the OpenMP runtime's count at each call, so threadpool_limits caps it."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not qdq.openmp_enabled():
        pytest.skip("built without OpenMP")
    qdq.set_num_threads(None)
    with threadpoolctl.threadpool_limits(1):
        assert qdq.get_num_threads() == 1
        x = np.linspace(-1, 1, 1 << 20, dtype=np.float32)
        assert np.isfinite(qdq.quantize_and_dequantize(x)).all()
    with qdq.num_threads(1):
        assert qdq.get_num_threads() == 1
    # the context manager restores "follow the runtime", not a pinned count
    with threadpoolctl.threadpool_limits(1):
        assert qdq.get_num_threads() == 1


FORK_CHILD = textwrap.dedent("""
    import multiprocessing, os, sys, threading, warnings
    import numpy as np, qdq

    x = np.random.default_rng(0).standard_normal((512, 1024)).astype(np.float32)

    def work(_=None):
        y = qdq.quantize_and_dequantize(x, num_bits=6, axis=1)
        lo, hi = qdq.compute_range(x)
        t = qdq.HistogramTracker(axis=1, bins=64).update(x)
        return y.tobytes() + np.float64([lo, hi]).tobytes() + t.counts.tobytes()

    def in_child(fn):
        # run fn in an os.fork() child; its result through a pipe (the parent waits)
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            try:
                os.close(r)
                data = fn()
                with os.fdopen(w, "wb") as f:
                    f.write(data)
            finally:
                os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        os.waitpid(pid, 0)
        return data

    mode = sys.argv[1]
    if mode == "before":
        # forked before any parallel use: the child keeps its threads
        qdq.set_num_threads(2)
        print(in_child(lambda: str(qdq.get_num_threads()).encode()).decode())
        sys.exit()
    with qdq.num_threads(2):
        expected = work()  # the parent runs the kernels on two threads
    qdq.set_num_threads(2)
    if mode == "pool":
        with multiprocessing.get_context("fork").Pool(2) as pool:
            got = pool.map(work, range(4))
        assert got == [expected] * 4
    elif mode == "os.fork":
        assert in_child(work) == expected
    elif mode == "set":
        def child():
            with warnings.catch_warnings(record=True) as w:
                warnings.simplefilter("always")
                qdq.set_num_threads(2)  # this thread stays on one, with a warning
            assert "fork" in str(w[0].message), w
            got = [work(), str(qdq.get_num_threads()).encode()]
            out = []
            def other():  # a thread started in the child has its threads
                out.append(work() + str(qdq.get_num_threads()).encode())
            t = threading.Thread(target=other)
            t.start()
            t.join()
            return got[0] + got[1] + out[0] + in_child(work)  # and a grandchild works
        assert in_child(child) == expected + b"1" + expected + b"2" + expected
    print("ok")
""")


@pytest.mark.skipif(not qdq.openmp_enabled(), reason="the hang needs OpenMP")
@pytest.mark.parametrize("mode", ["pool", "os.fork", "set", "before"])
def test_a_forked_child_works_after_the_parent_ran_threads(tmp_path, mode):
    """Issue 24 item 3: GNU OpenMP's pool does not survive fork(); the child must not hang."""
    import signal
    import subprocess
    import sys

    script = tmp_path / "fork_child.py"
    script.write_text(FORK_CHILD)
    out = tmp_path / "out.txt"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(qdq.__file__)))
    env.pop("OMP_NUM_THREADS", None)
    with open(out, "w") as f:  # a file, not a pipe: a hung grandchild would hold a pipe open
        p = subprocess.Popen([sys.executable, str(script), mode], cwd=tmp_path, env=env,
                             stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            rc = None
        finally:
            os.killpg(p.pid, signal.SIGKILL) if rc is None else None
            p.wait()
    text = out.read_text()
    assert rc is not None, f"the forked child hung: {text}"
    assert rc == 0, text
    assert text.split()[-1] == ("2" if mode == "before" else "ok"), text
