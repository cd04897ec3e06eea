"""qdq in PyTorch training: TensorFlow's fake quantization on every device, under torch.compile.

Install with ``pip install "qdq[torch]"``. :func:`quantize_and_dequantize`
and the layer :class:`QuantizeAndDequantize` compute, bit for bit,
:func:`qdq.quantize_and_dequantize` (TensorFlow's QuantizeAndDequantizeV2
rule), in one of two ways (``backend=``):

- ``"kernels"``: qdq's C kernels on the tensor's memory (CPU tensors only,
  no copy);
- ``"torch"``: torch operations in the tensor's own type, on any device:
  the NaN-ignoring range, the parameters (SPEC step 3), the clamp, the
  scaling, the rounding and the rescaling, each one operation rounded to the
  type (float16 and bfloat16 included). Under ``torch.compile`` these run as
  one opaque operator (``torch.ops.qdq.quantize_and_dequantize``), so the
  compiler can neither contract ``x*scale + 0.5`` into a fused multiply-add
  nor keep a float16 intermediate in float32: the compiled bits are the
  eager ones, and the model stays one graph.

``backend=None`` (the default) picks the kernels for CPU tensors and torch
operations for every other device and while tracing (``torch.compile``,
fake and meta tensors, ``torch.func`` transforms).

The backward pass is TensorFlow's straight-through gradient
(QuantizeAndDequantizeV4Grad): the incoming gradient where
``input_min <= x <= input_max`` (the range as given, per channel or block),
zero elsewhere; without a given range the range is the data's own, so the
gradient passes everywhere except at NaN. It is made of torch operations, so
it is itself differentiable (``create_graph=True``). The range receives no
gradient, as in TensorFlow, unless ``learnable_range=True`` (beyond
TensorFlow: an LSQ-style gradient, see :func:`quantize_and_dequantize`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal, NamedTuple, cast

import numpy as np

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("qdq.torch needs PyTorch: pip install 'qdq[torch]'") from exc

from ._core.blocks import check_block_size, given_block_range
from ._core.formats import format_named, integer_value
from ._core.op import RoundMode
from ._core.op import quantize_and_dequantize as quantize_and_dequantize_tensor
from ._core.validate import check_axis, check_flag, check_real, given_range, op_args

__all__ = ["Backend", "QuantizeAndDequantize", "QuantizeAndDequantizeFunction",
           "quantize_and_dequantize"]

Backend = Literal["kernels", "torch"]

_FORMATS = {torch.float16: "float16", torch.bfloat16: "bfloat16", torch.float32: "float32",
            torch.float64: "float64"}
_HALVES = (torch.float16, torch.bfloat16)


class _Spec(NamedTuple):
    """The validated arguments of one call (hashable, so torch.compile takes it as a constant)."""

    backend: str
    signed: bool
    num_bits: int
    narrow: bool
    round_mode: RoundMode
    range_given: bool
    axis: int | None
    block_size: int | None
    qmin: float          # the grid bounds in T (each exactly a value of T)
    qmax: float
    learnable: bool
    traced: bool         # no value checks possible: an invalid given range gives NaN


# ---- The op in torch operations, one operation per step of SPEC section 2 ----

def _to_format(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Bounds converted to ``dtype``, rounded once to nearest even.

    torch converts float64 to float16/bfloat16 through float32 (two
    roundings); rounding to odd in float32 first makes the second rounding
    the correct single one, as the kernels do.
    """
    if not t.is_floating_point():
        t = t.to(torch.float64)
    if t.dtype == dtype:
        return t
    if t.dtype == torch.float64 and dtype in _HALVES:
        f = t.to(torch.float32)
        wide = f.to(torch.float64)
        inexact = (wide != t) & ~torch.isnan(t)
        bits = f.view(torch.int32)
        bits = torch.where(inexact & (wide.abs() > t.abs()), bits - 1, bits)
        t = torch.where(inexact, bits | 1, bits).view(torch.float32)
    return t.to(dtype)


