"""Checkpoint runs interrupted mid-shard: no partial file under a final name; a rerun resumes."""

from __future__ import annotations

import os
import textwrap

import pytest
from _ckpt_cases import save_sharded, tensors
from _util import run_python

import qdq
from qdq._core import engine as _engine
from qdq._io.atomic import TEMP_SUFFIX
from qdq._io.safetensors import read_header

pytest.importorskip("safetensors")
pytest.importorskip("ml_dtypes")

SHARDS = [f"model-{i:05d}-of-00003.safetensors" for i in (1, 2, 3)]
INDEX = "model.safetensors.index.json"


@pytest.fixture
def src(tmp_path):
    save_sharded(tmp_path / "src", tensors(), shards=3)
    return tmp_path / "src"


def count_calls(monkeypatch, src, tmp_path, **kw) -> int:
    calls = [0]
    real = _engine.run_block

    def spy(*a, **k):
        calls[0] += 1
        return real(*a, **k)

    monkeypatch.setattr(_engine, "run_block", spy)
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "count", chunk_bytes=64, **kw)
    monkeypatch.setattr(_engine, "run_block", real)
    return calls[0]


def check_no_partial(dst) -> list[str]:
    """Every file under a final name is complete; no temporary file is left; the complete ones."""
    names = os.listdir(dst) if os.path.isdir(dst) else []
    assert not [n for n in names if n.endswith(TEMP_SUFFIX)], names
    complete = []
    for n in names:
        if n.endswith(".safetensors"):
            h = read_header(os.path.join(dst, n))  # raises if partial
            assert "qdq" in (h.metadata or {})
            complete.append(n)
    return sorted(complete)


def test_keyboard_interrupt_mid_shard_then_resume(monkeypatch, src, tmp_path):
    total = count_calls(monkeypatch, src, tmp_path, num_bits=5)
    dst = tmp_path / "dst"
    # an earlier complete run with other settings: its index must not survive the new run
    qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=4)
    before = {n: (src / n).read_bytes() for n in os.listdir(src)}
    calls = [0]
    real = _engine.run_block

    def interrupt(*a, **k):
        calls[0] += 1
        if calls[0] == total // 2:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(_engine, "run_block", interrupt)
    with pytest.raises(KeyboardInterrupt):
        qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=5, chunk_bytes=64)
    monkeypatch.setattr(_engine, "run_block", real)
    assert {n: (src / n).read_bytes() for n in os.listdir(src)} == before
    assert not (dst / INDEX).exists()
    check_no_partial(dst)
    new = [n for n in SHARDS
           if (dst / n).exists() and '"num_bits":5' in read_header(dst / n).metadata["qdq"]]
    assert 1 <= len(new) < 3  # stopped inside a later shard
    report = qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=5)
    assert sorted(os.path.basename(p) for p in report.shards_skipped) == new
    assert len(report.shards_written) == 3 - len(new)
    assert (dst / INDEX).exists()
    for n in SHARDS + [INDEX]:
        assert (dst / n).read_bytes() == (tmp_path / "count" / n).read_bytes(), n


SIGTERM_CHILD = textwrap.dedent("""
    import os, signal, sys
    import qdq
    from qdq._core import engine as _engine
    real = _engine.run_block
    n = [0]
    def stop(*a, **k):
        n[0] += 1
        if n[0] == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    _engine.run_block = stop
    qdq.quantize_and_dequantize_checkpoint(sys.argv[1], sys.argv[2], chunk_bytes=64)
""")


def test_sigterm_mid_shard_then_resume(monkeypatch, src, tmp_path):
    total = count_calls(monkeypatch, src, tmp_path)
    dst = tmp_path / "dst"
    res = run_python(["-c", SIGTERM_CHILD, src, dst, total * 2 // 3], cwd=tmp_path)
    assert res.returncode == 143, res.stderr
    done = check_no_partial(dst)
    assert 1 <= len(done) < 3 and not (dst / INDEX).exists()
    written = []
    real = qdq._checkpoint.run.write_shard

    def count(shard, *a, **k):
        written.append(os.path.basename(shard.dst))
        return real(shard, *a, **k)

    monkeypatch.setattr(qdq._checkpoint.run, "write_shard", count)
    report = qdq.quantize_and_dequantize_checkpoint(src, dst)
    assert sorted(written) == sorted(set(SHARDS) - set(done))
    assert len(report.shards_skipped) == len(done)
    for n in SHARDS + [INDEX]:
        assert (dst / n).read_bytes() == (tmp_path / "count" / n).read_bytes(), n


def test_stale_temporary_of_a_killed_run_is_removed(src, tmp_path):
    dst = tmp_path / "dst"
    dst.mkdir()
    stale = dst / f".{SHARDS[0]}.999999999.x1y2{TEMP_SUFFIX}"
    stale.write_bytes(b"partial")
    qdq.quantize_and_dequantize_checkpoint(src, dst)
    assert not stale.exists()
    assert check_no_partial(dst) == SHARDS


def test_error_mid_shard_leaves_earlier_shards_and_no_partial(monkeypatch, src, tmp_path):
    total = count_calls(monkeypatch, src, tmp_path)
    calls = [0]
    real = _engine.run_block

    def fail(*a, **k):
        calls[0] += 1
        if calls[0] == total - 2:
            raise OSError(28, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(_engine, "run_block", fail)
    with pytest.raises(OSError):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "dst", chunk_bytes=64)
    done = check_no_partial(tmp_path / "dst")
    assert len(done) == 2 and SHARDS[2] not in done
