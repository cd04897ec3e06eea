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
