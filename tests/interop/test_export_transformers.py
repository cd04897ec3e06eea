"""Acceptance: qdq.quantize_checkpoint's output, loaded by transformers (compressed-tensors).

A small sharded Llama-architecture checkpoint is built with transformers from
a config (random weights, nothing downloaded) in bfloat16, float16 and
float32; it is exported as int8 per channel and int4 in groups of 32 and
128, and loaded with ``AutoModelForCausalLM.from_pretrained`` (CPU). Each
decompressed weight must equal ``qdq.quantize_and_dequantize`` of the source
weight bit for bit (zero signs aside: a code carries no -0.0; where a
bfloat16 code was one step past the grid and clamped, ``clamp(code) *
scale``), and the logits on fixed token ids must equal those of the source
model with its weights replaced by qdq.quantize_and_dequantize_checkpoint's
output (loaded from that directory: it is a complete model directory too).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

import qdq

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("compressed_tensors")
from compressed_tensors.compressors.pack_quantized.helpers import (  # noqa: E402
    unpack_from_int32,
)
from safetensors.torch import load_file  # noqa: E402
from transformers.utils.quantization_config import CompressedTensorsConfig  # noqa: E402

DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
SCHEMES = {"int8-channel": {"num_bits": 8, "axis": 0},
           "int4-g32": {"num_bits": 4, "axis": -1, "block_size": 32},
           "int4-g128": {"num_bits": 4, "axis": -1, "block_size": 128}}
SKIP = ("*embed*", "lm_head.*")
TOKENS = [[1, 17, 42, 99, 3, 250, 7, 128, 64, 5]]


def _build(path, dtype) -> None:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2,
                                   vocab_size=256, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(cfg).to(DTYPES[dtype])
    model.save_pretrained(path, max_shard_size="300KB")


@pytest.fixture(scope="module", params=list(DTYPES))
def source(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(f"llama-{request.param}")
    _build(path, request.param)
    return path, request.param


def _numpy(t):
    """A torch tensor as NumPy (bfloat16 as uint16 bits)."""
    t = t.detach().contiguous()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy()
    return t.numpy()


def _bits(a: np.ndarray) -> np.ndarray:
    """Bit patterns, with -0.0 mapped to +0.0 (codes carry no zero sign)."""
    b = np.ascontiguousarray(a).view(f"u{a.dtype.itemsize}").copy()
    sign = np.array(1 << (8 * a.dtype.itemsize - 1), b.dtype)
    b[b == sign] = 0
    return b


def _load(path, **kw):
    return transformers.AutoModelForCausalLM.from_pretrained(path, **kw).eval()


def _logits(model):
    with torch.no_grad():
        return model(torch.tensor(TOKENS)).logits


def _expected(w: np.ndarray, dtype: str, kw: dict) -> tuple[np.ndarray, np.ndarray, int]:
    """(the op's value, what the format holds: clamp(code) * scale, codes clamped)."""
    bits = dtype == "bfloat16"
    y = qdq.quantize_and_dequantize(w, bfloat16_bits=bits, **kw)
    codes, params = qdq.quantize(w, bfloat16_bits=bits, **kw)
    lo, hi = -(1 << (kw["num_bits"] - 1)), (1 << (kw["num_bits"] - 1)) - 1
    clamped = np.clip(codes, lo, hi)
    held = qdq.dequantize(clamped.astype(np.int8), params, bfloat16_bits=bits)
    return y, held, int(np.count_nonzero(clamped != codes))


@pytest.mark.parametrize("scheme", list(SCHEMES))
def test_transformers_loads_the_export_bit_for_bit(source, scheme, tmp_path):
    src, dtype = source
    kw = SCHEMES[scheme]
    dst, ref_dir = tmp_path / "export", tmp_path / "qdq"
    report = qdq.quantize_checkpoint(src, dst, codes_overflow="clamp", **kw)
    qdq.quantize_and_dequantize_checkpoint(src, ref_dir, skip=SKIP, **kw)
    assert "config.json" in report.files_copied
    assert "generation_config.json" in report.files_copied
    qc = json.loads((dst / "config.json").read_text())["quantization_config"]
    assert qc["format"] == "pack-quantized" and qc["quantization_status"] == "compressed"
    assert sorted(qc["ignore"]) == ["lm_head", "model.embed_tokens"]

    source_model = _load(src)
    dense = _load(dst, quantization_config=CompressedTensorsConfig(dequantize=True))
    state = dense.state_dict()
    reference = _load(ref_dir)          # the QDQ checkpoint, a complete model directory
    ref_state = reference.state_dict()
    quantized = 0
    for name, w in source_model.state_dict().items():
        got = _numpy(state[name])
        if name.startswith(("model.embed_tokens", "lm_head")) or w.ndim != 2:
            assert np.array_equal(got, _numpy(w)), name
            continue
        quantized += 1
        y, held, n_clamped = _expected(_numpy(w), dtype, kw)
        assert report[name].codes_clamped == n_clamped, name
        assert report[name].action == "quantize"
        if n_clamped == 0:
            np.testing.assert_array_equal(_bits(held), _bits(y), err_msg=name)
        else:  # only bfloat16 with 8 bits: int8 cannot hold code 128
            assert dtype == "bfloat16" and kw["num_bits"] == 8, name
            assert np.count_nonzero(_bits(held) != _bits(y)) <= n_clamped, name
        np.testing.assert_array_equal(_bits(got), _bits(held), err_msg=name)
        # the QDQ checkpoint holds the op's values; patch the clamped codes for the logits
        assert np.array_equal(_numpy(ref_state[name]), np.ascontiguousarray(y)), name
        if n_clamped:
            with torch.no_grad():
                patched = torch.from_numpy(held.copy())
                if dtype == "bfloat16":
                    patched = patched.view(torch.bfloat16)
                ref_state[name].copy_(patched)
    assert quantized == 14
    want = _logits(reference)
    assert torch.equal(_logits(dense), want)
    assert torch.equal(_logits(_load(dst)), want)       # the default, compressed, path


def test_the_packed_codes_are_qdq_quantize_codes(source, tmp_path):
    """Unpacked with compressed-tensors' own helper: qdq.quantize's codes, and the scale."""
    src, dtype = source
    kw = SCHEMES["int4-g32"]
    qdq.quantize_checkpoint(src, tmp_path / "out", **kw)
    out = {}
    for f in sorted((tmp_path / "out").glob("*.safetensors")):
        out.update(load_file(f))
    source_state = _load(src).state_dict()
    name = "model.layers.1.mlp.down_proj"
    w = _numpy(source_state[name + ".weight"])
    codes, params = qdq.quantize(w, bfloat16_bits=dtype == "bfloat16", **kw)
    shape = out[name + ".weight_shape"]
    assert shape.tolist() == list(w.shape)
    unpacked = unpack_from_int32(out[name + ".weight_packed"], 4, torch.Size(shape.tolist()))
    np.testing.assert_array_equal(unpacked.numpy(), codes)
    scale = _numpy(out[name + ".weight_scale"])
    inv = np.asarray(params.inverse_scale)
    if dtype == "bfloat16":  # float32 values holding bfloat16 ones: their upper halves
        inv = (inv.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    np.testing.assert_array_equal(scale, inv.astype(scale.dtype))


def test_int_quantized_loads_too(source, tmp_path):
    src, dtype = source
    if dtype == "bfloat16":
        pytest.skip("int8 per channel in bfloat16 clamps codes: covered above")
    dst = tmp_path / "int8"
    qdq.quantize_checkpoint(src, dst, format="int-quantized")
    dense = _load(dst, quantization_config=CompressedTensorsConfig(dequantize=True))
    ref = _load(src)
    for name, w in ref.state_dict().items():
        if name.endswith("proj.weight"):
            y = qdq.quantize_and_dequantize(_numpy(w), axis=0)
            np.testing.assert_array_equal(_bits(_numpy(dense.state_dict()[name])), _bits(y))
            with torch.no_grad():
                w.copy_(torch.from_numpy(y))
    assert torch.equal(_logits(_load(dst)), _logits(ref))


# An unsigned grid: compressed-tensors' asymmetric scheme (weight_zero_point = -2**(b-1)). The
# weights are signed, so the op either clamps them to a calibrated range (negative ones to 0,
# exactly what it computes) or, without a range, gives negative codes the grid cannot hold,
# stored clamped to 0 (codes_overflow="clamp", counted).
UNSIGNED = {
    "uint8-channel-minmax": ("pack-quantized", {"num_bits": 8, "axis": 0, "calibrate": "minmax"}),
    "uint4-g32-clamped": ("pack-quantized", {"num_bits": 4, "axis": -1, "block_size": 32}),
    "uint8-channel-int": ("int-quantized", {"num_bits": 8, "axis": 0, "calibrate": "minmax"}),
    "uint4-tensor-minmax": ("pack-quantized", {"num_bits": 4, "axis": None,
                                               "calibrate": "minmax"}),
}


def _expected_unsigned(w: np.ndarray, dtype: str, kw: dict) -> tuple[np.ndarray, np.ndarray,
                                                                     int]:
    """(the op's value, what the format holds: clamp(q, 0, 2**b - 1) * scale, codes clamped)."""
    bits = dtype == "bfloat16"
    op = {k: v for k, v in kw.items() if k != "calibrate"}
    if "calibrate" in kw:
        op["input_min"], op["input_max"] = qdq.calibrate(w, kw["calibrate"], axis=kw["axis"],
                                                         bfloat16_bits=bits)
        op["range_given"] = True
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")    # negative data on an unsigned grid, no range
        y = qdq.quantize_and_dequantize(w, signed_input=False, bfloat16_bits=bits, **op)
    codes, params = qdq.quantize(w, signed_input=False, bfloat16_bits=bits,
                                 code_dtype=np.int16, **op)
    q = np.clip(codes, 0, (1 << kw["num_bits"]) - 1)
    held = qdq.dequantize(q, params, bfloat16_bits=bits)
    return y, held, int(np.count_nonzero(q != codes))


@pytest.mark.parametrize("case", list(UNSIGNED))
def test_transformers_loads_unsigned_exports_bit_for_bit(source, case, tmp_path):
    src, dtype = source
    fmt, kw = UNSIGNED[case]
    dst, ref_dir = tmp_path / "export", tmp_path / "qdq"
    report = qdq.quantize_checkpoint(src, dst, format=fmt, signed_input=False,
                                     codes_overflow="clamp", **kw)
    qdq.quantize_and_dequantize_checkpoint(src, ref_dir, skip=SKIP, signed_input=False, **kw)
    qc = json.loads((dst / "config.json").read_text())["quantization_config"]
    assert [g["weights"]["symmetric"] for g in qc["config_groups"].values()] == [False]

    source_model = _load(src)
    dense = _load(dst, quantization_config=CompressedTensorsConfig(dequantize=True))
    state = dense.state_dict()
    reference = _load(ref_dir)
    ref_state = reference.state_dict()
    quantized = clamped = 0
    for name, w in source_model.state_dict().items():
        got = _numpy(state[name])
        if name.startswith(("model.embed_tokens", "lm_head")) or w.ndim != 2:
            assert np.array_equal(got, _numpy(w)), name
            continue
        quantized += 1
        y, held, n_clamped = _expected_unsigned(_numpy(w), dtype, kw)
        assert report[name].codes_clamped == n_clamped, name
        clamped += n_clamped
        if n_clamped == 0:
            np.testing.assert_array_equal(_bits(held), _bits(y), err_msg=name)
        np.testing.assert_array_equal(_bits(got), _bits(held), err_msg=name)
        assert np.array_equal(_numpy(ref_state[name]), np.ascontiguousarray(y)), name
        with torch.no_grad():   # the logits' reference: the values the format holds
            patched = torch.from_numpy(held.copy())
            ref_state[name].copy_(patched.view(torch.bfloat16) if dtype == "bfloat16"
                                  else patched)
    assert quantized == 14
    if "calibrate" not in kw:
        assert clamped > 1000        # the negative weights, at 0
    elif dtype != "bfloat16":
        assert clamped == 0          # the op's values exactly
    want = _logits(reference)
    assert torch.equal(_logits(dense), want)
    if fmt == "pack-quantized" and kw["axis"] is not None:
        # transformers' compressed (default) path builds the module from compressed-tensors'
        # compress_model on meta tensors, which leaves the zero point unpacked (int8, one per
        # row) where the checkpoint holds it packed as the format's compressor writes it: the
        # load refuses the size mismatch. Loaded with dequantize=True (above), it is exact.
        with pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
            _load(dst)
    else:
        assert torch.equal(_logits(_load(dst)), want)
