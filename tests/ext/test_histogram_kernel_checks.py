"""The histogram kernel's wrapper checks every array against the others (defence in depth)."""

from __future__ import annotations

import numpy as np
import pytest

from qdq._ext import histogram

_LUT = np.zeros(1 << 16, np.float32)


def _args(C=3, bins=16, fmt=histogram.F32, n=12):
    storage = {histogram.F16: np.uint16, histogram.BF16: np.uint16,
               histogram.F32: np.float32, histogram.F64: np.float64}[fmt]
    kfloor = {histogram.F16: -24, histogram.BF16: -133, histogram.F32: -149,
              histogram.F64: -1074}[fmt]
    return dict(x=np.ones(n, storage), fmt=fmt, lut=_LUT if storage is np.uint16 else None,
                pre=n // C, C=C, post=1, k=np.full(C, kfloor, np.int64),
                counts=np.zeros((C, bins), np.uint64), special=np.zeros((C, 3), np.uint64),
                mn=np.full(C, np.inf), mx=np.full(C, -np.inf), kfloor=kfloor, nthreads=2)


def _run(a):
    histogram.update(a["x"], a["fmt"], a["lut"], a["pre"], a["C"], a["post"], a["k"],
                     a["counts"], a["special"], a["mn"], a["mx"], a["kfloor"], a["nthreads"])


def test_good_arguments_run():
    a = _args()
    _run(a)
    assert a["counts"].sum() == 12 and a["mx"].tolist() == [1.0] * 3


_BAD = {
    "special short": dict(special=np.zeros((1, 3), np.uint64)),
    "special wide": dict(special=np.zeros((3, 2), np.uint64)),
    "special dtype": dict(special=np.zeros((3, 3), np.int64)),
    "mn short": dict(mn=np.zeros(1)),
    "mx short": dict(mx=np.zeros(2)),
    "mx float32": dict(mx=np.zeros(3, np.float32)),
    "k short": dict(k=np.zeros(1, np.int64)),
    "k int32": dict(k=np.full(3, -149, np.int32)),
    "k below the floor": dict(k=np.array([-150, -149, -149])),
    "k above the top": dict(k=np.array([-149, 126, -149])),
    "k huge": dict(k=np.array([-149, 1 << 40, -149])),
    "counts rows": dict(counts=np.zeros((2, 16), np.uint64)),
    "counts odd bins": dict(counts=np.zeros((3, 15), np.uint64)),
    "counts few bins": dict(counts=np.zeros((3, 2), np.uint64)),
    "counts 1-D": dict(counts=np.zeros(48, np.uint64)),
    "counts strided": dict(counts=np.zeros((3, 32), np.uint64)[:, ::2]),
    "counts read-only": dict(counts=np.broadcast_to(np.zeros(16, np.uint64), (3, 16))),
    "x strided": dict(x=np.ones(24, np.float32)[::2]),
    "x dtype": dict(x=np.ones(12, np.float64)),
    "x list": dict(x=[1.0] * 12),
    "shape": dict(pre=5),
    "negative shape": dict(pre=-4, post=-1),
    "overflowing shape": dict(pre=1 << 62, post=1 << 62),
    "kfloor": dict(kfloor=-1074),
    "format": dict(fmt=7),
    "threads": dict(nthreads=0),
}


@pytest.mark.parametrize("edit", list(_BAD), ids=lambda e: e.replace(" ", "-"))
def test_mismatched_arguments_are_refused(edit):
    a = _args()
    a.update(_BAD[edit])
    with pytest.raises(ValueError, match="histogram kernel"):
        _run(a)


@pytest.mark.parametrize("fmt", [histogram.F16, histogram.BF16])
def test_16_bit_formats_need_the_whole_table(fmt):
    a = _args(fmt=fmt)
    _run(a)
    for lut in (None, _LUT[:100], _LUT.astype(np.float64), np.zeros(1 << 17, np.float32)[::2]):
        a = _args(fmt=fmt)
        a["lut"] = lut
        with pytest.raises(ValueError, match="lut"):
            _run(a)


def _kfor_exact(a: float, h: int, kfloor: int) -> int:
    """The definition, in exact rational arithmetic."""
    from fractions import Fraction
    k, a = kfloor, Fraction(a)
    while not a < h * Fraction(2) ** k:
        k += 1
    return k


KFOR_VALUES = [0.0, 5e-324, 1e-320, 2.0 ** -1022, 1e-300, 2.0 ** -126, 1e-40, 0.5, 1.0,
               1.5, 3.0, 1023.0, 1024.0, 1024.5, 65504.0, 2.0 ** 100, 3.3895313892515355e38,
               float(np.finfo(np.float32).max), 2.0 ** 1023, float(np.finfo(np.float64).max)]


@pytest.mark.parametrize("h", [8, 1000, 1024, 1025, (1 << 23) - 1, 1 << 23])
@pytest.mark.parametrize("kfloor", [-1074, -149, -133, -24])
def test_the_exponent_rule_is_exact_in_the_kernel_and_in_python(h, kfloor):
    from qdq._calibrate.histogram import _kfor
    rng = np.random.default_rng(h - kfloor)
    values = KFOR_VALUES + list(np.ldexp(rng.random(40), rng.integers(-1074, 1024, 40)))
    for a in values:
        a = float(a)
        want = _kfor_exact(a, h, kfloor)
        assert histogram.kfor(a, h, kfloor) == want, (a, h, kfloor)
        assert _kfor(a, h, kfloor) == want, (a, h, kfloor)
