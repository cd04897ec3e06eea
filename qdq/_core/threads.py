"""How many threads the kernels use."""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from typing import Iterator

from .._ext import kernels
from .validate import check_positive_int

__all__ = ["get_num_threads", "set_num_threads", "num_threads", "openmp_enabled", "current",
           "MAX_THREADS", "kernel_threads", "fewer_threads"]

#: The largest thread count qdq accepts (OpenMP takes an int; more is never useful).
MAX_THREADS = 1 << 12


def _check_environment() -> bool:
    """Warn once about an OMP_NUM_THREADS larger than qdq uses; whether it is clamped."""
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    try:
        n = int(env) if env else 0
    except ValueError:
        return False
    if n > MAX_THREADS and kernels.OPENMP:
        warnings.warn(f"OMP_NUM_THREADS={env} is more than qdq uses; using {MAX_THREADS}",
                      RuntimeWarning, stacklevel=2)
        return True
    return False


# A huge OMP_NUM_THREADS overflows or is ignored by OpenMP runtimes: qdq uses
# MAX_THREADS as long as the runtime's count is the one it started with.
_clamped_env = _check_environment()
_runtime_threads = kernels.openmp_max_threads  # 1 without OpenMP
_runtime_start = _runtime_threads()
# None: follow the OpenMP runtime (OMP_NUM_THREADS, threadpoolctl); else set_num_threads's.
_explicit: int | None = None

# fork(): GNU OpenMP keeps a thread's pool of worker threads in that thread's thread-local
# storage and has no fork handler. In a child forked by a thread that ran a parallel region,
# that pool names threads the child does not have, and the next parallel region of more than
# one thread waits for them forever; a region of one thread, or any region in a thread
# started in the child (a fresh pool), works. So each thread notes when it handed the kernels
# more than one thread, and in the child the thread that forked runs the kernels on one
# thread from then on (and so does its own forked children's); other threads are unchanged.
class _ThreadState(threading.local):
    """Per thread: ran the kernels on several threads; forked after that; warned of it.

    Class attributes are every thread's defaults, so reading them never raises inside
    (``getattr(local, name, default)`` on a missing name cost 0.5 us per kernel call).
    """

    parallel = False
    forked = False
    warned = False


_tls = _ThreadState()


def _after_fork_in_child() -> None:
    if _tls.parallel:
        _tls.forked = True


if kernels.OPENMP:
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _count() -> int:
    if _explicit is not None:
        return _explicit
    n = _runtime_threads()
    if 0 < n <= MAX_THREADS and not _clamped_env:
        return n
    if _clamped_env and n == _runtime_start:
        return MAX_THREADS
    return min(max(1, n), MAX_THREADS)


def current() -> int:
    """The thread count for a kernel about to run (what :func:`get_num_threads` returns).

    Read at every call: set by :func:`set_num_threads`, or else the OpenMP
    runtime's ``omp_get_max_threads()``, so ``OMP_NUM_THREADS`` and
    ``threadpoolctl.threadpool_limits`` apply. 1 in the thread of a forked
    child that called ``fork()`` after running the kernels on more than one
    thread (see :func:`get_num_threads`).
    """
    if _tls.forked:
        return 1
    n = _count()
    if n > 1 and not _tls.parallel:
        _tls.parallel = True  # (the kernels ask: they will run a parallel region here)
    return n


def _forked() -> bool:
    """Whether this thread is the one that forked after running the kernels on threads."""
    return _tls.forked


def openmp_enabled() -> bool:
    """Whether the kernels were built with OpenMP (multi-threaded).

    Returns
    -------
    bool
        False for a build with ``QDQ_OPENMP=0`` or a compiler without OpenMP.

    Examples
    --------
    >>> import qdq
    >>> qdq.openmp_enabled() in (True, False)
    True
    """
    return bool(kernels.OPENMP)


