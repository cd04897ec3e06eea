"""qdq.quantize_checkpoint: the compressed-tensors layout, refusals, codes past the grid,
resume, workers, Dask, the model directory's files, calibration (no torch needed)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from _ckpt_cases import save_sharded
from _util import assert_bits_equal

import qdq
from qdq._checkpoint.compressed import dequantize_checkpoint, describe_compressed, read_compressed
from qdq._core.packing import unpack_int32
from qdq._io.safetensors import read_header, tensor_memmap

pytest.importorskip("safetensors")
ml_dtypes = pytest.importorskip("ml_dtypes")
from safetensors.numpy import save_file  # noqa: E402

BF16 = np.dtype(ml_dtypes.bfloat16)


def linear_model(rng, dtype=np.float32, layers=2, hidden=64, inter=96) -> dict:
    """A Llama-like state dict: embeddings, attention and MLP weights, norms, lm_head."""
    out = {"model.embed_tokens.weight": rng.standard_normal((32, hidden))}
    for i in range(layers):
        p = f"model.layers.{i}"
        out[f"{p}.self_attn.q_proj.weight"] = rng.standard_normal((hidden, hidden))
        out[f"{p}.self_attn.o_proj.weight"] = rng.standard_normal((hidden, hidden))
        out[f"{p}.mlp.up_proj.weight"] = rng.standard_normal((inter, hidden))
        out[f"{p}.mlp.down_proj.weight"] = rng.standard_normal((hidden, inter))
        out[f"{p}.input_layernorm.weight"] = rng.standard_normal(hidden)
    out["lm_head.weight"] = rng.standard_normal((32, hidden))
    return {k: (0.05 * v).astype(dtype) for k, v in out.items()}


def model_dir(path, arrays, shards=2, extra_files=True):
    save_sharded(path, arrays, shards=shards)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 64}))
    if extra_files:
        (path / "generation_config.json").write_text('{"do_sample": false}')
        (path / "tokenizer.json").write_text('{"version": "1.0"}')
        (path / "pytorch_model.bin").write_bytes(b"weights in another format")
        (path / ".hidden").write_text("x")
        (path / "original").mkdir()
        (path / "original" / "params.json").write_text("{}")
    return path


def read_all(path) -> dict:
    """Every tensor of a checkpoint directory (or file): name -> array."""
    files = [path] if str(path).endswith(".safetensors") else \
        sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".safetensors"))
    out = {}
    for f in files:
        h = read_header(f)
        for t in h.tensors:
            a = np.array(tensor_memmap(h, t.name))
            out[t.name] = a.view(BF16) if t.dtype == "BF16" else a
    return out


def codes_of(out: dict, module: str, num_bits: int) -> np.ndarray:
    shape = out[f"{module}.weight_shape"]
    return unpack_int32(out[f"{module}.weight_packed"], num_bits, int(shape[1]))


def calibrated(x, spec, axis):
    method, _, p = spec.partition(":")
    return qdq.calibrate(x, method, axis=axis, **({"percentile": float(p)} if p else {}))


def scale_bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint16) if a.dtype == BF16 else a


@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16, np.float64])
@pytest.mark.parametrize("kw", [{"num_bits": 4, "axis": -1, "block_size": 32},
                                {"num_bits": 8, "axis": 0},
                                {"num_bits": 3, "axis": 0},
                                {"num_bits": 6, "axis": None, "narrow_range": True}])
def test_codes_and_scales_are_qdq_quantize(tmp_path, dtype, kw):
    rng = np.random.default_rng(1)
    arrays = linear_model(rng, dtype)
    src = model_dir(tmp_path / "src", arrays)
    report = qdq.quantize_checkpoint(src, tmp_path / "out", codes_overflow="clamp", **kw)
    out = read_all(tmp_path / "out")
    strategy = "group" if kw.get("block_size") else "channel" if kw["axis"] == 0 else "tensor"
    for name, x in arrays.items():
        if name.endswith("proj.weight"):
            module = name[:-len(".weight")]
            codes, params = qdq.quantize(x, **kw)
            lo = -(1 << (kw["num_bits"] - 1)) + (1 if kw.get("narrow_range") else 0)
            held = np.clip(codes, lo, (1 << (kw["num_bits"] - 1)) - 1)
            assert report[name].codes_clamped == np.count_nonzero(held != codes)
            assert report[name].action == "quantize"
            np.testing.assert_array_equal(codes_of(out, module, kw["num_bits"]), held)
            scale = out[f"{module}.weight_scale"]
            assert scale.dtype == x.dtype
            want = np.asarray(params.inverse_scale).astype(x.dtype)
            want = want.reshape({"group": (x.shape[0], -1), "channel": (-1, 1),
                                 "tensor": (1,)}[strategy])
            assert_bits_equal(scale_bits(scale), scale_bits(want))
            assert list(out[f"{module}.weight_shape"]) == list(x.shape)
            assert name not in out
        else:
            assert_bits_equal(out[name], x, msg=name)
    qc = json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]
    (group,) = qc["config_groups"].values()
    assert group["weights"] == {"num_bits": kw["num_bits"], "type": "int", "symmetric": True,
                                "strategy": strategy, "group_size": kw.get("block_size"),
                                "dynamic": False}
    assert len(group["targets"]) == 8 and all(t.endswith("proj") for t in group["targets"])
    assert qc["ignore"] == ["lm_head", "model.embed_tokens"]
    index = json.loads((tmp_path / "out" / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(out)
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in out.values())


def test_int_quantized_stores_int8(tmp_path):
    arrays = linear_model(np.random.default_rng(2))
    src = model_dir(tmp_path / "src", arrays)
    qdq.quantize_checkpoint(src, tmp_path / "out", format="int-quantized", num_bits=4)
    out = read_all(tmp_path / "out")
    x = arrays["model.layers.0.mlp.down_proj.weight"]
    assert out["model.layers.0.mlp.down_proj.weight"].dtype == np.int8
    np.testing.assert_array_equal(out["model.layers.0.mlp.down_proj.weight"],
                                  qdq.quantize(x, num_bits=4, axis=0)[0])
    assert "model.layers.0.mlp.down_proj.weight_shape" not in out
    qc = json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]
    assert qc["format"] == "int-quantized"
    assert qc["config_groups"]["group_0"]["format"] == "int-quantized"


@pytest.mark.parametrize("kw, rule, words", [
    ({"axis": 1}, None, "per-channel scales along axis 1"),
    ({"axis": 0, "block_size": 32}, None, "blocks along axis 0"),
    ({"axis": -1, "block_size": 64}, None, "groups of 64 that do not divide the input "
                                           "dimension 96"),
    ({"num_bits": 9}, None, "9-bit codes"),
    ({}, ("*.input_layernorm.weight", {"axis": None}), "a tensor of rank 1"),
    ({}, ("model.embed_tokens.weight", {"axis": 0}), None),  # a rule may quantize it
])
def test_what_the_format_cannot_hold_is_refused_before_writing(tmp_path, kw, rule, words):
    arrays = linear_model(np.random.default_rng(3))
    arrays["odd"] = arrays["lm_head.weight"].copy()
    src = model_dir(tmp_path / "src", arrays)
    rules = None if rule is None else [rule]
    dst = tmp_path / "out"
    if words is None:
        qdq.quantize_checkpoint(src, dst, rules=rules, skip=["odd"], **kw)
        assert "model.embed_tokens.weight_packed" in read_all(dst)
        return
    with pytest.raises(ValueError, match="cannot hold") as info:
        qdq.quantize_checkpoint(src, dst, rules=rules, skip=["odd"], **kw)
    assert words in str(info.value) and "tensor 'model.layers." in str(info.value)
    assert not dst.exists()
    with pytest.raises(ValueError, match="tensor 'odd' .* not named X.weight"):
        qdq.quantize_checkpoint(src, dst)
    assert not dst.exists()


def overflowing_bf16(rng, rows=16, cols=64) -> np.ndarray:
    """bfloat16 rows where x * scale rounds to 128 for some element (8 bits per channel)."""
    while True:
        x = (rng.standard_normal((rows, cols)) * 0.05).astype(BF16)
        codes, _ = qdq.quantize(x, axis=0)
        if (codes > 127).sum() >= 2:
            return x


def test_codes_past_the_grid_are_refused_or_clamped(tmp_path):
    rng = np.random.default_rng(4)
    w = overflowing_bf16(rng)
    save_file({"fc.weight": w, "fc.bias": np.zeros(16, BF16)}, str(tmp_path / "m.safetensors"))
    codes, params = qdq.quantize(w, axis=0)
    n = int((codes > 127).sum() + (codes < -128).sum())
    with pytest.raises(ValueError, match=f"tensor 'fc.weight': {n} codes one step past the "
                                         r"8-bit grid \[-128, 127\].*Nothing was written"):
        qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c.safetensors")
    assert os.listdir(tmp_path) == ["m.safetensors"]
    report = qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c.safetensors",
                                     codes_overflow="clamp")
    assert report["fc.weight"].codes_clamped == n == report.totals()["codes_clamped"]
    assert "codes clamped" in report.table()
    out = read_all(tmp_path / "c.safetensors")
    np.testing.assert_array_equal(codes_of(out, "fc", 8), np.clip(codes, -128, 127))
    # 4 bits in bfloat16 cannot pass the grid: no first pass, no clamping
    report = qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c4.safetensors",
                                     num_bits=4)
    assert report["fc.weight"].codes_clamped == 0


def test_nan_is_refused_naming_the_tensor(tmp_path):
    w = np.random.default_rng(5).standard_normal((4, 32)).astype(np.float32)
    w[1, 3] = np.nan
    save_file({"fc.weight": w}, str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="tensor 'fc.weight': the input has NaN"):
        qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c.safetensors")
    assert sorted(os.listdir(tmp_path)) == ["m.safetensors"]


def test_resume_workers_and_dask_give_the_same_files(tmp_path):
    arrays = linear_model(np.random.default_rng(6), BF16)
    src = model_dir(tmp_path / "src", arrays, shards=3)
    kw = {"num_bits": 4, "axis": -1, "block_size": 32}
    first = qdq.quantize_checkpoint(src, tmp_path / "a", **kw)
    assert len(first.shards_written) == 3
    again = qdq.quantize_checkpoint(src, tmp_path / "a", **kw)
    assert again.shards_written == [] and len(again.shards_skipped) == 3
    # other settings: the shards are written again
    assert len(qdq.quantize_checkpoint(src, tmp_path / "a", num_bits=4).shards_written) == 3
    qdq.quantize_checkpoint(src, tmp_path / "a", **kw)
    qdq.quantize_checkpoint(src, tmp_path / "b", workers=2, chunk_bytes=1000, **kw)
    pytest.importorskip("dask")
    from qdq import dask as qdq_dask

    r = qdq_dask.quantize_checkpoint(src, tmp_path / "c", **kw)
    assert r.files_copied == ["config.json", "generation_config.json", "tokenizer.json"]
    for name in sorted(os.listdir(tmp_path / "a")):
        data = (tmp_path / "a" / name).read_bytes()
        assert (tmp_path / "b" / name).read_bytes() == data, name
        assert (tmp_path / "c" / name).read_bytes() == data, name


def test_the_model_directory_is_copied_for_both_paths(tmp_path):
    arrays = linear_model(np.random.default_rng(7))
    src = model_dir(tmp_path / "src", arrays)
    r = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "qdq", skip=["*embed*"])
    assert r.files_copied == ["config.json", "generation_config.json", "tokenizer.json"]
    assert sorted(os.listdir(tmp_path / "qdq")) == sorted(
        ["config.json", "generation_config.json", "tokenizer.json",
         "model.safetensors.index.json", "model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors"])
    for name in r.files_copied:
        assert (tmp_path / "qdq" / name).read_bytes() == (src / name).read_bytes()
    # a source that is quantized already is refused
    doc = json.loads((src / "config.json").read_text())
    doc["quantization_config"] = {"quant_method": "compressed-tensors"}
    (src / "config.json").write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="already has a quantization_config"):
        qdq.quantize_checkpoint(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rules_make_one_config_group_per_scheme(tmp_path):
    arrays = linear_model(np.random.default_rng(8))
    src = model_dir(tmp_path / "src", arrays, extra_files=False)
    rules = [("*.mlp.*", {"num_bits": 4, "axis": -1, "block_size": 32}),
             ("model.layers.1.self_attn.o_proj.weight", None)]
    qdq.quantize_checkpoint(src, tmp_path / "out", rules=rules, codes_overflow="clamp")
    qc = json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]
    groups = {g["weights"]["strategy"]: g["targets"] for g in qc["config_groups"].values()}
    assert groups == {"channel": ["model.layers.0.self_attn.o_proj",
                                 "model.layers.0.self_attn.q_proj",
                                 "model.layers.1.self_attn.q_proj"],
                      "group": ["model.layers.0.mlp.down_proj", "model.layers.0.mlp.up_proj",
                                "model.layers.1.mlp.down_proj", "model.layers.1.mlp.up_proj"]}
    assert qc["ignore"] == ["lm_head", "model.embed_tokens", "model.layers.1.self_attn.o_proj"]


@pytest.mark.parametrize("method", ["percentile:99", "mse"])
def test_calibrate_on_checkpoints(tmp_path, method):
    arrays = linear_model(np.random.default_rng(9))
    src = model_dir(tmp_path / "src", arrays, extra_files=False)
    r = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "qdq", calibrate=method, axis=0)
    qdq.quantize_checkpoint(src, tmp_path / "ct", calibrate=method, axis=0)
    out, ct = read_all(tmp_path / "qdq"), read_all(tmp_path / "ct")
    for name in ("model.layers.0.mlp.up_proj.weight", "model.embed_tokens.weight"):
        x = arrays[name]
        lo, hi = calibrated(x, method, 0)
        assert_bits_equal(out[name], qdq.quantize_and_dequantize(x, lo, hi, range_given=True,
                                                                 axis=0))
        assert r[name].settings["calibrate"] == method
    x = arrays["model.layers.0.mlp.up_proj.weight"]
    lo, hi = calibrated(x, method, 0)
    codes, _ = qdq.quantize(x, lo, hi, range_given=True, axis=0)
    np.testing.assert_array_equal(codes_of(ct, "model.layers.0.mlp.up_proj", 8), codes)
    with pytest.raises(ValueError, match="calibrate takes the range from the data's histogram"):
        qdq.quantize_checkpoint(src, tmp_path / "x", calibrate="mse", axis=-1, block_size=32)


# ---------------------------------------------------------------------------
# An unsigned grid: compressed-tensors' asymmetric scheme, zero point -2**(b-1)
# ---------------------------------------------------------------------------

UNSIGNED = [{"num_bits": 8, "axis": 0}, {"num_bits": 4, "axis": -1, "block_size": 32},
            {"num_bits": 3, "axis": None}, {"num_bits": 5, "axis": 0, "narrow_range": True}]


def strategy_of(kw: dict) -> str:
    return "group" if kw.get("block_size") else "channel" if kw["axis"] == 0 else "tensor"


def zero_point_of(out: dict, module: str, kw: dict, packed: bool) -> np.ndarray:
    """The stored zero points as int (rows, groups), unpacked along rows where packed."""
    zp = out[f"{module}.weight_zero_point"]
    if packed and strategy_of(kw) != "tensor":
        assert zp.dtype == np.int32
        return unpack_int32(np.ascontiguousarray(zp.T), kw["num_bits"],
                            out[f"{module}.weight_scale"].shape[0]).T
    assert zp.dtype == np.int8
    return zp


def unsigned_held(x, kw, **op):
    """(the op's value, what the format holds: clamp(q) * scale, codes q clamped, count)."""
    y = qdq.quantize_and_dequantize(x, signed_input=False, **kw, **op)
    codes, params = qdq.quantize(x, signed_input=False, code_dtype=np.int16, **kw, **op)
    q = np.clip(codes, 0, (1 << kw["num_bits"]) - 1)
    return y, qdq.dequantize(q, params), q, int(np.count_nonzero(q != codes))


@pytest.mark.parametrize("fmt", ["pack-quantized", "int-quantized"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16])
@pytest.mark.parametrize("kw", UNSIGNED)
def test_unsigned_grid_is_stored_with_a_zero_point(tmp_path, fmt, dtype, kw):
    """Codes q of [0, 2**b - 1] stored as q - 2**(b-1), zero point -2**(b-1), symmetric false;
    qdq dequantize gives back the op's values bit for bit (non-negative weights)."""
    arrays = {k: np.abs(v) for k, v in linear_model(np.random.default_rng(10), dtype).items()}
    src = model_dir(tmp_path / "src", arrays, extra_files=False)
    report = qdq.quantize_checkpoint(src, tmp_path / "out", format=fmt, signed_input=False,
                                     codes_overflow="clamp", **kw)
    out = read_all(tmp_path / "out")
    packed, half = fmt == "pack-quantized", 1 << (kw["num_bits"] - 1)
    for name, x in arrays.items():
        if not name.endswith("proj.weight"):
            continue
        module = name[:-len(".weight")]
        y, held, q, n = unsigned_held(x, kw)
        assert report[name].codes_clamped == n
        assert n == 0 or (dtype == BF16 and kw["num_bits"] >= 6), name  # bfloat16's step past
        stored = codes_of(out, module, kw["num_bits"]) if packed else out[name]
        np.testing.assert_array_equal(stored, q - half)
        zp = zero_point_of(out, module, kw, packed)
        assert zp.shape == out[f"{module}.weight_scale"].shape and (zp == -half).all()
        if n == 0:
            assert_bits_equal(held, y, msg=name)
    qc = json.loads((tmp_path / "out" / "config.json").read_text())["quantization_config"]
    (group,) = qc["config_groups"].values()
    assert group["weights"] == {"num_bits": kw["num_bits"], "type": "int", "symmetric": False,
                                "strategy": strategy_of(kw), "group_size": kw.get("block_size"),
                                "dynamic": False}
    back = dequantize_checkpoint(tmp_path / "out", tmp_path / "back")
    assert back["modules"] == 8
    dense = read_all(tmp_path / "back")
    for name, x in arrays.items():
        want = unsigned_held(x, kw)[1] if name.endswith("proj.weight") else x
        assert_bits_equal(dense[name], want, msg=name)
    ck = read_compressed(tmp_path / "out")
    assert ck is not None
    rows = describe_compressed(ck)["modules"]
    assert len(rows) == 8 and all(r["scheme"].endswith("zero-point") for r in rows)


@pytest.mark.filterwarnings("ignore:signed_input=False with negative data")
def test_negative_data_on_an_unsigned_grid(tmp_path):
    """TensorFlow does not clamp negative data on an unsigned grid without a given range: its
    codes are below 0, refused or clamped to 0 (counted); a calibrated range clamps it, exactly."""
    arrays = linear_model(np.random.default_rng(11))
    src = model_dir(tmp_path / "src", arrays, extra_files=False)
    name = "model.layers.0.mlp.down_proj.weight"
    x = arrays[name]
    codes, _ = qdq.quantize(x, signed_input=False, code_dtype=np.int16, axis=0)
    below = int(np.count_nonzero(codes < 0))
    assert below > 1000 and codes.max() <= 255
    with pytest.raises(ValueError, match=r"8 tensor\(s\) have codes outside the grid") as e:
        qdq.quantize_checkpoint(src, tmp_path / "out", signed_input=False)
    assert (f"tensor '{name}': {below:,} codes outside the unsigned 8-bit grid [0, 255] "
            "(negative data: without a given range TensorFlow's unsigned grid does not clamp "
            "it, so its codes are below 0; the format's codes cannot hold them; calibrate= "
            "gives a range, which clamps it to 0)") in str(e.value)
    assert os.listdir(tmp_path / "out") == []
    r = qdq.quantize_checkpoint(src, tmp_path / "out", signed_input=False,
                                codes_overflow="clamp")
    assert r[name].codes_clamped == below
    back = dequantize_checkpoint(tmp_path / "out", tmp_path / "back")["files"]
    dense = {}
    for f in back:
        dense.update(read_all(f))
    y, held, _, n = unsigned_held(x, {"num_bits": 8, "axis": 0})
    assert n == below
    assert_bits_equal(dense[name], held)
    assert (held[x < 0] == 0).all() and (held[x >= 0] == y[x >= 0]).all()
    # calibrate: a given range, clamped by the op (negative data to 0): no first pass needed
    r = qdq.quantize_checkpoint(src, tmp_path / "cal", signed_input=False, calibrate="minmax")
    assert r[name].codes_clamped == 0
    dequantize_checkpoint(tmp_path / "cal", tmp_path / "cal-back")
    lo, hi = calibrated(x, "minmax", 0)
    want = qdq.quantize_and_dequantize(x, lo, hi, range_given=True, signed_input=False, axis=0)
    assert (want[x < 0] == 0).all()
    assert_bits_equal(read_all(tmp_path / "cal-back")[name], np.abs(want))  # zero signs aside


@pytest.mark.parametrize("fmt", ["pack-quantized", "int-quantized"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16, BF16])
@pytest.mark.parametrize("kw", UNSIGNED)
def test_compressed_tensors_compressors_agree_on_unsigned(tmp_path, fmt, dtype, kw):
    """Oracle: compressed-tensors' own compressor decompresses the export to the op's values,
    and compresses them (with the export's scale and zero point) to the same codes and zero
    points, bit for bit."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("compressed_tensors")
    from compressed_tensors.compressors import BaseCompressor
    from compressed_tensors.compressors.pack_quantized.helpers import unpack_from_int32
    from compressed_tensors.quantization import QuantizationScheme
    from safetensors.torch import load_file

    x = np.abs(np.random.default_rng(12).standard_normal((40, 64)) * 0.05).astype(dtype)
    save_file({"fc.weight": x}, str(tmp_path / "m.safetensors"))
    qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c.safetensors",
                            format=fmt, signed_input=False, codes_overflow="clamp", **kw)
    sd = {k[len("fc."):]: v for k, v in load_file(str(tmp_path / "c.safetensors")).items()}
    scheme = QuantizationScheme(targets=["Linear"], format=fmt, weights={
        "num_bits": kw["num_bits"], "type": "int", "symmetric": False,
        "strategy": strategy_of(kw), "group_size": kw.get("block_size")})
    compressor = BaseCompressor.get_value_from_registry(fmt)
    got = compressor.decompress(sd, scheme)["weight"]
    _, held, _, _ = unsigned_held(x, kw)
    assert got.dtype == sd["weight_scale"].dtype
    got_np = got.view(torch.int16).numpy().view(BF16) if dtype == BF16 else got.numpy()
    assert_bits_equal(got_np, held)
    # its quantize divides the values by the scale, which from bfloat16 values can miss q by
    # one (q * scale rounded to 8 bits): it is given q * scale in float32 instead, which it
    # divides back to q (exact for bfloat16 and float16 scales, within 2**-23 q for float32)
    _, _, q, _ = unsigned_held(x, kw)
    scale32 = sd["weight_scale"].float().numpy()
    if strategy_of(kw) == "group":
        scale32 = np.repeat(scale32, kw["block_size"], axis=1)
    dense = {k: v for k, v in sd.items() if k not in ("weight", "weight_packed", "weight_shape")}
    dense["weight"] = torch.from_numpy(q.astype(np.float32) * scale32)
    dense["weight_scale"] = sd["weight_scale"].float()
    if fmt == "pack-quantized" and strategy_of(kw) != "tensor":
        dense["weight_zero_point"] = unpack_from_int32(
            sd["weight_zero_point"], kw["num_bits"], sd["weight_scale"].shape, packed_dim=0)
    ref = compressor.compress(dense, scheme)
    assert sorted(ref) == sorted(sd)
    for k in set(sd) - {"weight_scale"}:
        assert ref[k].dtype == sd[k].dtype and torch.equal(ref[k], sd[k]), k


@pytest.mark.filterwarnings("ignore:signed_input=False with negative data")
def test_unsigned_codes_far_below_the_grid_are_counted_and_clamped(tmp_path):
    """A row of negative data only (scale T_MAX: codes -inf) or far below its maximum (codes
    below int16): counted and clamped to 0 like any code below the grid, not refused as codes
    the code type cannot hold."""
    w = np.abs(np.random.default_rng(13).standard_normal((4, 32))).astype(np.float32)
    w[1] = -1000 * w[1]
    w[2, :5] = -50
    save_file({"fc.weight": w}, str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="tensor 'fc.weight': 37 codes outside the unsigned"):
        qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c.safetensors",
                                signed_input=False)
    r = qdq.quantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "c.safetensors",
                                signed_input=False, codes_overflow="clamp")
    assert r["fc.weight"].codes_clamped == 37
    stored = codes_of(read_all(tmp_path / "c.safetensors"), "fc", 8)
    codes = qdq.quantize(np.abs(w), signed_input=False, axis=0)[0].astype(np.int16)
    want = np.where(w < 0, 0, codes) - 128
    want[2] = qdq.quantize(np.maximum(w[2:3], 0), 0, w[2].max(), range_given=True,
                           signed_input=False)[0].astype(np.int16) - 128
    np.testing.assert_array_equal(stored, want)


def test_unsigned_resume_workers_and_dask_give_the_same_files(tmp_path):
    arrays = {k: np.abs(v) for k, v in linear_model(np.random.default_rng(14), BF16).items()}
    src = model_dir(tmp_path / "src", arrays, shards=3)
    kw = {"num_bits": 4, "axis": -1, "block_size": 32, "signed_input": False}
    assert len(qdq.quantize_checkpoint(src, tmp_path / "a", num_bits=4, axis=-1,
                                       block_size=32).shards_written) == 3
    # the signed export's shards do not pass for the unsigned one's: written again
    assert len(qdq.quantize_checkpoint(src, tmp_path / "a", **kw).shards_written) == 3
    assert qdq.quantize_checkpoint(src, tmp_path / "a", **kw).shards_written == []
    qdq.quantize_checkpoint(src, tmp_path / "b", workers=2, chunk_bytes=1000, **kw)
    pytest.importorskip("dask")
    from qdq import dask as qdq_dask

    qdq_dask.quantize_checkpoint(src, tmp_path / "c", **kw)
    for name in sorted(os.listdir(tmp_path / "a")):
        data = (tmp_path / "a" / name).read_bytes()
        assert (tmp_path / "b" / name).read_bytes() == data, name
        assert (tmp_path / "c" / name).read_bytes() == data, name
