"""Whether two built networks can share one vectorized stack.

A stack runs one member's module (its code and its plain attributes) over every member's
stacked parameters and buffers. So two networks are interchangeable there exactly when their
modules have the same types, the same non-tensor attributes (a dropout rate, a stride, an
activation chosen by a keyword) and parameters and buffers of the same names, shapes and
dtypes; their values may differ. Comparing tensor shapes alone would put a dropout of 0.1 and
one of 0.5 in one stack, and train both at the template's rate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Hashable
from types import FunctionType, MethodType

import torch
from torch import nn

from trainables._lifted import batchnorm_liftable

__all__ = ["first_difference", "network_signature"]

# Addresses differ between two builds of the same network ("<function <lambda> at 0x7f..>").
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def network_signature(
    module: nn.Module, *, batchnorm_per_member: Collection[str] = ()
) -> tuple[Hashable, ...]:
    """What must be equal for two networks to share a stack; hashable, comparable.

    `batchnorm_per_member` ("momentum", and maybe "eps") leaves those attributes of the
    BatchNorms `lift_batchnorm` would lift out: what must be equal for a stack that lifts them.
    """
    parts: list[Hashable] = []
    for name, sub in module.named_modules():
        kind = f"{type(sub).__module__}.{type(sub).__qualname__}"
        skip = batchnorm_per_member if batchnorm_liftable(sub) else ()
        attrs = tuple(
            (key, _describe(value))
            for key, value in sorted(vars(sub).items())
            if not key.startswith("_") and key != "training" and key not in skip
        )
        parts.append(("module", name, kind, attrs))
    for name, param in module.named_parameters():
        parts.append(("parameter", name, tuple(param.shape), str(param.dtype)))
    for name, buffer in module.named_buffers():
        parts.append(("buffer", name, tuple(buffer.shape), str(buffer.dtype)))
    return tuple(parts)


def first_difference(a: tuple[Hashable, ...], b: tuple[Hashable, ...]) -> str:
    """The first entry where two signatures differ, for messages; '' when they are equal."""
    for left, right in zip(a, b, strict=False):
        if left != right:
            return f"{left!r} against {right!r}"
    if len(a) != len(b):
        longer = a if len(a) > len(b) else b
        return f"{longer[min(len(a), len(b))]!r} on one side only"
    return ""


def _describe(value: object) -> Hashable:
    """A plain attribute as something hashable that two builds of one network share."""
    if isinstance(value, torch.Tensor):
        # A plain tensor attribute (not a buffer) is read from the template by every member:
        # its values must match too.
        raw = value.detach().cpu().contiguous().reshape(-1).view(torch.uint8)  # any dtype
        digest = hashlib.sha256(raw.numpy().tobytes()).hexdigest()
        return ("tensor", tuple(value.shape), str(value.dtype), digest)
    if isinstance(value, FunctionType | MethodType):
        return ("function", value.__module__, value.__qualname__)
    if isinstance(value, int | float | str | bool | type(None)):
        return value
    if isinstance(value, tuple | list):
        return (type(value).__name__, tuple(_describe(v) for v in value))
    return _ADDRESS.sub("", repr(value))
