"""The fused block kernel hands back every block's parameters (file and checkpoint runs).

``transform_blocks`` with ``params_out`` (what the file and checkpoint paths ask for, for
the report) runs the fused row kernel, which writes the parameter rows it used. These
tests hold those rows to the ones the per-channel rule gives from each block's range
(``reduce_range`` then ``compute_params``), bit for bit, and the values to the fused call
without parameters: every row path of the kernel (rows shorter than a vector that divide
it, groups of short rows, long rows one by one), ranges given or not, NaN and empty
blocks, every level, 1 and 2 threads.
"""

from __future__ import annotations

import numpy as np
import pytest
from _util import assert_bits_equal, make_dtype

import qdq
from qdq._core import engine as _engine
from qdq._core.blocks import blocked_shape, transform_blocks
from qdq._core.formats import format_of
from qdq._core.validate import OpArgs

FORMATS = ["float16", "bfloat16", "float32", "float64"]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("bs", [1, 2, 4, 8, 3, 32, 100, 3000])
@pytest.mark.parametrize("name", FORMATS)
def test_block_parameters_from_the_fused_kernel(name, bs, threads, isa):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(bs)
    x = (rng.standard_normal((13, 2 * bs + bs // 2 + 1)) * 4).astype(make_dtype(name))
    x[2, :bs] = np.nan                     # an empty block (all NaN)
    x[5, 1] = np.nan
    fmt = format_of(x.dtype)
    xk = x.view(fmt.storage)
    for rg in (False, True):
        a = OpArgs(True, 8, rg, "HALF_TO_EVEN", False)
        bshape = blocked_shape(x.shape, 1, bs)
        given = None
        if rg:
            lo = -rng.uniform(0.5, 3, bshape).astype(fmt.compute)
            given = (lo, -lo * 2)
        with qdq.num_threads(threads), np.errstate(all="ignore"):
            out = np.empty_like(xk)
            p = np.full((4,) + bshape, 7, dtype=fmt.compute)
            transform_blocks(xk, out, fmt, 1, bs, a, given, p)
            plain = np.empty_like(xk)
            transform_blocks(xk, plain, fmt, 1, bs, a, given)
        assert_bits_equal(out, plain)
        # the same rows from each block's range by the per-channel rule
        rows = np.moveaxis(x, 1, -1)
        for b in range(bshape[1]):
            blk = np.ascontiguousarray(rows[:, b * bs:(b + 1) * bs]).view(fmt.storage)
            if rg:
                mn, mx = given[0][:, b], given[1][:, b]
            else:
                mn, mx = _engine.reduce_range(blk, fmt, 0)
            expected = _engine.compute_params(mn, mx, fmt, a.qmin, a.qmax)
            assert_bits_equal(p[:, :, b], expected, msg=f"block {b}, given {rg}")
