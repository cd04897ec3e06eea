"""qdq in JAX: TensorFlow's quantize_and_dequantize as a pure JAX function, on every backend.

Install with ``pip install "qdq[jax]"``. :func:`quantize_and_dequantize`
takes TensorFlow's arguments and computes, bit for bit on the CPU,
:func:`qdq.quantize_and_dequantize` with jax.numpy operations (float64 needs
``jax_enable_x64``), with one exception: XLA's CPU backend flushes subnormal
numbers to zero, as TensorFlow's CPU kernels do, so where the data, the
range, the parameters or the result of a bfloat16, float32 or float64 tensor
are subnormal the result is TensorFlow's flushed one, not qdq's IEEE one
(float16 is unaffected). It has TensorFlow's gradient (``jax.custom_vjp``: the
straight-through gradient of QuantizeAndDequantizeV4Grad, none for the
range) and works under ``jax.jit`` (the arguments in
:data:`STATIC_ARGNAMES` static), ``jax.vmap`` and ``jax.grad``.

XLA would change the bits of a plain transcription, and does on the CPU:
it contracts ``x*scale + 0.5`` into a fused multiply-add (in float16 too,
with float16 instructions, even across explicit conversions to float32 and
back), drops ``lax.optimization_barrier`` before fusing, and turns a
division by a constant into a multiplication by its reciprocal. So the op is
written without those openings:

- HALF_UP is computed from ``y = x*scale`` with floor, round-half-even,
  comparisons and selects, which give exactly ``floor(y + 0.5)`` as T
  computes it (the ties, the odd integers between ``2**(p-1)`` and ``2**p``
  and the float just below 0.5, where ``y + 0.5`` rounds), so no product is
  ever added to anything;
- float16 and bfloat16 are computed in float32 and rounded to the type after
  every inexact operation by integer operations on the bits, which no
  compiler may drop;
- every divisor is a data-dependent select, never a constant.

What this proves, and where: the tests run on the CPU backend (jit, vmap,
grad; TensorFlow's golden cases and random cases against the C kernels).
On GPUs and TPUs the same HLO runs; it assumes what XLA's GPU backend
gives (IEEE float32/float64 multiply, divide, floor, round and compare,
no flush to zero) and what TPUs do not (their float32 division is not
correctly rounded, float64 is absent): run ``benchmarks/bench_device.py``
on the device to check it.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any, NamedTuple

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax import lax
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("qdq.jax needs JAX: pip install 'qdq[jax]'") from exc

from ._core.blocks import check_block_size, given_block_range
from ._core.formats import format_named, integer_value, round_to
from ._core.op import RoundMode
from ._core.validate import check_axis, check_real, given_range, op_args

__all__ = ["STATIC_ARGNAMES", "quantize_and_dequantize"]

#: The arguments ``jax.jit`` must take as static: ``jax.jit(quantize_and_dequantize,
#: static_argnames=STATIC_ARGNAMES)``.
STATIC_ARGNAMES = ("signed_input", "num_bits", "range_given", "round_mode", "narrow_range",
                   "axis", "block_size")

_DIGITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


class _Spec(NamedTuple):
    fmt: str
    qmin: float
    qmax: float
    half_up: bool
    range_given: bool
    axis: int | None
    block_size: int | None
    poison: bool          # the given range could not be read: invalid channels give NaN


# ---- Exact arithmetic in T ----

def _x64() -> bool:
    """Whether JAX computes float64 (``jax_enable_x64``)."""
    return bool(jax.dtypes.canonicalize_dtype(np.float64) == np.float64)


def _u32(v: int) -> Any:
    return np.uint32(v)


def _round_to_format(v: Any, fmt: str) -> Any:
    """float32 values rounded to float16/bfloat16 (nearest even), still float32, by bits."""
    bits = lax.bitcast_convert_type(v, jnp.uint32)
    a = bits & _u32(0x7FFFFFFF)
    sign = bits & _u32(0x80000000)
    if fmt == "bfloat16":
        r = (a + _u32(0x7FFF) + ((a >> _u32(16)) & _u32(1))) & _u32(0xFFFF0000)
        out = lax.bitcast_convert_type(r | sign, jnp.float32)
    else:
        r = (a + _u32(0xFFF) + ((a >> _u32(13)) & _u32(1))) & _u32(0xFFFFE000)
        r = jnp.where(r >= _u32(0x47800000), _u32(0x7F800000), r)   # >= 65520: inf
        normal = lax.bitcast_convert_type(r | sign, jnp.float32)
        # below 2**-14: multiples of 2**-24 (exact scalings by powers of two)
        subnormal = jnp.round(v * np.float32(2.0 ** 24)) * np.float32(2.0 ** -24)
        out = jnp.where(a < _u32(0x38800000), subnormal, normal)
    return jnp.where(jnp.isnan(v), v, out)


def _f64_to_f32_odd(d: Any) -> Any:
    """float64 -> float32 rounded to odd (so that rounding on to 16 bits is one rounding)."""
    f = d.astype(jnp.float32)
    wide = f.astype(jnp.float64)
    inexact = (wide != d) & ~jnp.isnan(d)
    bits = lax.bitcast_convert_type(f, jnp.uint32)
    bits = jnp.where(inexact & (jnp.abs(wide) > jnp.abs(d)), bits - _u32(1), bits)
    bits = jnp.where(inexact, bits | _u32(1), bits)
    return lax.bitcast_convert_type(bits, jnp.float32)


class _Arith:
    """The work type W of a format (float32 for 16-bit ones) and rounding to T in it."""

    def __init__(self, fmt: str):
        self.fmt = fmt
        self.half = fmt in ("float16", "bfloat16")
        self.work = jnp.float32 if self.half else jnp.dtype(fmt)
        self.digits = _DIGITS[fmt]
        self.max = format_named(fmt).max

    def r(self, v: Any) -> Any:
        """The value of T nearest to v (held in W)."""
        return _round_to_format(v, self.fmt) if self.half else v

    def bounds(self, v: Any) -> Any:
        """A given bound (any float or integer array) as the nearest value of T, in W."""
        v = jnp.asarray(v)
        if not jnp.issubdtype(v.dtype, jnp.floating):
            v = v.astype(jnp.float64 if _x64() else jnp.float32)
        if self.half:
            if v.dtype == jnp.float64:
                v = _f64_to_f32_odd(v)
            return _round_to_format(v.astype(jnp.float32), self.fmt)
        return v.astype(self.work)

    def div(self, a: Any, b: Any) -> Any:
        """a / b, one IEEE division: the divisor is made data-dependent, since XLA turns a
        division by a constant or a broadcast scalar into a multiplication by its reciprocal."""
        a, b = jnp.broadcast_arrays(jnp.asarray(a, self.work), jnp.asarray(b, self.work))
        return self.r(a / jnp.where(jnp.isnan(a), a, b))

    def half_up(self, y: Any) -> Any:
        """floor(y + 0.5) computed in T (two roundings), with no addition to y.

        ``y + 0.5`` is exact in T except at the float just below 0.5 (it rounds
        up to 1.0) and, for 2**(p-1) <= |y| < 2**p, at odd integers (the tie
        rounds to the even neighbour above); elsewhere the result is the
        nearest integer, ties upward.
        """
        t = jnp.floor(y)
        a = jnp.abs(y)
        small = a < 2.0 ** (self.digits - 1)     # where t + 0.5 is exact (and ties exist)
        q = jnp.where(small & (y == t + 0.5), t + 1, jnp.round(y))
        below_half = np.array(0.5 - 2.0 ** -(self.digits + 1), dtype=self.work)
        q = jnp.where(y == below_half, np.array(1, self.work), q)
        odd = ~small & (a < 2.0 ** self.digits) & (2 * jnp.floor(y * 0.5) != y)
        q = jnp.where(odd, t + 1, q)
        return jnp.where(q == 0, np.array(0, self.work), q)   # +0.0: y + 0.5 is never -0.0


def _data_range(v: Any, axes: tuple[int, ...]) -> tuple[Any, Any]:
    """NaN-ignoring min and max over ``axes`` (kept), -0.0 below +0.0, as the kernels."""
    nan = jnp.isnan(v)
    mn = jnp.where(nan, jnp.inf, v)
    mx = jnp.where(nan, -jnp.inf, v)
    zero = v == 0
    negative = jnp.signbit(v)
    negative_zero, positive_zero = zero & negative, zero & ~negative
    if axes:
        mn, mx = mn.min(axis=axes, keepdims=True), mx.max(axis=axes, keepdims=True)
        negative_zero = negative_zero.any(axis=axes, keepdims=True)
        positive_zero = positive_zero.any(axis=axes, keepdims=True)
    mn = jnp.where((mn == 0) & negative_zero, -jnp.abs(mn), mn)
    mx = jnp.where((mx == 0) & positive_zero, jnp.abs(mx), mx)
    return mn, mx


def _params(mn: Any, mx: Any, T: _Arith, qmin: float, qmax: float) -> tuple[Any, ...]:
    """(scale, inverse, min_range, max_range, whether the minimum set the scale): SPEC step 3."""
    w = T.work
    qmin_w, qmax_w = np.array(qmin, w), np.array(qmax, w)
    big = np.array(T.max, w)
    s_min = jnp.where(qmin_w * mn > 0, T.div(qmin_w, mn), big)   # products of T: sign exact
    s_max = jnp.where(qmax_w * mx > 0, T.div(qmax_w, mx), big)
    use_min = s_min < s_max
    scale = jnp.where(use_min, s_min, s_max)
    inverse = jnp.where(use_min, T.div(mn, qmin_w), T.div(mx, qmax_w))
    lo = jnp.where(use_min, mn, T.r(qmin_w * inverse))
    hi = jnp.where(use_min, T.r(qmax_w * inverse), mx)
    return scale, inverse, lo, hi, use_min


class _Shaped(NamedTuple):
    x: Any
    axes: tuple[int, ...]
    bounds_shape: tuple[int, ...]
    blocks: tuple[int, int, int] | None   # (axis, length, padding)


def _shaped(x: Any, spec: _Spec, fill: float = math.nan) -> _Shaped:
    """x with each block along its own axis (padded with ``fill``)."""
    ax, bs = spec.axis, spec.block_size
    if ax is None:
        return _Shaped(x, tuple(range(x.ndim)), (1,) * x.ndim, None)
    if bs is None:
        shape = tuple(x.shape[ax] if d == ax else 1 for d in range(x.ndim))
        return _Shaped(x, tuple(d for d in range(x.ndim) if d != ax), shape, None)
    d = x.shape[ax]
    size = min(bs, max(d, 1))
    blocks = -(-d // size)
    pad = blocks * size - d
    if pad:
        widths = [(0, 0)] * x.ndim
        widths[ax] = (0, pad)
        x = jnp.pad(x, widths, constant_values=fill)
    shape = x.shape[:ax] + (blocks, size) + x.shape[ax + 1:]
    bounds = x.shape[:ax] + (blocks, 1) + x.shape[ax + 1:]
    return _Shaped(x.reshape(shape), (ax + 1,), bounds, (ax, d, pad))


def _unshape(t: Any, s: _Shaped) -> Any:
    if s.blocks is None:
        return t
    ax, d, pad = s.blocks
    t = t.reshape(t.shape[:ax] + (t.shape[ax] * t.shape[ax + 1],) + t.shape[ax + 2:])
    return lax.slice_in_dim(t, 0, d, axis=ax) if pad else t


def _shape_bounds(b: Any, s: _Shaped, spec: _Spec) -> Any:
    """A bound (in W) shaped to broadcast against the shaped x."""
    if spec.block_size is not None:
        assert spec.axis is not None
        blocked = s.bounds_shape[:spec.axis + 1] + s.bounds_shape[spec.axis + 2:]
        return jnp.expand_dims(jnp.broadcast_to(b, blocked), spec.axis + 1)
    return b.reshape((1,) * len(s.bounds_shape) if b.ndim == 0 else s.bounds_shape)


def _forward(x: Any, lo: Any, hi: Any, spec: _Spec) -> Any:
    T = _Arith(spec.fmt)
    if x.size == 0:
        return x
    s = _shaped(x.astype(T.work), spec)
    v = s.x
    if spec.range_given:
        mn = _shape_bounds(T.bounds(lo), s, spec)
        mx = _shape_bounds(T.bounds(hi), s, spec)
    else:
        mn, mx = _data_range(v, s.axes)
    scale, inverse, lo_adj, hi_adj, _ = _params(mn, mx, T, spec.qmin, spec.qmax)
    if spec.range_given:  # std::min/std::max with the data first: NaN data stays NaN
        v = jnp.where(hi_adj < v, hi_adj, v)
        v = jnp.where(v < lo_adj, lo_adj, v)
    y = T.r(v * scale)
    q = T.half_up(y) if spec.half_up else jnp.round(y)
    out = T.r(q * inverse)
    if spec.poison and spec.range_given:
        out = jnp.where(mn <= mx, out, np.array(np.nan, T.work))
    return _unshape(out, s).astype(x.dtype)


def _inside(x: Any, lo: Any, hi: Any, spec: _Spec) -> Any:
    """TensorFlow's mask: input_min <= x <= input_max in T (given range), else x not NaN."""
    if not spec.range_given:
        return x == x
    T = _Arith(spec.fmt)
    s = _shaped(x.astype(T.work), spec)
    mn = _shape_bounds(T.bounds(lo), s, spec)
    mx = _shape_bounds(T.bounds(hi), s, spec)
    return _unshape((mn <= s.x) & (s.x <= mx), s)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _qdq(x: Any, lo: Any, hi: Any, spec: _Spec) -> Any:
    return _forward(x, lo, hi, spec)


