"""Text for a terminal: names from files (tensor names, shard files) shown safely.

A checkpoint's tensor names and file names come from whoever made it. Printed
raw, an ESC (``\\x1b``) starts a terminal control sequence (CSI ``\\x1b[``,
OSC ``\\x1b]``: erase lines, move the cursor, set the window title), CR and LF
forge lines, and the Unicode bidi overrides (U+202E...) reorder what is shown.
Every human-readable output (tables, progress, summaries, error lines) passes
names through :func:`terminal_text`; JSON output stays exact.
"""

from __future__ import annotations

__all__ = ["terminal_text"]

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
