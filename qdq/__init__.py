"""qdq: TensorFlow's quantize_and_dequantize, bit for bit, fast, on any float type.

The in-memory op is :func:`quantize_and_dequantize`; :func:`compute_range` and
:func:`quantization_params` expose its two halves.

This module holds the public names and registers the adapters of other
array libraries (Dask, xarray, DLPack: torch, JAX, ...), by the path of the
module that handles them, imported on first use (see ``qdq._core.foreign``).
"""

from ._calibrate.calibrate import calibrate
from ._calibrate.histogram import HistogramTracker
from ._calibrate.range import RangeTracker
from ._checkpoint.export import quantize_checkpoint
from ._checkpoint.run import quantize_and_dequantize_checkpoint
from ._core import foreign as _foreign
from ._core.arrays import get_buffer_cache, set_buffer_cache
from ._core.codes import code_dtype, dequantize, quantize, quantize_and_dequantize_grad
from ._core.op import (
    compute_range,
    quantization_params,
    quantize_and_dequantize,
    quantize_and_dequantize_v2,
)
from ._core.params import QuantizationParams
from ._core.threads import get_num_threads, num_threads, openmp_enabled, set_num_threads
from ._interop import dlpack as _interop_dlpack
from ._interop import xarray as _interop_xarray
from ._stream.chunks import quantize_and_dequantize_chunks, stream
from ._stream.files import dequantize_file, quantize_and_dequantize_file, quantize_file

__version__ = "0.1.0"


def _is_dask_array(x: object) -> bool:
    return hasattr(x, "__dask_graph__") and type(x).__module__.startswith("dask.")


# In order of precedence: a Dask array anywhere makes the call lazy; a DataArray (which may
# hold a Dask array) is unwrapped next; any other tensor is read through DLPack.
_foreign.register("dask", _is_dask_array, "qdq.dask")
_foreign.register("xarray", _interop_xarray.is_dataarray, "qdq._interop.xarray")
_foreign.register("dlpack", _interop_dlpack.has_dlpack, "qdq._interop.dlpack")

__all__ = [
    "HistogramTracker",
    "QuantizationParams",
    "RangeTracker",
    "calibrate",
    "code_dtype",
    "compute_range",
    "dequantize",
    "dequantize_file",
    "get_buffer_cache",
    "get_num_threads",
    "num_threads",
    "openmp_enabled",
    "quantization_params",
    "quantize",
    "quantize_file",
    "quantize_and_dequantize",
    "quantize_and_dequantize_checkpoint",
    "quantize_and_dequantize_chunks",
    "quantize_and_dequantize_file",
    "quantize_and_dequantize_grad",
    "quantize_and_dequantize_v2",
    "quantize_checkpoint",
    "set_buffer_cache",
    "set_num_threads",
    "stream",
]