def _qdq_fwd(x: Any, lo: Any, hi: Any, spec: _Spec) -> tuple[Any, tuple]:
    return _forward(x, lo, hi, spec), (x, lo, hi)


def _qdq_bwd(spec: _Spec, residuals: tuple, g: Any) -> tuple:
    x, lo, hi = residuals
    # g * mask, as TensorFlow computes it (-0.0 for negative g outside, NaN for inf): XLA
    # turns a multiply by a converted mask into a select, which gives +0.0 for both
    grad = jnp.where(_inside(x, lo, hi, spec), g, g * np.array(0, g.dtype))
    zeros = (None, None) if lo is None else (jnp.zeros_like(lo), jnp.zeros_like(hi))
    return (grad,) + zeros


_qdq.defvjp(_qdq_fwd, _qdq_bwd)


# ---- Arguments ----

def _concrete(v: Any) -> bool:
    return not isinstance(v, jax.core.Tracer)


def _check_shape(name: str, value: Any, shape: tuple, ax: int | None, bs: int | None) -> None:
    """The NumPy op's shape checks of a bound, without reading its values."""
    if value is None:
        raise TypeError(f"{name} is required when range_given=True")
    dummy = np.zeros(np.shape(value))
    fmt = format_named("float64")
    if bs is not None:
        assert ax is not None
        given_block_range(dummy, dummy, fmt, shape, ax, bs, check=False)
    else:
        given_range(dummy, dummy, fmt, shape, ax, check=False)


