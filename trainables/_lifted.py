"""Scalar module attributes held as per-member tensors, so that networks differing only in them
share one vectorized stack.

A stack runs one template module over every member's stacked parameters and buffers, so a
plain attribute (`nn.Dropout.p`, `nn.LeakyReLU.negative_slope`) is read from the template and
would be the same for every member: such networks used to be split into packs of their own,
and a sweep over the dropout rate, the most common hyperparameter of a user's network, got one
pack per configuration. `lift_attributes` swaps each such module for a twin that holds the
attribute as a buffer; buffers are stacked per member, so under `vmap` each member reads its
own value, and the networks' `network_signature`s become equal.

Dropout draws its masks from a counter-based hash of (the member's seed, the layer, the call,
the element) instead of torch's global generator. The mask of a member is then the same
whether it trains alone or in any pack, on any device: a pack that mixes dropout rates equals
the separate runs with the same seeds, and a checkpoint (the call counter is a buffer)
continues with the masks it would have drawn.

Unpacked training lifts the same modules (`_train.initial_model`), so both paths run the same
arithmetic.

BatchNorm's `momentum` (and `eps`) are lifted too, but only in a stack whose members differ in
them (`lift_batchnorm`, called by the pack): the twin costs a little more than `nn.BatchNorm*`
(twice as much where `eps` differs), so every other network keeps torch's. In float64 both
give the same numbers to rounding, so such a pack still equals the separate runs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional

__all__ = [
    "BATCHNORM_LIFTED",
    "LIFTED",
    "MemberBatchNorm",
    "MemberDropout",
    "MemberLeakyReLU",
    "batchnorm_liftable",
    "batchnorm_per_member",
    "lift_attributes",
    "lift_batchnorm",
]

_MASK32 = 0xFFFFFFFF
_MULTIPLIER = 0x45D9F3B  # < 2**27, so products of 32-bit values stay inside int64
_GOLDEN = 0x9E3779B9  # spreads small salts over all 32 bits


def _mix(h: torch.Tensor) -> torch.Tensor:
    """A bijective 32-bit integer hash (two multiply-xorshift rounds), in int64 arithmetic."""
    return _mix_(h.clone())


def _mix_(h: torch.Tensor) -> torch.Tensor:
    """`_mix` in place: a mask's hash runs over every element of an activation, and fresh
    tensors for each of its passes took half of a dropout layer's time."""
    h ^= h >> 16
    h.mul_(_MULTIPLIER).bitwise_and_(_MASK32)
    h ^= h >> 16
    h.mul_(_MULTIPLIER).bitwise_and_(_MASK32)
    h ^= h >> 16
    return h


