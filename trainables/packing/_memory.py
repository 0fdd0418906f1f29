"""How many members of a user's network fit in one stack on a GPU.

A pack trains its stacks one after another, so the GPU must hold every member's weights and
optimizer state, but the activations of one stack only. The worked example's CNN needs a few
hundred kilobytes a member and 512 members fit anywhere; a user's ResNet at batch 64 needs
gigabytes, and 512 of them in one stack would fail with CUDA's out-of-memory error half-way
through a sweep. So on a GPU a pack measures one member, asks the device what is free, and
cuts its stacks to what fits (`PackedRun.start`).

A member is measured, not guessed: one forward and loss of a freshly built member at the
pack's batch size, counting every tensor autograd saves for the backward (each one once),
plus the logits, weights, gradients and optimizer moments. The backward's temporaries are of
the order of the saved activations, hence `ACTIVATION_FACTOR`. The budget is the free memory,
at most the pack's share of the GPU when packs share it, times `USABLE_FRACTION` (allocator
fragmentation, cuDNN and cuBLAS workspaces, CUDA graphs' pools).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional

from trainables._data import Dataset
from trainables._hparams import HParams

__all__ = [
    "ACTIVATION_FACTOR",
    "USABLE_FRACTION",
    "MemberMemory",
    "device_memory",
    "member_memory",
    "memory_cap",
]

ACTIVATION_FACTOR = 2.0  # saved activations, and the backward's temporaries of their size
USABLE_FRACTION = 0.8
_MOMENTS = {"sgd": 0, "momentum": 1, "adam": 2}


@dataclass(frozen=True)
class MemberMemory:
    """What one member costs: `state` for as long as the pack lives (weights, gradients,
    moments, buffers), `activations` while its stack steps (with `ACTIVATION_FACTOR`)."""

    state: int
    activations: int


def member_memory(network: nn.Module, hp: HParams, data: Dataset) -> MemberMemory:
    """One member of `network` with optimizer `hp.optimizer`, stepping at `hp.batch_size`.
    `network` is run once in training mode; its running statistics move, so pass a
    throwaway member."""
    saved_bytes: dict[tuple[int, int, tuple[int, ...]], int] = {}

    def keep(tensor: torch.Tensor) -> torch.Tensor:
        # A tensor saved twice (an input kept by two ops) is held once. The bytes of the
        # tensor, not of its storage: the input batch is a view into the whole dataset.
        key = (
            tensor.untyped_storage().data_ptr(),
            int(tensor.storage_offset()),
            tuple(tensor.shape),
        )
        saved_bytes[key] = tensor.numel() * tensor.element_size()
        return tensor

    batch = min(hp.batch_size, data.x_train.shape[0])
    x, y = data.x_train[:batch], data.y_train[:batch]
    was_training = network.training
    network.train(True)
    try:
        with torch.autograd.graph.saved_tensors_hooks(keep, lambda tensor: tensor):
            logits = network(x)
            functional.cross_entropy(logits, y)
    finally:
        network.train(was_training)
    saved = sum(saved_bytes.values()) + logits.numel() * logits.element_size()
    weights = sum(p.numel() * p.element_size() for p in network.parameters())
    buffers = sum(b.numel() * b.element_size() for b in network.buffers())
    state = weights * (2 + _MOMENTS.get(hp.optimizer, 2)) + buffers
    return MemberMemory(state, int(ACTIVATION_FACTOR * saved))


def device_memory(device: torch.device) -> tuple[int, int] | None:
    """(free, total) bytes of `device`; None for a CPU, whose stacks are bounded otherwise."""
    if device.type != "cuda":
        return None
    free, total = torch.cuda.mem_get_info(device)
    return int(free), int(total)


def memory_cap(
    member: MemberMemory, members: int, memory: tuple[int, int] | None, share: float = 1.0
) -> int | None:
    """The most of a pack's `members` one stack may hold on a device with `memory` (free,
    total) bytes, of which this pack may use `share` (a fractional GPU): every member's state
    stays resident, one stack's activations come on top. None: no bound from memory (a CPU).
    At least 1: a member that does not fit alone fails as it would unpacked."""
    if memory is None:
        return None
    if members < 1:
        raise ValueError(f"members must be >= 1, but got {members}")
    if not 0 < share <= 1:
        raise ValueError(f"share must be in (0, 1], but got {share}")
    free, total = memory
    budget = min(free, total * share) * USABLE_FRACTION - members * member.state
    return max(1, int(budget // max(1, member.activations)))
