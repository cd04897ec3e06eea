"""qdq.torch: the autograd function and the module (skipped without torch)."""

import numpy as np
import pytest

import qdq

torch = pytest.importorskip("torch")
import qdq.torch  # noqa: E402

RNG = np.random.default_rng(11)
X = (RNG.standard_normal((24, 16)) * 2).astype(np.float32)
X[5, 3] = np.nan
DTYPES = ["float16", "bfloat16", "float32", "float64"]
CASES = [{}, {"num_bits": 4, "axis": 1}, {"num_bits": 4, "axis": 0, "block_size": 5},
         {"input_min": -1.25, "input_max": 1.5, "range_given": True, "num_bits": 3},
         {"input_min": torch.linspace(-2, -0.5, 16), "input_max": torch.linspace(0.5, 2, 16),
          "range_given": True, "axis": 1, "narrow_range": True},
         {"signed_input": False, "input_min": 0.0, "input_max": 2.0, "range_given": True,
          "round_mode": "HALF_UP"}]


def as_bits(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy()
    return t.numpy().view(f"u{t.element_size()}")


def twin(t):
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy(), True
    return t.numpy(), False


def plain(kw):
    return {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in kw.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(CASES)))
def test_forward_is_the_numpy_op_and_backward_is_the_v4_gradient(dtype, case):
    kw = CASES[case]
    x = torch.from_numpy(X.copy()).to(getattr(torch, dtype)).requires_grad_()
    y = qdq.torch.quantize_and_dequantize(x, **kw)
    xs, bf16 = twin(x.detach())
    want = qdq.quantize_and_dequantize(xs, **plain(kw), bfloat16_bits=bf16)
    assert y.dtype == x.dtype
    assert (as_bits(y.detach()) == want.view(f"u{want.itemsize}")).all()
    upstream = torch.from_numpy(RNG.standard_normal(X.shape).astype(np.float32)).to(x.dtype)
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
    assert (as_bits(x.grad) == want_grad.view(f"u{want_grad.itemsize}")).all()


def test_gradient_is_zero_outside_the_given_range_only():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 3.0, float("nan")], requires_grad=True)
    qdq.torch.quantize_and_dequantize(x, -1.0, 1.0, range_given=True).sum().backward()
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
                                            input_max=1.0, axis=None)
    x = torch.from_numpy(X.copy())
    want = qdq.quantize_and_dequantize(X, -1.0, 1.0, num_bits=6, range_given=True)
    assert (layer(x).numpy().view(np.uint32) == want.view(np.uint32)).all()
