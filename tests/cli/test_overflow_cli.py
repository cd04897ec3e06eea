"""``qdq run`` and ``qdq info`` say when the float16 scale overflows (inf/NaN outputs)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from qdq.cli.main import main

TINY = (np.random.default_rng(3).standard_normal((6, 10)) * 1e-4).astype(np.float16)
FINE = np.linspace(-1, 1, 64, dtype=np.float16).reshape(8, 8)
WARNING_LINE = "qdq: warning: "


@pytest.fixture
def npy(tmp_path):
    np.save(tmp_path / "w.npy", TINY)
    return tmp_path


@pytest.fixture
def ckpt(tmp_path):
    from qdq._io.safetensors_writer import write_arrays

    with open(tmp_path / "m.safetensors", "wb") as f:
        write_arrays(f, {"w.tiny": TINY, "w.fine": FINE}, {"format": "pt"})
    return tmp_path


def stderr_warnings(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(WARNING_LINE)]


def test_info_on_a_file_shows_it_before_anything_is_written(npy, capsys):
    src = str(npy / "w.npy")
    assert main(["info", src]) == 0
    out, err = capsys.readouterr()
    assert "warning: float16 scale overflow in the tensor: the output would have inf/NaN" in out
    assert "non-finite outputs 60" in out
    lines = stderr_warnings(err)
    assert len(lines) == 1 and lines[0].startswith(f"{WARNING_LINE}{src!r}: float16 scale "
                                                   "overflows to inf")
    assert main(["info", src, "--json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert doc["error"]["float16_overflow"] == 1 and doc["error"]["nonfinite_outputs"] == 60
    assert len(stderr_warnings(err)) == 1  # stdout stays one JSON object
    assert sorted(os.listdir(npy)) == ["w.npy"]


def test_run_on_a_file_says_it_in_the_summary(npy, capsys):
    src, dst = str(npy / "w.npy"), str(npy / "y.npy")
    assert main(["run", src, dst, "-q"]) == 0
    out, err = capsys.readouterr()
    assert "warning: float16 scale overflow in the tensor: the output has inf/NaN" in out
    assert len(stderr_warnings(err)) == 1
    assert main(["run", src, dst, "-q", "--json", "--axis", "0"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["float16_overflow"] == 6
    assert "in 6 channels (first: 0)" in stderr_warnings(err)[0]


def test_info_on_a_checkpoint_marks_the_tensor(ckpt, capsys):
    assert main(["info", str(ckpt / "m.safetensors")]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].endswith("inf/NaN out")
    row = next(line for line in lines if line.startswith("w.tiny"))
    assert row.endswith(" 60")
    assert not next(line for line in lines if line.startswith("w.fine")).endswith(" 60")
    assert lines[-1] == ("warning: 1 tensor with inf/NaN outputs its input did not have: "
                         "'w.tiny' (60 outputs, float16 scale overflow)")
    lines = stderr_warnings(err)
    assert len(lines) == 1 and lines[0].startswith(f"{WARNING_LINE}tensor 'w.tiny': float16")
    assert sorted(os.listdir(ckpt)) == ["m.safetensors"]


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]])
def test_run_on_a_checkpoint_says_it_in_the_summary_and_json(ckpt, capsys, workers):
    src, dst = str(ckpt / "m.safetensors"), str(ckpt / "out.safetensors")
    assert main(["run", src, dst, "-q", *workers]) == 0
    out, err = capsys.readouterr()
    assert ", inf/NaN outputs 60" in out
    assert ("warning: 1 tensor with inf/NaN outputs its input did not have: 'w.tiny' "
            "(60 outputs, float16 scale overflow)") in out
    assert len(stderr_warnings(err)) == 1
    os.unlink(dst)
    assert main(["run", src, dst, "-q", "--json", *workers]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    by_name = {t["name"]: t for t in doc["tensors"]}
    tiny, fine = by_name["w.tiny"], by_name["w.fine"]
    assert (tiny["nonfinite"], tiny["nonfinite_out"], tiny["float16_overflow"]) == (True, 60, 1)
    assert tiny["warning"].startswith("tensor 'w.tiny': float16 scale overflows to inf")
    assert (fine["nonfinite"], fine["nonfinite_out"], fine["float16_overflow"],
            fine["warning"]) == (False, 0, 0, None)
    assert doc["totals"]["nonfinite_tensors"] == 1 and doc["totals"]["nonfinite_out"] == 60
    assert len(stderr_warnings(err)) == 1
