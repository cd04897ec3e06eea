"""Quantization parameters: the grid in T, the code types, and exact JSON.

:class:`QuantizationParams` is what :func:`qdq.quantization_params`,
:func:`qdq.quantize` and the file API return; it reads back from JSON bit for
bit (floats as ``float.hex``, NaN with its bits).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._io.atomic import write_text_atomic
from .._io.safetensors import parse_json
from .formats import Format, format_named, round_scalar, round_to, to_public
from .validate import Grid, check_flag, check_grid, check_round_mode, integer_grid

__all__ = ["QuantizationParams", "code_bounds", "code_dtype_for", "params_from_dict",
           "params_from_rows", "params_to_dict", "param_rows"]


@dataclass(frozen=True, eq=False)
class QuantizationParams:
    """The quantization grid for one range: SPEC step 3, in the type T.

    For a per-tensor range the values are NumPy scalars of T; per channel they
    are read-only 1-D arrays. bfloat16 values are held exactly in float32
    (so that ml_dtypes stays optional).

    The fields are the constructor's parameters (all of them are attributes).

    Parameters
    ----------
    dtype : str
        The type T: ``"float16"``, ``"bfloat16"``, ``"float32"`` or ``"float64"``.
    scale : scalar or ndarray
        The factor from values to the integer grid.
    inverse_scale : scalar or ndarray
        The factor back (computed by its own division, not ``1 / scale``).
    min_range, max_range : scalar or ndarray
        The adjusted range: the clamp bounds when the range is given.
    qmin, qmax : scalar
        The integer bounds converted to T (2**16 - 1 is inf in float16).
    num_bits : int
        The grid's bit width.
    signed_input : bool, default True
        A signed grid.
    narrow_range : bool, default False
        The signed grid lacks its most negative value.
    axis : int or None, default None
        The channel axis, None per tensor.
    round_mode : str, default "HALF_TO_EVEN"
        ``"HALF_TO_EVEN"`` or ``"HALF_UP"``.
    block_size : int or None, default None
        Block-wise parameters: blocks of this many elements along ``axis``;
        the values are arrays of the blocked shape (the tensor's shape with
        ``axis`` replaced by the number of blocks).

    Attributes
    ----------
    code_min, code_max : int
        The integer codes' bounds.
    per_channel, per_block : bool
        Whether the values are one per channel, or one per block.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> p = qdq.quantization_params(-1.0, 1.0, np.float32, num_bits=4)
    >>> print(p.scale, p.code_min, p.code_max)
    7.0 -8 7
    >>> qdq.QuantizationParams.from_json(p.to_json()) == p
    True
    """

    dtype: str
    scale: Any
    inverse_scale: Any
    min_range: Any
    max_range: Any
    qmin: Any
    qmax: Any
    num_bits: int
    signed_input: bool = True
    narrow_range: bool = False
    axis: int | None = None
    round_mode: str = "HALF_TO_EVEN"
    block_size: int | None = None

    @property
    def code_min(self) -> int:
        """The smallest integer code, as a Python int."""
        return integer_grid(self.signed_input, self.num_bits, self.narrow_range)[0]

    @property
    def code_max(self) -> int:
        """The largest integer code, as a Python int."""
        return integer_grid(self.signed_input, self.num_bits, self.narrow_range)[1]

    @property
    def per_channel(self) -> bool:
        """Whether the parameters hold one value per channel (not per block)."""
        return self.block_size is None and bool(np.ndim(self.scale) == 1)

    @property
    def per_block(self) -> bool:
        """Whether the parameters hold one value per block (``block_size`` is set)."""
        return self.block_size is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, QuantizationParams):
            return NotImplemented
        fields = ("dtype", "num_bits", "signed_input", "narrow_range", "axis", "round_mode",
                  "block_size")
        if any(getattr(self, f) != getattr(other, f) for f in fields):
            return False
        for f in _FIELDS:
            a, b = np.asarray(getattr(self, f)), np.asarray(getattr(other, f))
            if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict:
        """A plain, JSON-serialisable dict; floats as exact hex strings (``float.hex``).

        Returns
        -------
        dict
            The fields, for :meth:`from_dict`.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> qdq.quantization_params(-1.0, 1.0, np.float32, num_bits=4).to_dict()["scale"]
        '0x1.c000000000000p+2'
        """
        return params_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "QuantizationParams":
        """Parameters from :meth:`to_dict`'s dict, bit for bit.

        Parameters
        ----------
        d : dict
            A dict from :meth:`to_dict` (every field is checked).

        Returns
        -------
        QuantizationParams
            Equal, bit for bit, to the parameters that made ``d``.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> p = qdq.quantization_params(-1.0, 1.0, np.float32)
        >>> qdq.QuantizationParams.from_dict(p.to_dict()) == p
        True
        """
        return params_from_dict(d)

    def to_json(self, indent: int | None = 1) -> str:
        """The parameters as a JSON document that reads back bit for bit.

        Parameters
        ----------
        indent : int or None, default 1
            As for :func:`json.dumps`.

        Returns
        -------
        str
            The JSON document, for :meth:`from_json`.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> text = qdq.quantization_params(-1.0, 1.0, np.float32).to_json(indent=None)
        >>> text[:40]
        '{"qdq_params": 1, "dtype": "float32", "a'
        """
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "QuantizationParams":
        """Parameters from :meth:`to_json`'s document.

        Parameters
        ----------
        text : str
            A JSON document from :meth:`to_json`.

        Returns
        -------
        QuantizationParams
            Equal, bit for bit, to the parameters that wrote it.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> p = qdq.quantization_params(-1.0, 1.0, np.float32)
        >>> qdq.QuantizationParams.from_json(p.to_json()) == p
        True
        """
        try:
            d = parse_json(text, "text")  # strict: no repeated key, not too deep
        except ValueError as exc:
            raise ValueError(f"not a JSON document: {exc}") from None
        return cls.from_dict(d)

    def save(self, path: Any) -> None:
        """Write the JSON document to ``path`` (through a temporary file renamed into place).

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (replaced atomically when it exists).

        Examples
        --------
        >>> import numpy as np, qdq
        >>> qdq.quantization_params(-1.0, 1.0, np.float32).save("x.params.json")
        """
        write_text_atomic(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: Any) -> "QuantizationParams":
        """Parameters from a JSON file written by :meth:`save`.

        Parameters
        ----------
        path : str or os.PathLike
            The JSON file.

        Returns
        -------
        QuantizationParams
            The parameters saved there, bit for bit.

        Examples
        --------
        >>> import numpy as np, qdq
        >>> p = qdq.quantization_params(-1.0, 1.0, np.float32)
        >>> p.save("x.params.json")
        >>> qdq.QuantizationParams.load("x.params.json") == p
        True
        """
        with open(path, encoding="utf-8") as f:
            try:
                return cls.from_json(f.read())
            except (TypeError, ValueError) as exc:
                raise type(exc)(f"{os.fspath(path)}: {exc}") from None


_FIELDS = ("scale", "inverse_scale", "min_range", "max_range", "qmin", "qmax")


def params_from_rows(p: np.ndarray, fmt: Format, grid: Grid, axis: int | None,
                     per_channel: bool, round_mode: str = "HALF_TO_EVEN",
                     block_size: int | None = None) -> QuantizationParams:
    """QuantizationParams from the compute-type parameter rows p = (s, inv, lo, hi).

    Per block, ``p`` is ``(4, *blocked_shape)`` and the values keep that shape.
    """
    vals = [to_public(np.asarray(row), fmt, None) for row in p]
    q = to_public(round_to(np.array([grid.qmin, grid.qmax], dtype=np.float64), fmt), fmt, None)
    if per_channel or block_size is not None:
        vals = [v.copy() for v in vals]
        for v in vals:
            v.setflags(write=False)
        fields = vals
    else:
        fields = [v[0] for v in vals]
    return QuantizationParams(fmt.name, fields[0], fields[1], fields[2], fields[3], q[0], q[1],
                              grid.num_bits, grid.signed, grid.narrow, axis, round_mode,
                              block_size)


def param_rows(params: QuantizationParams, fmt: Format) -> np.ndarray:
    """(4, C) compute-type rows (scale, inverse, min, max) from QuantizationParams.

    Per block: (4, *blocked_shape).
    """
    rows = [np.asarray(v).astype(fmt.compute)
            for v in (params.scale, params.inverse_scale, params.min_range, params.max_range)]
    if params.block_size is None:
        rows = [r.reshape(-1) for r in rows]
    return np.ascontiguousarray(np.stack(rows))


# Significant bits of each format (for how far T's rounding can move a code).
_PRECISION = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def code_bounds(fmt: Format, grid: Grid) -> tuple[int, int]:
    """The smallest and largest code the op can produce on this grid in T.

    The grid's bounds are rounded to T; then the clamped extremes times the
    rounded scale, rounded again (and, rounding half up, after adding 0.5 in
    T), stay within ``q * (1 + 6u)`` of a bound ``q`` (``u`` = 2**-precision),
    so a code can pass the bound only when that margin reaches half a unit.
    """
    u = 2.0 ** -_PRECISION[fmt.name]
    lo, hi = grid.qmin, grid.qmax
    for q in (grid.qmin, grid.qmax):
        t = round_scalar(fmt, float(q))
        if not math.isfinite(t):
            continue  # a grid T cannot hold: the op's output is NaN or inf anyway
        margin = abs(t) * 6 * u
        step = math.ceil(margin + 0.5) if margin >= 0.5 else 0
        lo, hi = min(lo, int(t) - step if t < 0 else int(t)), max(hi, int(t) + step)
    return lo, hi


def code_dtype_for(fmt: Format, grid: Grid) -> np.dtype:
    """The smallest integer dtype (signed as the grid) holding every code of the grid in T."""
    lo, hi = code_bounds(fmt, grid)
    width = 8 if grid.num_bits <= 8 else 16 if grid.num_bits <= 16 else \
        32 if grid.num_bits <= 32 else 64
    while True:
        dt = np.dtype(f"{'int' if grid.signed else 'uint'}{width}")
        info = np.iinfo(dt)
        if (info.min <= lo and hi <= info.max) or width == 64:
            return dt
        width *= 2


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------

def _hex(x: float) -> str:
    # NaN keeps its exact bits (float.hex would drop the sign and payload)
    if x != x:
        return "nan:" + hex(int(np.array(x, np.float64).view(np.uint64)))
    return x.hex()


def params_to_dict(p: QuantizationParams) -> dict:
    """A plain dict of the parameters; floats as exact hex strings (``float.hex``)."""
    def enc(v: Any) -> Any:
        a = np.asarray(v, dtype=np.float64)
        return [_hex(x) for x in a.reshape(-1).tolist()] if a.ndim else _hex(float(a))

    grid = check_grid(p.signed_input, p.num_bits, p.narrow_range)
    d: dict[str, Any] = {"qdq_params": 1, "dtype": p.dtype, "axis": p.axis,
                         "per_channel": p.per_channel, "num_bits": p.num_bits,
                         "signed_input": p.signed_input, "narrow_range": p.narrow_range,
                         "round_mode": p.round_mode,
                         "code_dtype": code_dtype_for(format_named(p.dtype), grid).name}
    if p.block_size is not None:
        d["block_size"] = p.block_size
        d["blocked_shape"] = list(np.shape(p.scale))
    for f in _FIELDS:
        d[f] = enc(getattr(p, f))
    return d


def _bad(field: str, why: str) -> ValueError:
    return ValueError(f"malformed qdq quantization parameters: {field} {why}")


def _unhex(field: str, text: Any) -> float:
    if not isinstance(text, str):
        raise _bad(field, f"must hold exact hex strings (as to_json writes them), got {text!r}")
    try:
        if text.startswith("nan:"):
            bits = int(text[4:], 16)
            if not 0 <= bits < 1 << 64:
                raise ValueError
            value = float(np.array(bits, np.uint64).view(np.float64))
            if value == value:
                raise ValueError
            return value
        return float.fromhex(text)
    except (ValueError, OverflowError):
        raise _bad(field, f"holds {text!r}, which is not an exact hex float") from None


def params_from_dict(d: dict) -> QuantizationParams:
    """QuantizationParams from :func:`params_to_dict`'s dict, bit for bit.

    Every field is checked: ValueError (or TypeError for a wrong type) naming it.
    """
    if not isinstance(d, dict) or d.get("qdq_params") != 1:
        raise ValueError("not qdq quantization parameters (missing 'qdq_params': 1)")
    missing = [k for k in ("dtype", "signed_input", "narrow_range", "num_bits", "round_mode",
                           "axis", "per_channel") + _FIELDS if k not in d]
    if missing:
        raise ValueError(f"malformed qdq quantization parameters: missing {', '.join(missing)}")
    if not (isinstance(d["dtype"], str) and d["dtype"] in _PRECISION):
        raise _bad("dtype", f"must be one of {', '.join(_PRECISION)}, got {d['dtype']!r}")
    fmt = format_named(d["dtype"])
    grid = check_grid(d["signed_input"], d["num_bits"], d["narrow_range"])
    rmode = check_round_mode(d["round_mode"])
    per_channel = check_flag("per_channel", d["per_channel"])
    axis = d["axis"]
    if axis is not None and (type(axis) is not int):
        raise _bad("axis", f"must be an integer or null, got {axis!r}")
    block_size = d.get("block_size")
    bshape: tuple | None = None
    if block_size is not None:
        if type(block_size) is not int or block_size < 1 or axis is None:
            raise _bad("block_size", f"must be a positive integer with an axis, got "
                                     f"{block_size!r}")
        raw_shape = d.get("blocked_shape")
        if not isinstance(raw_shape, list) or not all(type(n) is int and n >= 0
                                                      for n in raw_shape):
            raise _bad("blocked_shape", f"must be a list of sizes, got {raw_shape!r}")
        bshape = tuple(raw_shape)
        per_channel = True  # values are lists
    vals = {}
    for f in _FIELDS:
        v = d[f]
        if f in ("qmin", "qmax") or not per_channel:
            if isinstance(v, list):
                raise _bad(f, "must be one value when per_channel is false" if f not in
                           ("qmin", "qmax") else "must be one value")
            vals[f] = np.array([_unhex(f, v)], dtype=np.float64)
        else:
            if not isinstance(v, list):
                raise _bad(f, "must be a list when per_channel is true")
            vals[f] = np.array([_unhex(f, t) for t in v], dtype=np.float64)
    lengths = {vals[f].shape[0] for f in _FIELDS[:4]}
    if bshape is not None and lengths != {math.prod(bshape)}:
        raise ValueError(f"malformed qdq quantization parameters: blocked_shape {bshape} "
                         f"needs {math.prod(bshape)} values per field")
    if len(lengths) != 1:
        raise ValueError("malformed qdq quantization parameters: scale, inverse_scale, "
                         "min_range and max_range have different lengths")
    rows = np.stack([vals[f].astype(fmt.compute) for f in _FIELDS[:4]])
    for k, f in enumerate(_FIELDS[:4]):
        if not np.array_equal(rows[k].astype(np.float64), vals[f], equal_nan=True):
            raise _bad(f, f"holds values that are not {fmt.name} values")
    if "code_dtype" in d and d["code_dtype"] != code_dtype_for(fmt, grid).name:
        raise _bad("code_dtype", f"is {d['code_dtype']!r}, but the grid of num_bits, "
                   f"signed_input and narrow_range in {fmt.name} needs "
                   f"{code_dtype_for(fmt, grid).name!r}")
    if bshape is not None:
        rows = rows.reshape((4,) + bshape)
        p = params_from_rows(rows, fmt, grid, axis, False, rmode, block_size)
    else:
        p = params_from_rows(rows, fmt, grid, axis, per_channel, rmode)
    for f in ("qmin", "qmax"):
        want = np.asarray(getattr(p, f), np.float64)
        got = vals[f][0]
        if not (got == want or (math.isnan(got) and math.isnan(float(want)))):
            raise _bad(f, "does not match the grid of num_bits, signed_input and narrow_range")
    return p
