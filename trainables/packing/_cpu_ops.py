"""Packed forms of convolution, BatchNorm and max-pooling for a user network's stack on a CPU.

A `FuncStack` runs one member's code under `vmap`, and vmap turns each op into one op over
all members through its batching rules. For the small convolutional networks caviar packs,
three of those rules cost most of a packed step on a CPU (the worked example's CNN, a stack of
16 or 32, one thread: 49 ms per configuration-epoch with them, 36 without; docs/performance.md):

- 2-D convolution: members become groups of one grouped convolution, as vmap's rule does, but
  in the channels-last layout (B, H, W, K*C) that oneDNN computes in, instead of NCHW, which it
  reorders on every call: 15 against 31 ms forward and backward for 32 members' 8->16 channels.
- BatchNorm with per-member weights and running statistics: vmap's rule normalises without
  the weights, then multiplies and adds them in separate passes, each backward too. Members are
  independent channels, so one native call over K*C channels normalises, scales, shifts and
  updates every member's running statistics in place, as an unpacked member's call does.
- 2-D max-pooling: the NCHW kernel walks each tiny plane (8x8 here) on its own, 12 ms for 32
  members x 64 samples x 16 channels; the channels-last kernel over K*C channels takes 0.7 ms
  forward and 1 ms backward.

Each hands the next the members folded into channels, channels-last (a view as vmap sees it:
members at dim 1), so the layers between them run on that layout without copies. They give
the numbers vmap's rules give (float64: equal to the last bits of rounding; pooling's values
and its gradient's routing exact, ties included), so members still train as their unpacked
twins (tests/trainables/test_cpu_ops.py; the Stack contract suite runs through them). Any
other call (a pooling with padding, dilation, ceil mode, indices or overlapping windows; a
weight shared by all members; a call outside vmap) keeps vmap's own rule. Not used on a GPU,
where the default rules run on cuDNN and are not measured to lose, nor under bf16 autocast.
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
_conv2d: Callable[..., torch.Tensor] = functional.conv2d


@contextlib.contextmanager
def packed_cpu_ops(device: torch.device, precision: str) -> Iterator[None]:
    """Route the forward pass's convolution, BatchNorm and max-pool calls through the packed
    forms, on a CPU in float32 or float64 (see the module docstring); elsewhere, a no-op."""
    if device.type != "cpu" or precision != "fp32" or os.environ.get(CPU_OPS_ENV, "1") == "0":
        yield
        return
    with _PackedOps():
        yield


class _PackedOps(TorchFunctionMode):
    """Sees every torch function the member's forward calls; handles three, passes the rest."""

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
        if func is functional.conv2d:
            return _conv2d_call(*args, **kwargs)
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


def _conv2d_call(
    input: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
) -> torch.Tensor:
    if is_batchedtensor(input) and input.dim() == 4 and is_batchedtensor(weight):
        out: torch.Tensor = _ConvMembers.apply(
            input, weight, bias, stride, padding, dilation, groups
        )
        return out
    return _conv2d(input, weight, bias, stride, padding, dilation, groups)


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


class _VmapOnly(torch.autograd.Function):
    """An op whose only form is its `vmap` rule: the rule sees the stacked tensors and runs
    plain differentiable ops on them, which autograd records (so no backward of its own)."""

    @staticmethod
    def forward(*args: Any) -> Any:
        raise RuntimeError("caviar's packed CPU ops run only under vmap")

    @staticmethod
    def setup_context(ctx: Any, inputs: Any, output: Any) -> None:
        pass


class _MembersAsChannels(_VmapOnly):
    """BatchNorm of all members in one native call."""

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
        # each member's own (C,) row of every per-member tensor, viewable as one (K*C,) tensor
        rows = None if dim is None or x.dim() < 3 else (info.batch_size, x.movedim(dim, 1).shape[2])
        foldable = rows is not None and all(
            t is None or (d == 0 and t.shape == rows and t.is_contiguous())
            for t, d in zip(per_member, in_dims[1:5], strict=True)
        )
        if not foldable:  # vmap's own rule

            def one(*tensors: torch.Tensor | None) -> torch.Tensor:
                return _batch_norm(*tensors, training, momentum, eps)

            return torch.vmap(one, in_dims=in_dims[:5])(x, *per_member), 0
        assert dim is not None  # foldable
        flat = [None if t is None else t.view(-1) for t in per_member]  # views: updated in place
        out = _batch_norm(_members_as_channels(x, dim), *flat, training, momentum, eps)
        return _members_apart(out, info.batch_size), 1


class _PoolMembers(_VmapOnly):
    """Max-pooling of all members as one batch of K*C channels, channels-last."""

    @staticmethod
    def vmap(
        info: Any, in_dims: tuple[int | None, ...], x: torch.Tensor, kernel: int
    ) -> tuple[torch.Tensor, int]:
        dim = in_dims[0]
        if dim is None or x.dim() != 5:  # vmap's own rule
            pooled = torch.vmap(lambda one: _max_pool2d(one, kernel), in_dims=(dim,))(x)
            return pooled, 0
        folded = _members_as_channels(x, dim).contiguous(memory_format=torch.channels_last)
        return _members_apart(_max_pool2d(folded, kernel), info.batch_size), 1


class _ConvMembers(_VmapOnly):
    """A 2-D convolution of all members as one grouped convolution over K*C channels,
    channels-last."""

    @staticmethod
    def vmap(
        info: Any,
        in_dims: tuple[int | None, ...],
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: Any,
        padding: Any,
        dilation: Any,
        groups: int,
    ) -> tuple[torch.Tensor, int]:
        x_dim, w_dim, b_dim = in_dims[:3]
        if x_dim is None or w_dim is None or (bias is not None and b_dim is None) or x.dim() != 5:

            def one(*tensors: torch.Tensor | None) -> torch.Tensor:
                return _conv2d(*tensors, stride, padding, dilation, groups)

            return torch.vmap(one, in_dims=in_dims[:3])(x, weight, bias), 0
        members = info.batch_size
        folded = _members_as_channels(x, x_dim).contiguous(memory_format=torch.channels_last)
        w = weight.movedim(w_dim, 0)
        w = w.reshape(members * w.shape[1], *w.shape[2:])
        b = None if bias is None else bias.movedim(b_dim or 0, 0).reshape(-1)
        out = _conv2d(folded, w, b, stride, padding, dilation, members * groups)
        return _members_apart(out, members), 1


def _members_as_channels(x: torch.Tensor, dim: int) -> torch.Tensor:
    """(B, K*C, ...) from a stacked tensor whose members lie along `dim`: a view where the
    members sit beside the channels (the layout the packed ops return)."""
    stacked = x.movedim(dim, 1)
    return stacked.reshape(
        stacked.shape[0], stacked.shape[1] * stacked.shape[2], *stacked.shape[3:]
    )


def _members_apart(out: torch.Tensor, members: int) -> torch.Tensor:
    """(B, K, C, ...) from a (B, K*C, ...) result, a view: members at dim 1 for vmap."""
    return out.view(out.shape[0], members, -1, *out.shape[2:])
