"""Whole safetensors checkpoints: bit-exact tensors, copies, rules, layout, loading."""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
from _ckpt_cases import data_order, load_all, raw_header, save_sharded, tensors
from _util import assert_bits_equal

import qdq

pytest.importorskip("safetensors")
pytest.importorskip("ml_dtypes")

DEFAULTS = {"num_bits": 8, "signed_input": True, "narrow_range": False,
            "round_mode": "HALF_TO_EVEN", "axis": None, "block_size": None, "calibrate": None}
FLOAT_KINDS = ("float16", "bfloat16", "float32", "float64")


def is_float(a: np.ndarray) -> bool:
    return a.dtype.name in FLOAT_KINDS


def expected(x: np.ndarray, settings: dict | None) -> np.ndarray:
    if settings is None:
        return x
    s = dict(settings)
    method = s.pop("calibrate", None)
    if method is None:
        return qdq.quantize_and_dequantize(x, **s)
    kw = {k: s[k] for k in ("num_bits", "signed_input", "narrow_range", "round_mode")}
    name, _, p = method.partition(":")
    if p:
        kw["percentile"] = float(p)
    lo, hi = qdq.calibrate(x, name, axis=s["axis"], **kw)
    return qdq.quantize_and_dequantize(x, lo, hi, range_given=True, **s)


def check_tensor(name, x, y, settings):
    """y is the op on x with these settings bit for bit, or x's bytes."""
    assert y.dtype == x.dtype and y.shape == x.shape, name
    if settings is None:
        assert np.ascontiguousarray(y).tobytes() == np.ascontiguousarray(x).tobytes(), name
    else:
        assert_bits_equal(y, expected(x, settings), msg=name)


def default_settings(x: np.ndarray, **kw) -> dict | None:
    if not is_float(x) or x.ndim < 2 or x.size == 0:
        return None
    s = {**DEFAULTS, **kw}
    if s["axis"] is not None:
        s["axis"] %= x.ndim
    return s


@pytest.fixture
def sharded(tmp_path):
    arrays = tensors()
    src = tmp_path / "src"
    weight_map = save_sharded(src, arrays, shards=3, metadata={"format": "pt", "note": "x"},
                              index_extra={"producer": "test"})
    return src, arrays, weight_map


def test_sharded_defaults_bit_exact_and_layout_kept(sharded, tmp_path):
    src, arrays, weight_map = sharded
    dst = tmp_path / "dst"
    before = {p: (src / p).read_bytes() for p in os.listdir(src)}
    report = qdq.quantize_and_dequantize_checkpoint(src, dst)
    assert {p: (src / p).read_bytes() for p in os.listdir(src)} == before  # source untouched
    assert sorted(os.listdir(dst)) == sorted(os.listdir(src))
    for shard in set(weight_map.values()):
        out = load_all(dst / shard)
        assert data_order(dst / shard) == data_order(src / shard)
        meta = raw_header(dst / shard)["__metadata__"]
        assert meta["format"] == "pt" and meta["note"] == "x"
        stamp = json.loads(meta["qdq"])
        assert set(stamp["tensors"]) == set(out)
        for name, y in out.items():
            check_tensor(name, arrays[name], y, default_settings(arrays[name]))
    index = json.loads((dst / "model.safetensors.index.json").read_text())
    assert index["weight_map"] == weight_map
    assert index["metadata"]["total_size"] == sum(a.nbytes for a in arrays.values())
    assert index["metadata"]["producer"] == "test"
    # the report: one record per tensor, in file order
    assert sorted(r.name for r in report) == sorted(arrays)
    for r in report:
        x = arrays[r.name]
        assert r.action == ("qdq" if default_settings(x) else "copy"), r.name
        assert r.shape == x.shape and r.status == "written" and r.seconds >= 0
        if r.action == "qdq" and r.name != "odd.nan":  # (odd.nan holds an inf: range inf)
            assert r.sqnr_db is not None and r.max_abs_error is not None
            assert r.clipped == 0 and r.range[0] <= r.range[1] and r.scale[0] > 0
    assert report["odd.nan"].nan == 1
    for r in report:  # the error figures, against float64 arithmetic on the in-memory op
        if r.action != "qdq" or r.name == "odd.nan":
            continue
        x = arrays[r.name].astype(np.float64)
        err = np.abs(qdq.quantize_and_dequantize(arrays[r.name]).astype(np.float64) - x)
        assert r.max_abs_error == err.max(), r.name
        assert r.sqnr_db == pytest.approx(10 * np.log10(np.square(x).sum()
                                                        / np.square(err).sum()), rel=1e-5)
    assert len(report.shards_written) == 3 and not report.shards_skipped


