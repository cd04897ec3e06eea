"""The ``qdq`` command line: ``run``, ``info``, ``quantize``, ``dequantize`` and ``demo``."""

from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import sys
import tempfile
import textwrap
import time
import warnings

import numpy as np

from .. import __version__, _reference
from .._calibrate.methods import check_calibration
from .._core.blocks import check_block_size
from .._core.diagnostics import terminal_text
from .._core.engine import build_info
from .._core.formats import FLOAT64
from .._core.op import quantize_and_dequantize
from .._core.validate import OpArgs, given_range
from .._io.atomic import remove_stale_temporaries
from .._stream.analysis import analyze_file
from .._stream.files import (
    DEFAULT_CHUNK_BYTES,
    FileOptions,
    default_params_path,
    dequantize_file,
    quantize_file,
    run_op_file,
)
from .._stream.progress import Progress
from .checkpoint import (
    add_checkpoint_options,
    add_export_options,
    check_checkpoint_command_line,
    cmd_dequantize_checkpoint,
    cmd_info_checkpoint,
    cmd_quantize_checkpoint,
    cmd_run_checkpoint,
    export_defaults,
    is_checkpoint,
)
from .report import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_STATUS,
    EXIT_USAGE,
    describe_params,
    fail,
    float_text,
    info_json,
    params_json,
    print_json,
    show_warning,
)

EXAMPLES = """\
examples:
  qdq demo                                  stream a 512 MiB synthetic tensor, check it
  qdq info w.npy --num-bits 4 --axis 0      range, scale and error; writes nothing
  qdq info w.npy --json                     the same as one JSON object
  qdq run w.npy out.npy --num-bits 4 --axis -1 --block-size 128
  qdq run w.bin out.npy --dtype float32 --shape 1024,4096
  qdq run model/ out/ --rule '*.weight:num_bits=4,block_size=32,axis=-1' --skip 'lm_head.*'
  qdq quantize w.npy codes.npy --num-bits 8 --axis 0   (codes.params.json beside it)
  qdq dequantize codes.npy back.npy"""

_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 1 << 10, "m": 1e6, "mb": 1e6,
          "mib": 1 << 20, "g": 1e9, "gb": 1e9, "gib": 1 << 30, "t": 1e12, "tb": 1e12,
          "tib": 1 << 40}


def parse_size(text: str) -> int:
    """'512MiB', '2GB', '1000' -> bytes."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (examples: 512MiB, 2GiB, 100MB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(p) for p in re.split(r"[,x\s]+", text.strip().strip("()")) if p)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (example: 1024,4096)") from None
    if not dims or any(d < 0 for d in dims):
        raise argparse.ArgumentTypeError(f"not a shape: {text!r} (example: 1024,4096)")
    return dims


def parse_float(text: str) -> float:
    """A finite or infinite float ('nan' is refused: a range bound cannot be NaN)."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(v):
        raise argparse.ArgumentTypeError("a range bound cannot be NaN")
    return v


