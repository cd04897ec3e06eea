"""The qdq command line: run, info, demo, and one-line errors."""

import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, run_python

import qdq


def run_qdq(*args, cwd=None):
    import tempfile

    return run_python(["-m", "qdq", *args], cwd=cwd or tempfile.gettempdir())


@pytest.fixture
def tensor(tmp_path):
    x = (np.random.default_rng(0).standard_normal((64, 48)) * 3).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    return x, tmp_path


def _op(x, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return qdq.quantize_and_dequantize(x, *a, **k)


def test_run(tensor):
    x, d = tensor
    r = run_qdq("run", d / "x.npy", d / "y.npy", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "range [" in r.stdout and "scale" in r.stdout and "GB/s" in r.stdout
    assert_bits_equal(np.load(d / "y.npy"), _op(x))
    r = run_qdq("run", d / "x.npy", d / "y.npy", "-q", "--num-bits", "4", "--unsigned",
                "--range", "-1", "2.5", "--round-mode", "HALF_UP", "--axis", "-1",
                "--chunk-mb", "0.001")
    assert r.returncode == 0, r.stderr
    assert "48 channels along axis 1" in r.stdout
    assert_bits_equal(np.load(d / "y.npy"), _op(x, -1.0, 2.5, signed_input=False, num_bits=4,
                                                range_given=True, round_mode="HALF_UP", axis=-1))
    r = run_qdq("run", d / "x.npy", d / "y.npy", "-q", "--narrow-range", "--axis", "0")
    assert_bits_equal(np.load(d / "y.npy"), _op(x, narrow_range=True, axis=0))


def test_run_raw_file(tensor):
    x, d = tensor
    x.tofile(d / "x.bin")
    r = run_qdq("run", d / "x.bin", d / "y.npy", "-q", "--dtype", "float32", "--shape", "64,48")
    assert r.returncode == 0, r.stderr
    assert_bits_equal(np.load(d / "y.npy"), _op(x))


def test_info(tensor):
    x, d = tensor
    r = run_qdq("info", d / "x.npy", "-q")
    assert r.returncode == 0, r.stderr
    out = _op(x).astype(np.float64) - x
    sqnr = 10 * np.log10(np.square(x.astype(np.float64)).sum() / np.square(out).sum())
    assert f"data range [{float(x.min())!r}, {float(x.max())!r}]" in r.stdout
    assert f"max abs {np.abs(out).max():.6g}" in r.stdout
    assert f"SQNR {sqnr:.2f} dB" in r.stdout
    assert "clipped 0" in r.stdout
    r = run_qdq("info", d / "x.npy", "-q", "--range", "-1", "1")
    clipped = int(((x < -128 / 127) | (x > 1)).sum())
    assert f"clipped {clipped:,}" in r.stdout
    assert os.listdir(d) == ["x.npy"]  # info writes nothing


def test_demo(tmp_path):
    r = run_qdq("demo", "--size", "3MiB", "--dir", tmp_path, "-q")
    assert r.returncode == 0, r.stderr
    assert "bit-identical" in r.stdout and "SQNR" in r.stdout and "GB/s" in r.stdout
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, message", [
    (["run", "missing.npy", "y.npy"], "No such file"),
    (["run", "x.npy", "y.npy", "--num-bits", "70"], "num_bits must be in 1..61"),
    (["run", "x.npy", "y.npy", "--range", "3", "-3"], "invalid range"),
    (["run", "x.npy", "y.npy", "--axis", "5"], "axis 5 is out of bounds"),
    (["run", "notnpy.npy", "y.npy"], "not a .npy file"),
    (["run", "x.npy", "y.txt"], "must be a .npy path"),
    (["info", "x.npy", "--dtype", "float32"], "needs both dtype= and shape="),
])
def test_user_errors_are_one_line(tensor, args, message):
    x, d = tensor
    (d / "notnpy.npy").write_text("hello")
    r = run_qdq(*args, "-q", cwd=d)
    assert r.returncode == 2
    assert message in r.stderr
    assert r.stderr.startswith("qdq: error:") and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr
    assert not (d / "y.npy").exists()


def test_usage_errors():
    r = run_qdq("run")
    assert r.returncode == 2 and "usage:" in r.stderr
    r = run_qdq("demo", "--size", "lots")
    assert r.returncode == 2 and "not a size" in r.stderr
    r = run_qdq("--version")
    assert r.returncode == 0 and qdq.__version__ in r.stdout


def test_console_script_installed():
    exe = shutil.which("qdq")
    if exe is None:
        pytest.skip("the qdq console script is not on PATH (package not installed)")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "demo" in r.stdout
