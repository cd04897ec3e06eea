"""Inputs from other array libraries: torch, JAX, any DLPack object, Dask, xarray.

Each library is optional: its tests skip when it is absent. Results are
compared bit for bit with the NumPy path; "without a copy" is checked on data
pointers (the array qdq reads is the tensor's memory; the tensor returned is
the memory qdq wrote).
"""

import sys
import warnings

import numpy as np
import pytest

import qdq
from qdq._core.foreign import adapter_of
from qdq._ext import dlpack as _dlpack
from qdq._interop import dlpack as _interop

RNG = np.random.default_rng(7)
X = RNG.standard_normal((37, 20)).astype(np.float32) * 3
X[3, 4] = np.nan


def bits(a):
    a = np.asarray(a)
    return a.view(np.dtype(f"u{a.dtype.itemsize}"))


@pytest.fixture
def torch():
    return pytest.importorskip("torch")


@pytest.fixture
def jnp():
    pytest.importorskip("jax")
    import jax.numpy

    return jax.numpy


@pytest.fixture
def recorded(monkeypatch):
    """The arrays qdq reads from DLPack and the results it allocates, in order."""
    seen = {"read": [], "written": []}
    view, empty = _dlpack.view, _interop._aligned_empty

    def recording_view(obj, writable=False):
        a, is_bf16 = view(obj, writable)
        seen["read"].append(a)
        return a, is_bf16

    def recording_empty(like):
        a = empty(like)
        seen["written"].append(a)
        return a

    monkeypatch.setattr(_dlpack, "view", recording_view)
    monkeypatch.setattr(_interop, "_aligned_empty", recording_empty)
    return seen


def torch_bits(t):
    torch = sys.modules["torch"]
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy()
    return bits(t.numpy())


def numpy_twin(t):
    """The NumPy array (bfloat16 as bits) and bfloat16 flag of a torch tensor."""
    torch = sys.modules["torch"]
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy(), True
    return t.numpy(), False


# ---- torch ----

@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64"])
@pytest.mark.parametrize("kw", [{}, {"axis": 1, "num_bits": 4},
                                {"input_min": -2, "input_max": 1.5, "range_given": True},
                                {"axis": 1, "block_size": 8, "num_bits": 4}])
def test_torch_in_torch_out_bit_identical_without_copies(torch, recorded, dtype, kw):
    t = torch.from_numpy(X.copy()).to(getattr(torch, dtype))
    r = qdq.quantize_and_dequantize(t, **kw)
    x, bf16 = numpy_twin(t)
    want = qdq.quantize_and_dequantize(x, **kw, bfloat16_bits=bf16)
    assert isinstance(r, torch.Tensor) and r.dtype == t.dtype and r.shape == t.shape
    assert (torch_bits(r) == bits(want)).all()
    assert recorded["read"][0].ctypes.data == t.data_ptr()
    assert r.data_ptr() == recorded["written"][0].ctypes.data


@pytest.mark.parametrize("view", ["transposed", "sliced", "0-d", "empty"])
def test_torch_layouts(torch, recorded, view):
    base = torch.from_numpy(X.copy())
    t = {"transposed": base.t(), "sliced": base[1::3, 2:17:2], "0-d": base[0, 0],
         "empty": base[:0]}[view]
    r = qdq.quantize_and_dequantize(t, num_bits=5)
    want = qdq.quantize_and_dequantize(t.numpy(), num_bits=5)
    assert isinstance(r, torch.Tensor) and r.shape == t.shape
    assert (bits(r.numpy()) == bits(want)).all()
    if t.numel():
        assert recorded["read"][0].ctypes.data == t.data_ptr()


def test_torch_out(torch):
    t = torch.from_numpy(X.copy())
    out = torch.empty_like(t)
    address = out.data_ptr()
    assert qdq.quantize_and_dequantize(t, num_bits=3, out=out) is out
    assert out.data_ptr() == address
    assert (bits(out.numpy()) == bits(qdq.quantize_and_dequantize(X, num_bits=3))).all()
    # a NumPy input with a torch out, and in place
    out2 = torch.empty_like(t)
    assert qdq.quantize_and_dequantize(X, num_bits=3, out=out2) is out2
    assert (bits(out2.numpy()) == bits(out.numpy())).all()
    assert qdq.quantize_and_dequantize(t, num_bits=3, out=t) is t
    assert (bits(t.numpy()) == bits(out.numpy())).all()


