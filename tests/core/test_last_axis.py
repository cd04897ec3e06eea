"""Per channel along the last axis (TensorFlow's Dense and Conv kernel layout), bit for bit.

The channels-last path of the compiled kernels reduces and transforms whole rows at once,
in tiles of channels whose ranges and parameters stay in cache, several rows per load of
them (``qdq_minmax_cols``, ``qdq_apply_cols``; at level 3 the bfloat16 transform with the
AVX512-BF16 conversion). These tests hold it to the pure-NumPy reference at every
instruction-set level, with 1 and 2 threads: every format, NaN and infinities, signed
zeros, exact ties, given ranges that clamp, shapes that cross the tiles and the groups of
rows and vectors, short rows in bands of rows, the thread split by channels, and the
non-temporal stores of large outputs (forced on small ones) at every output alignment.
"""

from __future__ import annotations

import platform
import sys
import warnings

import numpy as np
import pytest
from _util import assert_bits_equal, make_dtype

import qdq
from qdq import _reference
from qdq._ext import kernels as _kernels

FORMATS = ["float16", "bfloat16", "float32", "float64"]

# rows x channels: short and odd rows and channel counts (tails of the 8-row groups, of
# the vectors and of bfloat16's 16-channel groups), one row, channels across a tile of
# the kernels (16384 float32 parameters, 8192 float64), and 2 x 40000 channels, above the
# per-thread partial limit (the threads split the channels), a Conv kernel's layout.
SHAPES = [(37, 53), (200, 17), (1, 100), (16, 48), (9, 16400), (2, 40000), (3, 3, 24, 64)]