class MemberDropout(nn.Module):
    """`nn.Dropout` (elementwise, `dims == 0`) or `nn.Dropout1d/2d/3d` (whole channels of the
    last `dims` dimensions) with the rate as a buffer and counter-based masks."""

    p: torch.Tensor
    seed: torch.Tensor
    calls: torch.Tensor

    def __init__(self, p: float, *, dims: int, salt: int, seed: int = 0) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.dims = dims
        self.salt = salt  # the layer's position: two dropout layers draw different masks
        self.register_buffer("p", torch.tensor(float(p), dtype=torch.float64))  # cast by .to()
        self.register_buffer("seed", torch.tensor(seed & _MASK32, dtype=torch.int64))
        self.register_buffer("calls", torch.tensor(0, dtype=torch.int64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        self.calls.add_(1)
        shape = (*x.shape[: x.dim() - self.dims], *(1,) * self.dims)
        index = torch.arange(math.prod(shape), device=x.device).view(shape)
        key = _mix(_mix(self.seed ^ ((self.salt * _GOLDEN) & _MASK32)) ^ self.calls)
        # 24 random bits u; the element is kept when u / 2**24 >= p, compared as u >= p * 2**24
        # (exact: a power of two scales p, and u < 2**24 is exact in float32).
        bits = _mix_(key ^ index) >> 8
        p = self.p.to(x.dtype)
        keep = bits >= torch.ceil(p * 2.0**24)
        return torch.where(keep, x / (1 - p), torch.zeros((), dtype=x.dtype))

    def extra_repr(self) -> str:
        return f"dims={self.dims}, salt={self.salt}"


class MemberLeakyReLU(nn.Module):
    """`nn.LeakyReLU` with `negative_slope` as a buffer (x > 0 ? x : slope * x, as F's)."""

    negative_slope: torch.Tensor

    def __init__(self, negative_slope: float) -> None:
        super().__init__()
        self.register_buffer(
            "negative_slope", torch.tensor(float(negative_slope), dtype=torch.float64)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(x > 0, x, x * self.negative_slope.to(x.dtype))


# Module type → (the attribute lifted, channel dimensions for dropout); exact types only: a
# user's subclass may read the attribute in its own forward.
_DROPOUT_DIMS: dict[type[nn.Module], int] = {
    nn.Dropout: 0,
    nn.Dropout1d: 1,
    nn.Dropout2d: 2,
    nn.Dropout3d: 3,
}
LIFTED: dict[type[nn.Module], str] = {
    **{kind: "p" for kind in _DROPOUT_DIMS},
    nn.LeakyReLU: "negative_slope",
}


class MemberBatchNorm(nn.Module):
    """`nn.BatchNorm1d/2d/3d` (tracking running statistics, float `momentum`) with `momentum`
    as a buffer, and `eps` too when `eps_per_member`: the same normalisation, running-statistics
    update (unbiased batch variance, weight `momentum` for the newest batch) and parameter and
    buffer names, so a state dict of the original loads into it, less the new buffers.

    With one `eps` for the whole stack, torch's own kernel normalises (and, under a pack on a
    CPU, `packing._cpu_ops`'s packed one): given momentum 1 it leaves the batch's statistics
    in the buffers it is passed, and each member's momentum then moves its running buffers
    towards them (`lerp`), which is the same update. A per-member `eps` cannot be given to the
    kernel, so then the statistics are computed in plain tensor ops, about twice the cost.
    """

    weight: nn.Parameter | None
    bias: nn.Parameter | None
    running_mean: torch.Tensor
    running_var: torch.Tensor
    num_batches_tracked: torch.Tensor
    momentum: torch.Tensor
    eps: torch.Tensor | float

    def __init__(
        self, original: nn.modules.batchnorm._BatchNorm, *, eps_per_member: bool = False
    ) -> None:
        super().__init__()
        if not batchnorm_liftable(original):
            raise ValueError(
                f"{type(original).__name__} with momentum={original.momentum!r} and "
                f"track_running_stats={original.track_running_stats} has no per-member twin"
            )
        self.kind = type(original).__name__  # for messages and the signature
        self.num_features = original.num_features
        self.affine = original.affine
        self._input_dims = _BATCHNORM_INPUT_DIMS[type(original)]
        # The same tensors: the network was built (and initialised) already.
        self.register_parameter("weight", original.weight)
        self.register_parameter("bias", original.bias)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, getattr(original, name))
        momentum = float(original.momentum)  # type: ignore[arg-type]  # liftable: a float
        self.register_buffer("momentum", self.running_mean.new_tensor(momentum))  # its dtype
        if eps_per_member:
            self.register_buffer("eps", self.running_mean.new_tensor(float(original.eps)))
        else:
            self.eps = float(original.eps)  # a plain attribute: members of a stack share it
        self.train(original.training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() not in self._input_dims:
            dims = " or ".join(f"{d}D" for d in self._input_dims)
            raise ValueError(f"{self.kind}: expected {dims} input (got {x.dim()}D input)")
        if self.training and x.numel() // x.shape[1] <= 1:
            raise ValueError(
                f"{self.kind}: expected more than 1 value per channel when training, "
                f"got input size {tuple(x.shape)}"
            )
        if isinstance(self.eps, float):
            return self._through_the_kernel(x, self.eps)
        return self._in_tensor_ops(x, self.eps)

    def _through_the_kernel(self, x: torch.Tensor, eps: float) -> torch.Tensor:
        if not self.training:
            return functional.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, eps
            )
        self.num_batches_tracked.add_(1)
        # The kernel writes the batch's statistics into these (autograd keeps them for the
        # backward, so not into the running buffers, which are moved in place below).
        batch = (torch.zeros_like(self.running_mean), torch.zeros_like(self.running_var))
        y = functional.batch_norm(x, *batch, self.weight, self.bias, True, 1.0, eps)
        with torch.no_grad():
            for running, new in zip((self.running_mean, self.running_var), batch, strict=True):
                running.add_((new - running) * self.momentum)  # lerp, which vmap lacks
        return y

    def _in_tensor_ops(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        shape = (1, -1, *(1,) * (x.dim() - 2))
        # Statistics in float32 at least, as torch's kernels accumulate under autocast.
        wide = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
        if self.training:
            count = x.numel() // x.shape[1]
            var, mean = torch.var_mean(wide, dim=[0, *range(2, x.dim())], correction=0)
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                keep = 1 - self.momentum
                self.running_mean.mul_(keep).add_(mean.detach() * self.momentum)
                unbiased = var.detach() * (count / (count - 1))
                self.running_var.mul_(keep).add_(unbiased * self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = torch.rsqrt(var + eps)
        if self.weight is not None:
            scale = scale * self.weight
        y = (wide - mean.view(shape)) * scale.view(shape)
        if self.bias is not None:
            y = y + self.bias.view(shape)
        return y.to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.kind}, {self.num_features}, affine={self.affine}"


# The BatchNorm attributes a twin can hold per member; "eps" only beside "momentum".
BATCHNORM_LIFTED = ("momentum", "eps")

_BATCHNORM_INPUT_DIMS: dict[type[nn.Module], tuple[int, ...]] = {
    nn.BatchNorm1d: (2, 3),
    nn.BatchNorm2d: (4,),
    nn.BatchNorm3d: (5,),
}


def batchnorm_liftable(module: nn.Module) -> bool:
    """Whether `module` is a BatchNorm whose `momentum` and `eps` a twin can hold per member:
    exactly `nn.BatchNorm1d/2d/3d` (a subclass may read them in its own forward) that tracks
    running statistics with an exponential average (`momentum=None`, a cumulative average,
    stays as it is)."""
    return (
        type(module) in _BATCHNORM_INPUT_DIMS
        and getattr(module, "track_running_stats", False)
        and isinstance(getattr(module, "momentum", None), float)
    )


def batchnorm_per_member(module: nn.Module) -> tuple[str, ...]:
    """The BatchNorm attributes `module`'s twins hold per member: (), ("momentum",) or
    ("momentum", "eps"); what a stack records so that a restarted trial lifts the same."""
    for sub in module.modules():
        if isinstance(sub, MemberBatchNorm):
            return BATCHNORM_LIFTED[:1] if isinstance(sub.eps, float) else BATCHNORM_LIFTED
    return ()


def lift_batchnorm(module: nn.Module, *, eps_per_member: bool = False) -> nn.Module:
    """`module` with every `batchnorm_liftable` BatchNorm replaced, in place, by its
    `MemberBatchNorm` twin (the root itself too: the result is returned)."""

    def twin(norm: nn.Module) -> nn.Module:
        return MemberBatchNorm(norm, eps_per_member=eps_per_member)  # type: ignore[arg-type]

    if batchnorm_liftable(module):
        return twin(module)
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if batchnorm_liftable(child):
                setattr(parent, name, twin(child))
    return module


def lift_attributes(module: nn.Module, seed: int = 0) -> nn.Module:
    """`module` with every module of a `LIFTED` type replaced, in place, by its per-member twin
    (the root itself too: the result is returned). `seed` seeds the dropout masks."""
    salt = 0

    def lifted(sub: nn.Module) -> nn.Module | None:
        nonlocal salt
        kind = type(sub)
        if kind in _DROPOUT_DIMS:
            salt += 1
            twin: nn.Module = MemberDropout(
                float(sub.p),  # type: ignore[arg-type]
                dims=_DROPOUT_DIMS[kind],
                salt=salt,
                seed=seed,
            )
        elif kind is nn.LeakyReLU:
            twin = MemberLeakyReLU(float(sub.negative_slope))  # type: ignore[arg-type]
        else:
            return None
        twin.train(sub.training)
        return twin

    root = lifted(module)
    if root is not None:
        return root
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            twin = lifted(child)
            if twin is not None:
                setattr(parent, name, twin)
    return module
