"""qdq.dask: bit-identical to the in-memory functions on every scheduler and through zarr."""

import os
import warnings

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

from _util import assert_bits_equal, assert_equal_but_zero_signs, make_dtype  # noqa: E402

import qdq  # noqa: E402
import qdq.dask  # noqa: E402

FORMATS = ["float16", "bfloat16", "float32", "float64"]


def _data(shape, name, seed=0, nan=True):
    if name == "bfloat16":
        pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(seed)
    v = rng.standard_normal(shape) * 4
    if nan and v.size:
        v.ravel()[rng.integers(0, v.size, max(1, v.size // 50))] = np.nan
    return v.astype(make_dtype(name))


def _random_chunks(shape, rng):
    chunks = []
    for n in shape:
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(n - 1, int(rng.integers(0, 4))),
                                  replace=False)) if n > 1 else []
        edges = [0, *cuts, n]
        chunks.append(tuple(int(b - a) for a, b in zip(edges[:-1], edges[1:], strict=True)) or (0,))
    return tuple(chunks)


def _op(x, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return qdq.quantize_and_dequantize(x, *a, **k)


@pytest.mark.parametrize("name", FORMATS)
@pytest.mark.parametrize("shape", [(57,), (23, 17), (6, 5, 9)], ids=str)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_chunkings(name, shape, seed):
    rng = np.random.default_rng(seed)
    x = _data(shape, name, seed)
    dx = da.from_array(x, chunks=_random_chunks(shape, rng))
    for axis in [None, *range(len(shape)), -1]:
        mn, mx = qdq.dask.compute_range(dx, axis)
        emn, emx = qdq.compute_range(x, axis)
        got_mn, got_mx = dask.compute(mn, mx)
        assert got_mn.dtype == np.asarray(emn).dtype
        assert_bits_equal(np.asarray(got_mn, np.float64), np.asarray(emn, np.float64))
        assert_bits_equal(np.asarray(got_mx, np.float64), np.asarray(emx, np.float64))
        kw = dict(axis=axis, num_bits=int(rng.integers(2, 9)),
                  round_mode=("HALF_TO_EVEN", "HALF_UP")[seed % 2], narrow_range=seed == 1)
        assert_bits_equal(qdq.dask.quantize_and_dequantize(dx, **kw).compute(), _op(x, **kw))
        c = x.shape[axis] if axis is not None else None
        lo = -np.linspace(1, 3, c) if c else -2.0
        hi = np.linspace(0.5, 4, c) if c else 3.0
        assert_bits_equal(
            qdq.dask.quantize_and_dequantize(dx, lo, hi, range_given=True, **kw).compute(),
            _op(x, lo, hi, range_given=True, **kw))
        clean = da.nan_to_num(dx) if name != "bfloat16" else dx.map_blocks(
            lambda b: np.nan_to_num(b.astype(np.float32)).astype(b.dtype), dtype=dx.dtype)
        codes, params = qdq.dask.quantize(clean, **kw)
        codes, params = dask.compute(codes, params)
        ec, ep = qdq.quantize(clean.compute(), **kw)
        assert codes.dtype == ec.dtype and (codes == ec).all() and params == ep


def test_bfloat16_bits_and_empty():
    x = _data((40, 6), "bfloat16").view(np.uint16)
    dx = da.from_array(x, chunks=(7, 4))
    assert_bits_equal(qdq.dask.quantize_and_dequantize(dx, axis=1, bfloat16_bits=True).compute(),
                      _op(x, axis=1, bfloat16_bits=True), bfloat16_bits=True)
    mn, _ = qdq.dask.compute_range(dx, bfloat16_bits=True)
    assert mn.compute().dtype == np.float32
    e = da.from_array(np.zeros((0, 3), np.float32), chunks=(1, 2))
    assert qdq.dask.quantize_and_dequantize(e, axis=1).compute().shape == (0, 3)
    mn, mx = qdq.dask.compute_range(e, 1)
    assert (mn.compute() == np.inf).all()


def test_errors_are_eager():
    dx = da.from_array(np.zeros((4, 4), np.float32), chunks=2)
    with pytest.raises(TypeError, match="dask.array.Array"):
        qdq.dask.quantize_and_dequantize(np.zeros(3))
    with pytest.raises(ValueError, match="num_bits"):
        qdq.dask.quantize_and_dequantize(dx, num_bits=99)
    with pytest.raises(ValueError, match="invalid range"):
        qdq.dask.quantize_and_dequantize(dx, 2, 1, range_given=True)
    with pytest.raises(TypeError, match="supported types"):
        qdq.dask.compute_range(da.zeros(3, dtype=int))
    codes, _ = qdq.dask.quantize(da.from_array(np.array([1.0, np.nan]), chunks=1))
    with pytest.raises(ValueError, match="NaN"):
        codes.compute()


def test_one_read_per_block_for_the_range():
    """The range pass reads each block once: one graph, both bounds from one kernel."""
    reads = {"n": 0}

    def load(block):
        reads["n"] += 1
        return block

    x = np.arange(64, dtype=np.float32).reshape(8, 8)
    dx = da.from_array(x, chunks=4).map_blocks(load, dtype=x.dtype,
                                               meta=np.empty((0, 0), np.float32))
    mn, mx = qdq.dask.compute_range(dx, axis=1)
    reads["n"] = 0
    dask.compute(mn, mx, scheduler="sync")
    assert reads["n"] == 4
    reads["n"] = 0
    qdq.dask.quantize_and_dequantize(dx, axis=1).compute(scheduler="sync")
    assert reads["n"] == 8  # once for the range, once for the op


def test_processes_scheduler():
    x = _data((30, 20), "float32", 4)
    dx = da.from_array(x, chunks=(7, 6))
    y = qdq.dask.quantize_and_dequantize(dx, axis=0).compute(scheduler="processes")
    assert_bits_equal(y, _op(x, axis=0))


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    # Workers are new processes: let them import the qdq under test.
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.path.dirname(os.path.dirname(qdq.__file__)) + (
        os.pathsep + old if old else "")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


@pytest.mark.parametrize("name", FORMATS)
def test_local_cluster_two_processes(cluster_client, name):
    x = _data((64, 48), name, 5)
    dx = da.from_array(x, chunks=(10, 13))
    pids = cluster_client.run(os.getpid)
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    for axis in (None, 0, 1):
        y = cluster_client.compute(qdq.dask.quantize_and_dequantize(dx, axis=axis,
                                                                    num_bits=6)).result()
        assert_bits_equal(y, _op(x, axis=axis, num_bits=6))
        mn = cluster_client.compute(qdq.dask.compute_range(dx, axis)[0]).result()
        assert_bits_equal(np.asarray(mn, np.float64),
                          np.asarray(qdq.compute_range(x, axis)[0], np.float64))


@pytest.mark.parametrize("name", ["float16", "float32", "float64"])
def test_zarr_in_and_out(tmp_path, name):
    zarr = pytest.importorskip("zarr")
    x = _data((50, 40), name, 6)
    src = str(tmp_path / "x.zarr")
    da.from_array(x, chunks=(16, 16)).to_zarr(src)
    dx = da.from_zarr(src)
    qdq.dask.quantize_and_dequantize(dx, axis=1).to_zarr(str(tmp_path / "y.zarr"))
    assert_bits_equal(np.asarray(zarr.open(str(tmp_path / "y.zarr"))[:]), _op(x, axis=1))
    codes, params = qdq.dask.quantize(da.nan_to_num(dx), axis=1)
    params = dask.compute(codes.to_zarr(str(tmp_path / "c.zarr"), compute=False), params)[1]
    got = np.asarray(zarr.open(str(tmp_path / "c.zarr"))[:])
    assert (got == qdq.quantize(np.nan_to_num(x), axis=1)[0]).all()
    assert_equal_but_zero_signs(qdq.dequantize(got, params), qdq.quantize_and_dequantize(
        np.nan_to_num(x), axis=1), got)


def test_zarr_has_no_bfloat16(tmp_path):
    """zarr refuses bfloat16; the bit patterns (uint16) go through instead."""
    pytest.importorskip("zarr")
    x = _data((20, 8), "bfloat16", 7)
    y = qdq.dask.quantize_and_dequantize(da.from_array(x, chunks=5), axis=0)
    with pytest.raises(ValueError, match="No Zarr data type"):
        y.to_zarr(str(tmp_path / "b.zarr"))
    da.from_array(x.view(np.uint16), chunks=5).to_zarr(str(tmp_path / "bits.zarr"))
    bits = da.from_zarr(str(tmp_path / "bits.zarr"))
    z = qdq.dask.quantize_and_dequantize(bits, axis=0, bfloat16_bits=True)
    z.to_zarr(str(tmp_path / "out.zarr"))
    out = np.asarray(da.from_zarr(str(tmp_path / "out.zarr")).compute())
    assert_bits_equal(out.view(x.dtype), _op(x, axis=0))
