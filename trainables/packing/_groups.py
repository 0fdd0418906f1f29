"""Which configurations train together, and in how many stacks and packs.

Members of one stack must share whatever changes tensor shapes or the update rule; the sizes
here trade per-step overhead (bigger is better) against caches on a CPU and against keeping
every trial slot busy.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass

import torch

from trainables._hparams import HParams

__all__ = [
    "CPU_PACK_LIMIT",
    "CPU_STACK_SIZE",
    "CUDA_PACK_LIMIT",
    "GPU_SATURATING_MEMBERS",
    "MAX_PACKS_PER_GPU",
    "GpuPlan",
    "default_stack_size",
    "pack_group",
    "pack_size_auto",
    "plan_gpu_packs",
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
# A GPU pack of small networks is launch-bound below a few hundred members (the worked
# example's CNN: 168x one configuration at a time with 256 members on an H200), so a GPU is
# shared by several packs only when each still holds this many; packs that share a GPU run
# side by side and fill each other's launch gaps, at most this many per GPU.
GPU_SATURATING_MEMBERS = 256
MAX_PACKS_PER_GPU = 4


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


@dataclass(frozen=True)
class GpuPlan:
    """How one shape group of `pack: auto` is laid over a cluster's GPUs."""

    packs: int  # Ray trials
    members: int  # configurations in the largest pack
    gpu_share: float  # the GPU fraction each pack trial asks for
    per_gpu: int  # packs that run side by side on one GPU
    why: str  # the plan in words, for `validate --explain` and the run's log

    def describe(self) -> str:
        share = "a whole GPU" if self.gpu_share == 1 else f"{self.gpu_share:g} GPU"
        return (
            f"{self.packs} pack{'s' if self.packs != 1 else ''} of up to {self.members}, "
            f"{share} each, {self.per_gpu} per GPU at once ({self.why})"
        )


def plan_gpu_packs(
    group_size: int,
    *,
    gpus: float,
    cpus: float,
    cpu_per_trial: float,
    member_cap: int | None = None,
) -> GpuPlan:
    """Packs, members each and the GPU share each asks for, so that the cluster's GPUs are
    all busy and none runs packs in series while it idles.

    - The group is spread over every GPU (`gpus`, whole GPUs of the cluster as it is now).
    - A GPU takes several packs side by side (fractional `gpu` per pack trial) when each still
      has `GPU_SATURATING_MEMBERS`, up to `MAX_PACKS_PER_GPU`, and when the node's CPUs can
      feed them (`cpu_per_trial` each: a pack's step is dispatched from its CPU).
    - A pack holds at most `CUDA_PACK_LIMIT` members, and a GPU at most `member_cap` at once
      when a member's memory and the GPU's are known; beyond that the packs run in waves.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, but got {group_size}")
    devices = max(1, int(gpus))
    per_device = math.ceil(group_size / devices)
    limit = CUDA_PACK_LIMIT if member_cap is None else max(1, min(CUDA_PACK_LIMIT, member_cap))
    needed = math.ceil(per_device / limit)  # packs one GPU must take, in waves if need be
    side_by_side = min(MAX_PACKS_PER_GPU, per_device // GPU_SATURATING_MEMBERS)
    fed = max(1, math.floor(cpus / devices / cpu_per_trial)) if cpu_per_trial > 0 else needed
    per_gpu_packs = max(needed, min(side_by_side, fed), 1)
    members = math.ceil(per_device / per_gpu_packs)
    at_once = min(per_gpu_packs, fed, MAX_PACKS_PER_GPU)
    if member_cap is not None:
        at_once = max(1, min(at_once, member_cap // members))
    packs = min(group_size, per_gpu_packs * devices)
    reasons = [f"{group_size} configurations over {devices} GPU{'s' if devices != 1 else ''}"]
    if at_once > 1:
        reasons.append(f"{members} members per pack still fill a GPU's kernels")
    if per_gpu_packs > at_once:
        reasons.append(f"{per_gpu_packs - at_once} more per GPU wait for a slot")
    return GpuPlan(packs, members, 1.0 / at_once, at_once, "; ".join(reasons))
