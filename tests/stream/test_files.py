"""The file API: files, raw files and memmaps equal the in-memory op; faults; memory."""

import json
import os
import textwrap

import numpy as np
import pytest
from _util import (
    RSS_CHILD,
    assert_bits_equal,
    load_like,
    op_quiet,
    run_python,
    sample_data,
    temporaries,
)

import qdq
from qdq._core import engine as _engine

FORMATS = ["float16", "bfloat16", "float32", "float64"]
SHAPES = [((37, 11), [None, 0, 1, -1]), ((5, 6, 7), [None, 0, 1, 2]), ((300,), [None, 0])]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("shape, axes", SHAPES, ids=str)
@pytest.mark.parametrize("order", ["C", "F"])
def test_file_equals_in_memory(tmp_path, name, shape, axes, order):
    x = np.asarray(sample_data(shape, name), order=order)
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    bits = name == "bfloat16"
    itemsize = x.dtype.itemsize
    row = int(np.prod(shape[1:])) * itemsize if len(shape) > 1 else itemsize
    for axis in axes:
        expected = op_quiet(x, axis=axis, num_bits=5)
        for chunk in (itemsize, row, 3 * row + itemsize, x.nbytes, 10 * x.nbytes + 5):
            p = qdq.quantize_and_dequantize_file(src, dst, axis=axis, num_bits=5,
                                                 chunk_bytes=chunk, bfloat16_bits=bits)
            got = load_like(dst, x)
            if x.ndim > 1:
                assert got.flags.c_contiguous == (order == "C")
            assert_bits_equal(got, expected, msg=f"axis={axis} chunk={chunk}")
            assert p.axis == (None if axis is None else axis % x.ndim)
        assert sorted(os.listdir(tmp_path)) == ["x.npy", "y.npy"]


@pytest.mark.parametrize("name", FORMATS)
def test_given_range_per_channel_file(tmp_path, name):
    x = sample_data((40, 9), name, seed=2)
    lo, hi = -np.linspace(0.5, 3, 9), np.linspace(0.2, 4, 9)
    expected = op_quiet(x, lo, hi, range_given=True, axis=1, round_mode="HALF_UP")
    np.save(tmp_path / "x.npy", x)
    p = qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", lo, hi,
                                         range_given=True, axis=1, round_mode="HALF_UP",
                                         chunk_bytes=100, bfloat16_bits=name == "bfloat16")
    assert_bits_equal(load_like(tmp_path / "y.npy", x), expected)
    assert p.round_mode == "HALF_UP" and p.per_channel


@pytest.mark.parametrize("name", FORMATS)
def test_memmap_in_place_and_array_destinations(tmp_path, name):
    x = sample_data((64, 33), name, seed=3)
    expected = op_quiet(x, axis=0)
    path = tmp_path / "x.npy"
    np.save(path, x.view(np.uint16) if name == "bfloat16" else x)
    m = np.load(path, mmap_mode="r+")
    if name == "bfloat16":
        m = m.view(x.dtype)
    qdq.quantize_and_dequantize_file(m, m, axis=0, chunk_bytes=500)
    m.flush()
    del m
    got = np.load(path)
    assert_bits_equal(got.view(x.dtype) if name == "bfloat16" else got, expected)
    # array source, separate array destination, transposed memory order
    xf = np.asfortranarray(x)
    out = np.empty_like(xf)
    qdq.quantize_and_dequantize_file(xf, out, axis=0, chunk_bytes=64)
    assert_bits_equal(out, expected)
    # array source, .npy destination
    qdq.quantize_and_dequantize_file(x, tmp_path / "z.npy", axis=0, chunk_bytes=64)
    assert_bits_equal(load_like(tmp_path / "z.npy", x), expected)


