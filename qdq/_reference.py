"""Pure-NumPy twin of qdq's kernels: the test oracle and the fallback to read.

Written from the specification, independently of the compiled code: float32
and float64 are computed with NumPy's own arithmetic in that type (one IEEE
operation each); float16 and bfloat16 values are computed in float64 and
rounded to the format after every operation by :func:`round_to_format`, a
frexp-based rounding that shares nothing with the kernels' bit tricks or
NumPy's and ml_dtypes' casts. The range reduction uses ``nanmin``/``nanmax``
with the sign of a zero result fixed afterwards (-0.0 below +0.0).

Every function takes and returns arrays like the public API; none is fast.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["round_to_format", "decode", "encode", "compute_range", "quantization_params",
           "quantize_and_dequantize", "quantize", "gradient"]

# name: (significant bits, exponent of the smallest normal, largest finite)
FORMATS = {
    "float16": (11, -14, 65504.0),
    "bfloat16": (8, -126, float.fromhex("0x1.fep127")),
    "float32": (24, -126, float(np.finfo(np.float32).max)),
    "float64": (53, -1022, float(np.finfo(np.float64).max)),
}


def round_to_format(values, name: str) -> np.ndarray:
    """Round float64 values to the nearest value of a format (ties to even).

    Returns float64 values that the format holds exactly; overflow gives inf.
    """
    d = np.asarray(values, dtype=np.float64)
    if name == "float64":
        return d.copy()
    p, emin, big = FORMATS[name]
    a = np.abs(d)
    with np.errstate(invalid="ignore", over="ignore"):
        _, e = np.frexp(a)                      # a = m * 2**e with m in [0.5, 1)
        ulp = np.maximum(e - p, emin - p + 1)   # exponent of one unit in the last place
        q = np.ldexp(np.rint(np.ldexp(a, -ulp)), ulp)
        q = np.where(q > big, np.inf, q)
    return np.where(np.isfinite(d), np.copysign(q, d), d)


def _kind(x: np.ndarray, bfloat16_bits: bool) -> str:
    if bfloat16_bits:
        if x.dtype.kind == "u" and x.dtype.itemsize == 2:
            return "bfloat16"
    elif x.dtype.kind == "f" and x.dtype.itemsize in (2, 4, 8):
        return {2: "float16", 4: "float32", 8: "float64"}[x.dtype.itemsize]
    elif x.dtype.name == "bfloat16":
        return "bfloat16"
    raise TypeError(f"unsupported dtype {x.dtype}")


def decode(x, bfloat16_bits: bool = False) -> tuple[np.ndarray, str]:
    """Input array -> (values as float64, format name)."""
    x = np.asarray(x)
    name = _kind(x, bfloat16_bits)
    with np.errstate(invalid="ignore"):  # signalling NaNs become quiet NaNs, as wanted
        if bfloat16_bits:
            bits = x.astype(np.uint32) << np.uint32(16)
            return bits.view(np.float32).astype(np.float64), name
        if name == "bfloat16":
            return x.astype(np.float32).astype(np.float64), name
        return x.astype(np.float64), name


def encode(values: np.ndarray, like: np.ndarray, bfloat16_bits: bool = False) -> np.ndarray:
    """float64 values of the format -> an array of ``like``'s type (native order)."""
    name = _kind(like, bfloat16_bits)
    if bfloat16_bits:
        f = np.asarray(values, dtype=np.float64).astype(np.float32)
        bits = (f.view(np.uint32) >> np.uint32(16)).astype(np.uint16)
        return np.where(np.isnan(f), np.uint16(0x7FC0), bits).astype(np.uint16)
    if name == "bfloat16":
        return np.asarray(values).astype(np.float32).astype(like.dtype)
    return np.asarray(values).astype(like.dtype.newbyteorder("="))


def _channels_last(v: np.ndarray, axis: int | None) -> np.ndarray:
    """(C, k) view: one row per channel (one row per tensor when axis is None)."""
    if axis is None:
        return v.reshape(1, v.size)
    rest = int(np.prod(v.shape[:axis] + v.shape[axis + 1:]))
    return np.moveaxis(v, axis, 0).reshape(v.shape[axis], rest)