def parse_chunk_mb(text: str) -> int:
    """--chunk-mb: MiB as a number, at least 1 KiB; returns bytes."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of MiB: {text!r}") from None
    if not math.isfinite(v) or v * 2**20 < 1024:
        raise argparse.ArgumentTypeError(f"chunk size must be a finite number of MiB of at "
                                         f"least 1 KiB (0.0009765625), got {text!r}")
    return int(v * 2**20)


def _chunk_option(g) -> None:
    g.add_argument("--chunk-mb", dest="chunk_bytes", type=parse_chunk_mb,
                   default=DEFAULT_CHUNK_BYTES, metavar="MIB",
                   help=f"chunk size in MiB (default {DEFAULT_CHUNK_BYTES >> 20})")


def _range_tokens(argv: list[str]) -> list[str]:
    """Let ``--range -1e3 1e3`` and ``--range -inf 0`` through (argparse reads them as options)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--range":
            vals = argv[i + 1:i + 3]
            if len(vals) == 2 and all(_is_number(v) for v in vals):
                out += ["--range", *[f" {v}" if v.startswith("-") else v for v in vals]]
                i += 3
                continue
        out.append(tok)
        i += 1
    return out


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _op_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("the op (TensorFlow's QuantizeAndDequantizeV2 arguments)")
    g.add_argument("--num-bits", type=int, default=8, help="bit width (default 8)")
    g.add_argument("--unsigned", action="store_true", help="unsigned output grid")
    g.add_argument("--range", nargs=2, type=parse_float, metavar=("MIN", "MAX"),
                   help="a given range (clamped); default: the data's min and max")
    g.add_argument("--round-mode", default="HALF_TO_EVEN", choices=["HALF_TO_EVEN", "HALF_UP"])
    g.add_argument("--narrow-range", action="store_true", help="signed grid without its minimum")
    g.add_argument("--axis", type=int, default=None, help="per channel along this axis")
    g.add_argument("--calibrate", default=None, metavar="METHOD",
                   help="a calibrated range instead of min/max: mse, entropy, minmax, "
                        "percentile or percentile:P (e.g. percentile:99.99); clamped")
    g.add_argument("--block-size", type=int, default=None, metavar="B",
                   help="block-wise: one range per block of B elements along --axis "
                        "(e.g. --axis -1 --block-size 128 for int4 group-wise); one pass")
    g = p.add_argument_group("input")
    _chunk_option(g)
    g.add_argument("--dtype", help="element type of a raw binary SRC (float16, bfloat16, "
                                   "float32, float64, or a NumPy type string like '>f4')")
    g.add_argument("--shape", type=parse_shape, help="shape of a raw binary SRC, e.g. 1024,4096")
    g.add_argument("--order", default="C", choices=["C", "F"], help="order of a raw SRC")
    g.add_argument("--offset", type=int, default=0, help="byte offset of a raw SRC's data")
    g.add_argument("--bfloat16-bits", action="store_true",
                   help="SRC holds bfloat16 bit patterns (uint16 or 2-byte void data)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true",
                   help="print one JSON object instead of text (keys: see the README)")


def _op_args(ns) -> OpArgs:
    return OpArgs(not ns.unsigned, ns.num_bits, ns.range is not None, ns.round_mode,
                   ns.narrow_range)


def _file_options(ns) -> FileOptions:
    return FileOptions(ns.chunk_bytes, _show_progress(ns), ns.dtype, ns.shape, ns.order,
                       ns.offset, ns.bfloat16_bits)


def _show_progress(ns) -> bool:
    return not ns.quiet and sys.stderr.isatty()


def _remove_stale(*paths, say: bool = True) -> list[str]:
    """Remove temporaries an interrupted qdq left beside these destinations; say so."""
    removed = []
    for path in paths:
        for tmp in remove_stale_temporaries(path):
            removed.append(tmp)
            if say:
                print(f"removed {terminal_text(tmp)} (a temporary file left by an "
                      "interrupted qdq)")
    return removed


def cmd_run(ns) -> int:
    if is_checkpoint(ns.src):
        return cmd_run_checkpoint(ns)
    lo, hi = (ns.range if ns.range is not None else (None, None))
    removed = _remove_stale(ns.dst, say=not ns.json)
    params, t = run_op_file(ns.src, ns.dst, lo, hi, _op_args(ns), ns.axis, _file_options(ns),
                            block_size=ns.block_size, calibrate=ns.calibrate)
    if ns.json:
        print_json({"src": ns.src, "dst": ns.dst, "bytes": t["bytes"],
                     "range_seconds": t.get("range_seconds"),
                     "write_seconds": t["write_seconds"], "params": params_json(params),
                     "float16_overflow": t["float16_overflow"],
                     "removed_temporaries": removed})
        return EXIT_OK
    describe_params(params)
    _say_overflow(t["float16_overflow"], params, "has")
    total = t.get("range_seconds", 0.0) + t["write_seconds"]
    passes = [f"{t['bytes'] / t['range_seconds'] / 1e9:.2f} GB/s range pass"] \
        if "range_seconds" in t else []
    passes.append(f"{t['bytes'] / t['write_seconds'] / 1e9:.2f} GB/s write pass")
    print(f"wrote {terminal_text(ns.dst)}: {t['bytes'] / 2**20:,.1f} MiB in {total:.2f} s "
          f"({', '.join(passes)})")
    return EXIT_OK