def get_num_threads() -> int:
    """The number of threads qdq's kernels use for large inputs.

    Unless :func:`set_num_threads` chose a count, this is the OpenMP
    runtime's, read at each call: ``OMP_NUM_THREADS`` when set, otherwise the
    number of CPUs this process may run on, and limits set with
    ``threadpoolctl.threadpool_limits`` apply. Always 1 when qdq was built
    without OpenMP. Inputs below a few hundred KiB are processed on one thread
    whatever this says. Results are bit-identical for every thread count.

    After ``fork()`` (``multiprocessing``'s ``"fork"`` start method, torch
    DataLoader workers, ``os.fork``), in the child, the thread that forked
    uses one thread from then on if it ran qdq's kernels on more than one
    thread before the fork: GNU OpenMP's thread pool does not survive fork,
    and a parallel region there would wait forever for threads the child does
    not have. Other threads of the child (and children forked before any
    parallel use) use the count as usual; the ``"spawn"`` and
    ``"forkserver"`` start methods are unaffected.

    Returns
    -------
    int
        The thread count, at least 1.

    Examples
    --------
    >>> import qdq
    >>> qdq.get_num_threads() >= 1
    True
    """
    return 1 if _forked() else _count()


def set_num_threads(n: int | None) -> int:
    """Set the number of threads for qdq's kernels; returns the previous value.

    Parameters
    ----------
    n : int or None
        A positive thread count (at most 4096), or None to follow the OpenMP
        runtime again (see :func:`get_num_threads`). Without OpenMP the count
        stays 1.

    Returns
    -------
    int
        The count in force before the call.

    Examples
    --------
    >>> import qdq
    >>> previous = qdq.set_num_threads(1)
    >>> qdq.get_num_threads()
    1
    >>> _ = qdq.set_num_threads(None)
    """
    global _explicit
    previous = get_num_threads()
    if n is None:
        _explicit = None
    else:
        n = check_positive_int("the number of threads", n)
        if n > MAX_THREADS:
            raise ValueError(f"the number of threads must be at most {MAX_THREADS}, got {n}")
        _explicit = n if kernels.OPENMP else 1
        if n > 1 and _forked() and not _tls.warned:
            _tls.warned = True
            warnings.warn(f"qdq's kernels stay on one thread in this thread: it called fork() "
                          f"after they ran on several (GNU OpenMP's threads do not survive "
                          f"fork); threads started in this process use {n}",
                          RuntimeWarning, stacklevel=2)
    return previous


@contextlib.contextmanager
def num_threads(n: int | None):
    """Context manager that sets the kernels' thread count inside a ``with`` block.

    Parameters
    ----------
    n : int or None
        As for :func:`set_num_threads`; the previous setting is restored on
        leaving the block.

    Yields
    ------
    None
        Nothing: the setting holds while the block runs.

    Examples
    --------
    >>> import qdq
    >>> with qdq.num_threads(1):
    ...     qdq.get_num_threads()
    1
    """
    global _explicit
    saved = _explicit
    set_num_threads(n)
    try:
        yield
    finally:
        _explicit = saved


# The kernels' thread count during a checkpoint run. The writer thread measures the error
# while the kernels run, so the kernels leave it a core: on two cores, kernels on two
# threads plus the writer would be three busy threads, and an OpenMP region waits for its
# slowest thread. Results are bit-identical for every thread count.

_LOCK = threading.Lock()
_USERS = [0]                     # runs inside kernel_threads
_SETTING = contextlib.ExitStack()  # the num_threads() the first run entered


@contextlib.contextmanager
def kernel_threads(n: int) -> Iterator[None]:
    """The kernels' thread count inside the block (restored by the last run to end).

    Examples
    --------
    >>> import qdq
    >>> with kernel_threads(1):
    ...     qdq.get_num_threads()
    1
    """
    with _LOCK:
        if _USERS[0] == 0:
            _SETTING.enter_context(num_threads(n))
        _USERS[0] += 1
    try:
        yield
    finally:
        with _LOCK:
            _USERS[0] -= 1
            if _USERS[0] == 0:
                _SETTING.close()


def fewer_threads() -> int:
    """The kernels' threads beside a writer thread: one fewer than :func:`qdq.get_num_threads`."""
    return max(1, get_num_threads() - 1)
