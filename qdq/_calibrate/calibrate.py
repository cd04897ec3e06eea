"""qdq.calibrate: a calibrated range for the op from an array or from chunks of one."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._core.foreign import NOT_FOREIGN, Kind, dispatch
from .._core.validate import OpArgs
from .histogram import HistogramTracker
from .methods import check_method

__all__ = ["calibrate"]


def calibrate(data: Any, method: str = "mse", axis: int | None = None, **kw: Any):
    """A calibrated range for the op, from an array or from chunks of one.

    Builds a :class:`qdq.HistogramTracker` over the data and asks it for a
    range, for :func:`qdq.quantize_and_dequantize` with ``range_given=True``.

    Parameters
    ----------
    data : array_like or iterable of array_like
        An ndarray (or a list of numbers, a torch tensor, a JAX array, an
        xarray ``DataArray``, or anything with ``__array__``) is one tensor; a
        Dask array gives a lazy result (:func:`qdq.dask.calibrate`); any other
        iterable (a generator, a list of arrays) yields consecutive slices
        along axis 0 of one tensor, read once.
    method : {"mse", "percentile", "entropy", "minmax"}, default "mse"
        ``"mse"``: the bin-edge range with the least expected squared error
        of the op over the histogram. ``"percentile"``: the lower and upper
        ``percentile`` quantiles, to the bin. ``"entropy"``: TensorRT's
        KL-divergence search. ``"minmax"``: the exact min/max.
    axis : int, optional
        One range per channel along this axis.
    **kw
        ``bins`` (default 2048) and ``bfloat16_bits`` for the tracker;
        ``percentile`` (default 99.99), ``num_bits``, ``signed_input``,
        ``narrow_range`` and ``round_mode`` for :meth:`HistogramTracker.range`.

    Returns
    -------
    input_min : numpy scalar or numpy.ndarray
        Of the data's type; per channel, 1-D arrays. For a Dask array, a
        ``dask.delayed.Delayed`` computing to ``(input_min, input_max)``.
    input_max : numpy scalar or numpy.ndarray
        The upper bound, in the same form.

    Examples
    --------
    >>> import numpy as np, qdq
    >>> x = np.random.default_rng(0).standard_t(3, 100_000).astype(np.float32)
    >>> lo, hi = qdq.calibrate(x, num_bits=4)
    >>> mn, mx = qdq.compute_range(x)
    >>> bool(mn < lo < 0 < hi < mx)
    True
    >>> def err(a, b):
    ...     y = qdq.quantize_and_dequantize(x, a, b, num_bits=4, range_given=True)
    ...     return float(np.mean((y.astype(np.float64) - x) ** 2))
    >>> err(lo, hi) < err(mn, mx) / 2
    True
    """
    if type(data) is not np.ndarray:
        foreign = dispatch(calibrate, Kind.CALIBRATION,
                           {"data": data, "method": method, "axis": axis, **kw})
        if foreign is not NOT_FOREIGN:
            return foreign
    tracker_kw = {name: kw.pop(name) for name in ("bins", "bfloat16_bits") if name in kw}
    range_kw = {name: kw.pop(name) for name in ("percentile", "num_bits", "signed_input",
                                                "narrow_range", "round_mode") if name in kw}
    if kw:
        raise TypeError(f"calibrate() got unexpected keyword arguments: {', '.join(sorted(kw))}")
    check_method(method, range_kw.get("percentile", 99.99))
    OpArgs(range_kw.get("signed_input", True), range_kw.get("num_bits", 8), True,
           range_kw.get("round_mode", "HALF_TO_EVEN"), range_kw.get("narrow_range", False))
    t = HistogramTracker(axis, **tracker_kw)
    if _one_tensor(data):
        arr = np.asarray(data)
        t.update(arr.reshape(1) if arr.ndim == 0 else arr)
    else:
        for chunk in data:
            t.update(chunk)
    if t.format is None:
        raise ValueError("no data: calibrate() got no chunk")
    return t.range(method, **range_kw)


def _one_tensor(data: Any) -> bool:
    if isinstance(data, (np.ndarray, np.generic, numbers.Number)) or hasattr(data, "__array__"):
        return True
    if isinstance(data, (list, tuple)):
        return not any(isinstance(c, np.ndarray) or hasattr(c, "__array__") for c in data)
    if isinstance(data, (str, bytes, dict)):
        raise TypeError(f"data must be an array or an iterable of arrays, got "
                        f"{type(data).__name__}")
    return False