def _say_overflow(count: int, params, verb: str) -> None:
    """The float16 scale overflow, in the summary (the warning says it on stderr too)."""
    if count:
        unit = ("blocks" if params.per_block else "channels" if params.per_channel
                else "the tensor")
        where = unit if unit == "the tensor" else f"{count:,} {unit}"
        print(f"warning: float16 scale overflow in {where}: the output {verb} inf/NaN where "
              "the input is finite (compute in float32 to avoid it)")


def cmd_info(ns) -> int:
    if is_checkpoint(ns.src):
        return cmd_info_checkpoint(ns)
    lo, hi = (ns.range if ns.range is not None else (None, None))
    st = analyze_file(ns.src, lo, hi, _op_args(ns), ns.axis, _file_options(ns),
                      block_size=ns.block_size, calibrate=ns.calibrate)
    if ns.json:
        print_json(info_json(ns, st))
        return EXIT_OK
    mn, mx = st["range"]
    print(f"{terminal_text(ns.src)}: {st['dtype']} {st['shape']}, {st['elements']:,} elements"
          + (f", {st['nan']:,} NaN" if st["nan"] else ""))
    if ns.range is None:
        unit = "block" if "blocks" in st else "channel"
        if ns.axis is None:
            label = (f"calibrated range ({st['calibrate']})" if "minmax" in st
                     else "data range")
            print(f"{label} [{float_text(mn[0])}, {float_text(mx[0])}] (NaN ignored)")
        elif mn.size == 0 or np.isnan(mn).all():
            print(f"data range per {unit}: {mn.size} {unit}s, none holding a non-NaN value")
        else:
            print(f"data range per {unit}: min from {float(np.nanmin(mn))!r}, max up to "
                  f"{float(np.nanmax(mx))!r} (NaN ignored)")
    describe_params(st["params"])
    _say_overflow(st["float16_overflow"], st["params"], "would have")
    sqnr = ("n/a (no finite outputs)" if math.isnan(st["sqnr_db"])
            else f"{st['sqnr_db']:.2f} dB")
    print(f"error: max abs {st['max_abs_error']:.6g}, SQNR {sqnr}, clipped "
          f"{st['clipped']:,}" + (f", non-finite outputs {st['nonfinite_out']:,}"
                                  if st["nonfinite_out"] else ""))
    if "minmax" in st:
        m = st["minmax"]
        msq = "n/a" if math.isnan(m["sqnr_db"]) else f"{m['sqnr_db']:.2f} dB"
        print(f"calibrated ({st['calibrate']}) against min/max: SQNR {sqnr} against {msq}, "
              f"max abs error {st['max_abs_error']:.6g} against {m['max_abs_error']:.6g}")
    if "blocks" in st:
        b = st["blocks"]
        low = ("n/a" if math.isnan(b["min_sqnr_db"]) else f"{b['min_sqnr_db']:.2f} dB")
        mean = ("n/a" if math.isnan(b["mean_sqnr_db"]) else f"{b['mean_sqnr_db']:.2f} dB")
        print(f"per block ({b['count']:,} blocks): worst max abs error "
              f"{b['worst_max_abs_error']:.6g}, lowest SQNR {low}, mean SQNR {mean}")
    return EXIT_OK


