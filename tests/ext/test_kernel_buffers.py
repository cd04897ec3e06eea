"""The kernels release every buffer they acquire, when they return and when they raise.

An array.array cannot be resized while a buffer of it is held, so resizing
each argument after the call shows that its buffer was released.
"""

from array import array

import numpy as np
import pytest

from qdq._ext import kernels as _kernels

N = 8


def _f32(values) -> array:
    return array("f", np.asarray(values, dtype=np.float32).tolist())


def _args():
    """Fresh float32 arguments: data, output, and per-channel parameters (one channel)."""
    return {
        "x": _f32(np.linspace(-1, 1, N)), "out": _f32(np.zeros(N)),
        "scale": _f32([127.0]), "inv": _f32([1 / 127]), "lo": _f32([-1.0]), "hi": _f32([1.0]),
        "mn": _f32([np.inf]), "mx": _f32([-np.inf]), "short": _f32([]),
    }


def _calls(a, fail):
    """(name, call) pairs; with fail, the last buffer each one acquires is too short."""
    k = _kernels

    def last(name):
        return a["short"] if fail else a[name]

    return [
        ("run", lambda: k.run(k.APPLY, a["x"], None, a["out"], k.F32, 0, 1, 1, N, a["scale"],
                              a["inv"], a["lo"], last("hi"), k.CLAMP, 1)),
        ("run grad", lambda: k.run(k.GRAD, a["out"], last("x"), a["mn"], k.F32, 0, 1, 1, 1,
                                   a["scale"], a["inv"], a["lo"], a["hi"], 0, 1)),
        ("minmax", lambda: k.minmax(a["x"], a["mn"], last("mx"), k.F32, 1, 1, N, 1)),
        ("params", lambda: k.params(a["mn"], a["mx"], a["scale"], a["inv"], a["lo"],
                                    last("hi"), k.F32, -128, 127)),
        ("qdq_tensor", lambda: k.qdq_tensor(a["x"], last("out"), k.F32, False, 0.0, 0.0,
                                            -128, 127, 0, 1)),
        ("qdq_channels", lambda: k.qdq_channels(a["x"], a["out"], k.F32, 1, 1, N, a["lo"],
                                                last("hi"), -128, 127, k.CLAMP, 1)),
        ("range_tensor", lambda: k.range_tensor(a["x"], k.F32, 1)),
    ]


def _assert_released(a):
    for name, buf in a.items():
        try:
            buf.append(0.0)
        except BufferError:
            pytest.fail(f"the buffer of {name} is still held")


@pytest.mark.parametrize("fail", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("index", range(7))
def test_buffers_are_released(index, fail):
    a = _args()
    name, call = _calls(a, fail)[index]
    if fail and name != "range_tensor":
        with pytest.raises(ValueError, match="qdq kernel: .* holds 0 bytes"):
            call()
    else:
        call()
    _assert_released(a)


def test_released_buffers_hold_the_results():
    a = _args()
    _kernels.run(_kernels.APPLY, a["x"], None, a["out"], _kernels.F32, 0, 1, 1, N, a["scale"],
                 a["inv"], a["lo"], a["hi"], _kernels.CLAMP, 1)
    x = np.frombuffer(bytes(a["x"]), np.float32)
    out = np.frombuffer(bytes(a["out"]), np.float32)
    expected = (np.rint(x * np.float32(127)) * np.float32(1 / 127)).astype(np.float32)
    assert (out.view(np.uint32) == expected.view(np.uint32)).all()
