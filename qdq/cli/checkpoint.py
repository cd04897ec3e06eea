"""``qdq run`` and ``qdq info`` on safetensors checkpoints (a file, or a directory of shards).

Rules on the command line: ``--rule 'PATTERN:num_bits=4,block_size=32,axis=-1'``
(repeatable, first match wins; ``PATTERN:copy`` keeps a tensor), then the
rules of ``--rules FILE.json`` (a list of ``[pattern, settings or null]``
pairs, or an object of pattern -> settings in order), then ``--skip``
patterns, then the defaults (the op flags).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from .._checkpoint.compressed import (
    dequantize_checkpoint,
    describe_compressed,
    read_compressed,
)
from .._checkpoint.export import CODES_OVERFLOW, EXPORT_FORMATS, quantize_checkpoint
from .._checkpoint.plan import SETTING_KEYS, check_rules, check_settings
from .._checkpoint.report import CheckpointReport
from .._checkpoint.run import analyze_checkpoint, quantize_and_dequantize_checkpoint
from .._core.diagnostics import terminal_text
from .._io.safetensors import load_json
from .._io.safetensors_index import INDEX_SUFFIX

__all__ = ["add_checkpoint_options", "add_export_options", "check_checkpoint_command_line",
           "cmd_dequantize_checkpoint", "cmd_info_checkpoint", "cmd_quantize_checkpoint",
           "cmd_run_checkpoint", "compressed_table",
           "export_defaults", "is_checkpoint", "load_rules", "parse_rule", "plot_sqnr"]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def is_checkpoint(path: str) -> bool:
    """A ``.safetensors`` file, an index file, or a directory."""
    return path.endswith((".safetensors", INDEX_SUFFIX)) or os.path.isdir(path)


def _value(key: str, text: str, where: str) -> Any:
    t = text.strip()
    if key in ("num_bits", "axis", "block_size"):
        if key != "num_bits" and t.lower() == "none":
            return None
        try:
            return int(t)
        except ValueError:
            raise ValueError(f"{where}: {key} must be an integer, got {text!r}") from None
    if key == "calibrate":
        return None if t.lower() == "none" else t.lower()
    if key in ("signed_input", "narrow_range"):
        if t.lower() in _TRUE:
            return True
        if t.lower() in _FALSE:
            return False
        raise ValueError(f"{where}: {key} must be true or false, got {text!r}")
    return t.upper()


def parse_rule(text: str) -> tuple[str, dict | None]:
    """``'PATTERN:key=value,...'`` or ``'PATTERN:copy'`` -> (pattern, settings or None).

    Examples
    --------
    >>> parse_rule("*.weight:num_bits=4,block_size=32,axis=-1")
    ('*.weight', {'num_bits': 4, 'block_size': 32, 'axis': -1})
    >>> parse_rule("lm_head.*:copy")
    ('lm_head.*', None)
    """
    pattern, sep, body = text.rpartition(":")
    where = f"--rule {text!r}"
    if not sep or not pattern:
        raise ValueError(f"{where}: expected PATTERN:key=value,... or PATTERN:copy")
    if body.strip().lower() == "copy":
        return pattern, None
    settings: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in body.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in SETTING_KEYS:
            raise ValueError(f"{where}: {item!r} is not key=value with a key among "
                             f"{', '.join(SETTING_KEYS)}")
        settings[key] = _value(key, value, where)
    if not settings:
        raise ValueError(f"{where}: no settings (write PATTERN:copy to copy a tensor)")
    return pattern, settings


def load_rules(path: str) -> list[tuple[str, Any]]:
    """The rules of a JSON file: ``[[pattern, settings or null], ...]`` or ``{pattern: ...}``."""
    with open(path, "rb") as f:
        raw = f.read()
    # as strict as the header and index readers: a repeated key is refused, not last-wins
    doc = load_json(raw, path, "rules file")
    items = list(doc.items()) if isinstance(doc, dict) else doc
    if not isinstance(items, list) or not all(
            isinstance(r, (list, tuple)) and len(r) == 2 and isinstance(r[0], str)
            for r in items):
        raise ValueError(f"{path}: rules must be a list of [pattern, settings or null] pairs "
                         "or an object of pattern -> settings")
    return [(p, None if s in (None, "copy") else s) for p, s in items]


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"not a count of at least 1: {text!r}")
    return n


def add_checkpoint_options(p: argparse.ArgumentParser, info: bool) -> None:
    """The options of a command on a checkpoint."""
    g = p.add_argument_group("checkpoints (a .safetensors file or a directory of shards)")
    g.add_argument("--rule", action="append", default=[], metavar="PATTERN:SETTINGS",
                   help="per-tensor settings, e.g. '*.weight:num_bits=4,block_size=32,axis=-1'"
                        " or 'lm_head.*:copy' (repeatable; the first match wins)")
    g.add_argument("--rules", metavar="FILE.json", help="more rules from a JSON file "
                   "([[pattern, settings or null], ...]), after the --rule ones")
    g.add_argument("--skip", action="append", default=[], metavar="PATTERN",
                   help="copy tensors whose name matches this glob (repeatable)")
    if info:
        g.add_argument("--plot", metavar="FILE.png", help="plot the SQNR per tensor (matplotlib)")
    else:
        g.add_argument("--workers", type=_count, default=None, metavar="N",
                       help="write N shards at once in local processes")
        g.add_argument("--no-error-stats", dest="error_stats", action="store_false",
                       help="do not measure each tensor's error (faster for float16)")
        g.add_argument("--wait", action="store_true",
                       help="if another qdq run is writing into DST, wait for it to end "
                            "(by default the run fails at once, naming it)")


def add_export_options(p: argparse.ArgumentParser) -> None:
    """The options of ``qdq quantize`` on a checkpoint (the export's format)."""
    g = p.add_argument_group("checkpoint export (compressed-tensors, loaded by transformers "
                             "and vLLM)")
    g.add_argument("--format", default="compressed-tensors", choices=list(EXPORT_FORMATS),
                   help="compressed-tensors = pack-quantized (int32 words, any width); "
                        "int-quantized stores int8")
    g.add_argument("--codes-overflow", default="error", choices=list(CODES_OVERFLOW),
                   help="codes outside the grid (one step past it in bfloat16 with 6 bits "
                        "or more; below 0 for negative data on an --unsigned grid without "
                        "--calibrate): refuse before writing (error), or store the nearest "
                        "grid code and count them (clamp)")


def export_defaults(ns: argparse.Namespace) -> None:
    """An export's axis when none is given: 0 per channel, -1 with --block-size."""
    if ns.axis is None:
        ns.axis = -1 if ns.block_size is not None else 0


def _rules(ns: argparse.Namespace) -> list[tuple[str, Any]]:
    rules: list[tuple[str, Any]] = [parse_rule(r) for r in ns.rule]
    if ns.rules:
        rules += load_rules(ns.rules)
    return rules


def _settings(ns: argparse.Namespace) -> dict:
    for flag, given in (("--range", ns.range is not None),
                        ("--dtype", ns.dtype is not None),
                        ("--shape", ns.shape is not None), ("--offset", ns.offset != 0),
                        ("--order", ns.order != "C"), ("--bfloat16-bits", ns.bfloat16_bits)):
        if given:
            raise ValueError(f"{flag} applies to .npy and raw files, not to a checkpoint "
                             "(each tensor's range is its own; dtypes come from the header)")
    return {"num_bits": ns.num_bits, "signed_input": not ns.unsigned,
            "narrow_range": ns.narrow_range, "round_mode": ns.round_mode, "axis": ns.axis,
            "block_size": ns.block_size, "calibrate": ns.calibrate}


def check_checkpoint_command_line(ns: argparse.Namespace) -> None:
    """The options and the --rule settings, checked before any file is opened (ValueError)."""
    dst = getattr(ns, "dst", None)
    if dst is not None and dst.endswith(".npy"):
        raise ValueError(f"a checkpoint SRC is written as safetensors: DST {dst!r} must be a "
                         ".safetensors file or a directory, not a .npy path")
    check_rules([parse_rule(r) for r in ns.rule],
                check_settings(_settings(ns), None, "the options"))


def _progress(ns: argparse.Namespace) -> bool:
    return not ns.quiet and sys.stderr.isatty()


def cmd_run_checkpoint(ns: argparse.Namespace) -> int:
    """``qdq run`` on a checkpoint: write it, print the table."""
    s = _settings(ns)
    report = quantize_and_dequantize_checkpoint(
        ns.src, ns.dst, rules=_rules(ns), skip=ns.skip, chunk_bytes=ns.chunk_bytes,
        progress=_progress(ns), workers=ns.workers, error_stats=ns.error_stats, wait=ns.wait,
        **s)
    if ns.json:
        print(report.to_json())
        return 0
    print(report.table())
    print(f"wrote {terminal_text(ns.dst)}: {len(report.shards_written)} file(s) written, "
          f"{len(report.shards_skipped)} already complete, {report.nbytes / 2**20:,.1f} MiB "
          f"in {report.seconds:.2f} s ({report.nbytes / max(report.seconds, 1e-9) / 1e9:.2f} "
          "GB/s)" + (f"; copied {', '.join(report.files_copied)}" if report.files_copied
                     else ""))
    return 0


def cmd_quantize_checkpoint(ns: argparse.Namespace) -> int:
    """``qdq quantize`` on a checkpoint: export it as compressed-tensors, print the table."""
    if ns.params is not None:
        raise ValueError("--params applies to .npy codes; a checkpoint export keeps its scales "
                         "in the checkpoint")
    s = _settings(ns)
    report = quantize_checkpoint(
        ns.src, ns.dst, format=ns.format, rules=_rules(ns), skip=ns.skip,
        codes_overflow=ns.codes_overflow, chunk_bytes=ns.chunk_bytes, progress=_progress(ns),
        workers=ns.workers, error_stats=ns.error_stats, wait=ns.wait, **s)
    if ns.json:
        print(report.to_json())
        return 0
    print(report.table())
    out = sum(os.path.getsize(p) for p in report.shards_written + report.shards_skipped)
    print(f"wrote {terminal_text(ns.dst)} ({EXPORT_FORMATS[ns.format]}): "
          f"{len(report.shards_written)} file(s) written, {len(report.shards_skipped)} already "
          f"complete, {report.nbytes / 2**20:,.1f} MiB of tensors in, {out / 2**20:,.1f} MiB "
          f"out, in {report.seconds:.2f} s" + _copied(report.files_copied))
    return 0


def _copied(files: list[str]) -> str:
    """'; copied a, b' for the summary line (names from the model directory, escaped)."""
    return f"; copied {', '.join(terminal_text(f) for f in files)}" if files else ""


def _require_matplotlib() -> None:
    try:
        import matplotlib
    except ImportError:
        raise ValueError("--plot needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")


def plot_sqnr(report: CheckpointReport, path: str) -> None:
    """The SQNR of each quantized tensor, sorted, as a PNG (needs matplotlib)."""
    _require_matplotlib()
    import matplotlib.pyplot as plt

    points = sorted((t.sqnr_db, t.name) for t in report
                    if t.sqnr_db is not None and math.isfinite(t.sqnr_db))
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(range(len(points)), [p[0] for p in points], marker=".", linestyle="-")
    for i, (v, name) in enumerate(points[:3]):
        ax.annotate(name, (i, v), fontsize=7, xytext=(4, 4), textcoords="offset points")
    ax.set_xlabel("tensor (sorted by SQNR)")
    ax.set_ylabel("SQNR (dB)")
    ax.set_title(f"SQNR per tensor ({len(points)} quantized tensors)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def compressed_table(d: dict) -> str:
    """The text of ``qdq info`` on a compressed-tensors checkpoint (see describe_compressed)."""
    rows = [("module", "scheme", "shape", "dtype", "stored KiB", "dense KiB")]
    for m in d["modules"]:
        rows.append((terminal_text(m["module"]), terminal_text(str(m["scheme"])),
                     "x".join(map(str, m["shape"])), terminal_text(str(m["dtype"])),
                     f"{m['stored_bytes'] / 1024:,.1f}", f"{m['dense_bytes'] / 1024:,.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
             for r in rows]
    t = d["totals"]
    mib = 2**20
    lines.append(f"{t['quantized_modules']} quantized modules "
                 f"({terminal_text(str(d['format']))}): "
                 f"{t['quantized_dense_bytes'] / mib:,.1f} MiB dense -> "
                 f"{t['quantized_stored_bytes'] / mib:,.1f} MiB stored; other tensors "
                 f"{t['other_bytes'] / mib:,.1f} MiB; checkpoint {t['stored_bytes'] / mib:,.1f} "
                 f"MiB, {t['dense_bytes'] / mib:,.1f} MiB dense: compression ratio "
                 f"{t['compression_ratio']:.2f}")
    return "\n".join(lines)


def cmd_dequantize_checkpoint(ns: argparse.Namespace) -> int:
    """``qdq dequantize`` on a compressed-tensors checkpoint: the dense one it loads as."""
    if ns.params is not None:
        raise ValueError("--params applies to .npy codes; a compressed-tensors checkpoint "
                         "holds its scales")
    r = dequantize_checkpoint(ns.src, ns.dst, chunk_bytes=ns.chunk_bytes)
    print(f"wrote {terminal_text(ns.dst)}: {r['modules']} modules dequantized, "
          f"{len(r['files'])} file(s), {r['bytes'] / 2**20:,.1f} MiB in {r['seconds']:.2f} s"
          + _copied(r["files_copied"]))
    return 0


def cmd_info_checkpoint(ns: argparse.Namespace) -> int:
    """``qdq info`` on a checkpoint: the table (or JSON) of what the op would do.

    On a compressed-tensors checkpoint: what it holds (scheme per module,
    sizes, the compression ratio).
    """
    ck = read_compressed(ns.src)
    if ck is not None:
        d = describe_compressed(ck)
        print(json.dumps(d, indent=1) if ns.json else compressed_table(d))
        return 0
    if ns.plot:
        _require_matplotlib()
    report = analyze_checkpoint(ns.src, _rules(ns), ns.skip, _settings(ns), ns.chunk_bytes,
                                _progress(ns))
    if ns.plot:
        plot_sqnr(report, ns.plot)
    print(report.to_json() if ns.json else report.table())
    return 0
