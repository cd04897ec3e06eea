# Stub for the compiled module qdq._ext.histogram (private).
from typing import Any

BLOCK: int
F16: int
BF16: int
F32: int
F64: int
__test__: dict[str, str]

def simd_level(level: int | None = None) -> int: ...
def max_simd_level() -> int: ...
def kfor(a: float, h: int, kfloor: int) -> int: ...
def update(x: Any, fmt: int, lut: Any, pre: int, C: int, post: int, k: Any, counts: Any,
           special: Any, mn: Any, mx: Any, kfloor: int, nthreads: int) -> None: ...
