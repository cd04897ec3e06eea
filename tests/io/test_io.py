"""File I/O: the .npy header, sources, sinks and the atomic writer."""

import os
import stat
import textwrap

import numpy as np
import pytest
from _util import assert_bits_equal, dead_pid, op_quiet, run_python, sample_data, temporaries

import qdq


@pytest.fixture
def umask():
    """Set the process umask for a test (restored after)."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield os.umask
    os.umask(saved)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- the .npy header and sources ------------------------------------------------

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


@pytest.mark.parametrize("dtype", ["<f4", ">f8", "<f2"])
def test_npy_version_3(tmp_path, dtype):
    """A valid version 3.0 file (UTF-8 header) is read like 1.0 and 2.0."""
    x = np.nan_to_num(sample_data((20, 7), "float64", seed=1)).astype(dtype)
    native = x.astype(x.dtype.newbyteorder("="))
    for version in ((1, 0), (2, 0), (3, 0)):
        src = tmp_path / f"v{version[0]}.npy"
        with open(src, "wb") as f:
            np.lib.format.write_array(f, x, version=version)
        assert_bits_equal(np.load(src), x)  # NumPy reads it
        qdq.quantize_and_dequantize_file(src, tmp_path / "y.npy", axis=1, chunk_bytes=100)
        assert_bits_equal(np.load(tmp_path / "y.npy"), op_quiet(native, axis=1))
        # codes in a 3.0 file read back too
        codes, params = qdq.quantize(native, num_bits=4)
        with open(tmp_path / "c.npy", "wb") as f:
            np.lib.format.write_array(f, codes, version=version)
        qdq.dequantize_file(tmp_path / "c.npy", tmp_path / "d.npy", params)
        assert_bits_equal(np.load(tmp_path / "d.npy"), qdq.dequantize(codes, params))


@pytest.mark.parametrize("shape", [(-3, -4), (3, -4), (-12,), (3.0, 4), (True, 12), ("3", 4),
                                   [3, 4], 12])
def test_header_dimensions_must_be_non_negative_integers(tmp_path, shape):
    """A corrupt header whose dimensions multiply to the data's size is still refused."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape!r}, }}"
    text += " " * (-(len(text) + 11) % 64) + "\n"
    src = tmp_path / "bad.npy"
    src.write_bytes(b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text.encode()
                    + np.arange(12, dtype=np.float32).tobytes())
    with pytest.raises(ValueError, match="shape") as info:
        qdq.quantize_and_dequantize_file(src, tmp_path / "y.npy")
    assert "bad.npy" in str(info.value)
    assert not (tmp_path / "y.npy").exists() and not temporaries(tmp_path)


def test_offset_applies_to_raw_files_only(tmp_path):
    """--offset with a .npy source is an error, not silently ignored."""
    np.save(tmp_path / "x.npy", np.arange(8, dtype=np.float32))
    with pytest.raises(ValueError, match="offset=16 applies to raw binary files"):
        qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy", offset=16)
    assert not (tmp_path / "y.npy").exists()


@pytest.mark.parametrize("shape, exc", [(360.7, TypeError), ((36.0, 10), TypeError),
                                        ((True, 360), TypeError), ((-360,), ValueError),
                                        ("360", TypeError)])
def test_raw_shape_must_hold_integers(tmp_path, shape, exc):
    """A raw shape of 360.7 is refused, not truncated to 360."""
    np.zeros(360, np.float32).tofile(tmp_path / "r.bin")
    with pytest.raises(exc, match="shape"):
        qdq.quantize_and_dequantize_file(tmp_path / "r.bin", tmp_path / "y.npy",
                                         dtype="float32", shape=shape)
    assert not (tmp_path / "y.npy").exists()


# -- sinks and the atomic writer ---------------------------------------------------

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


def test_in_place_on_a_path_replaces_the_file(tmp_path):
    x = sample_data((50, 20), "float32")
    path = tmp_path / "x.npy"
    np.save(path, x)
    inode = os.stat(path).st_ino
    qdq.quantize_and_dequantize_file(path, path, chunk_bytes=333)
    assert_bits_equal(np.load(path), op_quiet(x))
    assert os.stat(path).st_ino != inode  # a new file renamed over the old one
    assert os.listdir(tmp_path) == ["x.npy"]


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
    x = sample_data((512, 256), "float32")
    src, dst = tmp_path / "x.npy", tmp_path / "y.npy"
    np.save(src, x)
    limit = os.path.getsize(src) // 2
    res = run_python(["-c", FULL_DISK, src, dst, limit], cwd=tmp_path)
    assert "OSError" in res.stdout and "nothing was written" in res.stdout, res.stdout + res.stderr
    assert sorted(os.listdir(tmp_path)) == ["x.npy"]


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_new_files_get_0666_less_the_umask(tmp_path, umask, mask):
    """Outputs and parameter JSON are created as open() would create them, not 0600."""
    np.save(tmp_path / "x.npy", np.linspace(-1, 1, 30, dtype=np.float32))
    umask(mask)
    qdq.quantize_and_dequantize_file(tmp_path / "x.npy", tmp_path / "y.npy")
    qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy")
    qdq.dequantize_file(tmp_path / "c.npy", tmp_path / "d.npy")
    qdq.quantization_params(-1.0, 1.0, np.float32).save(tmp_path / "p.json")
    for name in ("y.npy", "c.npy", "c.params.json", "d.npy", "p.json"):
        assert _mode(tmp_path / name) == 0o666 & ~mask, name