def _data_range(x: torch.Tensor, dims: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The NaN-ignoring min and max over ``dims`` (kept), -0.0 below +0.0, as the kernels."""
    nan = torch.isnan(x)
    mn = torch.where(nan, math.inf, x)
    mx = torch.where(nan, -math.inf, x)
    zero = x == 0
    negative = torch.signbit(x)
    negative_zero, positive_zero = zero & negative, zero & ~negative
    if dims:
        mn, mx = mn.amin(dim=dims, keepdim=True), mx.amax(dim=dims, keepdim=True)
        negative_zero = negative_zero.any(dim=dims, keepdim=True)
        positive_zero = positive_zero.any(dim=dims, keepdim=True)
    # amin/amax may return either zero of a tie between -0.0 and +0.0
    mn = torch.where((mn == 0) & negative_zero, -mn.abs(), mn)
    mx = torch.where((mx == 0) & positive_zero, mx.abs(), mx)
    return mn, mx


def _params(mn: torch.Tensor, mx: torch.Tensor, qmin: float, qmax: float
            ) -> tuple[torch.Tensor, ...]:
    """(scale, inverse, min_range, max_range, whether the scale came from min): SPEC step 3.

    The constants are tensors on the data's device (torch divides by a CPU
    scalar with a reciprocal on CUDA, which rounds twice).
    """
    qmin_t = torch.full((), qmin, dtype=mn.dtype, device=mn.device)
    qmax_t = torch.full((), qmax, dtype=mn.dtype, device=mn.device)
    big = torch.finfo(mn.dtype).max
    s_min = torch.where(qmin_t * mn > 0, qmin_t / mn, big)
    s_max = torch.where(qmax_t * mx > 0, qmax_t / mx, big)
    use_min = s_min < s_max
    scale = torch.where(use_min, s_min, s_max)
    inverse = torch.where(use_min, mn / qmin_t, mx / qmax_t)
    lo = torch.where(use_min, mn, qmin_t * inverse)
    hi = torch.where(use_min, qmax_t * inverse, mx)
    return scale, inverse, lo, hi, use_min


def _transform(x: torch.Tensor, lo: torch.Tensor | None, hi: torch.Tensor | None, qmin: float,
               qmax: float, half_up: bool, reduce_dims: list[int], poison: bool
               ) -> torch.Tensor:
    """The whole op: the range (given or over ``reduce_dims``), parameters, transform.

    ``lo``/``hi`` (given ranges) are tensors of x's type that broadcast
    against x with its number of dimensions; ``poison`` makes channels whose
    given range is invalid NaN (where the call could not raise).
    """
    if x.numel() == 0:
        return x.clone()
    given = lo is not None and hi is not None
    if lo is not None and hi is not None:
        mn, mx = lo, hi
    else:
        mn, mx = _data_range(x, reduce_dims)
    scale, inverse, lo_adj, hi_adj, _ = _params(mn, mx, qmin, qmax)
    v = x
    if given:  # std::min/std::max with the data first: NaN data stays NaN, -0.0 stays
        v = torch.where(hi_adj < v, hi_adj, v)
        v = torch.where(v < lo_adj, lo_adj, v)
    y = v * scale
    q = torch.floor(y + 0.5) if half_up else torch.round(y)  # round: half to even
    out = q * inverse
    if poison and given:
        out = torch.where(mn <= mx, out, math.nan)
    return out


@torch.library.custom_op("qdq::quantize_and_dequantize", mutates_args=(),
                         schema="(Tensor x, Tensor? lo, Tensor? hi, float qmin, float qmax, "
                                "bool half_up, int[] reduce_dims, bool poison) -> Tensor")
def _op(x: torch.Tensor, lo: torch.Tensor | None, hi: torch.Tensor | None, qmin: float,
        qmax: float, half_up: bool, reduce_dims: list[int], poison: bool) -> torch.Tensor:
    """The op as one operator: eager torch operations that a compiler cannot fuse."""
    return _transform(x, lo, hi, qmin, qmax, half_up, reduce_dims, poison)


@_op.register_fake
def _op_fake(x: torch.Tensor, lo: torch.Tensor | None, hi: torch.Tensor | None, qmin: float,
             qmax: float, half_up: bool, reduce_dims: list[int], poison: bool
             ) -> torch.Tensor:
    return torch.empty_like(x)


def _batch_first(t: torch.Tensor, dim: int | None) -> torch.Tensor:
    return t.unsqueeze(0) if dim is None else t.movedim(dim, 0)


@_op.register_vmap
def _op_vmap(info: Any, in_dims: tuple, x: torch.Tensor, lo: torch.Tensor | None,
             hi: torch.Tensor | None, qmin: float, qmax: float, half_up: bool,
             reduce_dims: list[int], poison: bool) -> tuple[torch.Tensor, int]:
    # Every operand has x's number of dimensions; the batch becomes a leading kept one.
    x = _batch_first(x, in_dims[0])
    if in_dims[0] is None:
        x = x.expand((info.batch_size,) + tuple(x.shape[1:]))
    lo = None if lo is None else _batch_first(lo, in_dims[1])
    hi = None if hi is None else _batch_first(hi, in_dims[2])
    return _op(x, lo, hi, qmin, qmax, half_up, [d + 1 for d in reduce_dims], poison), 0


class _Shaped(NamedTuple):
    """A tensor laid out so that each range broadcasts: blocks get their own dimension."""

    x: torch.Tensor
    reduce_dims: list[int]
    unshape: Callable[[torch.Tensor], torch.Tensor]
    bounds_shape: list[int]


def _shaped(x: torch.Tensor, spec: _Spec, fill: float = math.nan) -> _Shaped:
    """x with each block along its own dimension (padded with ``fill``), and the way back."""
    ax, bs = spec.axis, spec.block_size
    if ax is None:
        return _Shaped(x, list(range(x.ndim)), lambda t: t, [1] * x.ndim)
    if bs is None:
        shape = [1] * x.ndim
        shape[ax] = x.shape[ax]
        return _Shaped(x, [d for d in range(x.ndim) if d != ax], lambda t: t, shape)
    d = x.shape[ax]
    size = min(bs, max(d, 1))        # the same blocks, without a huge padding
    blocks = -(-d // size)
    pad = blocks * size - d
    if pad:
        tail = list(x.shape)
        tail[ax] = pad
        x = torch.cat([x, x.new_full(tail, fill)], dim=ax)
    shape = [1] * (x.ndim + 1)
    shape[:ax] = x.shape[:ax]
    shape[ax] = blocks
    shape[ax + 2:] = x.shape[ax + 1:]

    def unshape(t: torch.Tensor) -> torch.Tensor:
        t = t.flatten(ax, ax + 1)
        return t.narrow(ax, 0, d) if pad else t

    return _Shaped(x.unflatten(ax, (blocks, size)), [ax + 1], unshape, shape)


def _bounds(value: torch.Tensor, dtype: torch.dtype, device: torch.device, spec: _Spec,
            shape: list[int]) -> torch.Tensor:
    """A given bound in T on x's device, shaped to broadcast against the shaped x."""
    t = _to_format(value, dtype).to(device)
    if spec.block_size is not None:
        assert spec.axis is not None
        blocked = shape[:spec.axis + 1] + shape[spec.axis + 2:]
        return t.broadcast_to(blocked).unsqueeze(spec.axis + 1)
    return t.reshape([1] * len(shape)) if t.ndim == 0 else t.reshape(shape)