def test_raw_binary_files(tmp_path):
    x = sample_data((30, 7), "float32")
    raw = tmp_path / "x.bin"
    x.astype(">f4").tofile(raw)
    qdq.quantize_and_dequantize_file(raw, tmp_path / "y.npy", dtype=">f4", shape=(30, 7),
                                     axis=1, chunk_bytes=50)
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.dtype("<f4")
    assert_bits_equal(y, op_quiet(x, axis=1))
    xt = np.asfortranarray(x)
    np.asarray(xt).T.tofile(tmp_path / "f.bin")  # Fortran-ordered bytes
    qdq.quantize_and_dequantize_file(tmp_path / "f.bin", tmp_path / "f.npy", dtype="float32",
                                     shape=(30, 7), order="F", axis=0)
    assert_bits_equal(np.load(tmp_path / "f.npy"), op_quiet(x, axis=0))
    bits = sample_data((64,), "bfloat16").view(np.uint16)
    bits.tofile(tmp_path / "b.bin")
    qdq.quantize_and_dequantize_file(tmp_path / "b.bin", tmp_path / "b.npy", dtype="bfloat16",
                                     shape=64)
    assert_bits_equal(np.load(tmp_path / "b.npy"), op_quiet(bits, bfloat16_bits=True),
                      bfloat16_bits=True)
    # in place on the raw file itself
    qdq.quantize_and_dequantize_file(raw, raw, dtype=">f4", shape=(30, 7))
    assert_bits_equal(np.fromfile(raw, ">f4").reshape(30, 7).astype("<f4"), op_quiet(x))


@pytest.mark.parametrize("dtype", ["<f4", ">f4", "<f2"])
@pytest.mark.parametrize("name", ["w.bin", "w.npy"])
def test_raw_in_place_keeps_the_header(tmp_path, dtype, name):
    """A raw file with a header, run in place, keeps every byte outside the tensor."""
    x = np.linspace(-3, 5, 8).astype(dtype)
    header = bytes(range(100, 116))
    path = tmp_path / name
    path.write_bytes(header + x.tobytes())
    qdq.quantize_and_dequantize_file(path, path, dtype=dtype, shape=8, offset=16, num_bits=3)
    data = path.read_bytes()
    assert len(data) == 16 + x.nbytes and data[:16] == header
    expected = op_quiet(x.astype(x.dtype.newbyteorder("=")), num_bits=3).astype(dtype)
    assert_bits_equal(np.frombuffer(data[16:], dtype), expected)
    assert os.listdir(tmp_path) == [name]


def test_zero_d_and_empty_files(tmp_path):
    for x in (np.array(2.5, np.float32), np.zeros((0, 4), np.float64)):
        np.save(tmp_path / "x.npy", x)
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy")
        y = np.load(tmp_path / "y.npy")
        assert y.shape == x.shape
        assert_bits_equal(y, op_quiet(x))


def test_empty_file_per_channel_along_its_empty_axis(tmp_path):
    """A (0, 4) file along axis 0 has no channels: every command goes through."""
    np.save(tmp_path / "x.npy", np.zeros((0, 4), np.float32))
    p = qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", axis=0)
    assert np.load(tmp_path / "y.npy").shape == (0, 4) and p.per_channel
    p = qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy", axis=0)
    assert np.shape(p.scale) == (0,)
    q = qdq.dequantize_file(tmp_path / "c.npy", tmp_path / "d.npy")
    assert q == p and np.load(tmp_path / "d.npy").shape == (0, 4)


def test_returned_params_match_quantization_params(tmp_path):
    x = sample_data((100, 3), "float32")
    np.save(tmp_path / "x.npy", x)
    p = qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", num_bits=4)
    mn, mx = qdq.compute_range(x)
    assert p == qdq.quantization_params(mn, mx, np.float32, num_bits=4)


# -- codes and parameters land together --------------------------------------------

def test_codes_and_params_land_together(tmp_path):
    """When the parameters cannot be written, the codes are not replaced either."""
    x = np.linspace(-1, 1, 200, dtype=np.float32).reshape(20, 10)
    np.save(tmp_path / "x.npy", x)
    codes = tmp_path / "c.npy"
    qdq.quantize_file(tmp_path / "x.npy", codes)
    before = codes.read_bytes(), (tmp_path / "c.params.json").read_bytes()
    for params_path in (tmp_path / "no" / "dir" / "p.json", tmp_path):
        with pytest.raises((OSError, ValueError)):
            qdq.quantize_file(tmp_path / "x.npy", codes, num_bits=3, axis=1,
                              params_path=params_path, chunk_bytes=64)
        assert (codes.read_bytes(), (tmp_path / "c.params.json").read_bytes()) == before
        assert not temporaries(tmp_path)


