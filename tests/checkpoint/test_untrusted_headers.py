"""Checkpoints with headers crafted to fail late (issue 24 items 8-9): errors come first.

Every path (the function, ``workers=``, Dask, ``qdq run``, ``qdq info``) must refuse them
before anything is written, in one error naming the file and the tensor.
"""

from __future__ import annotations

import json
import os
import struct
import time

import numpy as np
import pytest

import qdq
from qdq._checkpoint.plan import plan_checkpoint
from qdq._io import safetensors_writer
from qdq._io.safetensors_writer import plan_layout
from qdq.cli.main import main


def _shard(path, tensors, metadata=None):
    """A safetensors file from (name, dtype, shape, bytes) with a header as given (JSON-escaped
    names, so lone surrogates and any rank go through)."""
    doc = {} if metadata is None else {"__metadata__": metadata}
    data = b""
    for name, dtype, shape, raw in tensors:
        doc[name] = {"dtype": dtype, "shape": list(shape),
                     "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(doc).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + data)


def _checkpoint(root, bad):
    """Two shards: the first healthy, the second holding ``bad`` after healthy tensors."""
    src = root / "src"
    src.mkdir()
    w = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    shard1 = [("a.weight", "F32", (8, 8), w.tobytes())]
    shard2 = [("b.weight", "F32", (8, 8), w.tobytes()), bad]
    _shard(src / "model-00001-of-00002.safetensors", shard1, {"format": "pt"})
    _shard(src / "model-00002-of-00002.safetensors", shard2, {"format": "pt"})
    weight_map = {"a.weight": "model-00001-of-00002.safetensors"}
    weight_map.update({t[0]: "model-00002-of-00002.safetensors" for t in shard2})
    (src / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": 0}, "weight_map": weight_map}))
    return src


DEFAULTS = {"num_bits": 8, "axis": None, "block_size": None, "signed_input": True,
            "narrow_range": False, "round_mode": "HALF_TO_EVEN", "calibrate": None}

BAD = {
    "rank 65": ("deep", "F32", (1,) * 65, b"\0" * 4),
    "lone surrogate": ("w\ud800", "F32", (4, 4), b"\0" * 64),
    "100k dimensions": ("wide", "F32", (2**63,) * 100_000 + (0,), b""),
}
MESSAGE = {"rank 65": "65 dimensions", "lone surrogate": "not valid Unicode",
           "100k dimensions": "100001 dimensions"}


def _names_file_and_tensor(text, case):
    name = BAD[case][0]
    assert "model-00002-of-00002.safetensors" in text, text
    assert f"tensor {name!r}" in text, text
    assert MESSAGE[case] in text, text


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("how", ["serial", "workers", "dask"])
def test_the_api_fails_first_and_writes_nothing(tmp_path, case, how):
    src = _checkpoint(tmp_path, BAD[case])
    dst = tmp_path / "dst"
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        if how == "dask":
            qdq_dask = pytest.importorskip("qdq.dask")
            qdq_dask.quantize_and_dequantize_checkpoint(src, dst)
        else:
            qdq.quantize_and_dequantize_checkpoint(src, dst, workers=2 if how == "workers"
                                                   else None)
    assert time.perf_counter() - t0 < 5
    _names_file_and_tensor(str(info.value), case)
    assert not dst.exists()


@pytest.mark.parametrize("case", list(BAD))
def test_qdq_run_fails_first_in_one_line(tmp_path, capsys, case):
    src = _checkpoint(tmp_path, BAD[case])
    dst = tmp_path / "dst"
    assert main(["run", str(src), str(dst), "-q"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("qdq: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    _names_file_and_tensor(err, case)
    assert not dst.exists()


@pytest.mark.parametrize("case", list(BAD))
def test_qdq_info_fails_first(tmp_path, capsys, case):
    src = _checkpoint(tmp_path, BAD[case])
    before = sorted(os.listdir(src))
    assert main(["info", str(src), "-q"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("qdq: error: ") and err.count("\n") == 1, err
    _names_file_and_tensor(err, case)
    assert sorted(os.listdir(src)) == before


def test_an_output_header_the_writer_would_refuse_fails_first(tmp_path, monkeypatch):
    """The output's header is the source's plus the stamp: past the format's size limit, the
    writer refuses it. The plan lays out every output header first: the error comes before
    the first shard is written, and names the source shard."""
    src = _checkpoint(tmp_path, ("c" * 1000, "F32", (2, 2), b"\0" * 16))
    # a limit the first shard's output header fits under, the second's not
    plan = plan_checkpoint(src, tmp_path / "dst", None, (), DEFAULTS)
    first, second = (len(plan_layout(s.entries, s.metadata)[0]) - 8 for s in plan.shards)
    assert first < second
    monkeypatch.setattr(safetensors_writer, "MAX_HEADER_BYTES", first)
    dst = tmp_path / "dst"
    with pytest.raises(ValueError, match="model-00002-of-00002.safetensors: its output .* "
                                         "over the limit"):
        qdq.quantize_and_dequantize_checkpoint(src, dst)
    assert not dst.exists()


def test_a_healthy_twin_is_written(tmp_path):
    """The same checkpoint without the bad tensor is written: the check refuses only it."""
    src = _checkpoint(tmp_path, ("c.weight", "F32", (2, 2), b"\0" * 16))
    report = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "dst")
    assert len(report.shards_written) == 2