@pytest.mark.parametrize("kw", [
    {"num_bits": 4, "axis": -1},
    {"num_bits": 6, "axis": 0, "signed_input": False, "narrow_range": False},
    {"num_bits": 3, "axis": -1, "block_size": 4, "round_mode": "HALF_UP"},
    {"num_bits": 5, "narrow_range": True},
])
def test_single_file_settings(tmp_path, kw):
    from safetensors.numpy import save_file

    arrays = tensors(seed=1)
    arrays = {k: np.asarray(np.abs(v)) if kw.get("signed_input") is False and is_float(v) else v
              for k, v in arrays.items()}
    save_file(arrays, tmp_path / "m.safetensors", metadata={"format": "np"})
    report = qdq.quantize_and_dequantize_checkpoint(tmp_path / "m.safetensors",
                                                   tmp_path / "q.safetensors", **kw)
    out = load_all(tmp_path / "q.safetensors")
    assert list(out) == list(load_all(tmp_path / "m.safetensors"))
    for name, y in out.items():
        s = default_settings(arrays[name], **kw)
        check_tensor(name, arrays[name], y, s)
        assert report[name].settings == s


def test_rules_then_skip_then_defaults(sharded, tmp_path):
    src, arrays, _ = sharded
    rules = [("layer0.*.r2", None),                                   # copy, before skip
             ("layer1.*.r0", {"num_bits": 5}),                        # rank 0 quantized
             ("layer1.*", {"num_bits": 4, "axis": -1}),               # settings over defaults
             ("*.r1", {"num_bits": 3}),                               # rank 1 quantized
             ("embed.*", {"num_bits": 2}),                            # rule beats skip
             ("ids.*", {"num_bits": 4})]                              # integers: still copied
    skip = ["embed.*", "layer3.*", "layer0.*"]
    report = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", rules=rules, skip=skip,
                                                   num_bits=7)
    want = {}
    for name, x in arrays.items():
        if name == "layer0.float16.r2":
            s = None
        elif name.startswith("layer1.") and x.ndim == 0:
            s = {**DEFAULTS, "num_bits": 5}
        elif name.startswith("layer1."):
            s = {**DEFAULTS, "num_bits": 4, "axis": x.ndim - 1}
        elif name.endswith(".r1"):
            s = {**DEFAULTS, "num_bits": 3}
        elif name.startswith("embed."):
            s = {**DEFAULTS, "num_bits": 2}
        elif name.startswith(("layer3.", "layer0.", "ids.")):
            s = None
        else:
            s = default_settings(x, num_bits=7)
        want[name] = s
    for shard in os.listdir(tmp_path / "d"):
        if not shard.endswith(".safetensors"):
            continue
        for name, y in load_all(tmp_path / "d" / shard).items():
            check_tensor(name, arrays[name], y, want[name])
            assert report[name].settings == want[name], name
    assert report["layer0.float16.r2"].reason == "rule 'layer0.*.r2'"
    assert report["layer3.float64.r3"].reason == "skip 'layer3.*'"
    assert report["ids.int64"].action == "copy" and "not a float" in report["ids.int64"].reason