def cmd_quantize(ns) -> int:
    if is_checkpoint(ns.src):
        return cmd_quantize_checkpoint(ns)
    for flag, given in (("--json", ns.json), ("--rule", ns.rule), ("--rules", ns.rules),
                        ("--skip", ns.skip), ("--workers", ns.workers is not None),
                        ("--wait", ns.wait),
                        ("--format", ns.format != "compressed-tensors"),
                        ("--codes-overflow", ns.codes_overflow != "error")):
        if given:
            raise ValueError(f"{flag} applies to a checkpoint SRC, not to {ns.src}")
    lo, hi = (ns.range if ns.range is not None else (None, None))
    params_path = ns.params or default_params_path(ns.dst)
    _remove_stale(ns.dst, params_path)
    params = quantize_file(ns.src, ns.dst, lo, hi, not ns.unsigned, ns.num_bits,
                           ns.range is not None,
                           ns.round_mode, ns.narrow_range, ns.axis, params_path=params_path,
                           chunk_bytes=ns.chunk_bytes, progress=_show_progress(ns),
                           dtype=ns.dtype, shape=ns.shape, order=ns.order, offset=ns.offset,
                           bfloat16_bits=ns.bfloat16_bits, block_size=ns.block_size)
    describe_params(params)
    code = np.load(ns.dst, mmap_mode="r").dtype
    print(f"wrote {terminal_text(ns.dst)} ({code} codes) and {terminal_text(params_path)}")
    return EXIT_OK


def cmd_dequantize(ns) -> int:
    if is_checkpoint(ns.src):
        return cmd_dequantize_checkpoint(ns)
    _remove_stale(ns.dst)
    params = dequantize_file(ns.src, ns.dst, ns.params, chunk_bytes=ns.chunk_bytes,
                             progress=_show_progress(ns), bfloat16_bits=ns.bfloat16_bits)
    describe_params(params)
    print(f"wrote {terminal_text(ns.dst)} ({params.dtype})")
    return EXIT_OK


