"""Streaming: files, memmaps, chunk iterators and trackers equal the in-memory op."""

import json
import os
import textwrap
import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, make_dtype, run_python

import qdq
from qdq import _engine

FORMATS = ["float16", "bfloat16", "float32", "float64"]


def _data(shape, name, seed=0):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * 4
    v.ravel()[rng.integers(0, v.size, max(1, v.size // 40))] = np.nan
    return v.astype(make_dtype(name))


def _op(x, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return qdq.quantize_and_dequantize(x, *args, **kw)


def _save(path, x):
    """np.save, with bfloat16 stored as its bits (np.save writes them as void)."""
    np.save(path, x)


def _load(path, like):
    y = np.load(path)
    return y.view(like.dtype) if y.dtype != like.dtype else y


SHAPES = [((37, 11), [None, 0, 1, -1]), ((5, 6, 7), [None, 0, 1, 2]), ((300,), [None, 0])]


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("shape, axes", SHAPES, ids=str)
@pytest.mark.parametrize("order", ["C", "F"])
def test_file_equals_in_memory(tmp_path, name, shape, axes, order):
    x = np.asarray(_data(shape, name), order=order)
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    _save(src, x)
    bits = name == "bfloat16"
    itemsize = x.dtype.itemsize
    row = int(np.prod(shape[1:])) * itemsize if len(shape) > 1 else itemsize
    for axis in axes:
        expected = _op(x, axis=axis, num_bits=5)
        for chunk in (itemsize, row, 3 * row + itemsize, x.nbytes, 10 * x.nbytes + 5):
            p = qdq.quantize_and_dequantize_file(src, dst, axis=axis, num_bits=5,
                                                 chunk_bytes=chunk, bfloat16_bits=bits)
            got = _load(dst, x)
            if x.ndim > 1:
                assert got.flags.c_contiguous == (order == "C")
            assert_bits_equal(got, expected, msg=f"axis={axis} chunk={chunk}")
            assert p.axis == (None if axis is None else axis % x.ndim)
        assert sorted(os.listdir(tmp_path)) == ["x.npy", "y.npy"]


@pytest.mark.parametrize("name", FORMATS)
def test_given_range_per_channel_file(tmp_path, name):
    x = _data((40, 9), name, seed=2)
    lo, hi = -np.linspace(0.5, 3, 9), np.linspace(0.2, 4, 9)
    expected = _op(x, lo, hi, range_given=True, axis=1, round_mode="HALF_UP")
    np.save(tmp_path / "x.npy", x)
    p = qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", lo, hi,
                                         range_given=True, axis=1, round_mode="HALF_UP",
                                         chunk_bytes=100, bfloat16_bits=name == "bfloat16")
    assert_bits_equal(_load(tmp_path / "y.npy", x), expected)
    assert p.round_mode == "HALF_UP" and p.per_channel


@pytest.mark.parametrize("name", FORMATS)
def test_memmap_in_place_and_array_destinations(tmp_path, name):
    x = _data((64, 33), name, seed=3)
    expected = _op(x, axis=0)
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
    assert_bits_equal(_load(tmp_path / "z.npy", x), expected)


def test_in_place_on_a_path_replaces_the_file(tmp_path):
    x = _data((50, 20), "float32")
    path = tmp_path / "x.npy"
    np.save(path, x)
    inode = os.stat(path).st_ino
    qdq.quantize_and_dequantize_file(path, path, chunk_bytes=333)
    assert_bits_equal(np.load(path), _op(x))
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    assert os.listdir(tmp_path) == ["x.npy"]


def test_raw_binary_files(tmp_path):
    x = _data((30, 7), "float32")
    raw = tmp_path / "x.bin"
    x.astype(">f4").tofile(raw)
    qdq.quantize_and_dequantize_file(raw, tmp_path / "y.npy", dtype=">f4", shape=(30, 7),
                                     axis=1, chunk_bytes=50)
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.dtype("<f4")
    assert_bits_equal(y, _op(x, axis=1))
    xt = np.asfortranarray(x)
    np.asarray(xt).T.tofile(tmp_path / "f.bin")  # Fortran-ordered bytes
    qdq.quantize_and_dequantize_file(tmp_path / "f.bin", tmp_path / "f.npy", dtype="float32",
                                     shape=(30, 7), order="F", axis=0)
    assert_bits_equal(np.load(tmp_path / "f.npy"), _op(x, axis=0))
    bits = _data((64,), "bfloat16").view(np.uint16)
    bits.tofile(tmp_path / "b.bin")
    qdq.quantize_and_dequantize_file(tmp_path / "b.bin", tmp_path / "b.npy", dtype="bfloat16",
                                     shape=64)
    assert_bits_equal(np.load(tmp_path / "b.npy"), _op(bits, bfloat16_bits=True),
                      bfloat16_bits=True)
    # in place on the raw file itself
    qdq.quantize_and_dequantize_file(raw, raw, dtype=">f4", shape=(30, 7))
    assert_bits_equal(np.fromfile(raw, ">f4").reshape(30, 7).astype("<f4"), _op(x))


def test_zero_d_and_empty_files(tmp_path):
    for x in (np.array(2.5, np.float32), np.zeros((0, 4), np.float64)):
        np.save(tmp_path / "x.npy", x)
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy")
        y = np.load(tmp_path / "y.npy")
        assert y.shape == x.shape
        assert_bits_equal(y, _op(x))


def test_returned_params_match_quantization_params(tmp_path):
    x = _data((100, 3), "float32")
    np.save(tmp_path / "x.npy", x)
    p = qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", num_bits=4)
    mn, mx = qdq.compute_range(x)
    assert p == qdq.quantization_params(mn, mx, np.float32, num_bits=4)


# -- errors and faults --------------------------------------------------------

def test_bad_sources(tmp_path):
    (tmp_path / "junk.npy").write_bytes(b"not numpy at all")
    with pytest.raises(ValueError, match="not a .npy file"):
        qdq.quantize_and_dequantize_file(tmp_path / "junk.npy", tmp_path / "y.npy")
    np.save(tmp_path / "obj.npy", np.array([1, "a"], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="object arrays are not supported"):
        qdq.quantize_and_dequantize_file(tmp_path / "obj.npy", tmp_path / "y.npy")
    np.save(tmp_path / "int.npy", np.arange(5))
    with pytest.raises(TypeError, match="supported types"):
        qdq.quantize_and_dequantize_file(tmp_path / "int.npy", tmp_path / "y.npy")
    np.save(tmp_path / "t.npy", np.zeros(1000, np.float32))
    data = (tmp_path / "t.npy").read_bytes()
    (tmp_path / "t.npy").write_bytes(data[:-10])
    with pytest.raises(ValueError, match="truncated"):
        qdq.quantize_and_dequantize_file(tmp_path / "t.npy", tmp_path / "y.npy")
    (tmp_path / "h.npy").write_bytes(data[:10] + b"{'descr': <<garbage" + data[30:])
    with pytest.raises(ValueError, match="corrupt .npy header|not a .npy"):
        qdq.quantize_and_dequantize_file(tmp_path / "h.npy", tmp_path / "y.npy")
    with pytest.raises(FileNotFoundError):
        qdq.quantize_and_dequantize_file(tmp_path / "missing.npy", tmp_path / "y.npy")
    (tmp_path / "r.bin").write_bytes(b"\0" * 10)
    with pytest.raises(ValueError, match="needs 16"):
        qdq.quantize_and_dequantize_file(tmp_path / "r.bin", tmp_path / "y.npy",
                                         dtype="float32", shape=(4,))
    with pytest.raises(ValueError, match="both dtype= and shape="):
        qdq.quantize_and_dequantize_file(tmp_path / "r.bin", tmp_path / "y.npy", dtype="f4")
    assert not (tmp_path / "y.npy").exists()
    assert not [p for p in os.listdir(tmp_path) if "qdq-tmp" in p]


def test_bad_destinations(tmp_path):
    x = np.zeros((4, 4), np.float32)
    with pytest.raises(ValueError, match="dst has shape"):
        qdq.quantize_and_dequantize_file(x, np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError, match="the result needs float32"):
        qdq.quantize_and_dequantize_file(x, np.zeros((4, 4), np.float64))
    with pytest.raises(ValueError, match="must be a .npy path"):
        qdq.quantize_and_dequantize_file(x, tmp_path / "out.txt")
    with pytest.raises(FileNotFoundError, match="cannot create the output"):
        qdq.quantize_and_dequantize_file(x, tmp_path / "no" / "such" / "dir.npy")
    with pytest.raises(ValueError, match="overlaps"):
        big = np.zeros(20, np.float32)
        qdq.quantize_and_dequantize_file(big[:16].reshape(4, 4), big[4:].reshape(4, 4))


class _Boom(BaseException):
    pass


@pytest.mark.parametrize("when", ["range", "write"])
@pytest.mark.parametrize("exc", [KeyboardInterrupt, _Boom, OSError])
def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch, when, exc):
    x = _data((400, 100), "float32")
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


def test_source_truncated_while_reading(tmp_path, monkeypatch):
    x = _data((400, 100), "float32")
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


FULL_DISK = textwrap.dedent("""
    import resource, signal, sys
    import numpy as np, qdq
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[3]), int(sys.argv[3])))
    try:
        qdq.quantize_and_dequantize_file(sys.argv[1], sys.argv[2], chunk_bytes=1 << 16)
    except OSError as exc:
        print("OSError", exc)
""")


def test_full_disk_is_a_clear_error(tmp_path):
    x = _data((512, 256), "float32")
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    limit = os.path.getsize(src) // 2
    res = run_python(["-c", FULL_DISK, src, dst, limit], cwd=tmp_path)
    assert "OSError" in res.stdout and "nothing was written" in res.stdout, res.stdout + res.stderr
    assert sorted(os.listdir(tmp_path)) == ["x.npy"]


SIGTERM_CHILD = textwrap.dedent("""
    import os, signal, sys
    import qdq
    from qdq import _engine
    real = _engine.run_block
    n = [0]
    def slow(*a, **k):
        n[0] += 1
        if n[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*a, **k)
    _engine.run_block = slow
    qdq.quantize_and_dequantize_file(sys.argv[1], sys.argv[2], chunk_bytes=4000)
""")


def test_sigterm_mid_pass_cleans_up(tmp_path):
    x = _data((400, 100), "float32")
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    before = src.read_bytes()
    res = run_python(["-c", SIGTERM_CHILD, src, dst], cwd=tmp_path)
    assert res.returncode == 143, res.stderr
    assert src.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.npy"]


RSS_CHILD = textwrap.dedent("""
    import json, sys, threading, time
    import numpy as np, qdq

    def rss_anon():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024

    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon())
            time.sleep(0.001)

    base = rss_anon()
    threading.Thread(target=sample, daemon=True).start()
    qdq.quantize_and_dequantize_file(sys.argv[1], sys.argv[2], chunk_bytes=int(sys.argv[3]),
                                     axis=int(sys.argv[4]) if sys.argv[4] != "None" else None)
    done.set()
    print(json.dumps({"base": base, "peak": max(peak[0], rss_anon())}))
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")
@pytest.mark.parametrize("axis", ["None", "1"])
def test_memory_is_bounded_by_the_chunk(tmp_path, axis):
    """Peak RssAnon grows with chunk_bytes, not with the file (96 MiB file, 2 MiB chunks)."""
    rows, cols = 6144, 4096
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    rng = np.random.default_rng(0)
    with open(src, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)})
        for _ in range(rows // 512):
            f.write(rng.standard_normal((512, cols), dtype=np.float32).tobytes())
    chunk = 2 << 20
    res = run_python(["-c", RSS_CHILD, src, dst, chunk, axis], cwd=tmp_path, check=True)
    r = json.loads(res.stdout)
    grown = r["peak"] - r["base"]
    bound = 6 * chunk + (8 << 20)
    assert grown < bound, f"RssAnon grew by {grown / 2**20:.1f} MiB"
    assert os.path.getsize(src) > 4 * bound  # the file is far larger than the bound


# -- chunks API ---------------------------------------------------------------

@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("axis", [None, 0, 1, -1, 2])
def test_stream_and_tracker_equal_in_memory(name, axis):
    x = _data((23, 5, 4), name, seed=5)
    parts = [x[:1], x[1:9], x[9:9], x[9:]]
    expected = _op(x, axis=axis, num_bits=3, narrow_range=True)
    got = np.concatenate(list(qdq.stream(parts, axis=axis, num_bits=3, narrow_range=True)))
    assert_bits_equal(got, expected)
    got = np.concatenate(list(qdq.stream(lambda: iter(parts), axis=axis, num_bits=3,
                                         narrow_range=True)))
    assert_bits_equal(got, expected)
    t = qdq.RangeTracker(axis)
    for p in parts:
        t.update(p)
    mn, mx = qdq.compute_range(x, axis)
    assert_bits_equal(np.asarray(t.min), np.asarray(mn))
    assert_bits_equal(np.asarray(t.max), np.asarray(mx))
    assert t.params(num_bits=3, narrow_range=True) == qdq.quantization_params(
        mn if name != "bfloat16" else np.asarray(mn, np.float32),
        mx if name != "bfloat16" else np.asarray(mx, np.float32), name, num_bits=3,
        narrow_range=True, axis=None if axis is None else axis % 3)


@pytest.mark.parametrize("axis", [None, 0, 2])
def test_tracker_merge_and_state(axis):
    x = _data((30, 4, 3), "float32", seed=6)
    a, b, c = qdq.RangeTracker(axis), qdq.RangeTracker(axis), qdq.RangeTracker(axis)
    a.update(x[:10])
    b.update(x[10:17])
    c.update(x[17:])
    whole = qdq.RangeTracker(axis).update(x)
    left = qdq.RangeTracker.from_state(json.loads(json.dumps(a.state_dict())))
    left.merge(b).merge(c)
    right = a.merge(qdq.RangeTracker.from_state(b.state_dict()).merge(c))
    for t in (left, right):
        assert_bits_equal(np.asarray(t.min), np.asarray(whole.min))
        assert_bits_equal(np.asarray(t.max), np.asarray(whole.max))
        assert t.rows == 30 and t.count == x.size
    assert qdq.RangeTracker(axis).merge(whole).state_dict() == whole.state_dict()


def test_tracker_zero_signs_and_nan():
    t = qdq.RangeTracker()
    t.update(np.array([0.0, np.nan]))
    t.update(np.array([-0.0]))
    assert np.signbit(t.min) and not np.signbit(t.max)
    t = qdq.RangeTracker().update(np.array([np.nan, np.nan], np.float32))
    assert np.isnan(t.min) and np.isnan(t.max)
    assert "empty" in repr(qdq.RangeTracker())


def test_chunks_with_given_range_and_data_range():
    x = _data((50, 6), "float64", seed=7)
    parts = np.array_split(x, 4)
    got = np.concatenate(list(qdq.quantize_and_dequantize_chunks(parts, -1.0, 2.0,
                                                                 round_mode="HALF_UP")))
    assert_bits_equal(got, _op(x, -1.0, 2.0, range_given=True, round_mode="HALF_UP"))
    t = qdq.RangeTracker(axis=0)
    for p in parts:
        t.update(p)
    mn, mx = t.raw()
    got = np.concatenate(list(qdq.quantize_and_dequantize_chunks(parts, mn, mx, axis=0,
                                                                 range_given=False)))
    assert_bits_equal(got, _op(x, axis=0))


def test_chunk_errors():
    with pytest.raises(TypeError, match="one-shot iterator"):
        qdq.stream(iter([np.zeros(3)]))
    with pytest.raises(TypeError, match="one-shot iterator"):
        qdq.stream(c for c in [np.zeros(3)])
    with pytest.raises(TypeError, match="not one array"):
        qdq.stream(np.zeros((3, 3)))
    # a one-shot iterator is fine when the range is given
    out = list(qdq.stream(iter([np.zeros(3)]), -1.0, 1.0, range_given=True))
    assert len(out) == 1
    with pytest.raises(ValueError, match="does not continue"):
        list(qdq.stream([np.zeros((2, 3)), np.zeros((2, 4))]))
    t = qdq.RangeTracker().update(np.zeros((2, 3), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        t.update(np.zeros((2, 3), np.float64))
    with pytest.raises(ValueError, match="at least one dimension"):
        qdq.RangeTracker().update(np.float32(1))
    with pytest.raises(ValueError, match="not a RangeTracker state"):
        qdq.RangeTracker.from_state({"min": []})
    with pytest.raises(ValueError, match="has 3 channels along axis 0"):
        list(qdq.quantize_and_dequantize_chunks([np.zeros((2, 2)), np.zeros((2, 2))],
                                                np.zeros(3), np.ones(3), axis=0))


def test_progress_fallback_without_tqdm(tmp_path, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_tqdm(name, *a, **k):
        if name == "tqdm":
            raise ImportError("no tqdm here")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_tqdm)
    x = _data((100, 10), "float32")
    np.save(tmp_path / "x.npy", x)
    qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", progress=True,
                                     chunk_bytes=1000)
    err = capsys.readouterr().err
    assert "qdq pass 1/2, range" in err and "qdq pass 2/2, write" in err and "GB/s" in err
