"""The float16 scale overflow on every path: one warning per tensor, naming it; marked reports.

A float16 channel (block, tensor) whose largest magnitude is below qmax / 65504
overflows the scale and comes out inf/NaN, as in TensorFlow. Every path keeps
those bits and warns once for the tensor, naming it where it has a name (a file
path, a checkpoint tensor, a Dask array); the checkpoint report counts the
outputs that are inf/NaN where the input was finite and marks the tensor.
"""

from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
from _util import assert_bits_equal

import qdq
from qdq._io.safetensors import read_header, tensor_memmap
from qdq._io.safetensors_writer import write_arrays

MARK = "float16 scale overflows"


def small_rows() -> np.ndarray:
    """(8, 64) float16: rows 2 and 5 are tiny (their channels and blocks overflow)."""
    x = np.random.default_rng(7).standard_normal((8, 64)).astype(np.float16)
    x[2] = (x[2].astype(np.float32) * 1e-5).astype(np.float16)
    x[5] = (x[5].astype(np.float32) * 3e-6).astype(np.float16)
    return x


def tiny() -> np.ndarray:
    """(6, 10) float16 whose whole range overflows the scale."""
    return (np.random.default_rng(3).standard_normal((6, 10)) * 1e-4).astype(np.float16)


def overflow_messages(record) -> list[str]:
    return [str(w.message) for w in record
            if issubclass(w.category, RuntimeWarning) and MARK in str(w.message)]


