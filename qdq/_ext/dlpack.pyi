# Stub for the compiled module qdq._ext.dlpack (private).
from typing import Any

import numpy as np
from typing_extensions import disjoint_base

DEVICE_NAMES: dict[int, str]
__test__: dict[str, str]

def device_name(device_type: Any) -> str: ...
def view(obj: Any, writable: bool = False) -> tuple[np.ndarray, bool]: ...

@disjoint_base
class Bfloat16Export:
    def __init__(self, array: Any) -> None: ...
    def __dlpack_device__(self) -> tuple[int, int]: ...
    def __dlpack__(self, *, stream: Any = None, max_version: Any = None, dl_device: Any = None,
                   copy: Any = None) -> Any: ...
