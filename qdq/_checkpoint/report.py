"""What a checkpoint run reports: one record per tensor, totals, a table and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator

from .._core.diagnostics import terminal_text

__all__ = ["CheckpointReport", "TensorRecord"]


@dataclass(frozen=True)
class TensorRecord:
    """What was done to one tensor.

    The fields are the constructor's parameters (all of them are attributes).

    Parameters
    ----------
    name, shard : str
        The tensor and the file holding it.
    dtype : str
        Its safetensors dtype (``"F32"``, ``"BF16"``, ...).
    shape : tuple of int
        Its shape.
    action : {"qdq", "quantize", "copy"}
        Quantize-dequantized; exported as integer codes and scales
        (:func:`qdq.quantize_checkpoint`); or copied byte for byte.
    reason : str
        Why: ``"default"``, ``"rule 'PATTERN'"``, ``"skip 'PATTERN'"``, ...
    settings : dict or None, default None
        The op's resolved keyword arguments (axis counted from the front).
    status : {"written", "skipped", "analyzed"}, default "written"
        Written now; left as it was (its shard was complete from an earlier
        run with the same settings: no figures then); or only measured.
    range, scale : (float, float) or None, default None
        The adjusted range (lowest min, highest max over channels or blocks)
        and the smallest and largest scale.
    max_abs_error, sqnr_db : float or None, default None
        The largest absolute error and 10 log10(signal / noise) over finite
        elements (``inf`` when the op changed nothing).
    clipped, nan : int or None, default None
        Elements the clamp changed (none: the range is the data's) and NaN inputs.
    seconds : float, default 0.0
        Time spent on the tensor.
    nbytes : int, default 0
        Its bytes of data.
    codes_clamped : int or None, default None
        An export's codes one step past the grid that were stored as the
        nearest grid code (``codes_overflow="clamp"``).
    nonfinite_out : int or None, default None
        Outputs that are inf or NaN where the input was finite (None: not
        measured, copied, or ``error_stats=False``).
    float16_overflow : int or None, default None
        The channels (blocks, or 1 for the tensor) whose float16 scale
        overflowed, which makes their output inf/NaN (None: copied or skipped).
    warning : str or None, default None
        The warning raised for the tensor (the float16 scale overflow), if any.

    Examples
    --------
    >>> t = TensorRecord("b", "m.safetensors", "F32", (4,), "copy", "default: rank 1")
    >>> t.action, t.sqnr_db is None, t.nonfinite
    ('copy', True, False)
    """

    name: str
    shard: str
    dtype: str
    shape: tuple
    action: str
    reason: str
    settings: dict | None = None
    status: str = "written"
    range: tuple | None = None
    scale: tuple | None = None
    max_abs_error: float | None = None
    sqnr_db: float | None = None
    clipped: int | None = None
    nan: int | None = None
    seconds: float = 0.0
    nbytes: int = 0
    codes_clamped: int | None = None
    nonfinite_out: int | None = None
    float16_overflow: int | None = None
    warning: str | None = None

    @property
    def nonfinite(self) -> bool:
        """Whether the op gave inf/NaN outputs the input did not have (or a scale overflowed)."""
        return bool(self.nonfinite_out) or bool(self.float16_overflow)


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (tuple, list)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    return v


def _settings_text(s: dict | None) -> str:
    if s is None:
        return "copy"
    parts = [f"int{s['num_bits']}" if s["signed_input"] else f"uint{s['num_bits']}"]
    if s["narrow_range"]:
        parts.append("narrow")
    if s["round_mode"] != "HALF_TO_EVEN":
        parts.append(s["round_mode"])
    if s["block_size"] is not None:
        parts.append(f"axis {s['axis']} blocks {s['block_size']}")
    elif s["axis"] is not None:
        parts.append(f"axis {s['axis']}")
    if s.get("calibrate") is not None:
        parts.append(f"calibrate {s['calibrate']}")
    return " ".join(parts)


@dataclass
class CheckpointReport:
    """The result of a checkpoint run: a :class:`TensorRecord` per tensor, in file order.

    Iterate over it for the records, index it by tensor name, or call
    :meth:`to_json` / :meth:`table`.

    The fields are the constructor's parameters (all of them are attributes).

    Parameters
    ----------
    tensors : list of TensorRecord, optional
        The records, in file order.
    shards_written, shards_skipped : list of str, optional
        Output files written now, and those left as they were (complete from an
        earlier run with the same settings and source).
    files_copied : list of str, optional
        The model directory's other files copied into the destination
        (``config.json``, tokenizer files, ...), by name.
    nbytes : int, default 0
        Bytes of tensor data in the checkpoint.
    seconds : float, default 0.0
        Wall time of the run.

    Examples
    --------
    >>> r = CheckpointReport([TensorRecord("w", "m.safetensors", "F32", (2, 2), "copy",
    ...                                    "rule 'w'", nbytes=16)], nbytes=16)
    >>> r["w"].reason, len(r), r.totals()["copied_bytes"]
    ("rule 'w'", 1, 16)
    >>> print(r.table())
    tensor  shape  dtype  settings  SQNR dB  max error  clipped
    w       2x2    F32    copy
    1 tensors: 0 quantized (0.0 MiB), 1 copied (0.0 MiB), clipped 0
    """

    tensors: list[TensorRecord] = field(default_factory=list)
    shards_written: list[str] = field(default_factory=list)
    shards_skipped: list[str] = field(default_factory=list)
    nbytes: int = 0
    seconds: float = 0.0
    files_copied: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[TensorRecord]:
        return iter(self.tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __getitem__(self, name: str) -> TensorRecord:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(name)

    def totals(self) -> dict:
        """The counts and bytes quantized / copied, the worst error and the lowest SQNR.

        Returns
        -------
        dict
            ``tensors``, ``quantized``, ``copied``, ``quantized_bytes``,
            ``copied_bytes``, ``max_abs_error``, ``min_sqnr_db``, ``clipped``,
            ``codes_clamped``, ``nonfinite_tensors`` (tensors with inf/NaN outputs
            their input did not have, see :attr:`TensorRecord.nonfinite`),
            ``nonfinite_out`` (such outputs, over the measured tensors), ``bytes``,
            ``seconds``, ``shards_written``, ``shards_skipped``.

        Examples
        --------
        >>> r = CheckpointReport([TensorRecord("b", "m.safetensors", "F32", (4,), "copy",
        ...                                    "default: rank 1", nbytes=16)])
        >>> r.totals()["copied"], r.totals()["min_sqnr_db"]
        (1, None)
        """
        done = [t for t in self.tensors if t.action != "copy"]
        measured = [t for t in done if t.sqnr_db is not None]
        finite = [t.sqnr_db for t in measured
                  if t.sqnr_db is not None and not math.isnan(t.sqnr_db)]
        return {"tensors": len(self.tensors), "quantized": len(done),
                "copied": len(self.tensors) - len(done),
                "quantized_bytes": sum(t.nbytes for t in done),
                "copied_bytes": sum(t.nbytes for t in self.tensors if t.action == "copy"),
                "max_abs_error": max((t.max_abs_error or 0.0 for t in measured), default=None),
                "min_sqnr_db": min(finite, default=None),
                "clipped": sum(t.clipped or 0 for t in measured),
                "codes_clamped": sum(t.codes_clamped or 0 for t in done),
                "nonfinite_tensors": sum(t.nonfinite for t in done),
                "nonfinite_out": sum(t.nonfinite_out or 0 for t in done),
                "bytes": self.nbytes, "seconds": self.seconds,
                "shards_written": len(self.shards_written),
                "shards_skipped": len(self.shards_skipped)}

    def to_json(self) -> str:
        """The records and totals as JSON (non-finite numbers as "inf", "-inf", "nan").

        Returns
        -------
        str
            A JSON document: ``tensors`` (the records' fields, and ``nonfinite``:
            :attr:`TensorRecord.nonfinite`), ``totals``, ``shards_written`` and
            ``shards_skipped``.

        Examples
        --------
        >>> import json
        >>> r = CheckpointReport([TensorRecord("w", "m.safetensors", "F32", (2, 2), "qdq",
        ...                                    "default", sqnr_db=float("inf"))])
        >>> json.loads(r.to_json())["tensors"][0]["sqnr_db"]
        'inf'
        """
        doc = {"tensors": [_json_value({**asdict(t), "nonfinite": t.nonfinite})
                           for t in self.tensors],
               "totals": _json_value(self.totals()),
               "shards_written": self.shards_written, "shards_skipped": self.shards_skipped,
               "files_copied": self.files_copied}
        return json.dumps(doc, indent=1)

    def table(self) -> str:
        """A text table: name, shape, dtype, settings, SQNR, max error, clipped; totals.

        Tensors whose output has inf/NaN their input did not have (a float16
        scale overflow) are marked: an ``inf/NaN out`` column (the count, or
        ``yes`` without error statistics) and a ``warning:`` line naming them.

        Returns
        -------
        str
            One line per tensor under a header, then a line of totals (see the
            class's example), then the warning line if a tensor is marked.

        Examples
        --------
        >>> r = CheckpointReport([TensorRecord("b", "m.safetensors", "F32", (4,), "copy",
        ...                                    "default: rank 1", nbytes=16)])
        >>> print(r.table().splitlines()[-1])
        1 tensors: 0 quantized (0.0 MiB), 1 copied (0.0 MiB), clipped 0
        >>> s = {"num_bits": 8, "signed_input": True, "narrow_range": False,
        ...      "round_mode": "HALF_TO_EVEN", "axis": None, "block_size": None}
        >>> r.tensors.append(TensorRecord("w", "m.safetensors", "F16", (2, 2), "qdq", "default",
        ...                               s, float16_overflow=1, nonfinite_out=4, nbytes=8))
        >>> print(r.table())  # doctest: +NORMALIZE_WHITESPACE
        tensor  shape  dtype  settings  SQNR dB  max error  clipped  inf/NaN out
        b       4      F32    copy
        w       2x2    F16    int8                                            4
        2 tensors: 1 quantized (0.0 MiB), 1 copied (0.0 MiB), clipped 0, inf/NaN outputs 4
        warning: 1 tensor with inf/NaN outputs its input did not have: 'w' (4 outputs,
        float16 scale overflow)
        """
        marked = [t for t in self.tensors if t.nonfinite]
        rows: list[tuple[str, ...]] = [
            ("tensor", "shape", "dtype", "settings", "SQNR dB", "max error", "clipped")]
        if marked:
            rows[0] += ("inf/NaN out",)
        for t in self.tensors:
            sq = "" if t.sqnr_db is None else f"{t.sqnr_db:.2f}"
            err = "" if t.max_abs_error is None else f"{t.max_abs_error:.4g}"
            clip = "" if t.clipped is None else f"{t.clipped:,}"
            row: tuple[str, ...] = (terminal_text(t.name), "x".join(map(str, t.shape)) or "()",
                                    t.dtype, _settings_text(t.settings), sq, err, clip)
            if marked:
                row += (("yes" if t.nonfinite_out is None else f"{t.nonfinite_out:,}")
                        if t.nonfinite else "",)
            rows.append(row)
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) if i < 4 else c.rjust(w)
                           for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
                 for r in rows]
        tot = self.totals()
        sq = "" if tot["min_sqnr_db"] is None else f", lowest SQNR {tot['min_sqnr_db']:.2f} dB"
        err = "" if tot["max_abs_error"] is None else f", max error {tot['max_abs_error']:.4g}"
        clamped = (f", codes clamped {tot['codes_clamped']:,}" if tot["codes_clamped"] else "")
        bad = f", inf/NaN outputs {tot['nonfinite_out']:,}" if tot["nonfinite_out"] else ""
        lines.append(f"{tot['tensors']} tensors: {tot['quantized']} quantized "
                     f"({tot['quantized_bytes'] / 2**20:,.1f} MiB), {tot['copied']} copied "
                     f"({tot['copied_bytes'] / 2**20:,.1f} MiB){sq}{err}, clipped "
                     f"{tot['clipped']:,}{clamped}{bad}")
        if marked:
            lines.append(_warning_line(marked))
        return "\n".join(lines)


def _warning_line(marked: list[TensorRecord], most: int = 8) -> str:
    """One line naming the tensors with inf/NaN outputs their input did not have."""
    def what(t: TensorRecord) -> str:
        parts = [] if t.nonfinite_out is None else [f"{t.nonfinite_out:,} outputs"]
        if t.float16_overflow:
            s = t.settings or {}
            unit = ("blocks" if s.get("block_size") is not None else
                    "channels" if s.get("axis") is not None else "")
            parts.append("float16 scale overflow" + (f" in {t.float16_overflow:,} {unit}"
                                                     if unit else ""))
        return f"{t.name!r} ({', '.join(parts)})"

    names = ", ".join(what(t) for t in marked[:most])
    more = f", and {len(marked) - most:,} more" if len(marked) > most else ""
    n = len(marked)
    return (f"warning: {n:,} tensor{'s' if n != 1 else ''} with inf/NaN outputs "
            f"{'their' if n != 1 else 'its'} input did not have: {names}{more}")
