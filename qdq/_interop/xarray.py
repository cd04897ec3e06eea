"""xarray ``DataArray`` inputs: the op on ``.data``, the result with the input's dims and coords.

A ``DataArray`` backed by Dask stays lazy (its ``.data`` goes to the Dask
adapter in turn). xarray itself is never imported.
"""

from __future__ import annotations

from typing import Any, Callable

from .._core.foreign import ARRAY_ARGUMENTS, Kind, out_refused

__all__ = ["dispatch", "is_dataarray"]


def is_dataarray(x: Any) -> bool:
    """Whether ``x`` is an xarray ``DataArray`` (recognised without importing xarray)."""
    return (type(x).__module__.startswith("xarray.") and hasattr(x, "dims")
            and hasattr(x, "variable"))


def dispatch(function: Callable, kind: Kind, args: dict[str, Any]) -> Any:
    """``function`` on the arrays' ``.data``; the result wrapped like the leading DataArray.

    The result keeps the dims, coords and attrs; ``out=`` is returned as it
    is, ranges and calibrated ranges as the function gives them.
    """
    names = [n for n in ARRAY_ARGUMENTS if n in args]
    leads = [args[n] for n in names if is_dataarray(args[n])]
    if not leads:
        raise out_refused(args["out"])
    like = leads[0]
    names.append("out")
    inner = dict(args)
    for n in names:
        if is_dataarray(args.get(n)):
            inner[n] = args[n].data
    result = function(**inner)
    if args.get("out") is not None:
        return args["out"]
    if kind in (Kind.RANGE, Kind.CALIBRATION):
        return result
    if kind is Kind.PAIR:
        return (like.copy(data=result[0]),) + result[1:]
    return like.copy(data=result)