@pytest.mark.parametrize("mode", [0o664, 0o640, 0o600, 0o200])
def test_in_place_keeps_the_mode(tmp_path, umask, mode):
    x = np.linspace(-1, 1, 30, dtype=np.float32)
    path = tmp_path / "x.npy"
    np.save(path, x)
    os.chmod(path, mode)
    umask(0o077)
    qdq.quantize_and_dequantize_file(path, path, num_bits=3)
    assert _mode(path) == mode
    os.chmod(path, 0o644)
    assert_bits_equal(np.load(path), op_quiet(x, num_bits=3))


def test_read_only_destination_is_refused(tmp_path):
    """A 0444 file is not replaced (root could write it: qdq checks the mode bits)."""
    x = np.linspace(-1, 1, 30, dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    for dst in (tmp_path / "x.npy", tmp_path / "y.npy"):
        np.save(dst, x)
        before = dst.read_bytes()
        os.chmod(dst, 0o444)
        with pytest.raises(PermissionError, match="read-only"):
            qdq.quantize_and_dequantize_file(tmp_path / "x.npy", dst, num_bits=3)
        assert dst.read_bytes() == before and _mode(dst) == 0o444
        os.chmod(dst, 0o644)
    np.save(tmp_path / "c.npy", np.zeros(30, np.int8))
    os.chmod(tmp_path / "c.npy", 0o444)
    with pytest.raises(PermissionError, match="read-only"):
        qdq.quantize_file(tmp_path / "x.npy", tmp_path / "c.npy")
    assert not (tmp_path / "c.params.json").exists()
    assert not temporaries(tmp_path)


def test_in_place_through_a_symlink_writes_the_target(tmp_path):
    x = np.linspace(-1, 1, 30, dtype=np.float32)
    np.save(tmp_path / "real.npy", x)
    os.chmod(tmp_path / "real.npy", 0o640)
    os.symlink("real.npy", tmp_path / "link.npy")
    qdq.quantize_and_dequantize_file(tmp_path / "link.npy", tmp_path / "link.npy", num_bits=2)
    assert os.path.islink(tmp_path / "link.npy")
    assert os.readlink(tmp_path / "link.npy") == "real.npy"
    assert_bits_equal(np.load(tmp_path / "real.npy"), op_quiet(x, num_bits=2))
    assert _mode(tmp_path / "real.npy") == 0o640
    # a symlink as a separate destination: written through too
    os.symlink("out.npy", tmp_path / "out-link.npy")
    qdq.quantize_and_dequantize_file(x, tmp_path / "out-link.npy")
    assert os.path.islink(tmp_path / "out-link.npy")
    assert_bits_equal(np.load(tmp_path / "out.npy"), op_quiet(x))
    assert sorted(os.listdir(tmp_path)) == ["link.npy", "out-link.npy", "out.npy", "real.npy"]


def test_hard_links_are_split_as_documented(tmp_path):
    """The atomic rename gives the path a new inode: another hard link keeps the old data."""
    from qdq._io import atomic

    assert "hard link" in atomic.__doc__
    assert "hard link" in qdq.quantize_and_dequantize_file.__doc__
    x = np.linspace(-1, 1, 30, dtype=np.float32)
    np.save(tmp_path / "a.npy", x)
    os.link(tmp_path / "a.npy", tmp_path / "b.npy")
    before = (tmp_path / "b.npy").read_bytes()
    qdq.quantize_and_dequantize_file(tmp_path / "a.npy", tmp_path / "a.npy", num_bits=2)
    assert_bits_equal(np.load(tmp_path / "a.npy"), op_quiet(x, num_bits=2))
    assert (tmp_path / "b.npy").read_bytes() == before
    assert os.stat(tmp_path / "a.npy").st_nlink == 1 == os.stat(tmp_path / "b.npy").st_nlink


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    from qdq._io.atomic import remove_stale_temporaries

    dead, alive = dead_pid(), os.getpid()
    stale = tmp_path / f".y.npy.{dead}.abc123.qdq-tmp"
    running = tmp_path / f".y.npy.{alive}.def456.qdq-tmp"
    other = tmp_path / f".z.npy.{dead}.abc123.qdq-tmp"
    for p in (stale, running, other):
        p.write_bytes(b"partial")
    (tmp_path / "y.npy").write_bytes(b"keep")
    assert remove_stale_temporaries(tmp_path / "y.npy") == [str(stale)]
    assert sorted(os.listdir(tmp_path)) == sorted([running.name, other.name, "y.npy"])
    assert remove_stale_temporaries(tmp_path / "missing-dir" / "y.npy") == []