def _raw_range(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-ignoring per-row min/max; +inf/-inf for rows without a number."""
    C = rows.shape[0]
    if rows.shape[1] == 0:
        return np.full(C, np.inf), np.full(C, -np.inf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows
        mn = np.nanmin(rows, axis=1)
        mx = np.nanmax(rows, axis=1)
    nothing = np.isnan(mn)
    mn[nothing] = np.inf
    mx[nothing] = -np.inf
    zero = rows == 0
    negative_zero = (zero & np.signbit(rows)).any(axis=1)
    positive_zero = (zero & ~np.signbit(rows)).any(axis=1)
    mn = np.where(mn == 0, np.where(negative_zero, -0.0, 0.0), mn)
    mx = np.where(mx == 0, np.where(positive_zero, 0.0, -0.0), mx)
    return mn, mx


def compute_range(x, axis=None, *, bfloat16_bits=False):
    """Twin of :func:`qdq.compute_range`, returning float64 values."""
    v, _ = decode(x, bfloat16_bits)
    if axis is not None and axis < 0:
        axis += v.ndim
    rows = _channels_last(v, axis)
    mn, mx = _raw_range(rows)
    if rows.shape[1] > 0:
        empty = mn > mx
        mn[empty] = np.nan
        mx[empty] = np.nan
    if axis is None:
        return mn[0], mx[0]
    return mn, mx


def _grid(signed_input, num_bits, narrow_range):
    if signed_input:
        return -(2 ** (num_bits - 1)) + (1 if narrow_range else 0), 2 ** (num_bits - 1) - 1
    return 0, 2 ** num_bits - 1


class _Arith:
    """One IEEE operation in the format, then rounding to it."""

    def __init__(self, name: str):
        self.name = name
        self.native = {"float32": np.float32, "float64": np.float64}.get(name)

    def value(self, v) -> np.ndarray:
        """Convert (round) values to the format."""
        if self.native is not None:
            with np.errstate(over="ignore"):
                return np.asarray(v, dtype=np.float64).astype(self.native)
        return round_to_format(v, self.name)

    def __call__(self, op, a, b):
        with np.errstate(all="ignore"):
            if self.native is not None:
                return op(np.asarray(a, self.native), np.asarray(b, self.native))
            return round_to_format(op(np.asarray(a, np.float64), np.asarray(b, np.float64)),
                                   self.name)


def quantization_params(mn, mx, name: str, signed_input=True, num_bits=8, narrow_range=False):
    """(scale, inverse, min_range, max_range) per channel: SPEC step 3.

    ``mn``, ``mx`` are values of the format (arrays); results are arrays of
    the format's compute type (float64 for 16-bit formats).
    """
    T = _Arith(name)
    qmin, qmax = _grid(signed_input, num_bits, narrow_range)
    qminT, qmaxT = T.value(float(qmin)), T.value(float(qmax))
    mn, mx = T.value(mn), T.value(mx)
    big = FORMATS[name][2]
    mul, div = np.multiply, np.divide
    s_min = np.where(T(mul, qminT, mn) > 0, T(div, qminT, mn), big)
    s_max = np.where(T(mul, qmaxT, mx) > 0, T(div, qmaxT, mx), big)
    use_min = s_min < s_max
    inv = np.where(use_min, T(div, mn, qminT), T(div, mx, qmaxT))
    scale = np.where(use_min, s_min, s_max)
    lo = np.where(use_min, mn, T(mul, qminT, inv))
    hi = np.where(use_min, T(mul, qmaxT, inv), mx)
    cast = T.value
    return cast(scale), cast(inv), cast(lo), cast(hi)


def _codes_and_inverse(x, input_min, input_max, signed_input, num_bits, range_given,
                       round_mode, narrow_range, axis, bfloat16_bits):
    """(codes as float64 rows (C, k), inverse per channel, format, shape info)."""
    x = np.asarray(x)
    v, name = decode(x, bfloat16_bits)
    T = _Arith(name)
    if axis is not None and axis < 0:
        axis += v.ndim
    rows = _channels_last(v, axis)
    if range_given:
        C = rows.shape[0]
        mn = np.broadcast_to(np.asarray(input_min).astype(np.float64), (C,))
        mx = np.broadcast_to(np.asarray(input_max).astype(np.float64), (C,))
    else:
        mn, mx = _raw_range(rows)
    scale, inv, lo, hi = quantization_params(mn, mx, name, signed_input, num_bits, narrow_range)
    col = (slice(None), None)
    r = T.value(rows)
    if range_given:
        r = np.where(hi[col] < r, hi[col], r)
        r = np.where(r < lo[col], lo[col], r)
    y = T(np.multiply, r, scale[col])
    if round_mode == "HALF_TO_EVEN":
        q = np.rint(y)
    elif round_mode == "HALF_UP":
        q = np.floor(T(np.add, y, 0.5))
    else:
        raise ValueError(round_mode)
    return q.astype(np.float64), inv, T, v.shape, axis


def _unrows(rows: np.ndarray, shape: tuple, axis) -> np.ndarray:
    if axis is None:
        return rows.reshape(shape)
    moved = list(shape)
    moved.insert(0, moved.pop(axis))
    return np.moveaxis(rows.reshape(moved), 0, axis)


def quantize_and_dequantize(x, input_min=None, input_max=None, signed_input=True, num_bits=8,
                            range_given=False, round_mode="HALF_TO_EVEN", narrow_range=False,
                            axis=None, *, bfloat16_bits=False):
    """Twin of :func:`qdq.quantize_and_dequantize` (no validation, no ``out``)."""
    q, inv, T, shape, axis = _codes_and_inverse(x, input_min, input_max, signed_input, num_bits,
                                                range_given, round_mode, narrow_range, axis,
                                                bfloat16_bits)
    out = T(np.multiply, q, inv[:, None]).astype(np.float64)
    return encode(_unrows(out, shape, axis), np.asarray(x), bfloat16_bits)


def quantize(x, input_min=None, input_max=None, signed_input=True, num_bits=8,
             range_given=False, round_mode="HALF_TO_EVEN", narrow_range=False, axis=None, *,
             bfloat16_bits=False) -> np.ndarray:
    """Twin of :func:`qdq.quantize`'s codes, as float64 integers (NaN where there is none)."""
    q, _, _, shape, axis = _codes_and_inverse(x, input_min, input_max, signed_input, num_bits,
                                              range_given, round_mode, narrow_range, axis,
                                              bfloat16_bits)
    return _unrows(q, shape, axis)


def gradient(g, x, input_min, input_max, axis=None, *, bfloat16_bits=False) -> np.ndarray:
    """Twin of :func:`qdq.quantize_and_dequantize_grad`."""
    gv, name = decode(g, bfloat16_bits)
    xv, _ = decode(x, bfloat16_bits)
    T = _Arith(name)
    if axis is not None and axis < 0:
        axis += xv.ndim
    shape = [1] * xv.ndim
    if axis is not None:
        shape[axis] = xv.shape[axis]
    lo = T.value(np.asarray(input_min, dtype=np.float64)).reshape(shape if np.ndim(input_min)
                                                                  else ())
    hi = T.value(np.asarray(input_max, dtype=np.float64)).reshape(shape if np.ndim(input_max)
                                                                  else ())
    inside = (xv >= lo) & (xv <= hi)
    out = T(np.multiply, gv, inside.astype(np.float64)).astype(np.float64)
    return encode(out, np.asarray(g), bfloat16_bits)


# ---------------------------------------------------------------------------
# Block-wise (group-wise) ranges: every 1-D slice along ``axis`` is cut into
# blocks of ``block_size`` elements from index 0 (the last one shorter when
# block_size does not divide the axis length), and each block is one channel of
# the functions above. Ranges use ONNX's blocked layout: broadcastable to the
# input's shape with ``axis`` replaced by the number of blocks.
# ---------------------------------------------------------------------------

__all__ += ["blocked_shape", "compute_range_blocks", "quantize_and_dequantize_blocks",
            "quantize_blocks", "gradient_blocks"]


def blocked_shape(shape, axis: int, block_size: int) -> tuple:
    """``shape`` with ``axis`` replaced by ``ceil(shape[axis] / block_size)``."""
    shape = tuple(shape)
    axis = axis + len(shape) if axis < 0 else axis
    return shape[:axis] + (-(-shape[axis] // block_size),) + shape[axis + 1:]


def _nan_like(x: np.ndarray, bfloat16_bits: bool) -> np.ndarray:
    """One NaN of ``x``'s type (a quiet-NaN bit pattern for bfloat16 bits)."""
    if bfloat16_bits:
        return np.array(0x7FC0, dtype=x.dtype)
    return np.array(np.nan, dtype=np.float32).astype(x.dtype)


def _block_rows(x: np.ndarray, axis: int, block_size: int, bfloat16_bits: bool) -> np.ndarray:
    """(blocks, block_size) rows, one per block, the short last block padded with NaN.

    Rows follow the C order of the blocked shape with ``axis`` moved last. NaN
    padding changes nothing that is kept: the range ignores NaN, and the
    padding's own results are cut off by :func:`_unblock`.
    """
    moved = np.moveaxis(x, axis, -1)
    d = moved.shape[-1]
    block_size = min(block_size, max(d, 1))   # the same blocks, without a huge padding
    pad = -(-d // block_size) * block_size - d
    if pad:
        fill = np.broadcast_to(_nan_like(x, bfloat16_bits), moved.shape[:-1] + (pad,))
        moved = np.concatenate([moved, fill], axis=-1)
    return moved.reshape(-1, block_size)


def _unblock(rows: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    """Inverse of :func:`_block_rows` for arrays of the input's shape."""
    moved = list(shape)
    moved.append(moved.pop(axis))
    nb = -(-moved[-1] // rows.shape[1])
    full = rows.reshape(tuple(moved[:-1]) + (nb * rows.shape[1],))
    return np.moveaxis(full[..., :moved[-1]], -1, axis)


def _block_values(value, shape: tuple, axis: int, block_size: int) -> np.ndarray:
    """Blocked-layout ranges -> one value per block, in the order of the rows."""
    b = np.broadcast_to(np.asarray(value), blocked_shape(shape, axis, block_size))
    return np.moveaxis(b, axis, -1).reshape(-1)


def _unblock_values(values: np.ndarray, shape: tuple, axis: int, block_size: int) -> np.ndarray:
    """One value per block (in the order of the rows) -> the blocked shape."""
    moved = list(blocked_shape(shape, axis, block_size))
    moved.append(moved.pop(axis))
    return np.moveaxis(np.asarray(values).reshape(moved), -1, axis)


def _positive_axis(x: np.ndarray, axis: int) -> int:
    return axis + x.ndim if axis < 0 else axis


def compute_range_blocks(x, axis: int, block_size: int, *, bfloat16_bits=False):
    """Twin of ``qdq.compute_range(x, axis, block_size=...)``: float64 (min, max) per block.

    Both arrays have the blocked shape; a block of only NaN gives NaN.
    """
    x = np.asarray(x)
    axis = _positive_axis(x, axis)
    rows = _block_rows(x, axis, block_size, bfloat16_bits)
    mn, mx = compute_range(rows, 0, bfloat16_bits=bfloat16_bits)
    return (_unblock_values(mn, x.shape, axis, block_size),
            _unblock_values(mx, x.shape, axis, block_size))


def _block_call(fn, x, axis, block_size, input_min, input_max, range_given, bfloat16_bits,
                **kw):
    x = np.asarray(x)
    axis = _positive_axis(x, axis)
    rows = _block_rows(x, axis, block_size, bfloat16_bits)
    if range_given:
        input_min = _block_values(input_min, x.shape, axis, block_size)
        input_max = _block_values(input_max, x.shape, axis, block_size)
    res = fn(rows, input_min, input_max, range_given=range_given, axis=0,
             bfloat16_bits=bfloat16_bits, **kw)
    return _unblock(res, x.shape, axis)


def quantize_and_dequantize_blocks(x, axis, block_size, input_min=None, input_max=None,
                                   signed_input=True, num_bits=8, range_given=False,
                                   round_mode="HALF_TO_EVEN", narrow_range=False, *,
                                   bfloat16_bits=False) -> np.ndarray:
    """Twin of ``qdq.quantize_and_dequantize(..., axis=axis, block_size=block_size)``."""
    return _block_call(quantize_and_dequantize, x, axis, block_size, input_min, input_max,
                       range_given, bfloat16_bits, signed_input=signed_input,
                       num_bits=num_bits, round_mode=round_mode, narrow_range=narrow_range)


def quantize_blocks(x, axis, block_size, input_min=None, input_max=None, signed_input=True,
                    num_bits=8, range_given=False, round_mode="HALF_TO_EVEN",
                    narrow_range=False, *, bfloat16_bits=False) -> np.ndarray:
    """Twin of the block-wise codes, as float64 integers (NaN where there is none)."""
    return _block_call(quantize, x, axis, block_size, input_min, input_max, range_given,
                       bfloat16_bits, signed_input=signed_input, num_bits=num_bits,
                       round_mode=round_mode, narrow_range=narrow_range)


def gradient_blocks(g, x, input_min, input_max, axis, block_size, *,
                    bfloat16_bits=False) -> np.ndarray:
    """Twin of ``qdq.quantize_and_dequantize_grad(..., axis=axis, block_size=block_size)``."""
    x = np.asarray(x)
    axis = _positive_axis(x, axis)
    g_rows = _block_rows(np.asarray(g), axis, block_size, bfloat16_bits)
    x_rows = _block_rows(x, axis, block_size, bfloat16_bits)
    lo = _block_values(input_min, x.shape, axis, block_size)
    hi = _block_values(input_max, x.shape, axis, block_size)
    res = gradient(g_rows, x_rows, lo, hi, 0, bfloat16_bits=bfloat16_bits)
    return _unblock(res, x.shape, axis)