def test_rule_axis_a_tensor_lacks_fails_before_writing(sharded, tmp_path):
    src, _, _ = sharded
    with pytest.raises(ValueError, match="layer1.bfloat16.r0.*out of bounds"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d",
                                               rules=[("layer1.*", {"axis": -1})])
    assert not (tmp_path / "d").exists()
    with pytest.raises(ValueError, match="unknown setting 'bits'"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", rules=[("*", {"bits": 4})])
    with pytest.raises(ValueError, match="block_size needs axis"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", block_size=8)
    with pytest.raises(ValueError, match="num_bits"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", rules=[("x", {"num_bits": 0})])
    with pytest.raises(TypeError, match="skip"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", skip=[3])
    assert not (tmp_path / "d").exists()


def test_corrupt_header_is_a_clear_error_and_nothing_is_written(sharded, tmp_path):
    src, _, weight_map = sharded
    shard = src / sorted(set(weight_map.values()))[1]
    data = bytearray(shard.read_bytes())
    data[8] = ord("x")  # the JSON header's first byte
    shard.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="model-00002-of-00003.safetensors: the header is not"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d")
    assert not (tmp_path / "d").exists()
    one = tmp_path / "one.safetensors"
    one.write_bytes((10**9).to_bytes(8, "little") + b"{}")
    with pytest.raises(ValueError, match="header length"):
        qdq.quantize_and_dequantize_checkpoint(one, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()
    (src / "model.safetensors.index.json").write_text('{"weight_map": 3}')
    with pytest.raises(ValueError, match="weight_map"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d")
    assert not (tmp_path / "d").exists()


def test_destination_equal_to_source_is_refused(sharded, tmp_path):
    src, _, _ = sharded
    with pytest.raises(ValueError, match="overwrite the source"):
        qdq.quantize_and_dequantize_checkpoint(src, src)
    f = src / "model-00001-of-00003.safetensors"
    with pytest.raises(ValueError, match="overwrite the source"):
        qdq.quantize_and_dequantize_checkpoint(f, f)


def test_single_file_into_a_directory_and_missing_source(tmp_path):
    from safetensors.numpy import save_file

    save_file({"w": np.ones((2, 3), np.float32)}, tmp_path / "m.safetensors")
    (tmp_path / "out").mkdir()
    r = qdq.quantize_and_dequantize_checkpoint(tmp_path / "m.safetensors", tmp_path / "out")
    assert r.shards_written == [str(tmp_path / "out" / "m.safetensors")]
    new_dir = str(tmp_path / "new") + os.sep  # a directory to create
    r = qdq.quantize_and_dequantize_checkpoint(tmp_path / "m.safetensors", new_dir)
    assert os.listdir(new_dir) == ["m.safetensors"]
    with pytest.raises(FileNotFoundError):
        qdq.quantize_and_dequantize_checkpoint(tmp_path / "none.safetensors", tmp_path / "x")


def test_loads_with_torch(sharded, tmp_path):
    torch = pytest.importorskip("torch")
    src, arrays, weight_map = sharded
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", num_bits=4)
    for shard in set(weight_map.values()):
        got = load_all(tmp_path / "d" / shard, framework="pt")
        ref = load_all(tmp_path / "d" / shard)
        for name, t in got.items():
            assert isinstance(t, torch.Tensor) and tuple(t.shape) == arrays[name].shape
            if t.dtype == torch.bfloat16:
                assert t.view(torch.int16).numpy().tobytes() == ref[name].tobytes()
            else:
                assert t.numpy().tobytes() == ref[name].tobytes()


def test_rerun_skips_complete_shards_and_redoes_changed_ones(sharded, tmp_path):
    src, _, weight_map = sharded
    dst = tmp_path / "d"
    first = qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=4)
    assert len(first.shards_written) == 3
    mtimes = {p: os.stat(dst / p).st_mtime_ns for p in os.listdir(dst)}
    again = qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=4)
    assert again.shards_written == [] and len(again.shards_skipped) == 3
    assert all(r.status == "skipped" for r in again)
    shards = sorted(set(weight_map.values()))
    assert all(os.stat(dst / s).st_mtime_ns == mtimes[s] for s in shards)
    # other settings: everything is written again
    third = qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=5)
    assert len(third.shards_written) == 3
    # a changed source shard is written again, the others are kept
    os.utime(src / shards[0], ns=(1, 1))
    fourth = qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=5)
    assert fourth.shards_written == [str(dst / shards[0])]


def test_workers_give_the_same_files(sharded, tmp_path):
    src, _, _ = sharded
    kw = {"num_bits": 4, "axis": -1, "rules": [("layer2.*.r[234]", {"block_size": 3})]}
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "a", **kw)
    r = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "b", workers=2, **kw)
    assert len(r.shards_written) == 3
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    with pytest.raises(ValueError, match="workers"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "c", workers=0)


