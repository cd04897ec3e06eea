"""qdq.torch: both backends against the C kernels, gradients, torch.func, meta and fake tensors.

(torch.compile has its own file, test_torch_compile.py.) Skipped without torch.
Every comparison is of bits (NaN equal to NaN).
"""

import math
import warnings

import numpy as np
import pytest
from _blocks_cases import BLOCK_CASES, block_case, block_cases
from _cases import cases
from _golden import OP_CASES, _arr
from _util import assert_bits_equal
from hypothesis import given
from hypothesis import strategies as st

import qdq

torch = pytest.importorskip("torch")
import qdq.torch  # noqa: E402

RNG = np.random.default_rng(11)
X = (RNG.standard_normal((24, 16)) * 2).astype(np.float32)
X[5, 3] = np.nan
DTYPES = ["float16", "bfloat16", "float32", "float64"]
BACKENDS = ["kernels", "torch"]
CASES = [{}, {"num_bits": 4, "axis": 1}, {"num_bits": 4, "axis": 0, "block_size": 5},
         {"input_min": -1.25, "input_max": 1.5, "range_given": True, "num_bits": 3},
         {"input_min": torch.linspace(-2, -0.5, 16), "input_max": torch.linspace(0.5, 2, 16),
          "range_given": True, "axis": 1, "narrow_range": True},
         {"signed_input": False, "input_min": 0.0, "input_max": 2.0, "range_given": True,
          "round_mode": "HALF_UP"},
         {"input_min": torch.full((5, 16), -1.0), "input_max": torch.linspace(0.1, 3, 16),
          "range_given": True, "axis": 0, "block_size": 5, "round_mode": "HALF_UP"}]


def twin(t):
    """The NumPy array (bfloat16 as bits) and bfloat16 flag of a CPU tensor."""
    t = t.detach().resolve_neg()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy(), True
    return t.numpy(), False


def assert_tensor_bits(t, want, bf16, msg=""):
    got, _ = twin(t.contiguous())
    assert_bits_equal(got, want, bfloat16_bits=bf16, msg=msg)


def plain(kw):
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_forward_is_the_numpy_op_and_backward_is_the_v4_gradient(backend, dtype, case):
    kw = CASES[case]
    x = torch.from_numpy(X.copy()).to(getattr(torch, dtype)).requires_grad_()
    y = qdq.torch.quantize_and_dequantize(x, **kw, backend=backend)
    xs, bf16 = twin(x)
    want = qdq.quantize_and_dequantize(xs, **plain(kw), bfloat16_bits=bf16)
    assert y.dtype == x.dtype
    assert_tensor_bits(y, want, bf16)
    upstream = torch.from_numpy(RNG.standard_normal(X.shape).astype(np.float32)).to(x.dtype)
    upstream[0, :4] = torch.tensor([math.inf, -math.inf, math.nan, -2.0])
    y.backward(upstream)
    axis, block = kw.get("axis"), kw.get("block_size")
    if kw.get("range_given"):
        lo, hi = plain(kw)["input_min"], plain(kw)["input_max"]
    else:
        lo, hi = qdq.compute_range(xs, axis, bfloat16_bits=bf16, block_size=block)
    g, _ = twin(upstream)
    want_grad = qdq.quantize_and_dequantize_grad(g, xs, lo, hi, axis, bfloat16_bits=bf16,
                                                 block_size=block)
    assert x.grad.dtype == x.dtype
    assert_tensor_bits(x.grad, want_grad, bf16)


def test_gradient_is_zero_outside_the_given_range_only():
    for backend in BACKENDS:
        x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0, float("nan")], requires_grad=True)
        qdq.torch.quantize_and_dequantize(x, -1.0, 1.0, range_given=True,
                                          backend=backend).sum().backward()
        assert x.grad.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def test_module_trains_through_fake_quantization():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), qdq.torch.QuantizeAndDequantize(4))
    assert "num_bits=4" in repr(model)
    x = torch.randn(32, 8)
    loss = model(x).square().mean()
    loss.backward()
    assert model[0].weight.grad is not None and model[0].weight.grad.abs().sum() > 0
    with torch.no_grad():
        z = model[0](x)
    want = qdq.quantize_and_dequantize(z.numpy(), num_bits=4)
    assert (model(x).detach().numpy().view(np.uint32) == want.view(np.uint32)).all()


