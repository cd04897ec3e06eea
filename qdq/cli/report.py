"""What the command line prints: parameters and analyses as text and as JSON, errors as one
line in the command line's words, and the exit statuses."""

from __future__ import annotations

import json
import math
import os
import re
import sys
from typing import Any

import numpy as np

from .._core.diagnostics import terminal_text

__all__ = ["EXIT_FAILURE", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_STATUS", "EXIT_USAGE",
           "describe_params", "error_lines", "fail", "float_text", "info_json", "json_value",
           "params_json", "print_json", "show_warning"]

#: Exit statuses (see EXIT_STATUS below).
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_STATUS = """\
exit status:
  0    success
  1    failure, found once the files are opened: a file is missing, unreadable or corrupt,
       or does not fit the options (an --axis beyond its rank, a --shape that does not
       match its size, a DST that is not .npy), its data cannot be quantized as asked, or
       an output cannot be written (disk full, permissions); demo: a mismatch
  2    usage error, found before any file is opened: an unknown option, a bad value,
       options that do not go together
  130  interrupted (Ctrl-C); 128+N when ended by signal N (no partial output is left)"""


def float_text(v) -> str:
    """A float as repr writes it (exact)."""
    return repr(float(v))


def describe_params(params, out=None) -> None:
    """Print the range and scale used (a summary per channel)."""
    out = out or sys.stdout
    if params.per_block:
        s = np.asarray(params.scale, np.float64)
        where = (f"{s.size:,} blocks of {params.block_size} along axis {params.axis} "
                 f"({params.dtype}), integer grid [{params.code_min}, {params.code_max}]")
        if s.size == 0:
            print(f"{where}: nothing to quantize", file=out)
            return
        print(f"{where}: scale from {float(s.min())!r} to {float(s.max())!r}", file=out)
        return
    if not params.per_channel:
        print(f"range [{float_text(params.min_range)}, {float_text(params.max_range)}] "
              f"(adjusted), scale {float_text(params.scale)}, inverse scale "
              f"{float_text(params.inverse_scale)}, integer grid [{params.code_min}, "
              f"{params.code_max}] ({params.dtype})", file=out)
        return
    s = np.asarray(params.scale, np.float64)
    if s.size == 0:
        print(f"0 channels along axis {params.axis} ({params.dtype}): nothing to quantize",
              file=out)
        return
    print(f"{s.size} channels along axis {params.axis} ({params.dtype}), integer grid "
          f"[{params.code_min}, {params.code_max}]: scale from {float(s.min())!r} to "
          f"{float(s.max())!r}; range from {float(np.min(params.min_range))!r} to "
          f"{float(np.max(params.max_range))!r}", file=out)


def json_value(v: Any) -> Any:
    """Numbers, lists and dicts for JSON; non-finite floats as "inf", "-inf", "nan"."""
    if isinstance(v, (float, np.floating)):
        f = float(v)
        return f if math.isfinite(f) else ("nan" if math.isnan(f) else
                                           ("inf" if f > 0 else "-inf"))
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, (tuple, list)):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    return v


def params_json(params) -> dict:
    """The parameters in brief: the grid, the settings, the extremes of scale and range."""
    s = np.asarray(params.scale, np.float64).reshape(-1)
    lo = np.asarray(params.min_range, np.float64).reshape(-1)
    hi = np.asarray(params.max_range, np.float64).reshape(-1)
    return {"dtype": params.dtype, "num_bits": params.num_bits,
            "signed_input": params.signed_input, "narrow_range": params.narrow_range,
            "round_mode": params.round_mode, "axis": params.axis,
            "block_size": params.block_size, "code_min": params.code_min,
            "code_max": params.code_max, "count": int(s.size),
            "scale_min": float(s.min()) if s.size else None,
            "scale_max": float(s.max()) if s.size else None,
            "range_min": float(lo.min()) if lo.size else None,
            "range_max": float(hi.max()) if hi.size else None}


def print_json(doc: dict) -> None:
    print(json.dumps(json_value(doc), indent=1))


def _extreme(values: np.ndarray, pick) -> float:
    """The NaN-ignoring extreme of per-channel values; NaN when none is a number."""
    v = np.asarray(values, np.float64)
    return float(pick(v)) if v.size and not np.isnan(v).all() else math.nan