def _data(shape, name, seed):
    """Normal values with NaN, +-inf, +-0 and a few huge ones, of the format."""
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * 3
    flat = v.reshape(-1)
    k = max(1, flat.size // 40)
    flat[rng.integers(0, flat.size, k)] = np.nan
    flat[rng.integers(0, flat.size, k)] = np.inf
    flat[rng.integers(0, flat.size, k)] = -np.inf
    flat[rng.integers(0, flat.size, k)] = 0.0
    flat[rng.integers(0, flat.size, k)] = -0.0
    return v.astype(make_dtype(name))


def _ties(shape, name, seed):
    """Values on the half steps of the grid of the given range below: exact ties."""
    rng = np.random.default_rng(seed)
    steps = (2 * rng.integers(-140, 140, shape) + 1) / 2.0     # k + 1/2, some out of range
    scale = 2.0 ** -(np.arange(shape[-1]) % 5 + 6)            # a power of two per channel
    return (steps * scale).astype(make_dtype(name)), 127 * scale


def _check(x, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        got = qdq.quantize_and_dequantize(x, axis=-1, **kw)
        out = np.full_like(x, 7)
        qdq.quantize_and_dequantize(x, axis=-1, out=out, **kw)
        expected = _reference.quantize_and_dequantize(x, axis=-1, **kw)
    assert_bits_equal(got, expected)
    assert_bits_equal(out, expected)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", FORMATS)
def test_range_from_the_data(name, shape, threads, isa):
    x = _data(shape, name, seed=sum(shape))
    # channels whose minimum is -0.0 or +0.0, and whose maximum is +0.0 or -0.0
    c = shape[-1]
    x[..., c // 3] = np.abs(x[..., c // 3])
    x.reshape(-1, c)[::3, c // 3] = 0.0
    x.reshape(-1, c)[1::3, c // 3] = -0.0
    x[..., c // 2] = -np.abs(x[..., c // 2])
    x.reshape(-1, c)[::2, c // 2] = 0.0
    x.reshape(-1, c)[1::4, c // 2] = -0.0
    with qdq.num_threads(threads):
        mn, mx = qdq.compute_range(x, axis=-1)
        emn, emx = _reference.compute_range(x, axis=-1)
        for got, expected in ((mn, emn), (mx, emx)):
            assert_bits_equal(np.asarray(got).astype(np.float64),
                              np.asarray(expected).astype(np.float64))
        _check(x)
        _check(x, round_mode="HALF_UP", num_bits=4, narrow_range=True)
        _check(x, signed_input=False)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", FORMATS)
def test_given_ranges_ties_and_clamping(name, shape, threads, isa):
    x, hi = _ties(shape, name, seed=len(shape))
    with qdq.num_threads(threads):
        for mode in ("HALF_TO_EVEN", "HALF_UP"):
            _check(x, input_min=-hi, input_max=hi, range_given=True, round_mode=mode)
        # uneven ranges: the adjusted range differs from the given one
        _check(x, input_min=-hi / 3, input_max=hi, range_given=True, num_bits=5)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", FORMATS)
def test_short_rows_go_in_bands(name, threads, isa):
    # Rows of 4 KiB or less go through the column kernels in groups of rows a band apart
    # (rows r, r + q, r + 2q, r + 3q of each piece of 4q rows), the last rows of a piece
    # after them. 2051 rows of 256 channels: pieces of 512 to 2048 rows (about 1 MiB each,
    # several threads at once), a last piece of 3 rows; streaming stores forced too.
    x = _data((2051, 256), name, seed=11)
    t, hi = _ties((2051, 256), name, seed=12)
    with qdq.num_threads(threads):
        _check(x)
        _check(x, round_mode="HALF_UP", num_bits=4, narrow_range=True)
        _check(t, input_min=-hi, input_max=hi, range_given=True)
        try:
            _kernels.stream_min_bytes(1)
            for row_by_row in (0, 1):  # streamed four rows a band apart, and row by row
                for prefetch in (0, 1):  # the input prefetched ahead (AMD's rule) or not
                    _kernels.stream_row_by_row(row_by_row)
                    _kernels.prefetch_ahead(prefetch)
                    _check(x)
        finally:
            _kernels.stream_min_bytes(0)
            _kernels.stream_row_by_row(-1)
            _kernels.prefetch_ahead(-1)


@pytest.mark.parametrize("name", FORMATS)
def test_scales_that_defeat_the_fast_loops(name, isa):
    # Channels whose range is tiny (float32 and bfloat16: an inverse scale below FLT_MIN,
    # float16: a scale that overflows), zero or all NaN, next to ordinary channels: the
    # fast bfloat16 loop of level 3 must leave such channels to the other loops.
    x = _data((45, 70), name, seed=3).astype(np.float64)
    x[~np.isfinite(x)] = 1.0
    # ranges of about 1e-36 (float32, bfloat16: a normal scale, a subnormal inverse), of
    # about 1e-39 (a scale that overflows to inf) and, for float16, about 1e-6 (inf too)
    small, smaller = {"float16": (1e-6, 1e-7), "float64": (1e-300, 1e-310)}.get(
        name, (1e-37, 4e-40))
    x[:, 5:9] *= small
    x[:, 10:13] *= smaller
    x[:, 20:23] = 0.0
    x[:, 40] = np.nan
    _check(x.astype(make_dtype(name)))


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("channels", [64, 512, 50])
def test_streaming_stores_at_every_alignment(name, channels, isa):
    # Outputs above the last-level cache are written with non-temporal stores; forced here
    # on small ones. Rows of a multiple of 32 bytes stream after the columns before the
    # first 32-byte boundary; other rows do not stream. Every offset of the output.
    x = _data((67, channels), name, seed=channels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = _reference.quantize_and_dequantize(x, axis=-1)
    buf = np.empty(x.size + 32, dtype=x.dtype)
    try:
        _kernels.stream_min_bytes(1)
        for row_by_row, prefetch in ((0, 0), (1, 0), (0, 1), (1, 1)):
            # rows four at a time, and one after another; the input prefetched ahead or
            # not (AMD's rules both)
            _kernels.stream_row_by_row(row_by_row)
            _kernels.prefetch_ahead(prefetch)
            for off in range(0, 17):
                buf[:] = np.nan  # nothing left from the call before
                out = buf[off:off + x.size].reshape(x.shape)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    qdq.quantize_and_dequantize(x, axis=-1, out=out)
                assert_bits_equal(out, expected, msg=f"offset {off}, row by row {row_by_row}, "
                                  f"prefetch {prefetch}")
    finally:
        _kernels.stream_min_bytes(0)
        _kernels.stream_row_by_row(-1)
        _kernels.prefetch_ahead(-1)


def test_stream_threshold_hook_restores_the_default():
    default = _kernels.stream_min_bytes()
    assert _kernels.stream_min_bytes(12345) == 12345
    assert _kernels.stream_min_bytes(0) == default > 0


@pytest.mark.parametrize("hook", ["stream_row_by_row", "prefetch_ahead"])
def test_amd_rule_hooks_restore_the_cpus_rule(hook):
    # by default only on AMD: row by row (for rows a multiple of 4 KiB apart), and the
    # input prefetched ahead
    switch = getattr(_kernels, hook)
    try:
        assert switch(1) is True
        assert switch(0) is False
    finally:
        default = switch(-1)
    if sys.platform.startswith("linux"):
        with open("/proc/cpuinfo") as f:
            amd = "AuthenticAMD" in f.read()
        assert default is (amd and platform.machine().lower() in ("x86_64", "amd64"))


@pytest.mark.parametrize("name", FORMATS)
def test_large_min_max_passes_with_and_without_prefetch(name):
    # The min/max passes prefetch only for blocks beyond the last-level cache (the threshold
    # of the streaming stores); forced down here, with both rules, per channel on rows long
    # (groups of four rows) and short (bands), with a row count that leaves a remainder, and
    # per tensor (four quarters side by side), the extremes in the later quarters.
    rng = np.random.default_rng(5)
    try:
        for shape, axis in (((203, 1100), -1), ((203, 24), -1), ((100003,), None)):
            x = rng.standard_normal(shape)
            n = x.size
            x.flat[int(0.6 * n)] = -9.0
            x.flat[int(0.9 * n)] = 9.0
            x.flat[7] = np.nan
            x.flat[-1] = -0.0
            x = x.astype(make_dtype(name))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                expected = _reference.compute_range(x, axis=axis)
            for prefetch in (0, 1):
                _kernels.prefetch_ahead(prefetch)
                _kernels.stream_min_bytes(1)
                got = qdq.compute_range(x, axis=axis)
                for g, e in zip(got, expected, strict=True):  # float64 holds them exactly
                    g = np.asarray(g)
                    assert_bits_equal(g, np.asarray(e).astype(g.dtype),
                                      msg=f"{shape} prefetch {prefetch}")
    finally:
        _kernels.stream_min_bytes(0)
        _kernels.prefetch_ahead(-1)


def test_float16_overflow_counts_the_channels():
    # float16 per channel runs fused too; the parameter rows come back for the warning
    x = np.ones((16, 40), np.float16)
    x[:, [3, 17, 30]] = np.float16(1e-5)
    x[::2, [3, 17, 30]] *= -1   # ranges of +-1e-5: scales far above 65504
    with pytest.warns(RuntimeWarning, match=r"overflows to inf in 3 channels"):
        y = qdq.quantize_and_dequantize(x, axis=-1)
    assert not np.isfinite(y[:, [3, 17, 30]]).any()
    assert np.isfinite(np.delete(y, [3, 17, 30], axis=1)).all()
