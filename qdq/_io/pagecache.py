"""Page-cache policy: write back as we go, drop what was processed, know what is free."""

from __future__ import annotations

import os

from .._ext import kernels

__all__ = ["drop_pages", "memory_available", "sync_range"]


def drop_pages(fd: int, offset: int, length: int) -> None:
    """Tell the kernel the pages of [offset, offset + length) will not be needed again."""
    if hasattr(os, "posix_fadvise") and length > 0:
        try:
            os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
        except OSError:  # pragma: no cover - advisory only
            pass


def sync_range(fd: int, offset: int, length: int, wait: bool) -> bool:
    """Start (or, with ``wait``, finish) writing a byte range back; False if unsupported."""
    return kernels.sync_range(fd, offset, length, wait)


def memory_available() -> int:
    """Bytes of memory available to new allocations (Linux: MemAvailable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    return 1 << 34  # pragma: no cover