def _write_demo_tensor(path: str, rows: int, cols: int, progress: bool, seed: int = 0) -> None:
    """A synthetic float32 .npy written in chunks; its global extremes sit in row 0."""
    header = {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)}
    rng = np.random.default_rng(seed)
    prog = Progress(rows * cols * 4, "writing the demo tensor", progress)
    step = max(1, (16 << 20) // (cols * 4))
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        for r in range(0, rows, step):
            block = np.clip(rng.standard_normal((min(step, rows - r), cols), dtype=np.float32),
                            -6, 6)
            if r == 0:
                block[0, 0], block[0, 1] = -7.5, 7.25   # the extremes of the whole tensor
            f.write(block.tobytes())
            prog.update(block.nbytes)
    prog.close()


def cmd_demo(ns) -> int:
    cols = 1024
    rows = max(2, ns.size // (cols * 4))
    show = _show_progress(ns)
    workdir = tempfile.mkdtemp(prefix="qdq-demo-", dir=ns.dir)
    src, dst = os.path.join(workdir, "tensor.npy"), os.path.join(workdir, "tensor.qdq.npy")
    try:
        print(f"qdq {__version__} demo: a {rows:,} x {cols} float32 tensor "
              f"({rows * cols * 4 / 2**20:,.0f} MiB) in {workdir}")
        _write_demo_tensor(src, rows, cols, show)
        params, t = run_op_file(src, dst, None, None,
                                OpArgs(True, 8, False, "HALF_TO_EVEN", False), None,
                                FileOptions(progress=show))
        describe_params(params)
        t0 = time.perf_counter()
        shutil.copyfile(src, os.path.join(workdir, "copy.npy"))
        with open(os.path.join(workdir, "copy.npy"), "rb+") as f:
            os.fsync(f.fileno())
        copy_s = time.perf_counter() - t0
        os.unlink(os.path.join(workdir, "copy.npy"))
        nbytes = t["bytes"]
        print(f"streamed in two passes: range {nbytes / t['range_seconds'] / 1e9:.2f} GB/s, "
              f"write {nbytes / t['write_seconds'] / 1e9:.2f} GB/s (a plain copy of the file "
              f"with fsync: {nbytes / copy_s / 1e9:.2f} GB/s)")
        # Check a sample against the in-memory op and the NumPy reference: row 0 holds the
        # tensor's extremes, so the sample's own range is the whole tensor's.
        x = np.load(src, mmap_mode="r")
        y = np.load(dst, mmap_mode="r")
        pick = np.unique(np.concatenate([[0], np.random.default_rng(1).integers(0, rows, 255)]))
        sample_in = np.ascontiguousarray(x[pick])
        sample_out = np.ascontiguousarray(y[pick])
        expected = quantize_and_dequantize(sample_in)
        reference = _reference.quantize_and_dequantize(sample_in)
        same = np.array_equal(sample_out.view(np.uint32), expected.view(np.uint32)) and \
            np.array_equal(sample_out.view(np.uint32), reference.view(np.uint32))
        err = np.abs(sample_out.astype(np.float64) - sample_in)
        sqnr = 10 * math.log10(np.square(sample_in.astype(np.float64)).sum()
                               / np.square(err).sum())
        del x, y
        print(f"check: {pick.size} rows ({sample_in.size:,} values) against the in-memory op "
              f"and the NumPy reference: {'bit-identical' if same else 'MISMATCH'}")
        print(f"error on the sample: max abs {err.max():.6g} (half a step is "
              f"{float(params.inverse_scale) / 2:.6g}), SQNR {sqnr:.2f} dB")
        return EXIT_OK if same else EXIT_FAILURE
    finally:
        if ns.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _subparser(sub, name: str, help: str, examples: str = ""):
    epilog = (f"examples:\n{textwrap.indent(examples, '  ')}\n\n" if examples else "") \
        + EXIT_STATUS
    return sub.add_parser(name, help=help, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="qdq", description="TensorFlow's quantize_and_dequantize, bit for bit, over files "
                                "larger than memory.",
        epilog=f"{EXAMPLES}\n\n{EXIT_STATUS}",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version",
                    version=f"qdq {__version__} ({build_info()})")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    p = _subparser(sub, "run", "quantize and dequantize SRC into DST (.npy, or a safetensors "
                               "checkpoint), streaming",
                   "qdq run w.npy out.npy                       8 bits, the data's min and max\n"
                   "qdq run w.npy w.npy --num-bits 4 --axis 0   in place, per channel\n"
                   "qdq run w.npy out.npy --calibrate mse --json\n"
                   "qdq run model.safetensors out.safetensors --num-bits 4 --axis -1 "
                   "--block-size 32")
    p.add_argument("src", help=".npy file (or raw binary with --dtype and --shape), or a "
                               ".safetensors file or checkpoint directory")
    p.add_argument("dst", help="output .npy path (may be SRC: replaced when complete), or "
                               "the output checkpoint file or directory")
    _op_options(p)
    _json_option(p)
    add_checkpoint_options(p, info=False)
    p.set_defaults(func=cmd_run)
    p = _subparser(sub, "info", "range, scale and the error the op would introduce",
                   "qdq info w.npy                       range, scale, SQNR; writes nothing\n"
                   "qdq info w.npy --range -1 1 --json   clipped elements, as JSON\n"
                   "qdq info model/ --axis -1 --plot sqnr.png")
    p.add_argument("src", help=".npy or raw file, or a .safetensors file or checkpoint "
                               "directory (a table per tensor)")
    _op_options(p)
    _json_option(p)
    add_checkpoint_options(p, info=True)
    p.set_defaults(func=cmd_info)
    p = _subparser(sub, "quantize", "integer codes of SRC into DST (.npy, with the "
                                    "parameters beside it as JSON), or a checkpoint exported "
                                    "as compressed-tensors (codes and scales)",
                   "qdq quantize w.npy codes.npy --num-bits 4 --axis 0   "
                   "(writes codes.params.json)\n"
                   "qdq quantize model/ model-w8/ --codes-overflow clamp   int8 per channel\n"
                   "qdq quantize model/ model-w4/ --num-bits 4 --block-size 128   int4 groups")
    p.add_argument("src", help=".npy or raw file, or a checkpoint (a model directory with "
                               "config.json, an index, or a .safetensors file)")
    p.add_argument("dst", help="output .npy of integer codes, or the exported checkpoint "
                               "directory (or .safetensors file)")
    p.add_argument("--params", help="where to write the parameters (default: "
                                    "DST with .params.json for .npy)")
    _op_options(p)
    _json_option(p)
    add_checkpoint_options(p, info=False)
    add_export_options(p)
    p.set_defaults(func=cmd_quantize)
    p = _subparser(sub, "dequantize", "values from integer codes (the inverse of quantize), "
                                      "or a compressed-tensors checkpoint back to dense",
                   "qdq dequantize codes.npy back.npy   (reads codes.params.json)\n"
                   "qdq dequantize model-w4/ model-dense/")
    p.add_argument("src", help=".npy of integer codes, or a compressed-tensors checkpoint")
    p.add_argument("dst", help="output .npy, or the dense checkpoint's directory (or file)")
    p.add_argument("--params", help="the parameters' JSON (default: beside SRC)")
    _chunk_option(p)
    p.add_argument("--bfloat16-bits", action="store_true",
                   help="write bfloat16 results as uint16 bit patterns")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_dequantize)
    p = _subparser(sub, "demo", "stream a synthetic tensor through the op and check it",
                   "qdq demo --size 2GiB --dir /data --keep")
    p.add_argument("--size", type=parse_size, default=512 << 20,
                   help="size of the synthetic tensor (default 512MiB)")
    p.add_argument("--dir", default=None, help="where to put it (default: the temp directory)")
    p.add_argument("--keep", action="store_true", help="keep the files")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_demo)
    return ap


