"""Progress bars for long passes: tqdm when installed, a plain line otherwise."""

from __future__ import annotations

import sys
import time

from .._core.diagnostics import terminal_text


class Progress:
    """Bytes done out of a total, with the rate; a no-op when disabled."""

    def __init__(self, total: int, desc: str, enabled: bool, file=None):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.done = 0
        self.start = time.perf_counter()
        self.file = file if file is not None else sys.stderr
        self._bar = None
        self._last = 0.0
        self.note = ""
        if not enabled:
            return
        try:
            from tqdm import tqdm
        except ImportError:
            self._draw(force=True)
        else:
            self._bar = tqdm(total=total, desc=desc, unit="B", unit_scale=True,
                             unit_divisor=1024, file=self.file, leave=True)

    def update(self, nbytes: int) -> None:
        self.done += nbytes
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(nbytes)
        else:
            self._draw()

    def set_note(self, note: str) -> None:
        """Show what is being worked on now (a tensor's name) beside the bar."""
        self.note = terminal_text(note)  # a name from a file: no control sequence
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.set_postfix_str(self.note, refresh=False)
        else:
            self._draw()

    def _draw(self, force: bool = False, end: str = "\r") -> None:
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        elapsed = max(now - self.start, 1e-9)
        pct = 100.0 * self.done / self.total if self.total else 100.0
        rate = self.done / elapsed / 1e9
        self.file.write(f"{self.desc}: {pct:5.1f}% of {self.total / 2**20:,.0f} MiB, "
                        f"{rate:.2f} GB/s" + (f", {self.note[:60]}" if self.note else "")
                        + ("\x1b[K" if self.note and end == "\r" else "") + end)
        self.file.flush()

    @property
    def rate(self) -> float:
        """Bytes per second so far."""
        return self.done / max(time.perf_counter() - self.start, 1e-9)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        else:
            self._draw(force=True, end="\n")