def test_codes_and_params_when_the_write_pass_fails(tmp_path, monkeypatch):
    x = np.linspace(-1, 1, 2000, dtype=np.float32).reshape(200, 10)
    np.save(tmp_path / "x.npy", x)
    codes, params = tmp_path / "c.npy", tmp_path / "c.params.json"
    codes.write_bytes(b"old codes")
    params.write_bytes(b"old params")
    real = _engine.run_block
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("injected")
        return real(*a, **k)

    monkeypatch.setattr(_engine, "run_block", flaky)
    with pytest.raises(OSError, match="injected"):
        qdq.quantize_file(tmp_path / "x.npy", codes, chunk_bytes=400)
    assert codes.read_bytes() == b"old codes" and params.read_bytes() == b"old params"
    assert sorted(os.listdir(tmp_path)) == ["c.npy", "c.params.json", "x.npy"]


# -- faults --------------------------------------------------------------------

class _Boom(BaseException):
    pass


@pytest.mark.parametrize("when", ["range", "write"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, _Boom, OSError])
def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch, when, exc):
    x = sample_data((400, 100), "float32")
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    before = src.read_bytes()
    dst.write_bytes(b"old output")
    calls = {"n": 0}
    real = _engine.reduce_block if when == "range" else _engine.run_block

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            raise exc("injected")
        return real(*a, **k)

    monkeypatch.setattr(_engine, "reduce_block" if when == "range" else "run_block", flaky)
    with pytest.raises(exc):
        qdq.quantize_and_dequantize_file(src, dst, chunk_bytes=4000)
    assert src.read_bytes() == before
    assert dst.read_bytes() == b"old output"
    assert sorted(os.listdir(tmp_path)) == ["x.npy", "y.npy"]


@pytest.mark.parametrize("order", ["C", "F"])
def test_interrupted_memmap_in_place_says_how_far_it_got(tmp_path, monkeypatch, order):
    """In place on a memmap cannot be atomic: the exception says what was written."""
    x = np.asarray(sample_data((400, 100), "float32", seed=4), order=order)
    path = tmp_path / "x.npy"
    np.save(path, x)
    expected = op_quiet(x)
    m = np.load(path, mmap_mode="r+")
    real = _engine.run_block
    calls = {"n": 0}

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(_engine, "run_block", flaky)
    with pytest.raises(KeyboardInterrupt) as info:
        qdq.quantize_and_dequantize_file(m, m, chunk_bytes=4000)
    done = info.value.qdq_elements_written
    note = "\n".join(getattr(info.value, "__notes__", []))
    assert f"the first {done:,} of {x.size:,} elements" in note and "in place" in note
    assert 0 < done < x.size
    del m
    flat = np.load(path).ravel(order="K")
    assert_bits_equal(flat[:done], expected.ravel(order="K")[:done])
    assert_bits_equal(flat[done:], x.ravel(order="K")[done:])


def test_source_truncated_while_reading(tmp_path, monkeypatch):
    x = sample_data((400, 100), "float32")
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    real = _engine.reduce_block
    calls = {"n": 0}

    def shrink(*a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            os.truncate(src, os.path.getsize(src) // 2)
        return real(*a, **k)

    monkeypatch.setattr(_engine, "reduce_block", shrink)
    with pytest.raises(ValueError, match="truncated while being read"):
        qdq.quantize_and_dequantize_file(src, dst, chunk_bytes=4000)
    assert not dst.exists() and os.listdir(tmp_path) == ["x.npy"]


SIGNAL_CHILD = textwrap.dedent("""
    import os, signal, sys
    import qdq
    from qdq._core import engine as _engine
    real = _engine.run_block
    n = [0]
    def slow(*a, **k):
        n[0] += 1
        if n[0] == 3:
            os.kill(os.getpid(), getattr(signal, sys.argv[3]))
        return real(*a, **k)
    _engine.run_block = slow
    qdq.quantize_and_dequantize_file(sys.argv[1], sys.argv[2], chunk_bytes=4000)
""")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2",
                                 "SIGALRM"])
