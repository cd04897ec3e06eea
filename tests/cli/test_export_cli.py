"""``qdq quantize`` / ``info`` / ``dequantize`` on checkpoints: the compressed-tensors export."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
from _ckpt_cases import save_sharded

import qdq
from qdq._io.safetensors import read_header, tensor_memmap
from qdq.cli.main import main

pytest.importorskip("safetensors")
ml_dtypes = pytest.importorskip("ml_dtypes")
BF16 = np.dtype(ml_dtypes.bfloat16)


def model(rng, dtype):
    out = {"model.embed_tokens.weight": rng.standard_normal((16, 64))}
    for i in range(2):
        out[f"model.layers.{i}.mlp.up_proj.weight"] = rng.standard_normal((96, 64))
        out[f"model.layers.{i}.mlp.down_proj.weight"] = rng.standard_normal((64, 96))
        out[f"model.layers.{i}.norm.weight"] = rng.standard_normal(64)
    out["lm_head.weight"] = rng.standard_normal((16, 64))
    return {k: (0.05 * v).astype(dtype) for k, v in out.items()}


@pytest.fixture(params=[np.float32, BF16], ids=["float32", "bfloat16"])
def src(request, tmp_path):
    arrays = model(np.random.default_rng(0), request.param)
    save_sharded(tmp_path / "src", arrays, shards=2)
    (tmp_path / "src" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "src" / "tokenizer_config.json").write_text('{"x": 1}')
    return tmp_path / "src", arrays


def load_all(directory) -> dict:
    """Every tensor of a checkpoint directory, in file order (bfloat16 as uint16 bits)."""
    out = {}
    for f in sorted(os.listdir(directory)):
        if f.endswith(".safetensors"):
            h = read_header(os.path.join(directory, f))
            out.update({t.name: np.array(tensor_memmap(h, t.name)) for t in h.tensors})
    return out


def zero_signs_aside(a):
    b = np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}").copy()
    b[b == 1 << (8 * a.dtype.itemsize - 1)] = 0
    return b


def test_quantize_info_dequantize_round_trip(src, tmp_path, capsys):
    path, arrays = src
    out = tmp_path / "w4"
    assert main(["quantize", str(path), str(out), "-q", "--num-bits", "4",
                 "--block-size", "32"]) == 0           # --axis -1 by default with --block-size
    text = capsys.readouterr().out
    assert "wrote" in text and "(pack-quantized)" in text and "tokenizer_config.json" in text
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"model\.layers\.0\.mlp\.up_proj +int4 group 32 +96x64", text)
    assert "4 quantized modules (pack-quantized)" in text and "compression ratio" in text
    assert main(["info", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    t = doc["totals"]
    assert t["compression_ratio"] == t["dense_bytes"] / t["stored_bytes"] > 1
    assert t["stored_bytes"] == sum(a.nbytes for a in load_all(out).values())
    back = tmp_path / "dense"
    assert main(["dequantize", str(out), str(back), "-q"]) == 0
    assert "4 modules dequantized" in capsys.readouterr().out
    qdq.quantize_and_dequantize_checkpoint(path, tmp_path / "qdq", num_bits=4, axis=-1,
                                           block_size=32, skip=["*embed*", "lm_head.*"])
    got, want = load_all(back), load_all(tmp_path / "qdq")
    assert sorted(got) == sorted(want)
    for name in want:   # bit for bit the QDQ result, zero signs aside
        assert got[name].dtype == want[name].dtype
        np.testing.assert_array_equal(zero_signs_aside(got[name]), zero_signs_aside(want[name]))
    assert "quantization_config" not in json.loads((back / "config.json").read_text())
    assert sorted(os.listdir(back)) == sorted(os.listdir(tmp_path / "qdq"))


def test_quantize_checkpoint_errors(src, tmp_path, capsys):
    path, _ = src
    assert main(["quantize", str(path), str(tmp_path / "u"), "--unsigned"]) == 1
    err = capsys.readouterr().err   # random weights are signed: codes below 0, refused
    assert "codes outside the unsigned 8-bit grid [0, 255]" in err and "Nothing was" in err
    assert os.listdir(tmp_path / "u") == []   # the lock made the directory, nothing else
    assert main(["quantize", str(path), str(tmp_path / "x"), "--axis", "1"]) == 1
    err = capsys.readouterr().err
    assert "per-channel scales along axis 1" in err and "tensor 'model.layers." in err
    assert not (tmp_path / "x").exists()
    assert main(["quantize", str(path), str(tmp_path / "x"), "--rule", "*.norm.weight:axis=0"
                 ]) == 1
    assert "a tensor of rank 1" in capsys.readouterr().err
    assert main(["quantize", str(path), str(tmp_path / "x.npy")]) == 2
    capsys.readouterr()
    np.save(tmp_path / "w.npy", np.ones((2, 2), np.float32))
    assert main(["quantize", str(tmp_path / "w.npy"), str(tmp_path / "c.npy"), "--json"]) == 1
    assert "--json applies to a checkpoint SRC" in capsys.readouterr().err
    assert main(["dequantize", str(path), str(tmp_path / "d")]) == 1
    assert "holds no compressed-tensors weights" in capsys.readouterr().err


def test_quantize_json_clamp_and_calibrate(src, tmp_path, capsys):
    path, arrays = src
    assert main(["quantize", str(path), str(tmp_path / "c"), "-q", "--json",
                 "--codes-overflow", "clamp", "--calibrate", "percentile:99.9",
                 "--format", "int-quantized"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rec = {t["name"]: t for t in doc["tensors"]}
    assert rec["model.layers.0.mlp.up_proj.weight"]["action"] == "quantize"
    assert rec["model.layers.0.mlp.up_proj.weight"]["settings"]["calibrate"] == "percentile:99.9"
    assert rec["lm_head.weight"]["action"] == "copy"
    assert doc["files_copied"] == ["config.json", "tokenizer_config.json"]
    got = load_all(tmp_path / "c")
    x = arrays["model.layers.1.mlp.down_proj.weight"]
    lo, hi = qdq.calibrate(x, "percentile", axis=0, percentile=99.9)
    codes, _ = qdq.quantize(x, lo, hi, range_given=True, axis=0, code_dtype=np.int16)
    np.testing.assert_array_equal(got["model.layers.1.mlp.down_proj.weight"],
                                  np.clip(codes, -128, 127))
    # qdq run takes --calibrate on a checkpoint too
    assert main(["run", str(path), str(tmp_path / "r"), "-q", "--calibrate", "mse"]) == 0


def test_unsigned_export_info_and_dequantize(src, tmp_path, capsys):
    """--unsigned --calibrate minmax: the zero-point scheme; qdq dequantize gives the QDQ
    checkpoint's values bit for bit (zero signs aside; the op clamps negative weights to 0),
    but where a bfloat16 code one step past the grid was clamped."""
    path, _ = src
    out = tmp_path / "u8"
    assert main(["quantize", str(path), str(out), "-q", "--json", "--unsigned", "--calibrate",
                 "minmax", "--codes-overflow", "clamp"]) == 0
    rec = {t["name"]: t for t in json.loads(capsys.readouterr().out)["tensors"]}
    qc = json.loads((out / "config.json").read_text())["quantization_config"]
    assert [g["weights"]["symmetric"] for g in qc["config_groups"].values()] == [False]
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert re.search(r"model\.layers\.0\.mlp\.up_proj +int8 channel zero-point +96x64", text)
    back = tmp_path / "dense"
    assert main(["dequantize", str(out), str(back), "-q"]) == 0
    capsys.readouterr()
    qdq.quantize_and_dequantize_checkpoint(path, tmp_path / "qdq", signed_input=False,
                                           calibrate="minmax", axis=0,
                                           skip=["*embed*", "lm_head.*"])
    got, want = load_all(back), load_all(tmp_path / "qdq")
    assert sorted(got) == sorted(want)
    for name in want:
        differ = np.count_nonzero(zero_signs_aside(got[name]) != zero_signs_aside(want[name]))
        clamped = rec[name].get("codes_clamped") or 0
        assert differ <= clamped, name
        assert clamped == 0 or want[name].dtype == np.uint16, name   # bfloat16 only
