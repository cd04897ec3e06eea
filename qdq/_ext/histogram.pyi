# Stub for the compiled module qdq._ext.histogram (private).
from typing import Any

BLOCK: int
F16: int
BF16: int
F32: int
F64: int
__test__: dict[str, str]

def get_isa() -> int: ...
def kernel_isa(level: int) -> tuple[tuple[str, str], ...]: ...
def kfor(a: float, h: int, kfloor: int) -> int: ...
def update(x: Any, fmt: int, lut: Any, pre: int, C: int, post: int, k: Any, counts: Any,
           special: Any, mn: Any, mx: Any, kfloor: int, nthreads: int) -> None: ...