def test_torch_bfloat16_out(torch):
    t = torch.from_numpy(X.copy()).to(torch.bfloat16)
    out = torch.empty_like(t)
    assert qdq.quantize_and_dequantize(t, out=out) is out
    want = qdq.quantize_and_dequantize(t.view(torch.uint16).numpy(), bfloat16_bits=True)
    assert (out.view(torch.uint16).numpy() == want).all()


def test_torch_out_refusals(torch, jnp):
    t = torch.from_numpy(X.copy())
    with pytest.raises(ValueError, match="shape"):
        qdq.quantize_and_dequantize(t, out=torch.empty(3))
    with pytest.raises(TypeError, match="out must be a numpy.ndarray or a torch.Tensor"):
        qdq.quantize_and_dequantize(t, out=jnp.zeros(X.shape, jnp.float32))
    with pytest.raises(TypeError, match="requires grad"):
        qdq.quantize_and_dequantize(t, out=torch.zeros(X.shape, requires_grad=True))


def test_torch_out_with_shared_elements_is_refused_as_torch_refuses_it(torch):
    """out=x.expand(): several elements on one memory location (torch refuses the same)."""
    for out in (torch.zeros(1, X.shape[1]).expand(X.shape),
                torch.zeros(X.shape[1]).as_strided(X.shape, (0, 1))):
        with pytest.raises(ValueError, match="more than one element of the written-to tensor"):
            qdq.quantize_and_dequantize(X, out=out)
        assert not out.any()   # nothing written
    with pytest.raises(RuntimeError, match="more than one element"):
        torch.add(torch.ones(4), 1, out=torch.zeros(1).expand(4))


def test_torch_lazy_views_read_with_their_values(torch):
    """torch's lazy negation (x.neg() views, z.conj().imag) is resolved before reading."""
    z = torch.complex(torch.from_numpy(X[:, 0].copy()), torch.from_numpy(X[:, 1].copy()))
    imag = z.conj().imag
    assert imag.is_neg()
    plain = -torch.from_numpy(X[:, 1].copy())
    lo, hi = qdq.compute_range(imag)
    assert (lo.item(), hi.item()) == tuple(v.item() for v in qdq.compute_range(plain))
    assert (bits(qdq.quantize_and_dequantize(imag, num_bits=3).numpy())
            == bits(qdq.quantize_and_dequantize(plain.numpy(), num_bits=3))).all()
    neg = torch._neg_view(torch.from_numpy(X.copy()))
    want = qdq.quantize_and_dequantize(-X, num_bits=4, axis=1)
    assert (bits(qdq.quantize_and_dequantize(neg, num_bits=4, axis=1).numpy()) == bits(want)).all()
    g = torch.ones(X.shape)
    grad = qdq.quantize_and_dequantize_grad(g, neg, -1.0, torch._neg_view(torch.tensor(-1.0)))
    assert (grad.numpy() == ((-X >= -1) & (-X <= 1))).all()
    zero = torch._efficientzerotensor(4)
    assert qdq.quantize_and_dequantize(zero).tolist() == [0.0] * 4
    # nothing can be written through a lazy view
    for out in (torch._neg_view(torch.zeros(X.shape)),
                torch._efficientzerotensor(X.shape)):
        with pytest.raises(ValueError, match="lazy torch view"):
            qdq.quantize_and_dequantize(X, out=out)
    # the capsule path refuses a negation view itself
    with pytest.raises(TypeError, match="lazy negation view"):
        _dlpack.view(neg)


