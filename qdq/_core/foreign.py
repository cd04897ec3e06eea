"""Arguments from other array libraries: the registry of adapters.

The public functions hand any argument that is not a plain ``numpy.ndarray``
to :func:`dispatch`, saying what they are (their :class:`Kind`). The first
registered adapter that recognises one of the array arguments (or ``out``)
takes the call; when none does, :data:`NOT_FOREIGN` says NumPy reads the
arguments itself (lists, scalars, ndarray subclasses).

The registry knows no adapter: ``qdq/__init__.py`` registers them (Dask,
xarray, DLPack, in that order of precedence) with a predicate that
recognises their arrays without importing their library, and the path of the
module that handles them, imported on first use. An adapter module's
``dispatch(function, kind, args)`` receives the core function itself (the
object, not its name) and its arguments by name.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

__all__ = ["ARRAY_ARGUMENTS", "Adapter", "Kind", "NOT_FOREIGN", "RANGE_ARGUMENTS",
           "adapter_of", "dispatch", "out_refused", "register"]

NOT_FOREIGN: Any = NotImplemented  # dispatch's answer for arguments NumPy reads itself

#: The arguments that hold tensors; the first one present leads (its library is the result's).
ARRAY_ARGUMENTS = ("gradients", "input", "codes", "data")
#: The range arguments, which may be tensors too.
RANGE_ARGUMENTS = ("input_min", "input_max")


class Kind(enum.Enum):
    """What a public function returns, which is what an adapter must wrap."""

    #: One array of the input's shape: ``quantize_and_dequantize``, its gradient.
    ARRAY = "array"
    #: Codes of the input's shape and a :class:`qdq.QuantizationParams`: ``quantize``.
    PAIR = "pair"
    #: Integer codes in, values of the parameters' type out: ``dequantize``.
    CODES = "codes"
    #: ``(min, max)`` in the input's library: ``compute_range``.
    RANGE = "range"
    #: ``(input_min, input_max)`` as NumPy values (lazy on Dask): ``calibrate``.
    CALIBRATION = "calibration"


@dataclass(frozen=True)
class Adapter:
    """One library's adapter: how to recognise its arrays, and where its handler lives."""

    name: str
    recognises: Callable[[Any], bool]
    module: str
    handler: str = "dispatch"

    def handle(self, function: Callable, kind: Kind, args: dict[str, Any]) -> Any:
        """Call the handler (importing its module on first use)."""
        return getattr(importlib.import_module(self.module), self.handler)(function, kind, args)


_ADAPTERS: list[Adapter] = []


def register(name: str, recognises: Callable[[Any], bool], module: str,
             handler: str = "dispatch") -> None:
    """Add an adapter after those registered so far (a name registered again is replaced)."""
    _ADAPTERS[:] = [a for a in _ADAPTERS if a.name != name]
    _ADAPTERS.append(Adapter(name, recognises, module, handler))


def adapter_of(x: Any) -> Adapter | None:
    """The adapter of ``x``'s library, or None (NumPy reads it)."""
    if x is None or isinstance(x, np.ndarray):
        return None
    for adapter in _ADAPTERS:
        if adapter.recognises(x):
            return adapter
    return None


def dispatch(function: Callable, kind: Kind, args: dict[str, Any]) -> Any:
    """``function(**args)`` for tensors of another library, or :data:`NOT_FOREIGN`.

    ``args`` are the public function's arguments by name (its ``locals()``
    on entry); the adapter of the highest precedence among the array
    arguments takes the call, or when they are all NumPy's, the adapter of
    ``out``.
    """
    found = [adapter_of(args[n]) for n in ARRAY_ARGUMENTS if n in args]
    chosen = [a for a in found if a is not None] or [a for a in [adapter_of(args.get("out"))]
                                                     if a is not None]
    if not chosen:
        return NOT_FOREIGN
    adapter = min(chosen, key=_ADAPTERS.index)
    return adapter.handle(function, kind, args)


def out_refused(out: Any) -> TypeError:
    """The error for an ``out=`` of another library with NumPy inputs (only torch takes one)."""
    return TypeError(f"out must be a numpy.ndarray or a torch.Tensor, got {type(out).__name__}")
