"""Shared helpers of the tests: bit-exact comparison, NaN compared as NaN."""

from __future__ import annotations

import numpy as np

from qdq import _reference

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def values(a: np.ndarray, bfloat16_bits: bool = False) -> np.ndarray:
    """float64 values of a qdq array (bfloat16 bit patterns decoded; integer codes as is)."""
    a = np.asarray(a)
    if a.dtype.kind in "iu" and not bfloat16_bits:
        return a.astype(np.float64)
    return _reference.decode(a, bfloat16_bits)[0]


def bits(a: np.ndarray) -> np.ndarray:
    """The raw bit patterns of an array, as unsigned ints of its width."""
    a = np.array(a, order="C")  # (ascontiguousarray would turn 0-d into 1-d)
    return a.view(f"u{a.dtype.itemsize}")


def assert_bits_equal(actual, expected, bfloat16_bits: bool = False, msg: str = "") -> None:
    """Same shape, same dtype, same bits; any NaN equals any NaN."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{msg} shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{msg} dtype {actual.dtype} != {expected.dtype}"
    nan_a = np.isnan(values(actual, bfloat16_bits))
    nan_e = np.isnan(values(expected, bfloat16_bits))
    same = (bits(actual) == bits(expected)) | (nan_a & nan_e)
    if not same.all():
        idx = np.argwhere(~same)[:5]
        detail = ", ".join(
            f"{tuple(i)}: got {values(actual, bfloat16_bits)[tuple(i)]!r} "
            f"(0x{int(bits(actual)[tuple(i)]):x}) expected "
            f"{values(expected, bfloat16_bits)[tuple(i)]!r} "
            f"(0x{int(bits(expected)[tuple(i)]):x})" for i in idx)
        raise AssertionError(f"{msg} {int((~same).sum())} of {same.size} elements differ: {detail}")


def make_dtype(name: str):
    """The NumPy dtype for a format name (bfloat16 needs ml_dtypes)."""
    if name == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def run_python(args, cwd, **kwargs):
    """Run ``python args...`` in a child that imports the qdq under test.

    The child starts in ``cwd`` (never the repository root, whose qdq/ has no
    compiled kernels unless built in place) with PYTHONPATH pointing at the qdq
    this process imported (``env`` replaces the rest of the environment).
    """
    import os
    import subprocess
    import sys

    import qdq

    env = dict(kwargs.pop("env", os.environ),
               PYTHONPATH=os.path.dirname(os.path.dirname(qdq.__file__)))
    from qdq._stream.pipeline import TERMINATION_SIGNALS

    kwargs.setdefault("preexec_fn", lambda: _default_signals(TERMINATION_SIGNALS))
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, **kwargs)


def _default_signals(signals) -> None:
    """In a child before exec: qdq's termination signals at their default disposition.

    A test run started under ``nohup`` (or by a runner that ignores SIGHUP) would
    hand its children an ignored SIGHUP, which qdq rightly leaves alone; the
    signal tests need the default.
    """
    import signal

    for sig in signals:
        signal.signal(sig, signal.SIG_DFL)


def assert_equal_but_zero_signs(actual, expected, codes, bfloat16_bits: bool = False) -> None:
    """Bits equal, except zeros from a zero code, which may differ in sign.

    An integer code cannot carry the sign of zero: the op's -0.0 (from an input
    that rounds to -0) comes back from code 0 as 0 * inverse_scale.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    va, ve = values(actual, bfloat16_bits), values(expected, bfloat16_bits)
    differ = (bits(actual) != bits(expected)) & ~(np.isnan(va) & np.isnan(ve))
    assert (va[differ] == 0).all() and (ve[differ] == 0).all(), "non-zero values differ"
    assert (np.asarray(codes)[differ] == 0).all(), "zeros differ away from code 0"


def sample_data(shape, name, seed=0):
    """Random values of a format (bfloat16 skips without ml_dtypes), 1 in 40 NaN."""
    if name == "bfloat16":
        import pytest

        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * 4
    v.ravel()[rng.integers(0, v.size, max(1, v.size // 40))] = np.nan
    return v.astype(make_dtype(name))


def op_quiet(x, *args, **kw):
    """qdq.quantize_and_dequantize with its RuntimeWarnings silenced."""
    import warnings

    import qdq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return qdq.quantize_and_dequantize(x, *args, **kw)


def load_like(path, like):
    """np.load, viewed as ``like``'s dtype (bfloat16 is saved as 2-byte void)."""
    y = np.load(path)
    return y.view(like.dtype) if y.dtype != like.dtype else y


def temporaries(directory):
    """The qdq temporary files in a directory."""
    import os

    return [p for p in os.listdir(directory) if p.endswith(".qdq-tmp")]


def dead_pid():
    """The id of a process that has ended (for stale temporary files)."""
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


#: A child that reports the peak anonymous memory (RssAnon) of one qdq call:
#: ``python -c RSS_CHILD KIND SRC DST CHUNK_BYTES [AXIS]`` prints {"base", "peak"} as JSON.
RSS_CHILD = '''
import json, sys, threading, time
import numpy as np, qdq
from qdq.cli import main as cli

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

kind, src, dst, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
axis = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "None" else None
base = rss_anon()
threading.Thread(target=sample, daemon=True).start()
if kind == "run":
    qdq.quantize_and_dequantize_file(src, dst, chunk_bytes=chunk, axis=axis)
elif kind == "dequantize":
    qdq.dequantize_file(src, dst, chunk_bytes=chunk)
elif kind == "info":
    cli.main(["info", src, "-q", "--chunk-mb", repr(chunk / 2**20)])
done.set()
sys.stdout.flush()
print(json.dumps({"base": base, "peak": max(peak[0], rss_anon())}))
'''
