"""qdq: TensorFlow's quantize_and_dequantize, bit for bit, fast, on any float type.

The in-memory op is :func:`quantize_and_dequantize`; :func:`compute_range` and
:func:`quantization_params` expose its two halves.
"""

from ._arrays import get_buffer_cache, set_buffer_cache
from ._calibrate import calibrate
from ._checkpoint import quantize_and_dequantize_checkpoint
from ._chunks import quantize_and_dequantize_chunks, stream
from ._codes import code_dtype, dequantize, quantize, quantize_and_dequantize_grad
from ._files import dequantize_file, quantize_and_dequantize_file, quantize_file
from ._histogram import HistogramTracker
from ._op import (
    compute_range,
    quantization_params,
    quantize_and_dequantize,
    quantize_and_dequantize_v2,
)
from ._params import QuantizationParams
from ._range import RangeTracker
from ._threads import get_num_threads, num_threads, openmp_enabled, set_num_threads

__version__ = "0.1.0"

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
    "set_buffer_cache",
    "set_num_threads",
    "stream",
]