def test_module_arguments():
    layer = qdq.torch.QuantizeAndDequantize(num_bits=6, range_given=True, input_min=-1.0,
                                            input_max=1.0, axis=None, backend="torch")
    x = torch.from_numpy(X.copy())
    want = qdq.quantize_and_dequantize(X, -1.0, 1.0, num_bits=6, range_given=True)
    assert (layer(x).numpy().view(np.uint32) == want.view(np.uint32)).all()
    assert "backend='torch'" in repr(layer)


def test_module_range_tensors_are_buffers_and_follow_the_module():
    layer = qdq.torch.QuantizeAndDequantize(4, range_given=True, input_min=torch.tensor(-1.0),
                                            input_max=torch.tensor(2.0))
    assert set(layer.state_dict()) == {"input_min", "input_max"}
    layer = layer.to(torch.float64)
    assert layer.input_min.dtype == torch.float64


# ---- both backends against the kernels: TensorFlow's golden vectors, random cases ----

def _golden_kw(case):
    return dict(signed_input=case["signed_input"], num_bits=case["num_bits"],
                range_given=case["range_given"], round_mode=case["round_mode"],
                narrow_range=case["narrow_range"], axis=case["axis"])


@pytest.mark.parametrize("golden", ["op", "block"])
def test_torch_backend_matches_tensorflow_golden_vectors(golden):
    """Every TF golden case: the torch backend gives the kernels' bits, and TF's where qdq does."""
    cases = OP_CASES if golden == "op" else BLOCK_CASES
    matched_tf = 0
    for case in cases:
        if golden == "op":
            x = _arr(case["x"], case["dtype"], case["shape"])
            lo = _arr(case["input_min"], case["dtype"], case["minmax_shape"])
            hi = _arr(case["input_max"], case["dtype"], case["minmax_shape"])
            kw, tf_out = _golden_kw(case), _arr(case["out"], case["dtype"], case["shape"])
        else:
            x, lo, hi, kw, tf_out = block_case(case)
        want = quiet(qdq.quantize_and_dequantize, x, lo, hi, **kw)
        t = torch.from_numpy(x.copy())
        for rng in ((lo, hi), (torch.from_numpy(lo.copy()), torch.from_numpy(hi.copy()))):
            got = qdq.torch.quantize_and_dequantize(t, *rng, **kw, backend="torch")
            assert_bits_equal(got.numpy(), want, msg=case["name"])
        if case["known_difference"] is None:
            assert_bits_equal(want, tf_out, msg=case["name"])
            matched_tf += 1
    assert matched_tf > 900


LAYOUTS = ["contiguous", "transposed", "strided", "negative view", "channels"]