def info_json(ns, st: dict) -> dict:
    """``qdq info --json`` on a .npy or raw file: the text report's figures as an object."""
    mn, mx = st["range"]
    source = ("given" if ns.range is not None
              else f"calibrated:{st['calibrate']}" if "minmax" in st else "data")
    b = st.get("blocks")
    m = st.get("minmax")
    return {"src": ns.src, "dtype": st["dtype"], "shape": list(st["shape"]),
            "elements": st["elements"], "nan": st["nan"],
            "range": {"source": source, "min": _extreme(mn, np.nanmin),
                      "max": _extreme(mx, np.nanmax)},
            "params": params_json(st["params"]),
            "error": {"max_abs": st["max_abs_error"], "sqnr_db": st["sqnr_db"],
                      "clipped": st["clipped"], "nonfinite_outputs": st["nonfinite_out"],
                      "float16_overflow": st["float16_overflow"]},
            "minmax_error": None if m is None else {"max_abs": m["max_abs_error"],
                                                    "sqnr_db": m["sqnr_db"]},
            "blocks": None if b is None else {
                "count": b["count"], "worst_max_abs_error": b["worst_max_abs_error"],
                "min_sqnr_db": b["min_sqnr_db"], "mean_sqnr_db": b["mean_sqnr_db"]}}


#: Library wording -> the command line's (the messages of .npy and raw file commands).
_CLI_WORDS = [(re.compile(a), b) for a, b in (
    (r"\bpass dtype= and shape=", "give --dtype and --shape"),
    (r"\bdtype= and shape=", "--dtype and --shape"),
    (r"\boffset=(\d+)", r"--offset \1"),
    (r"\bbfloat16_bits=True", "--bfloat16-bits"),
    (r" \(signed_input=True\)", ""),
    (r" \(signed_input=False\)", " (--unsigned)"),
    (r"\bnum_bits\b", "--num-bits"),
    (r"\bblock_size\b", "--block-size"),
    (r"\bround_mode\b", "--round-mode"),
    (r"\bneeds axis\b", "needs --axis"),
    (r"^calibrate takes", "--calibrate takes"),
    (r"neither a given range nor", "neither --range nor"),
    (r"^unknown calibration method\b", "--calibrate: unknown calibration method"),
    (r"^invalid range: input_min \((.*?)\) must be <= input_max \((.*?)\)(, and neither may "
     r"be NaN)?", r"invalid --range: MIN (\1) must be <= MAX (\2)"),
    (r"^per-channel axis: axis (-?\d+) is out of bounds for array of dimension (\d+)",
     r"--axis \1 is out of bounds for a tensor of \2 dimensions"),
    (r"^dst ", "DST "),
)]


def cli_words(text: str) -> str:
    for pattern, words in _CLI_WORDS:
        text = pattern.sub(words, text)
    return text


def error_lines(exc: BaseException, words: bool) -> list[str]:
    """'qdq: error: ...' on one line (``words``: in the command line's words), then any notes.

    A note says how far a write in place got when it stopped.
    """
    if isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror
        if exc.filename is not None and os.fspath(exc.filename) not in text:
            text = f"{os.fspath(exc.filename)}: {text}"
    else:
        text = str(exc)
    notes: list[Any] = getattr(exc, "__notes__", [])
    lines = [_one_line(text)] + [_one_line(str(n)) for n in notes]
    if words:
        lines[0] = cli_words(lines[0])
    lines = [terminal_text(line) for line in lines]  # names from files: no control sequence
    return [f"qdq: error: {lines[0]}"] + [f"qdq: note: {n}" for n in lines[1:]]


def _one_line(text: str) -> str:
    """The text on one line, without a 'qdq:' of its own (the line starts with one)."""
    return re.sub(r"^(qdq:\s*(error:\s*)?)+", "", " ".join(text.split()))


def show_warning(message: Any, category: Any, filename: str, lineno: int, file: Any = None,
                 line: Any = None) -> None:
    """A warning on one line of stderr, ``qdq: warning: ...`` (for ``warnings.showwarning``)."""
    print(f"qdq: warning: {_one_line(str(message))}", file=sys.stderr if file is None else file)


def fail(exc: BaseException, status: int, words: bool) -> int:
    """Print the error (see :func:`error_lines`); the exit status."""
    print("\n".join(error_lines(exc, words)), file=sys.stderr)
    return status
