"""Which configurations train together, and in how many stacks and packs.

Members of one stack must share whatever changes tensor shapes or the update rule; the sizes
here trade per-step overhead (bigger is better) against caches on a CPU and against keeping
every trial slot busy.
"""

from __future__ import annotations

import math
from collections.abc import Hashable

import torch

from trainables._hparams import HParams

__all__ = [
    "CPU_PACK_LIMIT",
    "CPU_STACK_SIZE",
    "CUDA_PACK_LIMIT",
    "default_stack_size",
    "pack_group",
    "pack_size_auto",
    "shape_group",
    "stack_sizes",
]

# Members per stack on a CPU: enough that each step's batched matmuls dwarf the per-step
# overhead, few enough that a stack's weights, gradients and moments stay in the caches
# through a whole epoch (measured in docs/performance.md).
CPU_STACK_SIZE = 32
# Configurations per Ray trial by default (`pack: auto`); see `pack_size_auto`.
CPU_PACK_LIMIT = 128
CUDA_PACK_LIMIT = 512


def shape_group(hp: HParams) -> tuple[int, int, bool, str]:
    """The hyperparameters that members of one stack must share (width is padded instead)."""
    return (hp.batch_size, hp.depth, hp.batchnorm, hp.optimizer)


def pack_group(hp: HParams, network_key: Hashable = None) -> Hashable:
    """What members of one stack (and one pack) share: the built-in MLP's `shape_group`; for a
    user's network (`network_key` not None), its structure, batch size and optimizer.

    A user's network shares a stack only with networks of the same structure: a factory
    keyword may change what the forward pass does without changing a tensor shape (a dropout
    rate, an activation), and every member of a stack runs the code of one module.
    `TrialConfig.network_key` holds the keywords found to change it (`pack_by`).
    """
    if network_key is None:
        return shape_group(hp)
    return ("network", network_key, hp.batch_size, hp.optimizer)


def default_stack_size(device: torch.device | str) -> int | None:
    """The largest stack to train at once: bounded on a CPU (caches), unbounded on a GPU."""
    return CPU_STACK_SIZE if torch.device(device).type == "cpu" else None


def stack_sizes(total: int, limit: int | None) -> list[int]:
    """`total` members split into the fewest stacks of at most `limit`, sizes balanced."""
    if limit is None or total <= limit:
        return [total]
    count = math.ceil(total / limit)
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)


def pack_size_auto(device: torch.device | str, group_size: int, *, parallel_trials: int = 1) -> int:
    """How many configurations of one shape group to train per Ray trial (`pack: auto`).

    A pack amortises a trial's start-up cost (about a second with Ray's defaults) over its
    members, so bigger is better until the packs no longer keep every trial slot busy or one
    pack outgrows the device. The policy:

    - a pack holds at most 128 configurations on a CPU (trained as stacks of 32, see
      `default_stack_size`, so larger packs gain little) and 512 on a GPU, where small
      networks need hundreds of members per kernel before they stop being launch-bound;
    - the group is spread over at least `parallel_trials` packs (the trials that can run at
      once, e.g. granted CPUs / CPUs per trial) when it is large enough to fill them;
    - packs are balanced: 130 configurations on a CPU become packs of 65, not 128 and 2.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, but got {group_size}")
    if parallel_trials < 1:
        raise ValueError(f"parallel_trials must be >= 1, but got {parallel_trials}")
    limit = CPU_PACK_LIMIT if torch.device(device).type == "cpu" else CUDA_PACK_LIMIT
    packs = max(math.ceil(group_size / limit), min(parallel_trials, group_size))
    return math.ceil(group_size / packs)