def _as_tensor(kind, x):
    """A torch tensor of a test case's array (bfloat16 from ml_dtypes arrays or bits)."""
    x = np.array(x, dtype=x.dtype.newbyteorder("="), order="C")
    if kind.startswith("bfloat16"):
        return torch.from_numpy(x.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(x)


def _layout(t, layout):
    """The same values in another memory layout (or a lazy view)."""
    if t.ndim == 0 or t.numel() == 0:
        return t.clone()
    if layout == "transposed" and t.ndim >= 2:
        return t.transpose(0, -1).contiguous().transpose(0, -1)
    if layout == "strided":
        big = torch.zeros((t.shape[0] * 2,) + tuple(t.shape[1:]), dtype=t.dtype)
        big[::2] = t
        return big[::2]
    if layout == "negative view":
        return torch._neg_view(-t)   # is_neg(): memory holds -t
    if layout == "channels" and t.ndim == 4:
        return t.contiguous(memory_format=torch.channels_last)
    return t.clone()


def _check_case(kind, x, kw, layout):
    bf16 = kind == "bfloat16_bits"
    want = quiet(qdq.quantize_and_dequantize, x, **kw, bfloat16_bits=bf16)
    if kind == "bfloat16":
        want = want.view(np.uint16)
    t = _layout(_as_tensor(kind, x), layout)
    for backend in BACKENDS:
        got = quiet(qdq.torch.quantize_and_dequantize, t, **kw, backend=backend)
        assert got.dtype == t.dtype and got.shape == t.shape
        assert_tensor_bits(got, want, kind.startswith("bfloat16"), msg=f"{backend} {layout}")


@given(cases(), st.sampled_from(LAYOUTS))
def test_random_cases_both_backends_equal_the_kernels(case, layout):
    kind, x, kw, _, _ = case
    _check_case(kind, x, kw, layout)


@given(block_cases(), st.sampled_from(LAYOUTS))
def test_random_block_cases_both_backends_equal_the_kernels(case, layout):
    kind, x, kw, _, _ = case
    _check_case(kind, x, kw, layout)


def test_torch_parameters_are_exact_at_the_edges():
    """float64 bounds rounded once to 16 bits, ties after scaling, -0.0, num_bits at its ends."""
    # 1 + 2**-11 + 2**-40 is above float16's tie at 1 + 2**-11: it rounds up; through
    # float32 (torch's conversion) it would become the tie and round to even, down
    for dtype, bits in ((torch.float16, 11), (torch.bfloat16, 8)):
        b = 1 + 2.0 ** -bits + 2.0 ** -40
        x = torch.tensor([0.5, -b, b, 0.0], dtype=torch.float64).to(dtype)
        for rng in ((-b, b), (torch.tensor(-b, dtype=torch.float64),
                              torch.tensor(b, dtype=torch.float64))):
            xs, bf16 = twin(x)
            want = qdq.quantize_and_dequantize(xs, -b, b, range_given=True, bfloat16_bits=bf16)
            got = qdq.torch.quantize_and_dequantize(x, *rng, range_given=True, backend="torch")
            assert_tensor_bits(got, want, bf16)
    for dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        x = torch.tensor([-0.0, 0.0, -0.003, 7.5, -7.5, 3.0], dtype=dtype)
        for signed, nb in ((True, 1), (True, 61), (False, 62), (False, 1)):
            for mode in ("HALF_UP", "HALF_TO_EVEN"):
                xs, bf16 = twin(x)
                want = quiet(qdq.quantize_and_dequantize, xs, signed_input=signed, num_bits=nb,
                             round_mode=mode, bfloat16_bits=bf16)
                got = quiet(qdq.torch.quantize_and_dequantize, x, signed_input=signed,
                            num_bits=nb, round_mode=mode, backend="torch")
                assert_tensor_bits(got, want, bf16, msg=f"{dtype} {signed} {nb} {mode}")


# ---- lazy views and meta/fake tensors ----

def test_meta_and_fake_tensors_give_shapes():
    m = torch.empty(3, 5, device="meta", dtype=torch.bfloat16)
    for kw in ({}, {"axis": 1}, {"axis": 1, "block_size": 2},
               {"input_min": -1.0, "input_max": 1.0, "range_given": True}):
        y = qdq.torch.quantize_and_dequantize(m, **kw)
        assert y.device.type == "meta" and y.shape == m.shape and y.dtype == m.dtype
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        f = torch.empty(4, 6)
        y = qdq.torch.quantize_and_dequantize(f, axis=0, block_size=4)
    assert y.shape == (4, 6)
    with pytest.raises(ValueError, match="backend='kernels'.*not on meta"):
        qdq.torch.quantize_and_dequantize(m, backend="kernels")


def test_lazy_negation_view_reads_the_right_sign():
    x = torch.tensor([1.0, -2.0, 3.0, 0.25])
    n = torch._neg_view(x)
    assert n.is_neg()
    want = qdq.quantize_and_dequantize((-x).numpy(), num_bits=3)
    for backend in BACKENDS:
        assert (qdq.torch.quantize_and_dequantize(n, num_bits=3, backend=backend).numpy()
                == want).all()


# ---- the autograd function ----

def test_saved_range_modified_in_place_is_an_error():
    """The given range is a saved tensor: an observer updating it in place before backward."""
    for backend in BACKENDS:
        x = torch.randn(6, requires_grad=True)
        lo, hi = torch.tensor(-1.0), torch.tensor(1.0)
        y = qdq.torch.quantize_and_dequantize(x, lo, hi, range_given=True, backend=backend)
        hi.mul_(0.5)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_gradient_is_twice_differentiable():
    """create_graph=True: the gradient is grad * mask, differentiable in grad (a penalty)."""
    for backend in BACKENDS:
        x = torch.tensor([-3.0, -0.5, 0.25, 0.9, 2.0], requires_grad=True)
        w = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0], requires_grad=True)
        y = qdq.torch.quantize_and_dequantize(x * 1.0, -1.0, 1.0, range_given=True,
                                              backend=backend)
        (gx,) = torch.autograd.grad((y * w).sum(), x, create_graph=True)
        assert gx.grad_fn is not None
        assert gx.tolist() == [0.0, 2.0, 3.0, 4.0, 0.0]
        (gw,) = torch.autograd.grad(gx.square().sum(), w)
        assert gw.tolist() == [0.0, 4.0, 6.0, 8.0, 0.0]  # d/dw of sum((w * mask)**2)
        xd = x.detach().double().requires_grad_()
        assert torch.autograd.gradcheck(
            lambda g, xd=xd, backend=backend: torch.autograd.grad(
                qdq.torch.quantize_and_dequantize(xd, -1.0, 1.0, range_given=True,
                                                  backend=backend), xd, g,
                create_graph=True)[0], torch.ones(5, dtype=torch.float64, requires_grad=True))


