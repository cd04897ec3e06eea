"""Two runs into one destination: the second fails at once naming the first, or waits.

A 4-bit run and an 8-bit run into the same destination used to both exit 0 and
leave shards of both under one complete index. The destination is locked for a
run (``DST/.qdq.lock`` for a directory of shards, ``.NAME.qdq.lock`` beside one
file): the lock goes with its process however it ends, so a killed run never
blocks the next, and the output is always one run's (index and every shard).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from _util import assert_bits_equal, op_quiet

import qdq
from qdq._io.lock import DestinationLock, DestinationLocked
from qdq._io.safetensors import read_header, tensor_memmap
from qdq._io.safetensors_writer import write_arrays

SHARDS = [f"model-0000{k}-of-00003.safetensors" for k in (1, 2, 3)]
INDEX = "model.safetensors.index.json"


def write_model(directory) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    os.makedirs(directory, exist_ok=True)
    arrays, weight_map = {}, {}
    for k, name in enumerate(SHARDS):
        part = {f"layer{k}.weight": rng.standard_normal((64, 32)).astype(np.float32),
                f"layer{k}.bias": rng.standard_normal(32).astype(np.float32)}
        with open(os.path.join(directory, name), "wb") as f:
            write_arrays(f, part, {"format": "pt"})
        arrays.update(part)
        weight_map.update({n: name for n in part})
    with open(os.path.join(directory, INDEX), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    return arrays


@pytest.fixture
def model(tmp_path):
    return tmp_path / "src", write_model(tmp_path / "src")


def check_one_run(dst, arrays, num_bits: int) -> None:
    """Every shard (and the index) of the run with ``num_bits``: nothing of another run."""
    assert os.path.exists(dst / INDEX)
    for name in SHARDS:
        h = read_header(dst / name)
        stamp = json.loads(h.metadata["qdq"])
        assert {s["num_bits"] for s in stamp["tensors"].values() if s} == {num_bits}, name
        for t in h.tensors:
            x = arrays[t.name]
            want = x if x.ndim < 2 else op_quiet(x, num_bits=num_bits)
            assert_bits_equal(np.array(tensor_memmap(h, t.name)), want, msg=t.name)
    leftovers = [f for f in os.listdir(dst) if f.endswith((".qdq-tmp", ".qdq.lock"))]
    assert leftovers == []


# The first run, in a child process: it holds the destination from READY until GO exists.
# WHERE: "prepare" blocks before anything is written; "shard" after the first shard.
CHILD = textwrap.dedent('''
    import os, sys, time
    import qdq
    from qdq._checkpoint import run as R
    src, dst, ready, go, where, workers, dask_path = sys.argv[1:8]

    def hold():
        open(ready, "w").close()
        while not os.path.exists(go):
            time.sleep(0.01)

    if where == "prepare":
        real_prepare = R.prepare_checkpoint
        def prepare(plan):
            hold()
            return real_prepare(plan)
        R.prepare_checkpoint = prepare
    else:
        real_write = R.write_shard
        def write_shard(*a, **k):
            out = real_write(*a, **k)
            hold()
            return out
        R.write_shard = write_shard
    kw = {} if workers == "0" else {"workers": int(workers)}
    if dask_path == "1":
        import qdq.dask
        qdq.dask.quantize_and_dequantize_checkpoint(src, dst, num_bits=4)
    else:
        qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=4, **kw)
    print("done")
''')


class FirstRun:
    """The 4-bit run in a child process, holding the destination until released."""

    def __init__(self, tmp_path, src, dst, where="prepare", workers=0, dask_path=False):
        self.ready, self.go = tmp_path / "ready", tmp_path / "go"
        for f in (self.ready, self.go):  # of an earlier first run
            f.unlink(missing_ok=True)
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(qdq.__file__)))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(src), str(dst), str(self.ready), str(self.go),
             where, str(workers), "1" if dask_path else "0"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                out, err = self.proc.communicate()
                pytest.fail(f"the first run did not start: {out} {err}")
            time.sleep(0.01)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def release(self) -> None:
        self.go.touch()

    def finish(self) -> None:
        self.release()
        out, err = self.proc.communicate(timeout=120)
        assert self.proc.returncode == 0 and out.strip() == "done", err

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=60)


@pytest.mark.parametrize("where", ["prepare", "shard"])
def test_second_run_fails_at_once_naming_the_first(model, tmp_path, where):
    src, arrays = model
    dst = tmp_path / "dst"
    first = FirstRun(tmp_path, src, dst, where)
    try:
        t0 = time.monotonic()
        with pytest.raises(BlockingIOError, match=rf"{dst} is being written by another qdq run "
                                                  rf"\(pid {first.pid}, started .*--wait"):
            qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=8)
        assert time.monotonic() - t0 < 5  # at once, not after the first run
    finally:
        first.finish()
    check_one_run(dst, arrays, 4)


def test_second_run_with_wait_runs_after_the_first(model, tmp_path):
    src, arrays = model
    dst = tmp_path / "dst"
    first = FirstRun(tmp_path, src, dst, "shard")
    timer = threading.Timer(1.0, first.release)
    timer.start()
    t0 = time.monotonic()
    try:
        report = qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=8, wait=True)
        assert time.monotonic() - t0 >= 0.9  # it waited for the first to be released
    finally:
        timer.cancel()
        first.finish()
    assert len(report.shards_written) == 3  # (the first run's shards are 4-bit)
    check_one_run(dst, arrays, 8)


def test_a_killed_run_does_not_block_the_next(model, tmp_path):
    src, arrays = model
    dst = tmp_path / "dst"
    first = FirstRun(tmp_path, src, dst, "shard")  # one shard written, then held
    first.kill()
    assert os.path.exists(dst / ".qdq.lock")  # left behind, but no longer locked
    t0 = time.monotonic()
    qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=8)
    assert time.monotonic() - t0 < 30
    check_one_run(dst, arrays, 8)  # the lock file is gone too


@pytest.mark.parametrize("workers", [2])
def test_workers_hold_the_destination_too(model, tmp_path, workers):
    src, arrays = model
    dst = tmp_path / "dst"
    first = FirstRun(tmp_path, src, dst, "prepare", workers=workers)
    try:
        with pytest.raises(BlockingIOError, match=rf"pid {first.pid}"):
            qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=8, workers=workers)
    finally:
        first.finish()
    check_one_run(dst, arrays, 4)
    qdq.quantize_and_dequantize_checkpoint(src, dst, num_bits=8, workers=workers)
    check_one_run(dst, arrays, 8)


def test_dask_path_holds_and_waits(model, tmp_path):
    pytest.importorskip("dask")
    import dask

    import qdq.dask

    src, arrays = model
    dst = tmp_path / "dst"
    first = FirstRun(tmp_path, src, dst, "prepare", dask_path=True)
    try:
        with dask.config.set(scheduler="threads"):
            with pytest.raises(BlockingIOError, match=rf"pid {first.pid}"):
                qdq.dask.quantize_and_dequantize_checkpoint(src, dst, num_bits=8)
    finally:
        first.finish()
    check_one_run(dst, arrays, 4)
    # with wait: after the first run (here a local one)
    first = FirstRun(tmp_path, src, dst, "prepare")
    timer = threading.Timer(1.0, first.release)
    timer.start()
    t0 = time.monotonic()
    try:
        with dask.config.set(scheduler="threads"):
            qdq.dask.quantize_and_dequantize_checkpoint(src, dst, num_bits=8, wait=True)
        assert time.monotonic() - t0 >= 0.9
    finally:
        timer.cancel()
        first.finish()
    check_one_run(dst, arrays, 8)


def test_command_line_fails_at_once_or_waits(model, tmp_path, capsys):
    from qdq.cli.main import main

    src, arrays = model
    dst = tmp_path / "dst"
    first = FirstRun(tmp_path, src, dst, "prepare")
    try:
        assert main(["run", str(src), str(dst), "-q", "--num-bits", "8"]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"qdq: error: {dst} is being written by another qdq run (pid "
                              f"{first.pid}, started ") and err.count("\n") == 1
        timer = threading.Timer(1.0, first.release)
        timer.start()
        assert main(["run", str(src), str(dst), "-q", "--num-bits", "8", "--wait"]) == 0
        timer.cancel()
    finally:
        first.finish()
    check_one_run(dst, arrays, 8)


# ---------------------------------------------------------------------------
# The lock itself, in one process
# ---------------------------------------------------------------------------

def test_single_files_lock_themselves_and_share_their_directory(tmp_path):
    one = tmp_path / "a.safetensors"
    with DestinationLock(one):
        # the same file, however named: taken
        with pytest.raises(DestinationLocked, match=rf"pid {os.getpid()}"):
            DestinationLock(tmp_path / "." / "a.safetensors").acquire()
        # another file of the directory: free
        with DestinationLock(tmp_path / "b.safetensors"):
            # the whole directory (a checkpoint of shards): taken by both
            with pytest.raises(DestinationLocked, match=rf"pid {os.getpid()}.* and .*pid"):
                DestinationLock(tmp_path, directory=True).acquire()
        assert sorted(os.listdir(tmp_path)) == [".a.safetensors.qdq.lock", ".qdq.lock"]
    assert os.listdir(tmp_path) == []
    with DestinationLock(tmp_path, directory=True):
        with pytest.raises(DestinationLocked):
            DestinationLock(one).acquire()
    assert os.listdir(tmp_path) == []


def test_wait_in_one_process(tmp_path):
    held = DestinationLock(tmp_path, directory=True).acquire()
    said = []
    threading.Timer(0.3, held.release).start()
    t0 = time.monotonic()
    with DestinationLock(tmp_path, directory=True, wait=True, on_wait=said.append):
        assert time.monotonic() - t0 >= 0.25
    assert len(said) == 1 and said[0].startswith("waiting for another qdq run (pid ")
    assert os.listdir(tmp_path) == []


def test_a_worker_whose_run_lost_the_destination_does_not_write(model, tmp_path):
    from qdq._checkpoint.plan import plan_checkpoint
    from qdq._checkpoint.run import lock_checkpoint, shard_task

    src, _ = model
    dst = tmp_path / "dst"
    settings = {"num_bits": 4, "signed_input": True, "narrow_range": False,
                "round_mode": "HALF_TO_EVEN", "axis": None, "block_size": None,
                "calibrate": None}
    plan = plan_checkpoint(src, dst, None, (), settings)
    old = lock_checkpoint(plan).acquire()
    owner = old.owner
    owner.check()  # held: fine
    old.release()  # the run is gone (its process killed: the same for the lock)...
    with lock_checkpoint(plan):  # ...and another run has the destination
        with pytest.raises(DestinationLocked, match=rf"no longer holds .*pid {os.getpid()}"):
            shard_task(plan.shards[0], 1 << 20, 1, True, owner)
    assert not os.path.exists(dst / SHARDS[0])
    assert [f for f in os.listdir(dst) if f.endswith(".qdq-tmp")] == []


def test_the_export_and_its_dense_checkpoint_lock_their_destinations(model, tmp_path):
    from qdq._checkpoint.compressed import dequantize_checkpoint

    src, arrays = model
    (src / "config.json").write_text(json.dumps({"model_type": "llama"}))  # a model directory
    qdq.quantize_checkpoint(src, tmp_path / "int4", num_bits=4)
    for target, run in (
            (tmp_path / "dst", lambda: qdq.quantize_checkpoint(src, tmp_path / "dst", num_bits=4)),
            (tmp_path / "dense", lambda: dequantize_checkpoint(tmp_path / "int4",
                                                               tmp_path / "dense"))):
        os.makedirs(target)
        with DestinationLock(target, directory=True):  # another run (this process's own)
            with pytest.raises(DestinationLocked, match=rf"pid {os.getpid()}"):
                run()
            assert os.listdir(target) == [".qdq.lock"]  # nothing written
        run()
        assert not [f for f in os.listdir(target) if f.endswith(".qdq.lock")]
    # wait=True on the export
    held = DestinationLock(tmp_path / "dst", directory=True).acquire()
    threading.Timer(0.5, held.release).start()
    t0 = time.monotonic()
    qdq.quantize_checkpoint(src, tmp_path / "dst", num_bits=8, wait=True)
    assert time.monotonic() - t0 >= 0.4