def test_dask_gives_the_same_files(sharded, tmp_path):
    pytest.importorskip("dask")
    import dask

    import qdq.dask

    src, _, _ = sharded
    kw = {"num_bits": 6, "skip": ["embed.*"]}
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "a", **kw)
    with dask.config.set(scheduler="threads"):
        r = qdq.dask.quantize_and_dequantize_checkpoint(src, tmp_path / "b", **kw)
    assert len(r.shards_written) == 3
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    r = qdq.dask.quantize_and_dequantize_checkpoint(src, tmp_path / "b", **kw)
    assert r.shards_written == [] and len(r.shards_skipped) == 3


def test_small_chunks_give_the_same_files(sharded, tmp_path):
    src, _, _ = sharded
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "a", axis=0)
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "b", axis=0, chunk_bytes=40)
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def _progress_run(sharded, tmp_path, capsys, monkeypatch):
    """A run with progress=True: what it printed on stderr, and the notes it set, in order."""
    from qdq._stream import progress as _progress

    src, _, _ = sharded
    notes = []
    real = _progress.Progress.set_note

    def record(self, note):
        notes.append(note)
        real(self, note)

    monkeypatch.setattr(_progress.Progress, "set_note", record)
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "d", progress=True)
    return capsys.readouterr().err, notes


def test_progress_shows_the_tensor_names(sharded, tmp_path, capsys, monkeypatch):
    """The plain progress line (without tqdm) names the tensor being worked on."""
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm absent, even where it is installed
    err, notes = _progress_run(sharded, tmp_path, capsys, monkeypatch)
    assert err.startswith("qdq checkpoint: ") and "MiB" in err and err.endswith("\n")
    last = err[:-1].split("\r")[-1]  # the line drawn when the run ends
    assert last.startswith("qdq checkpoint: 100.0% of ") and last.endswith(f", {notes[-1]}")
    assert sorted(notes) == sorted(sharded[1])


def test_progress_bar_shows_the_tensor_names_with_tqdm(sharded, tmp_path, capsys, monkeypatch):
    """With tqdm installed, its bar names the tensor being worked on."""
    pytest.importorskip("tqdm")
    err, notes = _progress_run(sharded, tmp_path, capsys, monkeypatch)
    last = err.rstrip("\n").split("\r")[-1]  # the bar as the run leaves it
    assert last.startswith("qdq checkpoint: 100%") and last.endswith(f", {notes[-1]}]")
    assert err.endswith("\n")
    assert sorted(notes) == sorted(sharded[1])


def test_without_error_statistics_same_files(sharded, tmp_path):
    src, _, _ = sharded
    a = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "a", num_bits=4, axis=0)
    b = qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "b", num_bits=4, axis=0,
                                               error_stats=False)
    for name in os.listdir(tmp_path / "a"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    for ra, rb in zip(a, b, strict=True):
        assert rb.sqnr_db is None and rb.max_abs_error is None and rb.range == ra.range
    with pytest.raises(TypeError, match="error_stats"):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "c", error_stats=1)


def test_thread_setting_is_restored(sharded, tmp_path):
    src, _, _ = sharded
    before = qdq.get_num_threads()
    qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "a")
    assert qdq.get_num_threads() == before
    with qdq.num_threads(3):
        qdq.quantize_and_dequantize_checkpoint(src, tmp_path / "b")
        assert qdq.get_num_threads() == 3
