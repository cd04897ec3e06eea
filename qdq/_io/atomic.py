"""The one atomic writer: a temporary file beside the destination, renamed into place.

Every file qdq writes (arrays, codes, parameter JSON, checkpoint shards) goes
through :class:`AtomicFile`: the data is written to
``.NAME.PID.RANDOM.qdq-tmp`` in the destination's directory, synced, renamed
over ``NAME`` and the directory synced. On any exception (KeyboardInterrupt
included) the temporary file is removed and ``NAME`` is untouched.

Permissions: a new file gets ``0666 & ~umask`` (as ``open`` would give it); a
file that is replaced keeps its mode. A destination that is a symbolic link
is written through to its target (the link stays). A destination without any
write permission bit is refused (PermissionError) rather than replaced.
Replacing a file gives it a new inode, so a hard link to the old file keeps
the old contents.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from typing import IO, Any, Iterable

__all__ = ["AtomicFile", "TEMP_SUFFIX", "commit_together", "remove_stale_temporaries",
           "write_text_atomic"]

#: Suffix of every temporary file qdq writes (``.NAME.PID.RANDOM.qdq-tmp``).
TEMP_SUFFIX = ".qdq-tmp"


def _umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def _fsync_directory(directory: str) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - directories cannot be opened on some systems
        return
    try:
        os.fsync(dfd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dfd)


class AtomicFile:
    """A file written under a temporary name and renamed into place by :meth:`commit`.

    Use as a context manager (commit on success, abort on any exception), or
    call :meth:`commit` / :meth:`abort` yourself. ``file`` is the open binary
    file (unbuffered) to write to.
    """

    def __init__(self, path: Any):
        self.path = os.path.realpath(os.fspath(path))
        self.directory = os.path.dirname(self.path)
        name = os.path.basename(self.path)
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        else:
            if not stat.S_ISREG(st.st_mode):
                raise ValueError(f"cannot write {self.path}: it exists and is not a regular file")
            mode = stat.S_IMODE(st.st_mode)
            if not mode & 0o222:
                raise PermissionError(f"{self.path} is read-only (mode {mode:04o}); qdq does "
                                      "not replace it: make it writable or choose another "
                                      "destination")
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{name}.{os.getpid()}.",
                                            suffix=TEMP_SUFFIX, dir=self.directory)
        except OSError as exc:
            raise type(exc)(exc.errno, f"cannot create the output {self.path}: "
                                       f"{exc.strerror}", self.directory) from None
        try:
            os.fchmod(fd, mode)
        except OSError:  # pragma: no cover - file systems without modes
            pass
        self.file: IO[bytes] = os.fdopen(fd, "wb", buffering=0)
        self.done = False

    def sync(self) -> None:
        """Write the data to the disk (before the rename)."""
        if not self.file.closed:
            os.fsync(self.file.fileno())
            self.file.close()

    def rename(self) -> None:
        """Rename the synced temporary file over the destination."""
        os.replace(self.tmp, self.path)
        self.done = True
        _fsync_directory(self.directory)

    def commit(self) -> None:
        """Sync, rename into place, sync the directory."""
        self.sync()
        self.rename()

    def abort(self) -> None:
        """Close and remove the temporary file; the destination is untouched."""
        if self.done:
            return
        try:
            self.file.close()
        finally:
            try:
                os.unlink(self.tmp)
            except FileNotFoundError:
                pass

    def __enter__(self) -> "AtomicFile":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def commit_together(files: Iterable[AtomicFile]) -> None:
    """Commit several files as one: all are synced before the first is renamed.

    Every write and sync (where a full disk or a missing directory shows) is
    done before any destination changes; only the renames, back to back,
    follow. On an error before the renames every file is aborted.
    """
    files = list(files)
    try:
        for f in files:
            f.sync()
    except BaseException:
        for f in files:
            f.abort()
        raise
    for f in files:
        f.rename()


def write_text_atomic(path: Any, text: str) -> None:
    """Write text (UTF-8) to path through :class:`AtomicFile`."""
    with AtomicFile(path) as f:
        f.file.write(text.encode("utf-8"))


_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process
        return True
    return True


def remove_stale_temporaries(path: Any) -> list[str]:
    """Remove temporary files of ``path`` left by qdq processes that no longer run.

    Returns the removed paths. Temporaries of running processes are kept.
    """
    target = os.path.realpath(os.fspath(path))
    directory, name = os.path.dirname(target), os.path.basename(target)
    removed: list[str] = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_RE.match(entry)
        if m is None or m.group("name") != name or _alive(int(m.group("pid"))):
            continue
        full = os.path.join(directory, entry)
        try:
            os.unlink(full)
        except OSError:
            continue
        removed.append(full)
    return removed
