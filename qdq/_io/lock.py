"""Advisory locks on a destination, so that two runs never write into it at once.

A run that writes a checkpoint locks its destination first:

* a directory of shards: ``DIR/.qdq.lock``, exclusively;
* one file ``DIR/NAME``: ``DIR/.NAME.qdq.lock`` exclusively, and ``DIR/.qdq.lock``
  shared, so that runs writing different files into one directory go side by
  side while a run that owns the whole directory excludes them all.

The locks are ``flock(2)`` locks on those files: the kernel releases them when
the process ends, however it ends (SIGKILL, a crash, a power cut), so a lock
left by a killed run never blocks the next one; the file it leaves behind is
taken over and removed by the next run. A held lock's file names its holder
(pid, host, start time) for the message of a run that finds it taken, which
fails at once (:class:`DestinationLocked`) or waits for it.

The locks are advisory: they exclude qdq runs (of any process, thread or host
sharing the file system, where the file system supports ``flock``), not other
programs writing into the destination.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import socket
import time
from typing import Any, Callable

__all__ = ["DestinationLock", "DestinationLocked", "LOCK_NAME", "LockOwner"]

#: The lock file of a directory; a file's is ``.NAME`` + this.
LOCK_NAME = ".qdq.lock"


class DestinationLocked(BlockingIOError):
    """The destination is being written by another run (its lock is held), or was meanwhile."""


def _describe(info: dict | None) -> str:
    if not info:
        return "another qdq run (its pid is not known yet)"
    host = info.get("host")
    where = "" if host in (None, socket.gethostname()) else f" on {host}"
    since = info.get("since")
    started = "" if since is None else \
        f", started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since))}"
    return f"another qdq run (pid {info.get('pid')}{where}{started})"


def _read_info(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        info = json.loads(data.decode("utf-8")) if data.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


class _FileLock:
    """One ``flock`` on a file, created if needed; removed by its last holder."""

    def __init__(self, path: str, exclusive: bool):
        self.path = path
        self.exclusive = exclusive
        self.fd: int | None = None

    def try_acquire(self) -> bool | int:
        """Take the lock without waiting: True, or the open file (an int) of a held lock."""
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                return fd
            except BaseException:
                os.close(fd)
                raise
            if self._current(fd):
                self._hold(fd)
                return True
            os.close(fd)  # its last holder removed it meanwhile: take the new one

    def wait(self, fd: int) -> None:
        """Wait for the lock on ``fd`` (an open file of it), then hold it."""
        mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
        while True:
            try:
                fcntl.flock(fd, mode)
            except BaseException:
                os.close(fd)
                raise
            if self._current(fd):
                self._hold(fd)
                return
            os.close(fd)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)

    def _hold(self, fd: int) -> None:
        self.fd = fd
        if not self.exclusive:
            # no exclusive holder now: a note in the file is a killed holder's, stale
            os.ftruncate(fd, 0)

    def _current(self, fd: int) -> bool:
        """Whether the locked file is still the one under the path (not removed since)."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False
        own = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)

    def write_info(self, info: dict) -> None:
        assert self.fd is not None
        data = json.dumps(info).encode("utf-8")
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data + b"\n", 0)

    def release(self) -> None:
        """Remove the file if no one else holds it, then unlock (close)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return
        try:
            if not self.exclusive:  # the last of the shared holders removes it
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return
            if self._current(fd):
                os.unlink(self.path)
        except OSError:  # pragma: no cover - the lock is released with the file anyway
            pass
        finally:
            os.close(fd)


class LockOwner:
    """Which run holds a destination: picklable, for the processes writing its shards.

    :meth:`check` is called by a worker just before it renames a shard into
    place: a worker whose run ended (its main process killed) must not put a
    shard into a destination another run now writes.
    """

    def __init__(self, path: str, token: str):
        self.path = path
        self.token = token

    def check(self) -> None:
        """BlockingIOError (:class:`DestinationLocked`) when the run no longer holds the lock."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            info = None
        else:
            try:
                info = _read_info(fd)
            finally:
                os.close(fd)
        if info is None or info.get("token") != self.token:
            raise DestinationLocked(
                f"{self.path}: the run that started this shard no longer holds the "
                f"destination (now {_describe(info) if info else 'no run'}): the shard was "
                "not written")

    def __call__(self) -> None:
        self.check()