def test_torch_func_vmap_and_grad():
    x = torch.from_numpy(X[:6].copy())
    for kw in ({"num_bits": 3}, {"num_bits": 4, "axis": 0}, {"axis": 0, "block_size": 5},
               {"input_min": -1.0, "input_max": 1.5, "range_given": True}):
        vm = torch.func.vmap(lambda r, kw=kw: qdq.torch.quantize_and_dequantize(r, **kw))(x)
        loop = torch.stack([qdq.torch.quantize_and_dequantize(r, **kw) for r in x])
        assert_bits_equal(vm.numpy(), loop.numpy())
    per_row = torch.func.vmap(lambda r, lo, hi: qdq.torch.quantize_and_dequantize(
        r, lo, hi, range_given=True))(x, -torch.arange(1.0, 7.0), torch.arange(1.0, 7.0))
    loop = torch.stack([qdq.torch.quantize_and_dequantize(r, -float(i + 1), float(i + 1),
                                                          range_given=True)
                        for i, r in enumerate(x)])
    assert_bits_equal(per_row.numpy(), loop.numpy())
    g = torch.func.grad(lambda t: qdq.torch.quantize_and_dequantize(
        t, -1.0, 1.0, range_given=True).sum())(x)
    assert_bits_equal(g.numpy(), ((x >= -1) & (x <= 1)).float().numpy())
    per_example = torch.func.vmap(torch.func.grad(lambda t: qdq.torch.quantize_and_dequantize(
        t, -0.5, 0.5, range_given=True).sum()))(x)
    assert_bits_equal(per_example.numpy(), ((x >= -0.5) & (x <= 0.5)).float().numpy())


def test_invalid_range_raises_and_gives_nan_where_it_cannot():
    x = torch.randn(3, 4)
    for backend in BACKENDS:
        with pytest.raises(ValueError, match="invalid range in channel 2 of axis 1"):
            qdq.torch.quantize_and_dequantize(x, torch.tensor([0.0, 0, 2, 0]), 1.0,
                                              range_given=True, axis=1, backend=backend)
    with pytest.raises(ValueError, match="neither may be NaN"):
        qdq.torch.quantize_and_dequantize(x, math.nan, 1.0, range_given=True, backend="torch")
    # under vmap the values cannot be read: the channel comes out NaN
    y = torch.func.vmap(lambda r: qdq.torch.quantize_and_dequantize(
        r, torch.tensor([0.0, 0, 2, 0]), 1.0, range_given=True, axis=0))(x)
    assert y[:, 2].isnan().all() and not y[:, [0, 1, 3]].isnan().any()


def test_argument_errors():
    x = torch.randn(3, 4)
    with pytest.raises(ValueError, match="backend must be"):
        qdq.torch.quantize_and_dequantize(x, backend="cuda")
    with pytest.raises(ValueError, match="learnable_range=True needs range_given=True"):
        qdq.torch.quantize_and_dequantize(x, learnable_range=True)
    with pytest.raises(TypeError, match="unsupported tensor dtype torch.int32"):
        qdq.torch.quantize_and_dequantize(torch.ones(3, dtype=torch.int32))
    with pytest.raises(TypeError, match="dense"):
        qdq.torch.quantize_and_dequantize(x.to_sparse())
    with pytest.raises(TypeError, match="input_min is required"):
        qdq.torch.quantize_and_dequantize(x, range_given=True, backend="torch")
    with pytest.raises(ValueError, match="input_max has 3 values but axis 1 has 4 channels"):
        qdq.torch.quantize_and_dequantize(x, -1.0, torch.ones(3), range_given=True, axis=1,
                                          backend="torch")
    with pytest.raises(ValueError, match="does not fit the blocked shape"):
        qdq.torch.quantize_and_dequantize(x, -1.0, torch.ones(3, 3), range_given=True, axis=1,
                                          block_size=2, backend="torch")
    with pytest.raises(ValueError, match="num_bits must be in 1..61"):
        qdq.torch.quantize_and_dequantize(x, num_bits=62, backend="torch")


