"""Inputs from other array libraries: array type in, array type out.

The public functions hand any argument that is not a plain ``numpy.ndarray``
to :func:`dispatch`, which recognises its library (without importing it):

* a Dask array goes to :mod:`qdq.dask` and stays lazy (``out=`` refused);
* an xarray ``DataArray`` is computed on its ``.data`` (lazy when Dask backs
  it) and keeps its dims, coords and attrs;
* a torch tensor, a JAX array or any other CPU object with ``__dlpack__`` is
  read without a copy through DLPack (:mod:`qdq._dlpack`; bfloat16 as bit
  patterns), and the result goes back to the input's library without a copy
  (torch: ``torch.from_dlpack``; anything with ``__array_namespace__``, JAX
  included: its ``from_dlpack``). ``out=`` may be a writable torch tensor;
  a torch tensor that requires grad is refused (see :mod:`qdq.torch`);
* anything else (lists, scalars, ndarray subclasses) is left to NumPy.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable

import numpy as np

from . import _dlpack

__all__ = ["NOT_FOREIGN", "dispatch", "library_of"]

NOT_FOREIGN: Any = NotImplemented  # dispatch's answer for arguments NumPy reads itself

# The arguments that hold tensors, the first one present being the one whose
# library the result follows; the ranges may be tensors too.
_ARRAYS = ("gradients", "input", "codes")
_RANGES = ("input_min", "input_max")
_ALIGNMENT = 64  # XLA (JAX) shares host memory only when it is this aligned; torch any


def library_of(x: Any) -> str | None:
    """``"dask"``, ``"xarray"``, ``"torch"``, ``"dlpack"`` or None (NumPy reads it)."""
    if isinstance(x, np.ndarray):
        return None
    module = type(x).__module__
    if module.startswith("xarray.") and hasattr(x, "dims") and hasattr(x, "variable"):
        return "xarray"
    if hasattr(x, "__dask_graph__") and module.startswith("dask."):
        return "dask"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return "torch"
    if hasattr(x, "__dlpack__"):
        return "dlpack"
    return None


def dispatch(function: Callable, args: dict[str, Any]) -> Any:
    """``function(**args)`` for tensors of another library, or :data:`NOT_FOREIGN`.

    ``args`` are the public function's arguments by name (its ``locals()``
    on entry).
    """
    names = [n for n in _ARRAYS if n in args]
    libraries = {library_of(args[n]) for n in names}
    if libraries == {None} and library_of(args.get("out")) is None:
        return NOT_FOREIGN
    if "dask" in libraries:
        return _on_dask(function, args, names)
    if "xarray" in libraries:
        return _on_xarray(function, args, names)
    lead = next((n for n in names if library_of(args[n]) is not None), names[0])
    return _on_dlpack(function, args, names, lead)


def _on_dask(function: Callable, args: dict[str, Any], names: list[str]) -> Any:
    if args.get("out") is not None:
        raise TypeError("out= is not supported for Dask arrays: the result is a lazy Dask "
                        "array (store it with .to_zarr or .compute())")
    # qdq.dask needs Dask (an optional dependency) and builds on the in-memory op, which
    # calls here: it is imported by name on first use, never at the top of a module.
    qdq_dask = importlib.import_module("qdq.dask")
    lazy = getattr(qdq_dask, function.__name__, None)
    if lazy is None or len(names) > 1:
        raise TypeError(f"qdq.{function.__name__} has no Dask version: compute the Dask "
                        "array first (.compute()), or see qdq.dask for the lazy functions")
    rest = {k: v for k, v in args.items() if k not in (names[0], "out") and v is not None}
    return lazy(args[names[0]], **rest)


def _on_xarray(function: Callable, args: dict[str, Any], names: list[str]) -> Any:
    like = next(args[n] for n in names if library_of(args[n]) == "xarray")
    inner = dict(args)
    for n in names + ["out"]:
        if library_of(args.get(n)) == "xarray":
            inner[n] = args[n].data
    result = function(**inner)
    if args.get("out") is not None:
        return args["out"]
    if function.__name__ == "compute_range":
        return result
    if isinstance(result, tuple):  # quantize: (codes, params)
        return (like.copy(data=result[0]),) + result[1:]
    return like.copy(data=result)


def _check_tensor(name: str, x: Any) -> None:
    if getattr(x, "requires_grad", False):
        raise TypeError(
            f"{name} is a torch tensor that requires grad: qdq's NumPy-level functions do not "
            "record autograd history, so the gradient would be lost silently. Pass "
            f"{name}.detach() for the plain op, or use qdq.torch.quantize_and_dequantize "
            "(a torch.autograd.Function with the straight-through gradient) to train through it")


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


def _on_dlpack(function: Callable, args: dict[str, Any], names: list[str], lead: str) -> Any:
    inner = dict(args)
    bfloat16 = False
    for n in names:
        if library_of(args[n]) in ("torch", "dlpack"):
            _check_tensor(n, args[n])
            inner[n], is_bf16 = _dlpack.view(args[n])
            bfloat16 |= is_bf16
    for n in _RANGES:
        if library_of(args.get(n)) in ("torch", "dlpack"):
            _check_tensor(n, args[n])
            value, is_bf16 = _dlpack.view(args[n])
            inner[n] = _bits_to_values(value) if is_bf16 else value
    out = args.get("out")
    if out is not None and not isinstance(out, np.ndarray):
        if library_of(out) != "torch":
            raise TypeError(f"out must be a numpy.ndarray or a torch.Tensor, got "
                            f"{type(out).__name__}")
        _check_tensor("out", out)
        inner["out"], out_bf16 = _dlpack.view(out, writable=True)
        bfloat16 |= out_bf16
    if "params" in args and str(getattr(args["params"], "dtype", "")) == "bfloat16":
        bfloat16 |= not args.get("bfloat16_bits")  # dequantize to a bfloat16 tensor
    if bfloat16:
        inner["bfloat16_bits"] = True
    library = library_of(args[lead])
    if library is None or out is not None:
        result = function(**inner)
        return (out,) + result[1:] if isinstance(result, tuple) else out
    if function.__name__ in ("quantize_and_dequantize", "quantize_and_dequantize_grad"):
        inner["out"] = _aligned_empty(inner[names[0]])  # JAX shares only aligned memory
    result = function(**inner)
    back = _returner(args[lead], library, bfloat16)
    if function.__name__ == "compute_range":
        lo, hi = (np.array(v) for v in result)
        if bfloat16:
            lo, hi = _values_to_bits(lo).reshape(lo.shape), _values_to_bits(hi).reshape(hi.shape)
        return back(lo), back(hi)
    if isinstance(result, tuple):  # quantize: (codes, params)
        return (_returner(args[lead], library, False)(result[0]),) + result[1:]
    return back(result)


def _returner(like: Any, library: str, bfloat16: bool) -> Callable[[np.ndarray], Any]:
    """A function taking a result ndarray to like's library without a copy."""
    if library == "torch":
        import torch
        if bfloat16:
            return lambda a: torch.from_dlpack(_dlpack.Bfloat16Export(a))
        return torch.from_dlpack
    namespace = getattr(like, "__array_namespace__", None)
    if namespace is None:
        return lambda a: a
    xp = namespace()
    if bfloat16:
        return lambda a: xp.from_dlpack(_dlpack.Bfloat16Export(a))
    return xp.from_dlpack
