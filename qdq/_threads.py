"""How many threads the kernels use."""

from __future__ import annotations

import contextlib
import operator
import os

from . import _kernels

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "openmp_enabled"]


def _default_threads() -> int:
    if not _kernels.OPENMP:
        return 1
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


_threads = _default_threads()


def check_positive_int(name: str, value) -> int:
    """A count given by the user: an int of at least 1 (TypeError, ValueError otherwise)."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {value!r}")
    try:
        n = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if n < 1:
        raise ValueError(f"{name} must be at least 1, got {n}")
    return n


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
