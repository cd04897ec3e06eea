# Stub for the compiled module qdq._ext.search (private).
from typing import Any

HAVE_NUMPY_LOOPS: bool
__test__: dict[str, str]

def mse(counts: Any, k: Any, fmt: int, qmin: int, qmax: int, lo: Any, hi: Any,
        nthreads: int = 1) -> None: ...
def entropy(counts: Any, k: Any, num_bits: int, qmin: int, lo: Any, hi: Any,
            nthreads: int = 1) -> None: ...