# ---- the learnable range (beyond TensorFlow) ----

def _lsq_reference(g, x, lo, hi, qmin, qmax):
    """The documented LSQ-style gradient, in float64 from the float32 parameters."""
    f = np.float32
    p = qdq.quantization_params(lo, hi, np.float32, num_bits=4)
    inv, lo_adj, hi_adj = float(p.inverse_scale), float(p.min_range), float(p.max_range)
    out = qdq.quantize_and_dequantize(x, lo, hi, num_bits=4, range_given=True).astype(np.float64)
    xd = x.astype(np.float64)
    inside = (xd >= lo_adj) & (xd <= hi_adj)
    step = np.where(inside, (out - xd) / inv, out / inv)
    total = float((g * step).sum())
    s_min = f(qmin) / f(lo) if f(qmin) * f(lo) > 0 else np.finfo(f).max
    s_max = f(qmax) / f(hi) if f(qmax) * f(hi) > 0 else np.finfo(f).max
    return (total / qmin, 0.0) if s_min < s_max else (0.0, total / qmax)


def test_learnable_range_gets_the_lsq_gradient():
    x = np.array([-2.0, -0.8, -0.33, 0.0, 0.41, 0.77, 1.6], np.float32)
    g = np.array([1.0, -2.0, 0.5, 1.0, 3.0, -1.0, 2.0], np.float32)
    for lo_value, hi_value in ((-1.0, 1.5), (-1.5, 1.0)):
        for backend in BACKENDS:
            lo = torch.tensor(lo_value, requires_grad=True)
            hi = torch.tensor(hi_value, requires_grad=True)
            xt = torch.from_numpy(x.copy()).requires_grad_()
            y = qdq.torch.quantize_and_dequantize(xt, lo, hi, num_bits=4, range_given=True,
                                                  learnable_range=True, backend=backend)
            y.backward(torch.from_numpy(g))
            want = _lsq_reference(g.astype(np.float64), x, lo_value, hi_value, -8, 7)
            assert lo.grad.item() == pytest.approx(want[0], rel=1e-6)
            assert hi.grad.item() == pytest.approx(want[1], rel=1e-6)
            # the input's gradient stays TensorFlow's
            assert xt.grad.tolist() == list(g * ((x >= lo_value) & (x <= hi_value)))
    # without learnable_range the range gets none, as in TensorFlow
    lo = torch.tensor(-1.0, requires_grad=True)
    qdq.torch.quantize_and_dequantize(torch.from_numpy(x), lo, 1.0, range_given=True).sum() \
        .backward()
    assert lo.grad is None


def test_learnable_per_channel_and_block_ranges_train():
    torch.manual_seed(0)
    w = torch.randn(4, 12)
    for kw in ({"axis": 0}, {"axis": 1, "block_size": 4}):
        shape = (4,) if "block_size" not in kw else (4, 3)
        layer = qdq.torch.QuantizeAndDequantize(3, range_given=True,
                                                input_min=torch.full(shape, -0.5),
                                                input_max=torch.full(shape, 0.5),
                                                learnable_range=True, **kw)
        opt = torch.optim.SGD(layer.parameters(), lr=0.05)
        first = None
        for _ in range(30):
            opt.zero_grad()
            loss = (layer(w) - w).square().sum()
            loss.backward()
            assert layer.input_max.grad.shape == shape
            opt.step()
            first = loss.item() if first is None else first
        assert loss.item() < first


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_every_16_bit_value_through_the_torch_operations(dtype):
    """All 65,536 bit patterns, both round modes, a scale of 1 (ties, and the odd integers
    where y + 0.5 rounds in T) and a scale that rounds, against the kernels."""
    every = torch.arange(1 << 16, dtype=torch.int32).to(torch.int16).view(dtype)
    p = 11 if dtype == torch.float16 else 8
    xs, bf16 = twin(every)
    for lo, hi, bits in ((-2.0 ** p, 2.0 ** p - 1, p + 1), (-1000.3, 1000.3, 12)):
        for mode in ("HALF_UP", "HALF_TO_EVEN"):
            kw = dict(num_bits=bits, range_given=True, round_mode=mode)
            want = quiet(qdq.quantize_and_dequantize, xs, lo, hi, **kw, bfloat16_bits=bf16)
            got = qdq.torch.quantize_and_dequantize(every, lo, hi, **kw, backend="torch")
            assert_tensor_bits(got, want, bf16, msg=f"{lo} {mode}")
