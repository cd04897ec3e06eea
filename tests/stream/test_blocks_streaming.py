"""Block-wise outside memory: stream, chunks, the file API, the CLI and Dask.

Every path must equal the in-memory ``qdq.quantize_and_dequantize(...,
block_size=B)`` bit for bit, and the file API must read the source once.
"""

import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, make_dtype, run_python

import qdq
from qdq._stream import sources

CASES = [((37, 50), 1, 8), ((37, 50), 0, 8), ((6, 7, 9), 1, 4), ((6, 7, 9), -1, 128),
         ((100,), 0, 7), ((4, 9, 11, 3), 2, 3), ((4, 9, 11, 3), 0, 3), ((5, 0, 3), 1, 2),
         ((23, 5), 0, 1), ((16, 64), -1, 64)]


def _data(shape, name, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 10.0 ** rng.uniform(-3, 3, shape)
    if name == "bfloat16":
        return x.astype(np.float32).astype(make_dtype(name))
    return x.astype(make_dtype(name))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@pytest.mark.parametrize("name", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("shape, axis, bs", CASES)
def test_stream_and_chunks_equal_in_memory(name, shape, axis, bs):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    x = _data(shape, name)
    expected = qdq.quantize_and_dequantize(x, axis=axis, block_size=bs, num_bits=4)
    lo, hi = qdq.compute_range(x, axis, block_size=bs)
    given = qdq.quantize_and_dequantize(x, lo, hi, range_given=True, axis=axis, block_size=bs)
    for k in (1, 2, 7, max(1, shape[0])):
        parts = np.array_split(x, k)
        # one pass: a one-shot iterator works block-wise
        got = list(qdq.stream(iter(parts), axis=axis, block_size=bs, num_bits=4))
        assert_bits_equal(np.concatenate(got) if got else x[:0], expected)
        got = list(qdq.quantize_and_dequantize_chunks(parts, lo, hi, axis=axis, block_size=bs))
        assert_bits_equal(np.concatenate(got) if got else x[:0], given)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("name", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("shape, axis, bs", CASES)
def test_file_api_equals_in_memory(tmp_path, order, name, shape, axis, bs):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    x = np.asarray(_data(shape, name, 1), order=order)
    src = tmp_path / "x.npy"
    np.save(src, x)
    bits_flag = name == "bfloat16"
    for chunk in (64, 1000, 1 << 20):
        p = qdq.quantize_and_dequantize_file(src, tmp_path / "y.npy", axis=axis, block_size=bs,
                                             chunk_bytes=chunk, num_bits=5,
                                             bfloat16_bits=bits_flag)
        y = np.load(tmp_path / "y.npy")
        expected = qdq.quantize_and_dequantize(x, axis=axis, block_size=bs, num_bits=5)
        if bits_flag:
            y = y.view(expected.dtype)
        assert_bits_equal(y, expected)
        codes, params = qdq.quantize(x, axis=axis, block_size=bs, num_bits=5)
        assert p == params
        q = qdq.quantize_file(src, tmp_path / "c.npy", axis=axis, block_size=bs,
                              chunk_bytes=chunk, num_bits=5, bfloat16_bits=bits_flag)
        assert q == params
        assert np.array_equal(np.load(tmp_path / "c.npy"), codes)
        qdq.dequantize_file(tmp_path / "c.npy", tmp_path / "d.npy", chunk_bytes=chunk,
                            bfloat16_bits=bits_flag)
        d = np.load(tmp_path / "d.npy")
        back = qdq.dequantize(codes, params)
        assert_bits_equal(d.view(back.dtype) if bits_flag else d, back)


@pytest.mark.parametrize("shape, axis, bs", [((37, 50), 1, 8), ((37, 50), 0, 8),
                                             ((4, 9, 11, 3), 2, 3)])
def test_file_api_given_blocked_range(tmp_path, shape, axis, bs):
    x = _data(shape, "float32", 2)
    lo, hi = qdq.compute_range(x, axis, block_size=bs)
    lo, hi = lo * 1.5 - 0.01, np.maximum(hi * 0.5, lo * 1.5 - 0.01)
    np.save(tmp_path / "x.npy", x)
    for order_x in (x, np.asfortranarray(x)):
        np.save(tmp_path / "x.npy", order_x)
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", lo, hi,
                                         range_given=True, axis=axis, block_size=bs,
                                         chunk_bytes=300)
        expected = qdq.quantize_and_dequantize(x, lo, hi, range_given=True, axis=axis,
                                               block_size=bs)
        assert_bits_equal(np.load(tmp_path / "y.npy"), expected)


def test_file_api_reads_the_source_once(tmp_path, monkeypatch):
    """Block-wise: one pass (a block's range lies inside it); per channel: two."""
    x = _data((64, 256), "float32", 3)
    src = tmp_path / "x.npy"
    np.save(src, x)
    read = {"bytes": 0}
    real = sources.FileSource.read

    def counting(self, block, buf):
        read["bytes"] += block.count * self.dtype.itemsize
        return real(self, block, buf)

    monkeypatch.setattr(sources.FileSource, "read", counting)
    qdq.quantize_and_dequantize_file(src, tmp_path / "y.npy", axis=1, block_size=32,
                                     chunk_bytes=4096)
    assert read["bytes"] == x.nbytes
    read["bytes"] = 0
    qdq.quantize_and_dequantize_file(src, tmp_path / "z.npy", axis=1, chunk_bytes=4096)
    assert read["bytes"] == 2 * x.nbytes
    read["bytes"] = 0
    qdq.quantize_file(src, tmp_path / "c.npy", axis=0, block_size=8, chunk_bytes=4096)
    assert read["bytes"] == x.nbytes


def test_memmap_in_place_and_array_destination(tmp_path):
    x = _data((40, 30), "float32", 4)
    expected = qdq.quantize_and_dequantize(x, axis=0, block_size=16)
    np.save(tmp_path / "x.npy", x)
    m = np.load(tmp_path / "x.npy", mmap_mode="r+")
    qdq.quantize_and_dequantize_file(m, m, axis=0, block_size=16, chunk_bytes=500)
    del m
    assert_bits_equal(np.load(tmp_path / "x.npy"), expected)
    out = np.empty_like(x)
    qdq.quantize_and_dequantize_file(x, out, axis=0, block_size=16, chunk_bytes=500)
    assert_bits_equal(out, expected)


@pytest.mark.parametrize("kw, exc, match", [
    (dict(block_size=0, axis=0), ValueError, "block_size"),
    (dict(block_size=-3, axis=0), ValueError, "block_size"),
    (dict(block_size=2.5, axis=0), TypeError, "block_size"),
    (dict(block_size=True, axis=0), TypeError, "block_size"),
    (dict(block_size=4), ValueError, "axis"),
])
def test_bad_block_size_in_every_streaming_path(tmp_path, kw, exc, match):
    x = _data((8, 8), "float32")
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(exc, match=match):
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", **kw)
    with pytest.raises(exc, match=match):
        qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy", **kw)
    with pytest.raises(exc, match=match):
        qdq.stream([x], **kw)
    with pytest.raises(exc, match=match):
        qdq.quantize_and_dequantize_chunks([x], 0.0, 1.0, **kw)
    assert not (tmp_path / "y.npy").exists() and not (tmp_path / "c.npy").exists()


def test_file_api_wrong_blocked_range_shape(tmp_path):
    x = _data((8, 10), "float32")
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(ValueError, match="input_min"):
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy",
                                         np.zeros((8, 5)), np.ones((8, 3)), range_given=True,
                                         axis=1, block_size=4)
    assert not (tmp_path / "y.npy").exists()


def test_cli_block_size(tmp_path):
    x = _data((30, 64), "float32", 5)
    np.save(tmp_path / "x.npy", x)
    expected = qdq.quantize_and_dequantize(x, axis=-1, block_size=32, num_bits=4)
    r = run_python(["-m", "qdq", "run", "x.npy", "y.npy", "--axis", "-1", "--block-size", "32",
                    "--num-bits", "4", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "blocks of 32" in r.stdout
    assert_bits_equal(np.load(tmp_path / "y.npy"), expected)
    r = run_python(["-m", "qdq", "info", "x.npy", "--axis", "-1", "--block-size", "32",
                    "--num-bits", "4", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "per block (60 blocks)" in r.stdout and "lowest SQNR" in r.stdout
    r = run_python(["-m", "qdq", "quantize", "x.npy", "c.npy", "--axis", "-1", "--block-size",
                    "32", "--num-bits", "4", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    r = run_python(["-m", "qdq", "dequantize", "c.npy", "d.npy", "-q"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    codes, params = qdq.quantize(x, axis=-1, block_size=32, num_bits=4)
    assert_bits_equal(np.load(tmp_path / "d.npy"), qdq.dequantize(codes, params))
    r = run_python(["-m", "qdq", "run", "x.npy", "y.npy", "--block-size", "32", "-q"],
                   cwd=tmp_path)
    assert r.returncode == 2 and "axis" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("shape, axis, bs, chunks", [
    ((37, 50), 1, 8, (10, 7)), ((37, 50), 0, 8, (5, 50)), ((6, 7, 9), 1, 4, (2, 3, 4)),
    ((100,), 0, 7, (13,)), ((40, 16), 0, 8, (16, 16))])
def test_dask_block_wise(shape, axis, bs, chunks):
    da = pytest.importorskip("dask.array")
    import qdq.dask

    x = _data(shape, "float32", 6)
    d = da.from_array(x, chunks=chunks)
    y = qdq.dask.quantize_and_dequantize(d, axis=axis, block_size=bs)
    assert_bits_equal(y.compute(), qdq.quantize_and_dequantize(x, axis=axis, block_size=bs))
    lo, hi = qdq.compute_range(x, axis, block_size=bs)
    y = qdq.dask.quantize_and_dequantize(d, lo, hi, range_given=True, axis=axis, block_size=bs)
    assert_bits_equal(y.compute(), qdq.quantize_and_dequantize(x, lo, hi, range_given=True,
                                                               axis=axis, block_size=bs))
