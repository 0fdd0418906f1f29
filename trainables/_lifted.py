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
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LIFTED", "MemberDropout", "MemberLeakyReLU", "lift_attributes"]

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