def run_recorded(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    return out, overflow_messages(record)


def op(x: np.ndarray, **kw) -> np.ndarray:
    """The in-memory op, its warnings ignored (the expected bits)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return qdq.quantize_and_dequantize(x, **kw)


def nonfinite_new(x: np.ndarray, y: np.ndarray) -> int:
    """Outputs that are inf/NaN where the input was finite."""
    return int((np.isfinite(x) & ~np.isfinite(y)).sum())


CASES = [  # (tensor, op keyword arguments, what the message says)
    ("tiny", {}, " overflows to inf:"),
    ("rows", {"axis": 0}, " in 2 channels (first: 2)"),
    ("rows", {"axis": 1, "block_size": 16}, " in 8 blocks"),
]


def tensor(kind: str) -> np.ndarray:
    return tiny() if kind == "tiny" else small_rows()


@pytest.mark.parametrize("kind, kw, says", CASES)
def test_in_memory_warns_once(kind, kw, says):
    x = tensor(kind)
    y, messages = run_recorded(qdq.quantize_and_dequantize, x, **kw)
    assert len(messages) == 1 and says in messages[0], messages
    assert nonfinite_new(x, y) > 0


@pytest.mark.parametrize("kind, kw, says", CASES)
def test_file_warns_once_naming_the_file(tmp_path, kind, kw, says):
    x = tensor(kind)
    np.save(tmp_path / "w.npy", x)
    # small chunks: many slabs, still one warning
    _, messages = run_recorded(qdq.quantize_and_dequantize_file, tmp_path / "w.npy",
                               tmp_path / "y.npy", chunk_bytes=128, **kw)
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"{str(tmp_path / 'w.npy')!r}: ") and says in messages[0]
    assert_bits_equal(np.load(tmp_path / "y.npy"), op(x, **kw))


@pytest.mark.parametrize("kind, kw, says", CASES)
def test_stream_warns_once(kind, kw, says):
    x = tensor(kind)
    parts = np.array_split(x, 4)
    out, messages = run_recorded(lambda: list(qdq.stream(parts, **kw)))
    # warned at the first chunk that overflows: block-wise, the count is of the blocks so far
    says = " in 4 blocks so far (first: 8)" if "block_size" in kw else says
    assert len(messages) == 1 and says in messages[0], messages
    assert_bits_equal(np.concatenate(out), op(x, **kw))


@pytest.mark.parametrize("kind, kw, says", CASES)
def test_chunks_warn_once(kind, kw, says):
    x = tensor(kind)
    parts = np.array_split(x, 4)
    if "block_size" in kw:
        lo = hi = None
    else:
        t = qdq.RangeTracker(kw.get("axis"))
        for p in parts:
            t.update(p)
        lo, hi = t.raw()
    out, messages = run_recorded(
        lambda: list(qdq.quantize_and_dequantize_chunks(parts, lo, hi, range_given=False,
                                                        **kw)))
    assert len(messages) == 1, messages
    assert_bits_equal(np.concatenate(out), op(x, **kw))


@pytest.mark.parametrize("scheduler", ["threads", "sync"])
@pytest.mark.parametrize("kind, kw, says", CASES)
def test_dask_warns_once_naming_the_array(kind, kw, says, scheduler):
    pytest.importorskip("dask")
    import dask
    import dask.array as da

    import qdq.dask

    x = tensor(kind)
    lazy = qdq.dask.quantize_and_dequantize(da.from_array(x, chunks=(2, 16), name="weights"),
                                            **kw)
    with dask.config.set(scheduler=scheduler):
        y, messages = run_recorded(lazy.compute)
    # block-wise: each chunk is its own task; still one warning, naming the array and
    # the first chunk found to overflow
    assert len(messages) == 1, messages
    assert messages[0].startswith("dask array 'weights'"), messages
    assert_bits_equal(y, op(x, **kw))


def test_dask_results_computed_together_keep_their_own_settings():
    # the output keys were fixed names ("qdq-op-0", "qdq-blocks"): two results computed
    # together collided and both came out with one of the two settings
    pytest.importorskip("dask")
    import dask
    import dask.array as da

    import qdq.dask

    x = np.linspace(-1, 1, 64).reshape(8, 8)
    dx = da.from_array(x, chunks=4)
    for kw in ({}, {"axis": 1}, {"axis": 1, "block_size": 4}):
        four = qdq.dask.quantize_and_dequantize(dx, num_bits=4, **kw)
        eight = qdq.dask.quantize_and_dequantize(dx, num_bits=8, **kw)
        codes, _ = qdq.dask.quantize(dx, num_bits=3) if not kw.get("block_size") else (None,
                                                                                      None)
        got = dask.compute(four, eight, *([] if codes is None else [codes]))
        assert_bits_equal(got[0], qdq.quantize_and_dequantize(x, num_bits=4, **kw))
        assert_bits_equal(got[1], qdq.quantize_and_dequantize(x, num_bits=8, **kw))
        if codes is not None:
            assert_bits_equal(got[2], qdq.quantize(x, num_bits=3)[0])


# ---------------------------------------------------------------------------
# Checkpoints: the warning, the report's mark and count, every runner
# ---------------------------------------------------------------------------

def write_checkpoint(directory) -> dict[str, np.ndarray]:
    """Two shards: 'a.tiny' and 'b.rows' overflow (per tensor, per channel), 'c.fine' not."""
    arrays = {"a.tiny": tiny(), "b.rows": small_rows(),
              "c.fine": np.linspace(-1, 1, 64, dtype=np.float16).reshape(8, 8)}
    os.makedirs(directory, exist_ok=True)
    shards = {"model-00001-of-00002.safetensors": ["a.tiny", "c.fine"],
              "model-00002-of-00002.safetensors": ["b.rows"]}
    weight_map = {}
    for fname, names in shards.items():
        with open(os.path.join(directory, fname), "wb") as f:
            write_arrays(f, {n: arrays[n] for n in names}, {"format": "pt"})
        weight_map.update({n: fname for n in names})
    with open(os.path.join(directory, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return arrays


RULES = [("b.rows", {"axis": 0})]


def expected_outputs(arrays):
    return {"a.tiny": op(arrays["a.tiny"]), "b.rows": op(arrays["b.rows"], axis=0),
            "c.fine": op(arrays["c.fine"])}


def check_report(report, arrays, messages, error_stats=True):
    want = expected_outputs(arrays)
    # one warning per overflowing tensor, naming it, in this process
    assert sorted(messages) == sorted(m for m in messages if m.startswith("tensor '"))
    assert len(messages) == 2, messages
    assert any(m.startswith("tensor 'a.tiny': ") for m in messages)
    assert any(m.startswith("tensor 'b.rows': ") and " in 2 channels (first: 2)" in m
               for m in messages)
    for name, overflowed in (("a.tiny", 1), ("b.rows", 2), ("c.fine", 0)):
        r = report[name]
        assert r.float16_overflow == overflowed, name
        assert r.nonfinite is bool(overflowed), name
        assert (r.warning is not None) is bool(overflowed), name
        if error_stats:
            assert r.nonfinite_out == nonfinite_new(arrays[name], want[name]) > 0 \
                or (not overflowed and r.nonfinite_out == 0), name
        else:
            assert r.nonfinite_out is None
    totals = report.totals()
    assert totals["nonfinite_tensors"] == 2
    if error_stats:
        assert totals["nonfinite_out"] == sum(nonfinite_new(arrays[n], want[n]) for n in want)
    table = report.table()
    assert "inf/NaN out" in table.splitlines()[0]
    assert table.splitlines()[-1].startswith(
        "warning: 2 tensors with inf/NaN outputs their input did not have: 'a.tiny' (")
    doc = json.loads(report.to_json())
    marks = {t["name"]: (t["nonfinite"], t["float16_overflow"]) for t in doc["tensors"]}
    assert marks == {"a.tiny": (True, 1), "b.rows": (True, 2), "c.fine": (False, 0)}
    assert doc["totals"]["nonfinite_tensors"] == 2


def check_files(dst, arrays):
    want = expected_outputs(arrays)
    got = {}
    for f in os.listdir(dst):
        if f.endswith(".safetensors"):
            h = read_header(os.path.join(dst, f))
            got.update({t.name: np.array(tensor_memmap(h, t.name)) for t in h.tensors})
    for name, y in want.items():
        assert_bits_equal(got[name], y, msg=name)  # TensorFlow's bits are kept


@pytest.mark.parametrize("workers", [None, 2])
def test_checkpoint_warns_once_per_tensor_and_marks_the_report(tmp_path, workers):
    arrays = write_checkpoint(tmp_path / "src")
    report, messages = run_recorded(qdq.quantize_and_dequantize_checkpoint, tmp_path / "src",
                                    tmp_path / "dst", rules=RULES, workers=workers,
                                    chunk_bytes=256)
    check_report(report, arrays, messages)
    check_files(tmp_path / "dst", arrays)


def test_checkpoint_on_dask_warns_and_marks(tmp_path):
    pytest.importorskip("dask")
    import dask

    import qdq.dask

    arrays = write_checkpoint(tmp_path / "src")
    with dask.config.set(scheduler="threads"):
        report, messages = run_recorded(qdq.dask.quantize_and_dequantize_checkpoint,
                                        tmp_path / "src", tmp_path / "dst", rules=RULES)
    check_report(report, arrays, messages)
    check_files(tmp_path / "dst", arrays)


def test_checkpoint_without_error_stats_still_marks(tmp_path):
    arrays = write_checkpoint(tmp_path / "src")
    report, messages = run_recorded(qdq.quantize_and_dequantize_checkpoint, tmp_path / "src",
                                    tmp_path / "dst", rules=RULES, error_stats=False)
    check_report(report, arrays, messages, error_stats=False)
    assert " yes" in report.table().splitlines()[1]
