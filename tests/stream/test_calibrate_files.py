"""Calibration outside memory: the file API, the CLI and Dask equal qdq.calibrate + the op."""

import numpy as np
import pytest
from _util import assert_bits_equal, make_dtype, run_python

import qdq

METHODS = ["mse", "percentile:99.9", "entropy", "minmax"]


def _heavy(shape, name="float32", seed=0):
    x = np.random.default_rng(seed).standard_t(3, shape) * 2.0
    if name == "bfloat16":
        return x.astype(np.float32).astype(make_dtype(name))
    return x.astype(make_dtype(name))


def _expected(x, spec, axis, **kw):
    method, _, p = spec.partition(":")
    lo, hi = qdq.calibrate(x, method, axis=axis, percentile=float(p) if p else 99.99, **kw)
    return qdq.quantize_and_dequantize(x, lo, hi, range_given=True, axis=axis, **kw)


@pytest.mark.parametrize("spec", METHODS)
@pytest.mark.parametrize("axis", [None, 0, 1])
@pytest.mark.parametrize("order", ["C", "F"])
def test_file_api_calibrated_equals_in_memory(tmp_path, spec, axis, order):
    x = np.asarray(_heavy((60, 24)), order=order)
    np.save(tmp_path / "x.npy", x)
    for chunk in (4096, 1 << 20):
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", axis=axis,
                                         calibrate=spec, num_bits=4, chunk_bytes=chunk)
        assert_bits_equal(np.load(tmp_path / "y.npy"), _expected(x, spec, axis, num_bits=4))


@pytest.mark.parametrize("name", ["float16", "bfloat16", "float64"])
def test_file_api_calibrated_every_dtype(tmp_path, name):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    x = _heavy((40, 32), name, 1)
    np.save(tmp_path / "x.npy", x)
    qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", calibrate="mse",
                                     bfloat16_bits=name == "bfloat16", chunk_bytes=1000)
    y = np.load(tmp_path / "y.npy")
    expected = _expected(x, "mse", None)
    assert_bits_equal(y.view(expected.dtype) if name == "bfloat16" else y, expected)


@pytest.mark.parametrize("kw, exc", [
    (dict(calibrate="median"), ValueError),
    (dict(calibrate="percentile:40"), ValueError),
    (dict(calibrate="mse:3"), ValueError),
    (dict(calibrate=7), TypeError),
    (dict(calibrate="mse", range_given=True, input_min=-1.0, input_max=1.0), ValueError),
    (dict(calibrate="mse", axis=1, block_size=8), ValueError),
])
def test_bad_calibration_arguments(tmp_path, kw, exc):
    np.save(tmp_path / "x.npy", _heavy((8, 16)))
    with pytest.raises(exc):
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", **kw)
    assert not (tmp_path / "y.npy").exists()


def test_cli_run_and_info_calibrate(tmp_path):
    x = _heavy((200, 50), seed=2)
    np.save(tmp_path / "x.npy", x)
    r = run_python(["-m", "qdq", "run", "x.npy", "y.npy", "--calibrate", "percentile:99.9",
                    "--num-bits", "4", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert_bits_equal(np.load(tmp_path / "y.npy"), _expected(x, "percentile:99.9", None,
                                                             num_bits=4))
    r = run_python(["-m", "qdq", "info", "x.npy", "--calibrate", "mse", "--num-bits", "4",
                    "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "calibrated (mse) against min/max" in r.stdout
    r = run_python(["-m", "qdq", "run", "x.npy", "y.npy", "--calibrate", "nope", "-q"],
                   cwd=tmp_path)
    assert r.returncode == 2 and "calibration method" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("method", ["mse", "percentile", "entropy", "minmax"])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_dask_calibrate_equals_in_memory_for_any_chunking(method, axis):
    da = pytest.importorskip("dask.array")
    import dask

    import qdq.dask

    x = _heavy((90, 40), seed=3)
    expected = qdq.calibrate(x, method, axis=axis, num_bits=4)
    for chunks in ((90, 40), (17, 40), (30, 7), (1, 40)):
        got = dask.compute(qdq.dask.calibrate(da.from_array(x, chunks=chunks), method,
                                              axis=axis, num_bits=4))[0]
        for g, e in zip(got, expected, strict=True):
            assert_bits_equal(np.asarray(g), np.asarray(e))
