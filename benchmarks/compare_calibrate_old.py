"""The calibrated ranges of two qdq builds, compared bit for bit.

    python benchmarks/compare_calibrate_old.py --save new.npz
    (cd /path/to/old/build && python /path/to/compare_calibrate_old.py --save old.npz)
    python benchmarks/compare_calibrate_old.py --compare old.npz new.npz

``--save`` runs ``qdq.calibrate(x, method, axis=axis, **kw)`` for "mse" and
"entropy" with the ``qdq`` it imports, on a fixed set of tensors (Student-t,
normal, one-sided, sparse with zeros; float16, bfloat16 as bit patterns,
float32, float64; per tensor and per channel along each axis; several grids and
bin counts) and stores every range's bits. ``--compare`` prints the cases
whose bits differ and exits with status 1 if any does. The tensors are small
enough for the NumPy searches that the compiled ones replaced (a few minutes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np

#: (shape, data, dtype, axis, calibrate keywords)
CASES: list[tuple[tuple[int, ...], str, str, int | None, dict[str, Any]]] = [
    ((96, 256), "t3", "float32", 0, {}),
    ((96, 256), "t3", "float32", 1, {}),
    ((96, 256), "t3", "float32", None, {}),
    ((64, 300), "normal", "float32", 0, {"num_bits": 4}),
    ((64, 300), "normal", "float32", 0, {"num_bits": 8, "narrow_range": True}),
    ((64, 300), "positive", "float32", 0, {"signed_input": False}),
    ((48, 200), "t3", "float16", 0, {}),
    ((48, 200), "t3", "float16", 1, {"num_bits": 3}),
    ((48, 200), "t3", "bfloat16", 0, {}),
    ((48, 200), "sparse", "bfloat16", 1, {"num_bits": 5}),
    ((48, 200), "t3", "float64", 0, {"num_bits": 16}),
    ((4, 8, 64), "t3", "float32", 2, {"bins": 512}),
    ((4, 8, 64), "sparse", "float32", 1, {"bins": 8192}),
]


def tensor(shape: tuple[int, ...], data: str, dtype: str, seed: int) -> tuple[np.ndarray, dict]:
    rng = np.random.default_rng(seed)
    if data == "t3":
        x = rng.standard_t(3, shape)
    elif data == "normal":
        x = rng.normal(0.3, 2.0, shape)
    elif data == "positive":
        x = np.abs(rng.standard_t(2, shape))
    else:  # sparse: mostly zeros, a few heavy values
        x = rng.standard_t(2, shape) * (rng.random(shape) < 0.05)
    if dtype == "bfloat16":  # the bits of float32 rounded to bfloat16 (ties to even)
        u = x.astype(np.float32).view(np.uint32)
        u = (u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        return u.astype(np.uint16), {"bfloat16_bits": True}
    return x.astype(dtype), {}


def ranges() -> Iterator[tuple[str, np.ndarray]]:
    import qdq

    for n, (shape, data, dtype, axis, kw) in enumerate(CASES):
        x, extra = tensor(shape, data, dtype, n)
        for method in ("mse", "entropy"):
            lo, hi = qdq.calibrate(x, method=method, axis=axis, **kw, **extra)
            name = f"{n}:{method} {shape} {data} {dtype} axis={axis} {kw}"
            for end, v in (("lo", lo), ("hi", hi)):
                v = np.asarray(v)
                yield f"{name} {end}", v.reshape(-1).view(f"u{v.dtype.itemsize}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--save")
    ap.add_argument("--compare", nargs=2)
    a = ap.parse_args()
    if a.save:
        out = dict(ranges())
        np.savez(a.save, **out)
        print(f"{len(out)} ranges saved to {a.save}")
        return
    if not a.compare:
        ap.error("--save or --compare")
    old, new = (np.load(f) for f in a.compare)
    bad = 0
    for name in old.files:
        same = name in new.files and old[name].dtype == new[name].dtype and np.array_equal(
            old[name], new[name])
        if not same:
            bad += 1
            print(f"DIFFERENT: {name}")
    print(f"{len(old.files) - bad} of {len(old.files)} ranges bit-identical "
          f"({sum(old[f].size for f in old.files)} values)")
    sys.exit(1 if bad or set(old.files) != set(new.files) else 0)


if __name__ == "__main__":
    main()