def test_torch_tensors_without_readable_memory_are_refused(torch):
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        fake = torch.ones(3)
    refused = {
        "layout torch.sparse_coo": torch.ones(3).to_sparse(),
        "meta device": torch.ones(3, device="meta"),
        "FakeTensor without memory": fake,
        "unsupported DLPack dtype: complex": torch.ones(3, dtype=torch.complex64).conj(),
    }
    if torch.backends.mkldnn.is_available():
        refused["layout torch._mkldnn"] = torch.ones(3).to_mkldnn()
    for message, t in refused.items():
        with pytest.raises(TypeError, match=message):
            qdq.compute_range(t)
    with pytest.raises(TypeError, match="inside torch.func"):
        torch.func.vmap(qdq.quantize_and_dequantize)(torch.ones(2, 3))
    # the capsule path: a tensor exporting no data pointer
    with warnings.catch_warnings(), pytest.raises(TypeError, match="no data pointer"):
        warnings.simplefilter("ignore", UserWarning)   # torch: FakeTensor's data pointer
        _dlpack.view(fake)


@pytest.mark.parametrize("where", ["input", "gradients"])
def test_torch_requires_grad_is_explained(torch, where):
    t = torch.from_numpy(X.copy()).requires_grad_()
    with pytest.raises(TypeError, match=r"detach\(\).*qdq\.torch\.quantize_and_dequantize"):
        if where == "input":
            qdq.quantize_and_dequantize(t)
        else:
            qdq.quantize_and_dequantize_grad(t, t.detach(), -1, 1)


def test_torch_range_codes_and_gradient(torch):
    for dtype in (torch.float32, torch.bfloat16):
        t = torch.from_numpy(X.copy()).to(dtype)
        x, bf16 = numpy_twin(t)
        lo, hi = qdq.compute_range(t, axis=0)
        want_lo, want_hi = qdq.compute_range(x, axis=0, bfloat16_bits=bf16)
        assert isinstance(lo, torch.Tensor) and lo.dtype == dtype
        assert (lo.to(torch.float32).numpy() == want_lo).all() and (
            hi.to(torch.float32).numpy() == want_hi).all()
        codes, params = qdq.quantize(torch.nan_to_num(t), axis=1)
        want_codes, want_params = qdq.quantize(np.nan_to_num(x) if not bf16 else
                                               torch.nan_to_num(t).view(torch.uint16).numpy(),
                                               axis=1, bfloat16_bits=bf16)
        assert isinstance(codes, torch.Tensor) and (codes.numpy() == want_codes).all()
        assert params == want_params
        values = qdq.dequantize(codes, params)
        assert values.dtype == dtype
        assert (torch_bits(values) == bits(qdq.dequantize(want_codes, want_params,
                                                          bfloat16_bits=True))).all()
        g = torch.ones_like(t)
        grad = qdq.quantize_and_dequantize_grad(g, t, -1.0, torch.tensor(1.5))
        gx, _ = numpy_twin(g)
        want = qdq.quantize_and_dequantize_grad(gx, x, -1.0, 1.5, bfloat16_bits=bf16)
        assert grad.dtype == dtype and (torch_bits(grad) == bits(want)).all()


def test_torch_per_channel_bounds_as_tensors(torch):
    t = torch.from_numpy(X.copy())
    lo, hi = torch.full((20,), -1.0, dtype=torch.bfloat16), torch.linspace(0.5, 3, 20)
    r = qdq.quantize_and_dequantize(t, lo, hi, range_given=True, axis=1)
    want = qdq.quantize_and_dequantize(X, np.full(20, -1.0), hi.numpy(), range_given=True,
                                       axis=1)
    assert (bits(r.numpy()) == bits(want)).all()


# ---- JAX and any DLPack object ----

@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_jax_in_jax_out_without_copies(jnp, recorded, dtype):
    import jax

    j = jnp.asarray(X, dtype=getattr(jnp, dtype))
    r = qdq.quantize_and_dequantize(j, num_bits=4, axis=0)
    x = np.asarray(j)
    bf16 = dtype == "bfloat16"
    want = qdq.quantize_and_dequantize(x.view(np.uint16) if bf16 else x, num_bits=4, axis=0,
                                       bfloat16_bits=bf16)
    assert isinstance(r, jax.Array) and r.dtype == j.dtype
    assert (bits(np.asarray(r)) == bits(want)).all()
    assert recorded["read"][0].ctypes.data == j.unsafe_buffer_pointer()
    assert r.unsafe_buffer_pointer() == recorded["written"][0].ctypes.data


