"""Packed forms of BatchNorm and 2-D max-pooling for a user network's stack on a CPU.

A `FuncStack` runs one member's code under `vmap`, and vmap turns each op into one op over
all members through its batching rules. Two of those rules are slow on a CPU for the small
convolutional networks caviar packs, and together took about half of a packed step of the
worked example's CNN (a stack of 16, one thread; docs/performance.md):

- BatchNorm with per-member weights and running statistics: the rule normalises without the
  weights, then multiplies and adds them in separate passes, each backward too. Members are
  independent channels, so here the members are folded into the channel dimension, (B, K, C,
  ...) -> (B, K*C, ...), a view, and one native BatchNorm call normalises, scales, shifts and
  updates every member's running statistics in place, as an unpacked member's call does.
- 2-D max-pooling: the NCHW kernel walks each tiny plane (8x8 here) on its own, 6 ms for 16
  members x 64 samples x 16 channels. The channels-last kernel takes 0.7 ms plus a 0.6 ms
  layout copy; its backward is slow, so the gradient goes through the NCHW backward kernel
  with the same indices (indices do not depend on the memory layout).

Both give the numbers the default rules give (float64: equal to the last bits of rounding;
the pooled values and the gradient's routing are exact, ties included), so members still
train as their unpacked twins (tests/trainables/test_cpu_ops.py; the Stack contract suite
runs with them). Anything else (another layer, a pooling with padding, dilation, ceil mode or
indices, weights shared by all members) takes vmap's own rule. Not used on a GPU, where the
default rules run on cuDNN and are not measured to lose, nor under bf16 autocast.
`CAVIAR_CPU_OPS=0` turns them off, for comparisons.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch._C._functorch import is_batchedtensor
from torch.nn import functional
from torch.overrides import TorchFunctionMode

__all__ = ["CPU_OPS_ENV", "packed_cpu_ops"]

CPU_OPS_ENV = "CAVIAR_CPU_OPS"

# The functions as they were when this module was imported: the mode calls them for anything
# it does not handle itself.
_batch_norm: Callable[..., torch.Tensor] = functional.batch_norm
_max_pool2d: Callable[..., Any] = functional.max_pool2d


@contextlib.contextmanager
def packed_cpu_ops(device: torch.device, precision: str) -> Iterator[None]:
    """Route the forward pass's BatchNorm and max-pool calls through the packed forms, on a
    CPU in float32 or float64 (see the module docstring); elsewhere, a no-op."""
    if device.type != "cpu" or precision != "fp32" or os.environ.get(CPU_OPS_ENV, "1") == "0":
        yield
        return
    with _PackedOps():
        yield


class _PackedOps(TorchFunctionMode):
    """Sees every torch function the member's forward calls; handles two, passes the rest."""

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Sequence[type],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is functional.batch_norm:
            return _batch_norm_call(*args, **kwargs)
        if func is functional.max_pool2d:
            return _max_pool2d_call(*args, **kwargs)
        return func(*args, **kwargs)


def _batch_norm_call(
    input: torch.Tensor,
    running_mean: torch.Tensor | None,
    running_var: torch.Tensor | None,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    if is_batchedtensor(input) and isinstance(momentum, float) and isinstance(eps, float):
        out: torch.Tensor = _MembersAsChannels.apply(
            input, running_mean, running_var, weight, bias, training, momentum, eps
        )
        return out
    return _batch_norm(input, running_mean, running_var, weight, bias, training, momentum, eps)


def _square(value: Any) -> int | None:
    """`k` for a pooling argument given as k or (k, k); None for anything else."""
    if isinstance(value, int):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2 and value[0] == value[1]:
        return int(value[0])
    return None


def _max_pool2d_call(
    input: torch.Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Any:
    kernel = _square(kernel_size)
    steps = kernel if stride is None or stride == [] else _square(stride)
    if (
        is_batchedtensor(input)
        and input.dim() == 4
        and kernel is not None
        and steps == kernel
        and _square(padding) == 0
        and _square(dilation) == 1
        and not ceil_mode
        and not return_indices
    ):
        out: torch.Tensor = _PoolMembers.apply(input, kernel)
        return out
    return _max_pool2d(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


class _MembersAsChannels(torch.autograd.Function):
    """BatchNorm of all members in one native call; defined only under vmap (its `vmap` rule
    sees the stacked tensors). Autograd records the ops the rule runs."""

    @staticmethod
    def forward(*args: Any) -> Any:
        raise RuntimeError("the packed BatchNorm runs only under vmap")

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[int | None, ...],
        x: torch.Tensor,
        running_mean: torch.Tensor | None,
        running_var: torch.Tensor | None,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        training: bool,
        momentum: float,
        eps: float,
    ) -> tuple[torch.Tensor, int]:
        per_member = (running_mean, running_var, weight, bias)
        dim = in_dims[0]
        stacked = x if dim is None else x.movedim(dim, 1)  # (B, K, C, ...): a view
        foldable = (
            dim is not None
            and stacked.dim() >= 3
            and all(
                t is None or (d == 0 and t.shape == stacked.shape[1:3] and t.is_contiguous())
                for t, d in zip(per_member, in_dims[1:5], strict=True)
            )
        )
        if not foldable:  # vmap's own rule

            def one(*tensors: torch.Tensor | None) -> torch.Tensor:
                return _batch_norm(*tensors, training, momentum, eps)

            return torch.vmap(one, in_dims=in_dims[:5])(x, *per_member), 0
        shape = stacked.shape
        folded = stacked.reshape(shape[0], shape[1] * shape[2], *shape[3:])
        flat = [None if t is None else t.view(-1) for t in per_member]  # views: updated in place
        out = _batch_norm(folded, *flat, training, momentum, eps)
        return out.view(shape), 1


class _PoolMembers(torch.autograd.Function):
    """Max-pooling of all members as one batch; defined only under vmap."""

    @staticmethod
    def forward(*args: Any) -> Any:
        raise RuntimeError("the packed max-pool runs only under vmap")

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, kernel: int
    ) -> tuple[torch.Tensor, int]:
        dim = in_dims[0]
        if dim not in (0, 1) or x.dim() != 5:  # vmap's own rule
            pooled = torch.vmap(lambda one: _max_pool2d(one, kernel), in_dims=(dim,))(x)
            return pooled, 0
        out, _ = _ChannelsLastPool.apply(x.flatten(0, 1), kernel)  # (K*B or B*K, C, H, W)
        return out.view(x.shape[0], x.shape[1], *out.shape[1:]), dim


class _ChannelsLastPool(torch.autograd.Function):
    """k x k max-pooling, stride k, of an NCHW batch: forward by the channels-last kernel,
    backward by the NCHW one, routed by the same indices."""

    @staticmethod
    def forward(x: torch.Tensor, kernel: int) -> tuple[torch.Tensor, torch.Tensor]:
        last = x.contiguous(memory_format=torch.channels_last)
        out, indices = torch.ops.aten.max_pool2d_with_indices(
            last, [kernel, kernel], [kernel, kernel], [0, 0], [1, 1], False
        )
        return out.contiguous(), indices.contiguous()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[torch.Tensor, int], output: Any) -> None:
        x, ctx.kernel = inputs
        ctx.save_for_backward(x, output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, _: Any) -> tuple[torch.Tensor, None]:
        x, indices = ctx.saved_tensors
        k = ctx.kernel
        return torch.ops.aten.max_pool2d_with_indices_backward(
            grad.contiguous(), x, [k, k], [k, k], [0, 0], [1, 1], False, indices
        ), None