def _bound_value(name: str, value: Any, fmt: str) -> Any:
    """A bound as a JAX array: numbers rounded to T on the host, arrays as they are."""
    if isinstance(value, jax.Array):
        if not (jnp.issubdtype(value.dtype, jnp.floating)
                or jnp.issubdtype(value.dtype, jnp.integer)):
            raise TypeError(f"{name} must be a real number (or numbers), got an array of "
                            f"{value.dtype}")
        return value
    a = check_real(name, value)
    rounded = round_to(np.asarray(a), format_named(fmt))    # float32, or float64
    if rounded.dtype == np.float64 and not _x64():
        raise TypeError(f"{name}: float64 values need jax_enable_x64 "
                        "(jax.config.update('jax_enable_x64', True))")
    return jnp.asarray(rounded)


def quantize_and_dequantize(x: Any, input_min: Any = None, input_max: Any = None,
                            signed_input: bool = True, num_bits: int = 8,
                            range_given: bool = False, round_mode: RoundMode = "HALF_TO_EVEN",
                            narrow_range: bool = False, axis: int | None = None, *,
                            block_size: int | None = None) -> Any:
    """TensorFlow's quantize_and_dequantize as a JAX function with TensorFlow's gradient.

    Parameters
    ----------
    x : jax.Array or array_like
        float16, bfloat16, float32 or float64 (with ``jax_enable_x64``).
    input_min, input_max : float, array_like or jax.Array, optional
        The range when ``range_given``: scalars, per channel 1-D, per block
        the blocked shape (as for :func:`qdq.quantize_and_dequantize`),
        converted to x's type (rounded once to nearest even). They receive
        a zero gradient, as in TensorFlow.
    signed_input : bool, default True
        As for :func:`qdq.quantize_and_dequantize` (static under ``jit``, as
        are all the following ones).
    num_bits : int, default 8
        As for :func:`qdq.quantize_and_dequantize`.
    range_given : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}
        As for :func:`qdq.quantize_and_dequantize`.
    narrow_range : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    axis : int, optional
        As for :func:`qdq.quantize_and_dequantize`.
    block_size : int, optional
        As for :func:`qdq.quantize_and_dequantize`.

    Returns
    -------
    jax.Array
        The op's result, of x's type: on the CPU, bit for bit
        :func:`qdq.quantize_and_dequantize` (except where subnormals arise:
        see the module's documentation). Its gradient is TensorFlow's
        straight-through gradient: the incoming gradient where
        ``input_min <= x <= input_max`` (the given range, per channel or
        block; without one, wherever x is not NaN), zero elsewhere.

    Raises
    ------
    TypeError, ValueError, numpy.exceptions.AxisError
        As :func:`qdq.quantize_and_dequantize` for invalid arguments. A
        given range with ``input_min > input_max`` (or NaN) is an error when
        its values are known; under ``jit``, ``vmap`` or ``grad`` they are
        not, and the channels (blocks) with an invalid range come out NaN.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, qdq.jax
    >>> x = jnp.array([-1.5, -0.2, 0.3, 2.0])
    >>> qdq.jax.quantize_and_dequantize(x, -1.0, 1.0, num_bits=4, range_given=True)
    Array([-1.1428572 , -0.14285715,  0.2857143 ,  1.        ], dtype=float32)
    >>> f = lambda x: qdq.jax.quantize_and_dequantize(x, -1.0, 1.0, range_given=True).sum()
    >>> jax.grad(f)(x)
    Array([0., 1., 1., 0.], dtype=float32)
    >>> qdq_jit = jax.jit(qdq.jax.quantize_and_dequantize,
    ...                   static_argnames=qdq.jax.STATIC_ARGNAMES)
    >>> qdq_jit(x, num_bits=2, round_mode="HALF_UP")
    Array([-2.,  0.,  0.,  2.], dtype=float32)
    """
    a = op_args(signed_input, num_bits, range_given, round_mode, narrow_range)
    if not hasattr(x, "dtype"):
        x = jnp.asarray(x)
    dtype = np.dtype(x.dtype)
    fmt = dtype.name if dtype.name in _DIGITS else None
    if fmt is None:
        raise TypeError(f"unsupported input dtype {dtype}; supported types: float16, bfloat16, "
                        "float32, float64 (with jax_enable_x64)")
    if fmt == "float64" and not _x64():
        raise TypeError("float64 input needs jax_enable_x64 (jax.config.update("
                        "'jax_enable_x64', True)); without it JAX would compute in float32")
    x = jnp.asarray(x)
    bs = check_block_size(block_size, axis)
    ax = check_axis(axis, x.ndim)
    lo = hi = None
    poison = False
    if a.range_given:
        shape = tuple(x.shape)
        for name, value in (("input_min", input_min), ("input_max", input_max)):
            _check_shape(name, value, shape, ax, bs)
        lo = _bound_value("input_min", input_min, fmt)
        hi = _bound_value("input_max", input_max, fmt)
        if _concrete(lo) and _concrete(hi):
            host = [np.asarray(v).astype(np.float64) for v in (lo, hi)]
            if bs is not None:
                assert ax is not None
                given_block_range(host[0], host[1], format_named(fmt), shape, ax, bs)
            else:
                given_range(host[0], host[1], format_named(fmt), shape, ax)
        else:
            poison = True
    f = format_named(fmt)
    spec = _Spec(fmt, integer_value(f, a.qmin), integer_value(f, a.qmax),
                 a.round_mode == "HALF_UP", a.range_given, ax, bs, poison)
    return _qdq(x, lo, hi, spec)