def test_jax_range(jnp):
    import jax

    lo, hi = qdq.compute_range(jnp.asarray(X))
    assert isinstance(lo, jax.Array)
    assert (float(lo), float(hi)) == tuple(map(float, qdq.compute_range(X)))


class Producer:
    """A DLPack producer that is neither NumPy nor an array-API library."""

    def __init__(self, array, device=(1, 0), legacy=False):
        self.array, self.device, self.legacy = array, device, legacy

    def __dlpack_device__(self):
        return self.device

    def __dlpack__(self, **kw):
        if self.legacy:
            if kw:
                raise TypeError("no keywords")
            return self.array.__dlpack__()
        return self.array.__dlpack__(**kw)


@pytest.mark.parametrize("legacy", [False, True])
def test_any_dlpack_object_is_read_in_place_and_released_once(legacy):
    a = X.copy()
    before = sys.getrefcount(a)
    r = qdq.quantize_and_dequantize(Producer(a, legacy=legacy), num_bits=4)
    assert type(r) is np.ndarray
    assert (bits(r) == bits(qdq.quantize_and_dequantize(X, num_bits=4))).all()
    view, is_bf16 = _dlpack.view(Producer(a, legacy=legacy))
    assert view.ctypes.data == a.ctypes.data and not is_bf16 and not view.flags.writeable
    assert sys.getrefcount(a) > before
    del view
    assert sys.getrefcount(a) == before  # the producer's deleter ran exactly once


def test_read_only_dlpack_refused_as_out():
    a = X.copy()
    a.flags.writeable = False
    try:
        view, _ = _dlpack.view(Producer(a))
    except BufferError:
        pytest.skip("this NumPy does not export read-only arrays")
    assert view.ctypes.data == a.ctypes.data
    with pytest.raises(ValueError, match="read-only"):
        _dlpack.view(Producer(a), writable=True)


def test_gpu_tensor_is_a_type_error():
    with pytest.raises(TypeError, match="kDLCUDA:1.*CPU"):
        qdq.quantize_and_dequantize(Producer(X, device=(2, 1)))


def test_unsupported_dlpack_dtype():
    with pytest.raises(TypeError, match="complex"):
        qdq.quantize_and_dequantize(Producer(np.zeros(3, np.complex64)))


def test_bfloat16_export_round_trip(torch, jnp):
    import jax

    b = _interop._aligned_empty(np.empty(3, np.uint16))  # XLA shares only aligned memory
    b[:] = [0x3F80, 0xC000, 0x7FC0]
    t = torch.from_dlpack(_dlpack.Bfloat16Export(b))
    assert t.dtype == torch.bfloat16 and t.data_ptr() == b.ctypes.data
    assert t[:2].tolist() == [1.0, -2.0]
    j = jax.dlpack.from_dlpack(_dlpack.Bfloat16Export(b))
    assert j.dtype == jnp.bfloat16 and j.unsafe_buffer_pointer() == b.ctypes.data
    before = sys.getrefcount(b)
    _dlpack.Bfloat16Export(b).__dlpack__()  # never consumed: released by the capsule
    assert sys.getrefcount(b) == before


# ---- Dask and xarray ----

def _counting_dask(x, chunks):
    da = pytest.importorskip("dask.array")
    calls = []

    def touch(block):
        calls.append(1)
        return block

    return da.from_array(x, chunks=chunks).map_blocks(touch, meta=np.array((), x.dtype)), calls


@pytest.mark.parametrize("kw", [{}, {"axis": 1, "num_bits": 4},
                                {"axis": 1, "block_size": 6, "num_bits": 4}])
def test_dask_dispatch_stays_lazy(kw):
    d, calls = _counting_dask(X, (10, 7))
    r = qdq.quantize_and_dequantize(d, **kw)
    lo, hi = qdq.compute_range(d)
    assert type(r).__module__.startswith("dask.") and not calls
    assert (bits(r.compute()) == bits(qdq.quantize_and_dequantize(X, **kw))).all()
    assert (lo.compute(), hi.compute()) == qdq.compute_range(X)


