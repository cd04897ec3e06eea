"""qdq: TensorFlow's quantize_and_dequantize, bit for bit, fast, on any float type.

The in-memory op is :func:`quantize_and_dequantize`; :func:`compute_range` and
:func:`quantization_params` expose its two halves.
"""

from ._api import (QuantizationParams, compute_range, quantization_params,
                   quantize_and_dequantize, quantize_and_dequantize_v2)
from ._calibrate import calibrate
from ._codes import code_dtype, dequantize, quantize, quantize_and_dequantize_grad
from ._histogram import HistogramTracker
from ._threads import get_num_threads, num_threads, openmp_enabled, set_num_threads
from ._stream import (RangeTracker, dequantize_file, quantize_and_dequantize_chunks,
                      quantize_and_dequantize_file, quantize_file, stream)

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
    "get_num_threads",
    "num_threads",
    "openmp_enabled",
    "quantization_params",
    "quantize",
    "quantize_file",
    "quantize_and_dequantize",
    "quantize_and_dequantize_chunks",
    "quantize_and_dequantize_file",
    "quantize_and_dequantize_grad",
    "quantize_and_dequantize_v2",
    "set_num_threads",
    "stream",
]