def test_termination_signal_mid_pass_cleans_up(tmp_path, sig):
    import signal

    x = sample_data((400, 100), "float32")
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    before = src.read_bytes()
    res = run_python(["-c", SIGNAL_CHILD, src, dst, sig], cwd=tmp_path)
    assert res.returncode == 128 + getattr(signal, sig), res.stderr
    assert src.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.npy"]


# -- memory ------------------------------------------------------------------------

def _write_npy(path, descr, shape, total_bytes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": descr, "fortran_order": False, "shape": shape})
        step = 4 << 20
        for start in range(0, total_bytes, step):
            n = min(step, total_bytes - start) // np.dtype(dtype).itemsize
            if np.dtype(dtype).kind == "i":
                f.write(rng.integers(-128, 128, n, dtype=dtype).tobytes())
            else:
                f.write(rng.standard_normal(n, dtype=np.float32).astype(dtype).tobytes())


def _peak_growth(tmp_path, *args):
    res = run_python(["-c", RSS_CHILD, *args], cwd=tmp_path, check=True)
    r = json.loads(res.stdout.strip().splitlines()[-1])
    return r["peak"] - r["base"]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's shadow memory and quarantine are not qdq's")
@pytest.mark.parametrize("axis", ["None", "1"])
def test_memory_is_bounded_by_the_chunk(tmp_path, axis):
    """Peak RssAnon grows with chunk_bytes, not with the file (96 MiB file, 2 MiB chunks)."""
    rows, cols = 6144, 4096
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    _write_npy(src, "<f4", (rows, cols), rows * cols * 4, np.float32)
    chunk = 2 << 20
    grown = _peak_growth(tmp_path, "run", src, dst, chunk, axis)
    bound = 6 * chunk + (8 << 20)
    assert grown < bound, f"RssAnon grew by {grown / 2**20:.1f} MiB"
    assert os.path.getsize(src) > 4 * bound  # the file is far larger than the bound


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.skipif("libasan" in os.environ.get("LD_PRELOAD", ""),
                    reason="AddressSanitizer's shadow memory and quarantine are not qdq's")
@pytest.mark.parametrize("kind, out", [("info", None), ("dequantize", np.float32),
                                       ("dequantize", np.float64)])
def test_memory_of_info_and_dequantize_stays_within_three_chunks(tmp_path, kind, out):
    """``qdq info`` (float16, float64 statistics) and int8 -> float32/float64 codes.

    Chunks count elements of the larger item size, so the peak stays within
    about three chunks (a read buffer, two output buffers or the statistics).
    """
    chunk = 4 << 20
    if kind == "info":
        src = tmp_path / "h.npy"
        _write_npy(src, "<f2", (6144, 4096), 48 << 20, np.float16)
    else:
        src = tmp_path / "c.npy"
        _write_npy(src, "|i1", (6144, 4096), 24 << 20, np.int8)
        qdq.quantization_params(-1.0, 1.0, out).save(tmp_path / "c.params.json")
    grown = _peak_growth(tmp_path, kind, src, tmp_path / "d.npy", chunk)
    bound = 3.5 * chunk + (2 << 20)
    assert grown < bound, f"RssAnon grew by {grown / 2**20:.1f} MiB ({grown / chunk:.2f} chunks)"
    assert os.path.getsize(src) > 5 * chunk


def test_progress_fallback_without_tqdm(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *a, **k):
        if name == "tqdm":
            raise ImportError("no tqdm here")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    x = sample_data((100, 10), "float32")
    np.save(tmp_path / "x.npy", x)
    qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", progress=True,
                                     chunk_bytes=1000)
    err = capsys.readouterr().err
    assert "qdq pass 1/2, range" in err and "qdq pass 2/2, write" in err and "GB/s" in err
