"""The RuntimeWarnings of the op: results that are TensorFlow's but rarely what is wanted.

Every path that runs the op (in memory, files, chunks, checkpoints, Dask)
raises them through this module, so a tensor is warned about the same way
wherever it is quantized: :func:`warn_unsigned_negative`, and the float16
scale overflow through one :class:`Float16Overflow` per tensor. Names from
files reach a terminal through :func:`terminal_text` (control characters
escaped).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .formats import FLOAT16, Format

__all__ = ["Float16Overflow", "terminal_text", "warn_unsigned_negative"]


def warn_unsigned_negative(stacklevel: int = 3) -> None:
    """Warn about unsigned output with negative data and no given range."""
    warnings.warn(
        "signed_input=False with negative data and range_given=False: like TensorFlow, qdq "
        "does not clamp, so the negative values come out meaningless; pass range_given=True "
        "(the clamp then maps them to 0) or use signed_input=True",
        RuntimeWarning, stacklevel=stacklevel)


class Float16Overflow:
    """The float16 scale overflow of one tensor: its channels' (or blocks') scales, one warning.

    TensorFlow computes the scale in T; when the largest magnitude of a
    float16 range is below ``qmax / 65504`` the scale overflows to inf and
    the output of that channel (block, tensor) is inf/NaN. qdq keeps those
    bits and warns once per tensor, naming the tensor when it has a name (a
    checkpoint's tensors, files) and the fix.

    Parameters
    ----------
    fmt : Format
        The tensor's format; nothing is ever warned for the other formats.
    name : str, optional
        How the warning names the tensor (``"tensor 'w'"``, a path...).
    unit : str, default "channels"
        What the scales are of: ``"channels"`` or ``"blocks"``.

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from qdq._core.formats import FLOAT16
    >>> check = Float16Overflow(FLOAT16, "tensor 'w'")
    >>> check.add(np.array([np.inf, 12.7]), np.array([-1e-4, -1.0]), np.array([1e-4, 1.0]))
    >>> with warnings.catch_warnings(record=True) as w:
    ...     warnings.simplefilter("always")
    ...     check.warn()
    ...     check.warn()  # once per tensor
    >>> len(w), str(w[0].message)[:60]
    (1, "tensor 'w': float16 scale overflows to inf in 1 channels (fi")
    """

    def __init__(self, fmt: Format, name: str | None = None, unit: str = "channels"):
        self.active = fmt is FLOAT16
        self.name = name
        self.unit = unit
        self.count = 0
        self.seen = 0
        self.first: tuple[int, float, float, float] | None = None
        self.warned = False
        #: The warning comes before the tensor's last channels (blocks) are seen: its count
        #: is of those seen so far (a stream of chunks warns at the first chunk that overflows).
        self.so_far = False

    def add(self, scale: Any, lo: Any, hi: Any) -> None:
        """The scales and adjusted ranges of the next channels (blocks) of the tensor."""
        if not self.active:
            return
        scale = np.atleast_1d(np.asarray(scale, np.float64)).reshape(-1)
        bad = np.isinf(scale)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            lo = np.broadcast_to(np.asarray(lo, np.float64).reshape(-1), scale.shape)
            hi = np.broadcast_to(np.asarray(hi, np.float64).reshape(-1), scale.shape)
            if self.first is None:
                self.first = (self.seen + k, float(scale[k]), float(lo[k]), float(hi[k]))
            self.count += int(bad.sum())
        self.seen += scale.shape[0]

    def add_rows(self, rows: np.ndarray) -> None:
        """Parameter rows ``(4, ...)``: scale, inverse scale, adjusted min and max."""
        if self.active:
            rows = np.asarray(rows).reshape(4, -1)
            self.add(rows[0], rows[2], rows[3])

    @property
    def overflowed(self) -> bool:
        """Whether a scale of the tensor overflowed so far."""
        return self.first is not None

    def message(self, codes: bool = False, given: bool = False) -> str | None:
        """The warning's text, or None when no scale overflowed.

        ``codes``: :func:`qdq.quantize`'s error instead, naming the first
        overflowing range (``given``: the range was given) and a fix that
        includes a wider range.
        """
        if self.first is None:
            return None
        k, scale, lo, hi = self.first
        who = "" if self.name is None else f"{self.name}: "
        rng = (f"the given range (adjusted: [{lo!r}, {hi!r}])" if given
               else f"the range [{lo!r}, {hi!r}]")
        small = ("is too small for float16 arithmetic (its largest magnitude is below "
                 "qmax / 65504)")
        if codes:
            of = "" if self.seen == 1 and self.unit != "blocks" else f" of a {self.unit[:-1]}"
            return (f"{who}float16 scale overflows to {scale!r}: {rng}{of} {small}, so its "
                    "codes would be inf/NaN, which have no integer code; quantize in float32 "
                    "(x.astype(np.float32)) or give a range of larger magnitude")
        so_far = " so far" if self.so_far else ""
        where = "" if self.seen == 1 else f" in {self.count} {self.unit}{so_far} (first: {k})"
        return (f"{who}float16 scale overflows to {scale!r}{where}: {rng} {small}, so the "
                "output is inf/NaN, as in TensorFlow; compute in float32 (x.astype(np.float32))"
                " and convert the result back")

    def warn(self, stacklevel: int = 2) -> None:
        """Warn (once for the tensor) when a scale overflowed.

        ``stacklevel`` counts as for ``warnings.warn`` called where this is called.
        """
        text = self.message()
        if text is None or self.warned:
            return
        self.warned = True
        warnings.warn(text, RuntimeWarning, stacklevel=stacklevel + 1)


# Text for a terminal. A checkpoint's tensor and file names come from whoever made it.
# Printed raw, an ESC (\x1b) starts a terminal control sequence (CSI \x1b[, OSC \x1b]:
# erase lines, move the cursor, set the window title), CR and LF forge lines, and the
# Unicode bidi overrides (U+202E...) reorder what is shown. Every human-readable output
# (tables, progress, summaries, error lines) passes names through terminal_text; JSON output
# stays exact.

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    if c in _SHORT:
        return _SHORT[c]
    o = ord(c)
    return f"\\x{o:02x}" if o < 0x100 else f"\\u{o:04x}" if o < 0x10000 else f"\\U{o:08x}"


def terminal_text(text: str) -> str:
    """``text`` with every character a terminal would not just print escaped, as Python does.

    Escaped: the C0 and C1 controls (ESC, CSI, OSC, CR, LF, TAB, BEL, ...), DEL,
    the format characters (the bidi overrides and isolates U+202A-U+202E,
    U+2066-U+2069, the marks U+200E, U+200F, U+061C, zero-width characters),
    line and paragraph separators, spaces other than the ASCII space, lone
    surrogates and unassigned or private-use code points: whatever
    :meth:`str.isprintable` refuses. The result is for reading, not parsing
    (a backslash is left as it is); a printable text is returned unchanged.

    Parameters
    ----------
    text : str
        A name, a path, a message.

    Returns
    -------
    str
        The text, safe to print.

    Examples
    --------
    >>> print(terminal_text("w\\x1b]0;owned\\x07\\r\\n\\u202egnp.exe"))
    w\\x1b]0;owned\\x07\\r\\n\\u202egnp.exe
    >>> terminal_text("layers.0.attn.q_proj.weight \\u00e9\\u4e2d")
    'layers.0.attn.q_proj.weight é中'
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
