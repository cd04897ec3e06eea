"""How many threads the kernels use."""

from __future__ import annotations

import contextlib
import os
import warnings

from . import _kernels
from ._validate import check_positive_int

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "openmp_enabled", "current",
           "MAX_THREADS"]

#: The largest thread count qdq accepts (OpenMP takes an int; more is never useful).
MAX_THREADS = 1 << 12


def _default_threads() -> int:
    if not _kernels.OPENMP:
        return 1
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n > MAX_THREADS:
            warnings.warn(f"OMP_NUM_THREADS={env} is more than qdq uses; using {MAX_THREADS}",
                          RuntimeWarning, stacklevel=2)
            return MAX_THREADS
        if n >= 1:
            return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_threads = _default_threads()


def current() -> int:
    """The thread count the kernels use now (what :func:`get_num_threads` returns)."""
    return _threads


def openmp_enabled() -> bool:
    """Whether the kernels were built with OpenMP (multi-threaded)."""
    return bool(_kernels.OPENMP)


def get_num_threads() -> int:
    """The number of threads qdq's kernels use for large inputs.

    The default is ``OMP_NUM_THREADS`` when set, otherwise the number of CPUs
    this process may run on; always 1 when qdq was built without OpenMP.
    Inputs below a few hundred KiB are processed on one thread whatever this
    says. Results are bit-identical for every thread count.
    """
    return _threads


def set_num_threads(n: int | None) -> int:
    """Set the number of threads for qdq's kernels; returns the previous value.

    Parameters
    ----------
    n : int or None
        A positive thread count, or None for the default (see
        :func:`get_num_threads`). Without OpenMP the count stays 1.
    """
    global _threads
    previous = _threads
    if n is None:
        _threads = _default_threads()
    else:
        n = check_positive_int("the number of threads", n)
        if n > MAX_THREADS:
            raise ValueError(f"the number of threads must be at most {MAX_THREADS}, got {n}")
        _threads = n if _kernels.OPENMP else 1
    return previous


@contextlib.contextmanager
def num_threads(n: int | None):
    """Context manager that sets the kernels' thread count inside a ``with`` block.

    Examples
    --------
    >>> import qdq
    >>> with qdq.num_threads(1):
    ...     qdq.get_num_threads()
    1
    """
    previous = set_num_threads(n)
    try:
        yield
    finally:
        set_num_threads(previous)