def _forward_torch(x: torch.Tensor, input_min: Any, input_max: Any, spec: _Spec
                   ) -> torch.Tensor:
    s = _shaped(x, spec)
    lo = hi = None
    if spec.range_given:
        lo = _bounds(input_min, x.dtype, x.device, spec, s.bounds_shape)
        hi = _bounds(input_max, x.dtype, x.device, spec, s.bounds_shape)
    out = torch.ops.qdq.quantize_and_dequantize(s.x, lo, hi, spec.qmin, spec.qmax,
                                                spec.round_mode == "HALF_UP", s.reduce_dims,
                                                spec.traced)
    return s.unshape(out)


def _forward_kernels(x: torch.Tensor, input_min: Any, input_max: Any, spec: _Spec
                     ) -> torch.Tensor:
    lo = input_min.detach() if spec.range_given else None
    hi = input_max.detach() if spec.range_given else None
    result: Any = quantize_and_dequantize_tensor(
        x.detach(), lo, hi, spec.signed, spec.num_bits, spec.range_given, spec.round_mode,
        spec.narrow, spec.axis, block_size=spec.block_size)
    return result


# ---- Gradients ----

def _inside(x: torch.Tensor, input_min: Any, input_max: Any, spec: _Spec) -> torch.Tensor:
    """TensorFlow's mask: input_min <= x <= input_max in T (given range), else x not NaN."""
    if not spec.range_given:
        return x == x
    s = _shaped(x, spec)
    lo = _bounds(input_min, x.dtype, x.device, spec, s.bounds_shape)
    hi = _bounds(input_max, x.dtype, x.device, spec, s.bounds_shape)
    return s.unshape((lo <= s.x) & (s.x <= hi))


