"""Resume: a rerun skips a complete shard only when its source is the same file, unchanged.

The stamp names the source by file name, size, mtime, ctime, inode and header hash.
The cases a name/size/mtime/header stamp took for the same source: another model
with the same header, size and mtime (fine-tunes of one base under normalised
mtimes), the source rewritten in place with its mtime put back, a copy (``cp -p``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from _util import assert_bits_equal

import qdq
from qdq._io.safetensors import read_header, tensor_memmap
from qdq._io.safetensors_writer import write_arrays

SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")


def model(seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Two shards of the same names, shapes and dtypes; the values depend on the seed."""
    rng = np.random.default_rng(seed)
    return {SHARDS[0]: {"a.weight": rng.standard_normal((16, 8)).astype(np.float32),
                        "a.bias": rng.standard_normal(8).astype(np.float32)},
            SHARDS[1]: {"b.weight": rng.standard_normal((8, 12)).astype(np.float32)}}


def write_shard(path, arrays) -> None:
    with open(path, "wb") as f:
        write_arrays(f, arrays, {"format": "pt"})


def write_model(directory, seed: int):
    import json

    os.makedirs(directory, exist_ok=True)
    shards = model(seed)
    weight_map = {}
    for name, arrays in shards.items():
        write_shard(os.path.join(directory, name), arrays)
        weight_map.update({n: name for n in arrays})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return shards


def head(path) -> bytes:
    h = read_header(path)
    with open(path, "rb") as f:
        return f.read(h.data_start)


def outputs(dst) -> dict[str, np.ndarray]:
    got = {}
    for name in SHARDS:
        h = read_header(os.path.join(dst, name))
        got.update({t.name: np.array(tensor_memmap(h, t.name)) for t in h.tensors})
    return got


def check_outputs(dst, shards) -> None:
    got = outputs(dst)
    for arrays in shards.values():
        for name, x in arrays.items():
            want = x if x.ndim < 2 else qdq.quantize_and_dequantize(x, num_bits=4)
            assert_bits_equal(got[name], want, msg=name)


def restore_times(path, st: os.stat_result) -> None:
    """``touch -r``: put the atime and mtime back; wait until the ctime has moved on.

    The ctime has the file system's clock granularity: setting the times again
    until it differs from ``st``'s keeps the test exact on any clock.
    """
    deadline = time.monotonic() + 5
    while True:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        if os.stat(path).st_ctime_ns != st.st_ctime_ns or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    now = os.stat(path)
    assert now.st_mtime_ns == st.st_mtime_ns and now.st_size == st.st_size
    if now.st_ctime_ns == st.st_ctime_ns:  # pragma: no cover - a file system without ctime
        pytest.skip("this file system does not move the ctime")


def run(src, dst):
    return qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=4)


def test_same_name_size_header_and_mtime_with_other_data_is_written_again(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_model(src, seed=0)
    assert len(run(src, dst).shards_written) == 2
    assert run(src, dst).shards_written == []  # unchanged: resumed
    # Another fine-tune of the same base, made elsewhere and moved in under the same
    # name with the same mtime (Nix store, a reproducible archive): same size, same header.
    target = src / SHARDS[1]
    st = os.stat(target)
    before = head(target)
    other = model(seed=1)
    write_shard(tmp_path / "other.safetensors", other[SHARDS[1]])
    os.replace(tmp_path / "other.safetensors", target)
    restore_times(target, st)
    assert head(target) == before and os.path.getsize(target) == st.st_size
    again = run(src, dst)
    assert again.shards_written == [str(dst / SHARDS[1])]  # the other shard resumes
    assert again.shards_skipped == [str(dst / SHARDS[0])]
    check_outputs(dst, {SHARDS[0]: model(0)[SHARDS[0]], SHARDS[1]: other[SHARDS[1]]})
    assert run(src, dst).shards_written == []


def test_rewritten_in_place_with_the_mtime_restored_is_written_again(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_model(src, seed=0)
    run(src, dst)
    target = src / SHARDS[0]
    st = os.stat(target)
    start = read_header(target).data_start
    other = model(seed=2)
    write_shard(tmp_path / "other.safetensors", other[SHARDS[0]])
    data = (tmp_path / "other.safetensors").read_bytes()[start:]
    with open(target, "r+b") as f:  # the same inode, rewritten
        f.seek(start)
        f.write(data)
    restore_times(target, st)
    assert os.stat(target).st_ino == st.st_ino
    again = run(src, dst)
    assert again.shards_written == [str(dst / SHARDS[0])]
    check_outputs(dst, {SHARDS[0]: other[SHARDS[0]], SHARDS[1]: model(0)[SHARDS[1]]})


def copy_preserving(src, dst) -> None:
    """``cp -p`` (mode, owner and times kept), or its Python equivalent."""
    if shutil.which("cp"):
        subprocess.run(["cp", "-p", "-R", str(src), str(dst)], check=True)
    else:  # pragma: no cover
        shutil.copytree(src, dst, copy_function=shutil.copy2)


def test_a_cp_p_copy_of_the_source_is_written_again(tmp_path):
    # A copy cannot be told from another model with the same name, size, header and
    # mtime without reading all of it: it is written again (the same bits come out).
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_model(src, seed=0)
    run(src, dst)
    copy_preserving(src, tmp_path / "copy")
    for name in SHARDS:
        a, b = os.stat(src / name), os.stat(tmp_path / "copy" / name)
        assert (a.st_size, a.st_mtime_ns) == (b.st_size, b.st_mtime_ns)
    again = run(tmp_path / "copy", dst)
    assert sorted(again.shards_written) == sorted(str(dst / p) for p in SHARDS)
    check_outputs(dst, model(0))  # the same bits again
    assert run(tmp_path / "copy", dst).shards_written == []  # the copy itself resumes


def test_moving_the_source_directory_still_resumes(tmp_path):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_model(src, seed=0)
    run(src, dst)
    os.rename(src, tmp_path / "moved")
    assert run(tmp_path / "moved", dst).shards_written == []


def test_stamp_records_the_identity(tmp_path):
    import json

    src, dst = tmp_path / "src", tmp_path / "dst"
    write_model(src, seed=0)
    run(src, dst)
    stamp = json.loads(read_header(dst / SHARDS[0]).metadata["qdq"])
    st = os.stat(src / SHARDS[0])
    assert stamp["format"] == 2
    assert {k: stamp["source"][k] for k in ("file", "bytes", "mtime_ns", "ctime_ns",
                                            "inode")} == {
        "file": SHARDS[0], "bytes": st.st_size, "mtime_ns": st.st_mtime_ns,
        "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}
