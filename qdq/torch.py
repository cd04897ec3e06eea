"""qdq in PyTorch training: the op as an autograd function, for quantization-aware training.

Install with ``pip install "qdq[torch]"``. The forward pass is qdq's kernel
(bit for bit :func:`qdq.quantize_and_dequantize` on the tensor's memory, no
copy); the backward pass is qdq's straight-through gradient,
:func:`qdq.quantize_and_dequantize_grad` (TensorFlow's
QuantizeAndDequantizeV4Grad): the incoming gradient where
``input_min <= x <= input_max``, zero elsewhere. Without a given range the
range is the data's own (NaN-ignoring) min and max, so the gradient passes
everywhere except at NaN. The range itself receives no gradient.

CPU tensors of float16, bfloat16, float32 and float64.
"""

from __future__ import annotations

from typing import Any

try:
    import torch
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("qdq.torch needs PyTorch: pip install 'qdq[torch]'") from exc

from ._core.codes import quantize_and_dequantize_grad
from ._core.op import RoundMode, compute_range
from ._core.op import quantize_and_dequantize as quantize_and_dequantize_tensor

__all__ = ["QuantizeAndDequantize", "QuantizeAndDequantizeFunction", "quantize_and_dequantize"]


def _plain(value: Any) -> Any:
    """A range bound without autograd history (tensors detached, others as they are)."""
    return value.detach() if isinstance(value, torch.Tensor) else value


class QuantizeAndDequantizeFunction(torch.autograd.Function):
    """``torch.autograd.Function``: qdq's op forward, the straight-through gradient backward.

    Call it through :func:`quantize_and_dequantize` (``apply`` takes every
    argument positionally).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, input_min: Any, input_max: Any, signed_input: bool,
                num_bits: int, range_given: bool, round_mode: RoundMode, narrow_range: bool,
                axis: int | None, block_size: int | None) -> torch.Tensor:
        data = x.detach()
        if range_given:
            lo, hi = _plain(input_min), _plain(input_max)
        else:
            lo, hi = compute_range(data, axis, block_size=block_size)
        ctx.save_for_backward(data)
        ctx.bounds = (lo, hi, axis, block_size)
        result: Any = quantize_and_dequantize_tensor(
            data, lo if range_given else None, hi if range_given else None, signed_input,
            num_bits, range_given, round_mode, narrow_range, axis, block_size=block_size)
        return result

    @staticmethod
    def backward(ctx: Any, *grad_outputs: torch.Tensor) -> Any:
        (data,) = ctx.saved_tensors
        lo, hi, axis, block_size = ctx.bounds
        grad_input = quantize_and_dequantize_grad(grad_outputs[0].detach(), data, lo, hi,
                                                  axis, block_size=block_size)
        return (grad_input,) + (None,) * 9


def quantize_and_dequantize(x: torch.Tensor, input_min: Any = None, input_max: Any = None,
                            signed_input: bool = True, num_bits: int = 8,
                            range_given: bool = False, round_mode: RoundMode = "HALF_TO_EVEN",
                            narrow_range: bool = False, axis: int | None = None, *,
                            block_size: int | None = None) -> torch.Tensor:
    """:func:`qdq.quantize_and_dequantize` that autograd can differentiate.

    Parameters
    ----------
    x : torch.Tensor
        A CPU tensor of float16, bfloat16, float32 or float64; it may require
        grad.
    input_min, input_max : float, array_like or torch.Tensor, optional
        The range when ``range_given`` (tensors receive no gradient).
    signed_input : bool, default True
        As for :func:`qdq.quantize_and_dequantize`.
    num_bits : int, default 8
        As for :func:`qdq.quantize_and_dequantize`.
    range_given : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}
        As for :func:`qdq.quantize_and_dequantize`.
    narrow_range : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    axis : int, optional
        As for :func:`qdq.quantize_and_dequantize`.
    block_size : int, optional
        As for :func:`qdq.quantize_and_dequantize`.

    Returns
    -------
    torch.Tensor
        The op's result, bit for bit the NumPy path's; its gradient is
        :func:`qdq.quantize_and_dequantize_grad` of the incoming gradient.

    Examples
    --------
    >>> import torch, qdq.torch
    >>> x = torch.tensor([-1.5, -0.2, 0.3, 2.0], requires_grad=True)
    >>> y = qdq.torch.quantize_and_dequantize(x, -1.0, 1.0, num_bits=4, range_given=True)
    >>> y
    tensor([-1.1429, -0.1429,  0.2857,  1.0000],
           grad_fn=<QuantizeAndDequantizeFunctionBackward>)
    >>> y.sum().backward()
    >>> x.grad
    tensor([0., 1., 1., 0.])
    """
    result = QuantizeAndDequantizeFunction.apply(x, input_min, input_max, signed_input,
                                                 num_bits, range_given, round_mode,
                                                 narrow_range, axis, block_size)
    return result


class QuantizeAndDequantize(torch.nn.Module):
    """Fake quantization as a layer: :func:`quantize_and_dequantize` with fixed arguments.

    Parameters
    ----------
    num_bits : int, default 8
        As for :func:`qdq.quantize_and_dequantize`; each argument is kept as
        an attribute of the same name.
    signed_input : bool, default True
        As for :func:`qdq.quantize_and_dequantize`.
    range_given : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    input_min, input_max : float, array_like or torch.Tensor, optional
        The range when ``range_given``.
    round_mode : {"HALF_TO_EVEN", "HALF_UP"}
        As for :func:`qdq.quantize_and_dequantize`.
    narrow_range : bool, default False
        As for :func:`qdq.quantize_and_dequantize`.
    axis : int, optional
        As for :func:`qdq.quantize_and_dequantize`.
    block_size : int, optional
        As for :func:`qdq.quantize_and_dequantize`.

    Examples
    --------
    >>> import torch, qdq.torch
    >>> layer = torch.nn.Sequential(torch.nn.Linear(4, 2), qdq.torch.QuantizeAndDequantize(4))
    >>> layer(torch.ones(3, 4)).shape
    torch.Size([3, 2])
    """

    def __init__(self, num_bits: int = 8, signed_input: bool = True, range_given: bool = False,
                 input_min: Any = None, input_max: Any = None,
                 round_mode: RoundMode = "HALF_TO_EVEN", narrow_range: bool = False,
                 axis: int | None = None, block_size: int | None = None):
        super().__init__()
        self.num_bits, self.signed_input, self.range_given = num_bits, signed_input, range_given
        self.input_min, self.input_max = input_min, input_max
        self.round_mode, self.narrow_range = round_mode, narrow_range
        self.axis, self.block_size = axis, block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the op with the layer's arguments.

        Parameters
        ----------
        x : torch.Tensor
            A CPU floating tensor.

        Returns
        -------
        torch.Tensor
            :func:`quantize_and_dequantize` of ``x``.

        Examples
        --------
        >>> import torch, qdq.torch
        >>> qdq.torch.QuantizeAndDequantize(2).forward(torch.tensor([-1.0, 0.4, 1.0]))
        tensor([-1.,  0.,  1.])
        """
        return quantize_and_dequantize(x, self.input_min, self.input_max, self.signed_input,
                                       self.num_bits, self.range_given, self.round_mode,
                                       self.narrow_range, self.axis,
                                       block_size=self.block_size)

    def extra_repr(self) -> str:
        return (f"num_bits={self.num_bits}, signed_input={self.signed_input}, "
                f"range_given={self.range_given}, axis={self.axis}, "
                f"block_size={self.block_size}")