def _range_gradients(grad: torch.Tensor, x: torch.Tensor, out: torch.Tensor, input_min: Any,
                     input_max: Any, spec: _Spec) -> tuple[torch.Tensor, torch.Tensor]:
    """The LSQ-style gradient of the loss with respect to input_min and input_max.

    With ``inverse`` the step the range sets (``max/qmax`` or ``min/qmin``,
    whichever bound sets the scale), ``d out / d inverse`` is ``q - x/inverse``
    inside the adjusted range and the clamped code ``q`` outside it (LSQ's
    step-size gradient), times ``1/qmax`` (or ``1/qmin``) for the bound that
    set the scale and 0 for the other; summed per tensor, channel or block.
    """
    wide = torch.float32 if x.dtype in _HALVES else x.dtype
    sx = _shaped(x, spec)
    so = _shaped(out, spec, 0.0)
    sg = _shaped(grad, spec, 0.0)
    lo = _bounds(input_min, x.dtype, x.device, spec, sx.bounds_shape)
    hi = _bounds(input_max, x.dtype, x.device, spec, sx.bounds_shape)
    _, inverse, lo_adj, hi_adj, use_min = _params(lo, hi, spec.qmin, spec.qmax)
    inside = (lo_adj <= sx.x) & (sx.x <= hi_adj)
    xv, ov, iv = sx.x.to(wide), so.x.to(wide), inverse.to(wide)
    step = torch.where(inside, (ov - xv) / iv, ov / iv)
    step = torch.where(torch.isnan(xv) | (iv == 0), 0.0, step)
    total = sg.x.to(wide) * step
    if sx.reduce_dims:
        total = total.sum(dim=sx.reduce_dims, keepdim=True)
    g_min = torch.where(use_min, total / spec.qmin, 0.0)
    g_max = torch.where(use_min, 0.0, total / spec.qmax)
    if spec.block_size is not None:
        assert spec.axis is not None
        g_min, g_max = g_min.squeeze(spec.axis + 1), g_max.squeeze(spec.axis + 1)
    elif spec.axis is not None:
        g_min, g_max = g_min.reshape(-1), g_max.reshape(-1)
    else:
        g_min, g_max = g_min.reshape(()), g_max.reshape(())
    return (g_min.sum_to_size(input_min.shape).to(input_min.dtype).to(input_min.device),
            g_max.sum_to_size(input_max.shape).to(input_max.dtype).to(input_max.device))