class DestinationLock:
    """The lock of one destination (see the module's docstring); a context manager.

    Parameters
    ----------
    path : str
        The destination: a directory (``directory=True``) or a file.
    directory : bool, default False
        Lock the whole directory (a checkpoint of shards) rather than one file in it.
    wait : bool, default False
        Wait for a run holding the lock to end, instead of raising
        :class:`DestinationLocked` at once.
    on_wait : callable, optional
        Called once with a sentence naming the holder before waiting.

    Examples
    --------
    >>> import os
    >>> os.makedirs("locked", exist_ok=True)
    >>> with DestinationLock("locked", directory=True):
    ...     try:
    ...         DestinationLock("locked", directory=True).acquire()
    ...     except DestinationLocked as exc:
    ...         print(str(exc).split(" (pid")[0])
    locked is being written by another qdq run
    >>> os.listdir("locked")  # the lock file is gone with the lock
    []
    """

    def __init__(self, path: Any, directory: bool = False, wait: bool = False,
                 on_wait: Callable[[str], None] | None = None):
        self.path = os.fspath(path)
        real = os.path.realpath(self.path)
        self.directory = real if directory else os.path.dirname(real)
        self.wait, self.on_wait = wait, on_wait
        dir_lock = _FileLock(os.path.join(self.directory, LOCK_NAME), exclusive=directory)
        if directory:
            self.locks = [dir_lock]
        else:
            own = os.path.join(self.directory, f".{os.path.basename(real)}{LOCK_NAME}")
            self.locks = [dir_lock, _FileLock(own, exclusive=True)]
        self.token = secrets.token_hex(8)

    @property
    def owner(self) -> LockOwner:
        """This run's claim, for :meth:`LockOwner.check` in the processes writing its files."""
        return LockOwner(self.locks[-1].path, self.token)

    def acquire(self) -> "DestinationLock":
        """Take every lock (in order: the directory's, then the file's), or raise / wait."""
        if not os.path.isdir(self.directory):
            raise FileNotFoundError(errno.ENOENT, f"cannot create the output {self.path}: "
                                    f"{os.strerror(errno.ENOENT)}", self.directory)
        try:
            for lock in self.locks:
                got = lock.try_acquire()
                if got is True:
                    continue
                assert isinstance(got, int)
                holder = self._holder(lock, got)
                if not self.wait:
                    os.close(got)
                    raise DestinationLocked(
                        f"{self.path} is being written by {holder}: wait for it to finish "
                        "(--wait, or wait=True) or write to another destination")
                if self.on_wait is not None:
                    self.on_wait(f"waiting for {holder} to finish writing {self.path}")
                lock.wait(got)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                    "token": self.token}
            self.locks[-1].write_info(info)
        except BaseException:
            self.release()
            raise
        return self

    def _holder(self, lock: _FileLock, fd: int) -> str:
        """Who holds ``lock``: its file's note, or the notes of the files locked under it."""
        info = _read_info(fd)
        if info is not None or lock.exclusive is False:
            return _describe(info)
        # the directory's lock is shared by runs writing single files: their own locks say
        notes = [_describe(i) for i in _held_file_locks(self.directory)]
        return " and ".join(notes) if notes else _describe(None)

    def release(self) -> None:
        """Give every lock back (the files go with the last holder)."""
        for lock in reversed(self.locks):
            lock.release()

    def __enter__(self) -> "DestinationLock":
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _held_file_locks(directory: str) -> list[dict | None]:
    """The notes of the file locks in ``directory`` that some run holds now."""
    out: list[dict | None] = []
    try:
        names = os.listdir(directory)
    except OSError:  # pragma: no cover
        return out
    for name in sorted(names):
        if not (name.startswith(".") and name.endswith(LOCK_NAME) and name != LOCK_NAME):
            continue
        try:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                out.append(_read_info(fd))  # held
            except OSError as exc:  # pragma: no cover
                if exc.errno not in (errno.ENOLCK, errno.EINVAL):
                    raise
        finally:
            os.close(fd)
    return out
