"""Outputs larger than the last-level cache: levels 1 and up write every format
with non-temporal stores (bfloat16 through its 16-wide loop, and at level 3 its
AVX512-BF16 loop; peeling to alignment, fencing at the end of each piece); the bits
must be those of the baseline copy and of one thread, at every output alignment."""

import numpy as np
import pytest

import qdq
from qdq._core import engine as _engine


def _llc_bytes() -> int:
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index3/size") as f:
            text = f.read().strip()
        return int(text[:-1]) << 10 if text.endswith("K") else int(text)
    except (OSError, ValueError):
        return 32 << 20


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
def test_large_output_bits_match_baseline_and_one_thread(dtype):
    nbytes = min(max(_llc_bytes(), 32 << 20), 128 << 20) + (3 << 20)
    storage = np.uint16 if dtype == "bfloat16" else np.dtype(dtype)
    n = nbytes // np.dtype(storage).itemsize + 5
    x = np.random.default_rng(3).standard_normal(n).astype(np.float32) * 3
    kw = {}
    if dtype == "bfloat16":   # the upper halves: bfloat16 bits; NaN with payloads, inf
        x = (x.view(np.uint32) >> 16).astype(np.uint16)
        x[[7, 1 << 20, n - 2, n // 2]] = [0x7FC1, 0x7F80, 0xFF81, 0xFFC0]
        kw = {"bfloat16_bits": True}
    else:
        x = x.astype(dtype)
        x[[7, 1 << 20, n - 2]] = [np.nan, np.inf, -np.nan]
    buf = np.empty(n + 8, dtype=storage)
    threads = qdq.get_num_threads()
    first = None   # compared as they come: each result is three outputs above the LLC's size
    try:
        for level in range(_engine.isa_available() + 1):
            _engine.set_isa(level)
            for nt in {1, max(threads, 2)}:
                qdq.set_num_threads(nt)
                for off in (0, 1, 3):
                    out = buf[off:off + n]
                    qdq.quantize_and_dequantize(x, out=out, **kw)
                    data = out.view(np.uint8).copy()
                    qdq.quantize_and_dequantize(x, -2.0, 2.0, range_given=True, out=out, **kw)
                    given = out.view(np.uint8).copy()
                    qdq.quantize_and_dequantize(x, -2.0, 2.0, range_given=True, out=out,
                                                round_mode="HALF_UP", **kw)
                    got = (data, given, out.view(np.uint8).copy())
                    if first is None:
                        first = got
                    for k in range(3):
                        assert np.array_equal(got[k], first[k]), (level, nt, off, k)
    finally:
        _engine.set_isa(-1)
        qdq.set_num_threads(threads)
