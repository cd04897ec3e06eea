"""torch tensors, JAX arrays, anything with ``__dlpack__``: read and returned without a copy.

The arrays are read through DLPack (:mod:`qdq._ext.dlpack`; bfloat16 as
bit patterns), and the result goes back to the input's library without a
copy (torch: ``torch.from_dlpack``; anything with ``__array_namespace__``,
JAX included: its ``from_dlpack``). ``out=`` may be a writable torch tensor;
a torch tensor that requires grad is refused (see :mod:`qdq.torch`).

torch tensors whose memory does not hold their values as DLPack describes it
are resolved or refused before anything is read: the lazy negation and
conjugation views (``x.neg()`` views, ``z.conj().imag``) and zero tensors are
read through a resolved copy (and refused as ``out=``); sparse, MKL-DNN,
nested, meta, fake and ``torch.func``-wrapped tensors are refused; an
``out=`` whose elements share memory (``expand()``) is refused as torch
refuses it.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from .._core.foreign import ARRAY_ARGUMENTS, RANGE_ARGUMENTS, Kind, out_refused
from .._ext import dlpack

__all__ = ["dispatch", "has_dlpack", "is_torch"]

_ALIGNMENT = 64  # XLA (JAX) shares host memory only when it is this aligned; torch any


def is_torch(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (torch is never imported here)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def has_dlpack(x: Any) -> bool:
    """Whether ``x`` is a tensor of another library that DLPack can read."""
    return not isinstance(x, np.ndarray) and (is_torch(x) or hasattr(x, "__dlpack__"))


def _check_tensor(name: str, x: Any) -> None:
    if getattr(x, "requires_grad", False):
        raise TypeError(
            f"{name} is a torch tensor that requires grad: qdq's NumPy-level functions do not "
            "record autograd history, so the gradient would be lost silently. Pass "
            f"{name}.detach() for the plain op, or use qdq.torch.quantize_and_dequantize "
            "(a torch.autograd.Function with the straight-through gradient) to train through it")


def _torch_memory(name: str, t: Any, writable: bool = False) -> Any:
    """A torch tensor whose memory holds its values, DLPack-readable; TypeError/ValueError else.

    torch exports the memory of a lazy negation view (``is_neg()``) without
    the negation, so its values would be read with the wrong sign: it is
    resolved (a copy) for reading and refused as ``out=``; so are conjugate
    views and zero tensors (which have no memory).
    """
    import torch

    if t.is_nested or t.layout != torch.strided:
        layout = "nested" if t.is_nested else str(t.layout)
        raise TypeError(f"{name} is a torch tensor of layout {layout}: qdq reads dense "
                        "(strided) tensors; convert it first (.to_dense())")
    if t.device.type == "meta":
        raise TypeError(f"{name} is a torch tensor on the meta device, which holds no values "
                        "(qdq.torch.quantize_and_dequantize computes meta tensors' shapes)")
    if type(t) not in (torch.Tensor, torch.nn.Parameter) or \
            torch._C._functorch.is_functorch_wrapped_tensor(t):
        raise TypeError(f"{name} is a {type(t).__name__} without memory qdq can read (a fake "
                        "tensor, a tensor subclass, or a tensor inside torch.func or "
                        "torch.compile): use qdq.torch.quantize_and_dequantize, which runs "
                        "on torch operations there")
    lazy = [what for what, flag in (("negation", t.is_neg()), ("conjugate", t.is_conj()),
                                    ("zero tensor", t._is_zerotensor())) if flag]
    if lazy:
        if writable:
            raise ValueError(f"{name} is a lazy torch view ({', '.join(lazy)} bit): its memory "
                             "does not hold its values, so it cannot be written; pass a "
                             "plain tensor")
        t = t.resolve_conj().resolve_neg() if not t._is_zerotensor() else torch.zeros_like(t)
    if writable and torch._debug_has_internal_overlap(t) == 1:
        raise ValueError(f"{name}: unsupported operation: more than one element of the "
                         "written-to tensor refers to a single memory location (as torch "
                         "says); clone() it first")
    return t


def _bits_to_values(bits: np.ndarray) -> np.ndarray:
    """bfloat16 bit patterns -> float32 values (exact)."""
    return (bits.astype(np.uint32) << np.uint32(16)).view(np.float32)


def _values_to_bits(values: np.ndarray) -> np.ndarray:
    """float32 values that bfloat16 holds exactly -> their bfloat16 bit patterns."""
    return (np.ascontiguousarray(values, np.float32).view(np.uint32) >> np.uint32(16)
            ).astype(np.uint16)


def _aligned_empty(like: np.ndarray) -> np.ndarray:
    """An uninitialised array of like's shape, native dtype and C/F order, 64-byte aligned."""
    dtype = like.dtype.newbyteorder("=")
    fortran = like.flags.f_contiguous and not like.flags.c_contiguous
    raw = np.empty(like.size * dtype.itemsize + _ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % _ALIGNMENT
    flat = raw[start:start + like.size * dtype.itemsize].view(dtype)
    return flat.reshape(like.shape, order="F" if fortran else "C")


def dispatch(function: Callable, kind: Kind, args: dict[str, Any]) -> Any:
    """``function`` on NumPy views of the tensors; the result back in the leading one's library."""
    names = [n for n in ARRAY_ARGUMENTS if n in args]
    lead = next((n for n in names if has_dlpack(args[n])), names[0])
    inner = dict(args)
    bfloat16 = False
    for n in names:
        if has_dlpack(args[n]):
            _check_tensor(n, args[n])
            inner[n], is_bf16 = dlpack.view(_readable(n, args[n]))
            bfloat16 |= is_bf16
    for n in RANGE_ARGUMENTS:
        if has_dlpack(args.get(n)):
            _check_tensor(n, args[n])
            value, is_bf16 = dlpack.view(_readable(n, args[n]))
            inner[n] = _bits_to_values(value) if is_bf16 else value
    out = args.get("out")
    if out is not None and not isinstance(out, np.ndarray):
        if not is_torch(out):
            raise out_refused(out)
        _check_tensor("out", out)
        inner["out"], out_bf16 = dlpack.view(_torch_memory("out", out, writable=True),
                                             writable=True)
        bfloat16 |= out_bf16
    if kind is Kind.CODES and str(getattr(args["params"], "dtype", "")) == "bfloat16":
        bfloat16 |= not args.get("bfloat16_bits")  # dequantize to a bfloat16 tensor
    if bfloat16:
        inner["bfloat16_bits"] = True
    leading = args[lead]
    if not has_dlpack(leading) or out is not None or kind is Kind.CALIBRATION:
        result = function(**inner)
        if out is None:
            return result
        return (out,) + result[1:] if kind is Kind.PAIR else out
    if kind is Kind.ARRAY:
        inner["out"] = _aligned_empty(inner[names[0]])  # JAX shares only aligned memory
    result = function(**inner)
    back = _returner(leading, bfloat16)
    if kind is Kind.RANGE:
        lo, hi = (np.array(v) for v in result)
        if bfloat16:
            lo, hi = _values_to_bits(lo).reshape(lo.shape), _values_to_bits(hi).reshape(hi.shape)
        return back(lo), back(hi)
    if kind is Kind.PAIR:
        return (_returner(leading, False)(result[0]),) + result[1:]
    return back(result)


def _readable(name: str, x: Any) -> Any:
    """x ready for :func:`qdq._ext.dlpack.view` (torch tensors checked and resolved)."""
    return _torch_memory(name, x) if is_torch(x) else x


def _returner(like: Any, bfloat16: bool) -> Callable[[np.ndarray], Any]:
    """A function taking a result ndarray to like's library without a copy."""
    if is_torch(like):
        import torch
        if bfloat16:
            return lambda a: torch.from_dlpack(dlpack.Bfloat16Export(a))
        return torch.from_dlpack
    namespace = getattr(like, "__array_namespace__", None)
    if namespace is None:
        return lambda a: a
    xp = namespace()
    if bfloat16:
        return lambda a: xp.from_dlpack(dlpack.Bfloat16Export(a))
    return xp.from_dlpack