def check_command_line(ns, checkpoint: bool) -> None:
    """The op's flags, checked before any file is opened (ValueError, TypeError)."""
    if not hasattr(ns, "num_bits"):  # dequantize and demo: argparse checked everything
        return
    _op_args(ns)
    bs = check_block_size(ns.block_size, ns.axis)
    if ns.range is not None:
        given_range(ns.range[0], ns.range[1], FLOAT64, (), None)
    if checkpoint:  # the other flags: check_checkpoint_command_line
        return
    if ns.calibrate is not None:
        check_calibration(ns.calibrate, bs, ns.range is not None)
    if (ns.dtype is None) != (ns.shape is None):
        raise ValueError("a raw binary SRC needs both --dtype and --shape")
    if ns.dtype is None:
        for flag, given in (("--offset", ns.offset != 0), ("--order", ns.order != "C")):
            if given:
                raise ValueError(f"{flag} applies to raw binary files (with --dtype and "
                                 f"--shape); {ns.src} is read as a .npy file")


def main(argv=None) -> int:
    """Run the command line; the exit status (EXIT_STATUS says which)."""
    ap = build_parser()
    ns = ap.parse_args(_range_tokens(list(sys.argv[1:] if argv is None else argv)))
    checkpoint = ns.command in ("run", "info", "quantize") and is_checkpoint(ns.src)
    if checkpoint and ns.command == "quantize":
        export_defaults(ns)
    try:
        check_command_line(ns, checkpoint)
    except (ValueError, TypeError) as exc:
        return fail(exc, EXIT_USAGE, words=True)
    try:
        if checkpoint:
            check_checkpoint_command_line(ns)
    except (ValueError, TypeError) as exc:
        return fail(exc, EXIT_USAGE, words=False)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return ns.func(ns)
    except KeyboardInterrupt:
        print("qdq: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (ValueError, TypeError, OSError) as exc:
        # dequantize's messages name the parameters file's fields, a checkpoint's its rules'
        return fail(exc, EXIT_FAILURE, words=ns.command in ("run", "info", "quantize")
                    and not checkpoint)
