"""Checkpoints for the checkpoint tests, written with the safetensors package."""

from __future__ import annotations

import json
import os

import numpy as np

FLOATS = ("float16", "bfloat16", "float32", "float64")


def _dtype(name):
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """Every float dtype at ranks 0-4, integer and bool tensors, a NaN, an empty tensor."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    shapes = {0: (), 1: (7,), 2: (6, 10), 3: (3, 4, 8), 4: (2, 3, 4, 6)}
    for k, name in enumerate(FLOATS):
        for rank, shape in shapes.items():
            x = (rng.standard_normal(shape) * (k + 1)).astype(np.float64)
            out[f"layer{k}.{name}.r{rank}"] = np.asarray(x).astype(_dtype(name))
    out["embed.weight"] = rng.standard_normal((16, 8)).astype(np.float32)
    nan = rng.standard_normal((5, 9)).astype(np.float32)
    nan[1, 2] = np.nan
    nan[3, 4] = np.inf
    out["odd.nan"] = nan
    out["odd.empty"] = np.zeros((0, 4), np.float32)
    out["ids.int64"] = rng.integers(-1000, 1000, (4, 5)).astype(np.int64)
    out["ids.int8"] = rng.integers(-100, 100, (3, 3)).astype(np.int8)
    out["mask.bool"] = rng.random((2, 5)) > 0.5
    out["u16"] = rng.integers(0, 60000, (4, 4)).astype(np.uint16)
    return out


def save_sharded(directory, arrays: dict[str, np.ndarray], shards: int = 3,
                 metadata: dict | None = None, index_extra: dict | None = None) -> dict:
    """Shards model-0000k-of-0000n.safetensors and model.safetensors.index.json."""
    from safetensors.numpy import save_file

    os.makedirs(directory, exist_ok=True)
    names = list(arrays)
    weight_map = {}
    for i in range(shards):
        part = {n: arrays[n] for n in names[i::shards]}
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, os.path.join(directory, fname), metadata=metadata or {"format": "pt"})
        weight_map.update({n: fname for n in part})
    total = sum(a.nbytes for a in arrays.values())
    index = {"metadata": {"total_size": total, **(index_extra or {})}, "weight_map": weight_map}
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
    return weight_map


def load_all(path, framework: str = "numpy") -> dict:
    """Every tensor of a file, with safetensors' own reader."""
    from safetensors import safe_open

    with safe_open(path, framework=framework) as f:
        return {k: f.get_tensor(k) for k in f.keys()}


def raw_header(path) -> dict:
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        return json.loads(f.read(n))


def data_order(path) -> list[str]:
    h = raw_header(path)
    h.pop("__metadata__", None)
    return sorted(h, key=lambda k: h[k]["data_offsets"])
