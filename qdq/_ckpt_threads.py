"""The kernels' thread count during a checkpoint run.

The writer thread measures the error while the kernels run, so the kernels
leave it a core: on two cores, kernels on two threads plus the writer would
be three busy threads, and an OpenMP region waits for its slowest thread.
Results are bit-identical for every thread count.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

from ._threads import get_num_threads, num_threads

__all__ = ["fewer_threads", "kernel_threads"]

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