class QuantizeAndDequantizeFunction(torch.autograd.Function):
    """``torch.autograd.Function``: the op forward, TensorFlow's straight-through gradient back.

    Call it through :func:`quantize_and_dequantize`, which validates the
    arguments and builds the last one. ``forward`` is separate from
    ``setup_context``, so ``torch.func`` transforms (``vmap``, ``grad``)
    apply; the range tensors are saved with ``save_for_backward``, so
    changing them in place before the backward pass is an error, as for any
    saved tensor.
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(x: torch.Tensor, input_min: Any, input_max: Any,
                spec: _Spec) -> torch.Tensor:
        if spec.backend == "kernels":
            return _forward_kernels(x, input_min, input_max, spec)
        return _forward_torch(x, input_min, input_max, spec)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: torch.Tensor) -> None:
        x, input_min, input_max, spec = inputs
        ctx.spec = spec
        if spec.range_given:
            saved = (x, input_min, input_max) + ((output,) if spec.learnable else ())
            ctx.save_for_backward(*saved)
        else:
            ctx.save_for_backward(x)

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> Any:
        spec: _Spec = ctx.spec
        grad = grad_outputs[0]
        saved = ctx.saved_tensors
        x = saved[0]
        input_min = input_max = None
        if spec.range_given:
            input_min, input_max = saved[1], saved[2]
        grad_x = grad_min = grad_max = None
        if ctx.needs_input_grad[0]:
            grad_x = grad * _inside(x, input_min, input_max, spec).to(grad.dtype)
        if spec.learnable and (ctx.needs_input_grad[1] or ctx.needs_input_grad[2]):
            grad_min, grad_max = _range_gradients(grad, x, saved[3], input_min, input_max, spec)
            grad_min = grad_min if ctx.needs_input_grad[1] else None
            grad_max = grad_max if ctx.needs_input_grad[2] else None
        return grad_x, grad_min, grad_max, None


# ---- Arguments ----

def _traced(*tensors: Any) -> bool:
    """Whether values cannot be read: torch.compile, fake or meta tensors, torch.func."""
    if torch.compiler.is_compiling():
        return True
    from torch._subclasses.fake_tensor import is_fake
    from torch.fx.experimental.proxy_tensor import get_proxy_mode

    if get_proxy_mode() is not None:
        return True
    for t in tensors:
        if isinstance(t, torch.Tensor) and (
                t.device.type == "meta" or is_fake(t)
                or torch._C._functorch.is_functorch_wrapped_tensor(t)):
            return True
    return False


def _check_bound_shape(name: str, shape: tuple, x_shape: tuple, ax: int | None,
                       bs: int | None) -> None:
    """The shape rules of a given bound (the NumPy op's messages), without reading values."""
    if bs is not None:
        assert ax is not None
        blocked = x_shape[:ax] + (-(-x_shape[ax] // bs),) + x_shape[ax + 1:]
        try:
            fits = tuple(torch.broadcast_shapes(tuple(shape), blocked)) == blocked
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"{name} of shape {tuple(shape)} does not fit the blocked shape {blocked} "
                f"(the input's shape {x_shape} with axis {ax} replaced by "
                f"ceil({x_shape[ax]} / {bs}) = {blocked[ax]} blocks)")
    elif ax is None:
        if len(shape):
            raise ValueError(f"{name} must be a scalar for a per-tensor range (axis=None), "
                             f"got shape {tuple(shape)}")
    elif len(shape) > 1:
        raise ValueError(f"{name} must be a scalar or 1-D with one value per channel, "
                         f"got shape {tuple(shape)}")
    elif len(shape) == 1 and shape[0] != x_shape[ax]:
        raise ValueError(f"{name} has {shape[0]} values but axis {ax} has {x_shape[ax]} "
                         "channels")


def _bound_tensor(name: str, value: Any, dtype: torch.dtype, device: torch.device
                  ) -> torch.Tensor:
    """A given bound as a tensor: tensors as they are, numbers converted exactly to T."""
    if value is None:
        raise TypeError(f"{name} is required when range_given=True")
    if isinstance(value, torch.Tensor):
        if not (value.is_floating_point() or value.dtype in (torch.int8, torch.int16,
                                                             torch.int32, torch.int64,
                                                             torch.uint8)):
            raise TypeError(f"{name} must be a real number (or numbers), got a tensor of "
                            f"{value.dtype}")
        return value
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a real number (or numbers), got {value!r}")
    if isinstance(value, (int, float)):
        t = torch.tensor(float(value), dtype=torch.float64)
    else:
        t = torch.as_tensor(np.asarray(check_real(name, value), dtype=np.float64))
    return _to_format(t, dtype).to(device)


def _host_values(value: Any) -> Any:
    """A bound the NumPy checks can read (a tensor as float64 values on the host)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", torch.float64).numpy()
    return value


def _spec(x: Any, input_min: Any, input_max: Any, signed_input: Any, num_bits: Any,
          range_given: Any, round_mode: Any, narrow_range: Any, axis: Any, block_size: Any,
          backend: Any, learnable_range: Any) -> tuple[_Spec, Any, Any]:
    """Every check of the arguments; (the call's spec, input_min and input_max as tensors)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    fmt_name = _FORMATS.get(x.dtype)
    if fmt_name is None:
        raise TypeError(f"unsupported tensor dtype {x.dtype}; supported types: float16, "
                        "bfloat16, float32, float64")
    if x.layout != torch.strided:
        raise TypeError(f"x must be a dense (strided) tensor, got layout {x.layout}")
    a = op_args(signed_input, num_bits, range_given, round_mode, narrow_range)
    bs = check_block_size(block_size, axis)
    ax = check_axis(axis, x.ndim)
    learnable = check_flag("learnable_range", learnable_range)
    if learnable and not a.range_given:
        raise ValueError("learnable_range=True needs range_given=True (the range to learn)")
    traced = _traced(x, input_min, input_max)
    if backend is None:
        backend = "kernels" if x.device.type == "cpu" and not traced else "torch"
    elif backend not in ("kernels", "torch"):
        raise ValueError(f"backend must be None, 'kernels' or 'torch', got {backend!r}")
    elif backend == "kernels" and (x.device.type != "cpu" or traced):
        where = f"on {x.device}" if x.device.type != "cpu" else "while tracing"
        raise ValueError(f"backend='kernels' runs qdq's C kernels on CPU memory, not {where}: "
                         "use backend=None or backend='torch'")
    lo = hi = None
    if a.range_given:
        lo = _bound_tensor("input_min", input_min, x.dtype, x.device)
        hi = _bound_tensor("input_max", input_max, x.dtype, x.device)
        shape = tuple(x.shape)
        for name, t in (("input_min", lo), ("input_max", hi)):
            _check_bound_shape(name, tuple(t.shape), shape, ax, bs)
        if not traced and backend == "torch":  # the kernels check their own
            fmt = format_named(fmt_name)
            if bs is not None:
                assert ax is not None
                given_block_range(_host_values(lo), _host_values(hi), fmt, shape, ax, bs)
            else:
                given_range(_host_values(lo), _host_values(hi), fmt, shape, ax)
    fmt = format_named(fmt_name)
    spec = _Spec(backend, a.signed, a.num_bits, a.narrow, cast(RoundMode, a.round_mode),
                 a.range_given, ax, bs,
                 integer_value(fmt, a.qmin), integer_value(fmt, a.qmax), learnable, traced)
    return spec, lo, hi


def quantize_and_dequantize(x: torch.Tensor, input_min: Any = None, input_max: Any = None,
                            signed_input: bool = True, num_bits: int = 8,
                            range_given: bool = False, round_mode: RoundMode = "HALF_TO_EVEN",
                            narrow_range: bool = False, axis: int | None = None, *,
                            block_size: int | None = None, backend: Backend | None = None,
                            learnable_range: bool = False) -> torch.Tensor:
    """:func:`qdq.quantize_and_dequantize` that autograd can differentiate, on any device.

    Parameters
    ----------
    x : torch.Tensor
        A dense tensor of float16, bfloat16, float32 or float64, on any
        device; it may require grad.
    input_min, input_max : float, array_like or torch.Tensor, optional
        The range when ``range_given``: scalars, per channel 1-D, per block
        the blocked shape (as for :func:`qdq.quantize_and_dequantize`).
        Converted to x's type (rounded once to nearest even).
    signed_input : bool, default True
        As for :func:`qdq.quantize_and_dequantize`.
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
    backend : {None, "kernels", "torch"}
        ``"kernels"``: qdq's C kernels (CPU tensors, outside tracing);
        ``"torch"``: torch operations on x's device; None: the kernels for
        CPU tensors, torch operations on other devices and while tracing
        (``torch.compile``, fake or meta tensors, ``torch.func``). Both give
        the same bits.
    learnable_range : bool, default False
        Beyond TensorFlow (whose gradient gives the range none): with
        ``range_given``, tensors ``input_min``/``input_max`` that require
        grad receive the LSQ-style gradient. With ``step`` the inverse scale
        the range sets (``input_max/qmax``, or ``input_min/qmin`` when the
        minimum sets the scale), ``d out/d step`` is ``q - x/step`` inside
        the adjusted range and the clamped code ``q`` outside; the bound
        that sets the scale receives the sum of ``grad * d out/d step`` over
        its tensor, channel or block, divided by its ``qmax`` (or ``qmin``),
        the other bound zero. LSQ's gradient scale ``1/sqrt(N * qmax)`` is
        not applied. The gradient with respect to x stays TensorFlow's.

    Returns
    -------
    torch.Tensor
        The op's result, bit for bit the NumPy path's, of x's type, on x's
        device; its gradient is TensorFlow's straight-through gradient.

    Raises
    ------
    TypeError, ValueError, numpy.exceptions.AxisError
        As :func:`qdq.quantize_and_dequantize` for invalid arguments. A
        given range with ``input_min > input_max`` (or NaN) is checked by
        reading the range (from a GPU too); while tracing it cannot be, and
        the channels (blocks) with an invalid range come out NaN instead.

    Notes
    -----
    Under ``torch.compile`` the op is one operator,
    ``torch.ops.qdq.quantize_and_dequantize``, whose implementation runs the
    eager torch operations: the compiler fuses the code around it but not
    inside it, so it can neither contract ``x*scale + 0.5`` into a fused
    multiply-add nor skip a float16/bfloat16 rounding. The backward pass is
    a multiply by a mask, compiled as any other code.

    Examples
    --------
    >>> import torch, qdq.torch
    >>> x = torch.tensor([-1.5, -0.2, 0.3, 2.0], requires_grad=True)
    >>> y = qdq.torch.quantize_and_dequantize(x, -1.0, 1.0, num_bits=4, range_given=True)
    >>> y
    tensor([-1.1429, -0.1429,  0.2857,  1.0000],
           grad_fn=<QuantizeAndDequantizeFunctionBackward>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([0., 1., 1., 0.])

    The same bits from torch operations (what runs on a GPU):

    >>> z = qdq.torch.quantize_and_dequantize(x, -1.0, 1.0, num_bits=4, range_given=True,
    ...                                       backend="torch")
    >>> torch.equal(y, z)
    True
    """
    spec, lo, hi = _spec(x, input_min, input_max, signed_input, num_bits, range_given,
                         round_mode, narrow_range, axis, block_size, backend, learnable_range)
    result: torch.Tensor = QuantizeAndDequantizeFunction.apply(x, lo, hi, spec)
    return result


class QuantizeAndDequantize(torch.nn.Module):
    """Fake quantization as a layer: :func:`quantize_and_dequantize` with fixed arguments.

    Parameters
    ----------
    num_bits : int, default 8
        As for :func:`qdq.quantize_and_dequantize`; each argument is kept as
        an attribute of the same name.
    signed_input : bool, default True
        As for :func:`qdq.quantize_and_dequantize`.
    range_given : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    input_min, input_max : float, array_like or torch.Tensor, optional
        The range when ``range_given``. Tensors become buffers (they follow
        ``.to(device)`` and are saved in the state dict); with
        ``learnable_range`` both become ``torch.nn.Parameter`` (float32 unless
        given as floating tensors).
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}
        As for :func:`qdq.quantize_and_dequantize`.
    narrow_range : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    axis : int, optional
        As for :func:`qdq.quantize_and_dequantize`.
    block_size : int, optional
        As for :func:`qdq.quantize_and_dequantize`.
    backend : {None, "kernels", "torch"}
        As for :func:`quantize_and_dequantize`.
    learnable_range : bool, default False
        Train the range with the LSQ-style gradient (see
        :func:`quantize_and_dequantize`; beyond TensorFlow).

    Examples
    --------
    >>> import torch, qdq.torch
    >>> layer = torch.nn.Sequential(torch.nn.Linear(4, 2), qdq.torch.QuantizeAndDequantize(4))
    >>> layer(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    >>> q = qdq.torch.QuantizeAndDequantize(4, range_given=True, input_min=-1.0, input_max=1.0,
    ...                                     learnable_range=True)
    >>> [name for name, _ in q.named_parameters()]
    ['input_min', 'input_max']
    """

    def __init__(self, num_bits: int = 8, signed_input: bool = True, range_given: bool = False,
                 input_min: Any = None, input_max: Any = None,
                 round_mode: RoundMode = "HALF_TO_EVEN", narrow_range: bool = False,
                 axis: int | None = None, block_size: int | None = None, *,
                 backend: Backend | None = None, learnable_range: bool = False):
        super().__init__()
        self.num_bits, self.signed_input, self.range_given = num_bits, signed_input, range_given
        self.round_mode, self.narrow_range = round_mode, narrow_range
        self.axis, self.block_size = axis, block_size
        self.backend, self.learnable_range = backend, learnable_range
        for name, value in (("input_min", input_min), ("input_max", input_max)):
            if learnable_range and value is not None:
                t = torch.as_tensor(value)
                t = t.detach().clone() if t.is_floating_point() else t.to(torch.float32)
                self.register_parameter(name, torch.nn.Parameter(t))
            elif isinstance(value, torch.Tensor):
                self.register_buffer(name, value)
            else:
                setattr(self, name, value)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the op with the layer's arguments.

        Parameters
        ----------
        x : torch.Tensor
            A floating tensor on any device.

        Returns
        -------
        torch.Tensor
            :func:`quantize_and_dequantize` of ``x``.

        Examples
        --------
        >>> import torch, qdq.torch
        >>> qdq.torch.QuantizeAndDequantize(2).forward(torch.tensor([-1.0, 0.4, 1.0]))
        tensor([-1.,  0.,  1.])
        """
        return quantize_and_dequantize(x, self.input_min, self.input_max, self.signed_input,
                                       self.num_bits, self.range_given, self.round_mode,
                                       self.narrow_range, self.axis,
                                       block_size=self.block_size, backend=self.backend,
                                       learnable_range=self.learnable_range)

    def extra_repr(self) -> str:
        return (f"num_bits={self.num_bits}, signed_input={self.signed_input}, "
                f"range_given={self.range_given}, axis={self.axis}, "
                f"block_size={self.block_size}, backend={self.backend!r}, "
                f"learnable_range={self.learnable_range}")