@pytest.mark.parametrize("method, axis", [("mse", None), ("entropy", 1), ("minmax", 0)])
def test_dask_calibrate_stays_lazy(method, axis):
    d, calls = _counting_dask(np.nan_to_num(X), (10, 7))
    r = qdq.calibrate(d, method, axis=axis)
    assert type(r).__module__.startswith("dask.") and not calls
    lo, hi = r.compute()
    want = qdq.calibrate(np.nan_to_num(X), method, axis=axis)
    assert (bits(np.asarray(lo)) == bits(np.asarray(want[0]))).all()
    assert (bits(np.asarray(hi)) == bits(np.asarray(want[1]))).all()


def test_dask_versions_are_keyed_by_the_public_functions():
    qdq_dask = pytest.importorskip("qdq.dask")
    # the keys are the function objects the public names hold, not names: a rename of
    # either side cannot drop Dask support silently
    assert set(qdq_dask.LAZY) == {qdq.quantize_and_dequantize, qdq.compute_range,
                                  qdq.quantize, qdq.calibrate}
    for function, lazy in qdq_dask.LAZY.items():
        assert lazy is getattr(qdq_dask, function.__name__)


def test_dask_refusals():
    d, _ = _counting_dask(X, 10)
    with pytest.raises(TypeError, match="out= is not supported"):
        qdq.quantize_and_dequantize(d, out=np.empty_like(X))
    with pytest.raises(TypeError, match="no Dask version"):
        qdq.quantize_and_dequantize_grad(d, d, -1, 1)


def test_xarray_keeps_coords_and_attrs():
    xr = pytest.importorskip("xarray")
    a = xr.DataArray(X, dims=("time", "chan"), name="w",
                     coords={"time": np.arange(37), "chan": [f"c{i}" for i in range(20)]},
                     attrs={"units": "V"})
    r = qdq.quantize_and_dequantize(a, num_bits=4, axis=1)
    assert isinstance(r, xr.DataArray) and r.dims == a.dims and r.name == "w"
    assert r.attrs == {"units": "V"} and (r.coords["chan"] == a.coords["chan"]).all()
    assert (bits(r.values) == bits(qdq.quantize_and_dequantize(X, num_bits=4, axis=1))).all()
    codes, params = qdq.quantize(a.fillna(0))
    assert isinstance(codes, xr.DataArray) and params == qdq.quantize(np.nan_to_num(X))[1]


def test_dask_backed_xarray_stays_lazy():
    xr = pytest.importorskip("xarray")
    d, calls = _counting_dask(X, (10, 20))
    a = xr.DataArray(d, dims=("time", "chan"), attrs={"units": "V"})
    r = qdq.quantize_and_dequantize(a, num_bits=4)
    assert isinstance(r, xr.DataArray) and type(r.data).__module__.startswith("dask.")
    assert not calls and r.attrs == {"units": "V"}
    assert (bits(r.values) == bits(qdq.quantize_and_dequantize(X, num_bits=4))).all()


def test_plain_inputs_still_take_the_numpy_path():
    assert (bits(qdq.quantize_and_dequantize(X.tolist())) ==
            bits(qdq.quantize_and_dequantize(X.astype(np.float64)))).all()
    with pytest.raises(TypeError, match="masked"):
        qdq.quantize_and_dequantize(np.ma.masked_array(X))
    assert adapter_of(X) is None and adapter_of([1.0]) is None


def test_the_registry_recognises_each_library():
    torch = pytest.importorskip("torch")
    da = pytest.importorskip("dask.array")
    assert adapter_of(torch.zeros(2)).name == "dlpack"
    assert adapter_of(da.zeros(2)).name == "dask"
    xr = pytest.importorskip("xarray")
    assert adapter_of(xr.DataArray(X)).name == "xarray"
    # a DataArray of a Dask array is xarray's (its .data then goes to Dask)
    assert adapter_of(xr.DataArray(da.from_array(X))).name == "xarray"


def test_dlpack_stub_matches_the_module(tmp_path):
    pytest.importorskip("mypy")
    from _util import run_python

    res = run_python(["-m", "mypy.stubtest", "qdq._ext.dlpack"], cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
