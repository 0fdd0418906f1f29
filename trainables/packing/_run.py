"""Packed training: many configurations trained together, each as if it were trained alone.

Members are grouped by what changes tensor shapes or the update rule (batch size, depth,
BatchNorm on/off, optimizer); each group is trained as stacks of at most `stack_size`
members (see `_packed_stack`). Every epoch, each member's result is the `EpochResult` its
unpacked `run_training` would produce, up to floating-point rounding. A member whose loss is
no longer finite is reported diverged and removed from its stack; the caller can stop members
after any epoch. Removed members cost nothing from the next epoch on: their rows are
compacted away and the padding is trimmed to the widest member left.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._network_signature import network_signature
from trainables._packed_func import FuncStack
from trainables._packed_stack import PackedStack, StackedData, stack_sizes
from trainables._train import EpochResult, Network, initial_model

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Members per stack on a CPU: enough that each step's batched matmuls dwarf the per-step
# overhead, few enough that a stack's weights, gradients and moments stay in the caches
# through a whole epoch (measured in docs/performance.md).
CPU_STACK_SIZE = 32
# Configurations per Ray trial by default (`pack: auto`); see `pack_size_auto`.
CPU_PACK_LIMIT = 128
CUDA_PACK_LIMIT = 512

OnEpoch = Callable[[int, Mapping[int, EpochResult]], Collection[int] | None]


@dataclass(frozen=True)
class PackMember:
    """One configuration of a pack: its hyperparameters, its seed and its own data split.

    A user's network comes with its builder and a `network_key`: members whose keys are equal
    are expected to build the same network (the same values of the factory keywords that
    change its structure), so they go into one pack. Within a pack, stacks are formed from
    the built networks themselves (`network_signature`), so a wrong key costs speed only.
    """

    hparams: HParams
    seed: int
    data: Dataset
    network: Network | None = None
    network_key: Hashable = None


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


def member_group(member: PackMember) -> Hashable:
    return pack_group(member.hparams, None if member.network is None else member.network_key)


Stack = PackedStack | FuncStack


def default_stack_size(device: torch.device | str) -> int | None:
    """The largest stack to train at once: bounded on a CPU (caches), unbounded on a GPU."""
    return CPU_STACK_SIZE if torch.device(device).type == "cpu" else None


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


class PackedRun:
    """A pack part-way through training: its stacks, the epoch reached and who is still in.

    `run_packed_training` drives one from start to end; the Ray adapter drives it epoch by
    epoch so that it can checkpoint between epochs (`state_dict`) and continue a restarted
    trial from the last checkpoint (`from_state`) bit-identically on a CPU.
    """

    def __init__(
        self,
        members: Sequence[PackMember],
        stacks: list[Stack],
        data: StackedData,
        stack_size: int | None,
        epoch: int = 0,
    ) -> None:
        self.members = members
        self.stacks = stacks
        self.epoch = epoch
        self._data = data
        self._stack_size = stack_size

    @classmethod
    def start(cls, members: Sequence[PackMember], *, stack_size: int | None = None) -> PackedRun:
        """Fresh members, grouped by shape and split into stacks of at most `stack_size`
        (default: `default_stack_size` of their device)."""
        datasets, data, data_index, stack_size = _prepare(members, stack_size)
        stacks: list[Stack] = []
        for group, indices in _groups(members).items():
            if members[indices[0]].network is None:
                for chunk in _chunks(indices, stack_size):
                    hparams = [members[i].hparams for i in chunk]
                    seeds = [members[i].seed for i in chunk]
                    rows = [data_index[i] for i in chunk]
                    stacks.append(PackedStack.build(chunk, hparams, seeds, rows, datasets))
                continue
            built = {i: _initial(members[i], datasets[data_index[i]]) for i in indices}
            by_structure: dict[Hashable, list[int]] = {}
            for i in indices:
                by_structure.setdefault(network_signature(built[i][0]), []).append(i)
            if len(by_structure) > 1:
                logger.info("a pack group builds %d network structures", len(by_structure))
            for same in by_structure.values():
                for chunk in _chunks(same, stack_size):
                    stacks.append(
                        FuncStack.from_models(
                            chunk,
                            [members[i].hparams for i in chunk],
                            [built[i][0] for i in chunk],
                            [built[i][1] for i in chunk],
                            [data_index[i] for i in chunk],
                            group,
                        )
                    )
        return cls(members, stacks, data, stack_size)

    @classmethod
    def from_state(
        cls,
        members: Sequence[PackMember],
        saved: Mapping[str, Any],
        *,
        stack_size: int | None = None,
    ) -> PackedRun:
        """The run `state_dict` saved, for the same `members` (same order) it was started with."""
        datasets, data, data_index, stack_size = _prepare(members, stack_size)
        epoch = int(saved["epoch"])
        stacks: list[Stack] = []
        for stack in saved["stacks"]:
            rows = [int(m) for m in stack["members"]]
            if any(not 0 <= m < len(members) for m in rows):
                raise ValueError(
                    f"the saved pack has members {rows}, but this pack has {len(members)}"
                )
            hparams = [members[m].hparams for m in rows]
            indices = [data_index[m] for m in rows]
            if members[rows[0]].network is None:
                stacks.append(PackedStack.from_state(stack, hparams, indices, datasets, epoch))
            else:
                seeds = [members[m].seed for m in rows]
                networks = [n for m in rows if (n := members[m].network) is not None]
                group = member_group(members[rows[0]])
                stacks.append(
                    FuncStack.from_state(
                        stack, hparams, seeds, indices, datasets, networks, group, epoch
                    )
                )
        return cls(members, stacks, data, stack_size, epoch)

    @property
    def active(self) -> list[int]:
        """Members still training, in stack order."""
        return [member for stack in self.stacks for member in stack.members]

    def train_epoch(self) -> dict[int, EpochResult]:
        """One more epoch of every active member; a diverged member is reported and dropped."""
        self.epoch += 1
        results: dict[int, EpochResult] = {}
        for stack in self.stacks:
            lrs = stack.learning_rates()
            train_loss = stack.train_epoch(self._data).tolist()
            val_loss, val_accuracy = (t.tolist() for t in stack.evaluate(self._data))
            for row, member in enumerate(stack.members):
                diverged = not (math.isfinite(train_loss[row]) and math.isfinite(val_loss[row]))
                if diverged:
                    logger.info("member %d diverged at epoch %d", member, self.epoch)
                results[member] = EpochResult(
                    self.epoch,
                    train_loss[row],
                    val_loss[row],
                    val_accuracy[row],
                    lrs[row],
                    diverged,
                )
        diverged_members = {member for member, result in results.items() if result.diverged}
        if diverged_members:
            self.drop(diverged_members)
        return results

    def drop(self, members: Collection[int]) -> None:
        """Stop training `members`: their rows leave the stacks, the rest are re-packed."""
        if members:
            self.stacks = _without(self.stacks, set(members), self._stack_size)

    def state_dict(self) -> dict[str, Any]:
        """The epoch reached and every stack's state (see `PackedStack.state_dict`)."""
        return {"epoch": self.epoch, "stacks": [stack.state_dict() for stack in self.stacks]}


def _distinct_datasets(members: Sequence[PackMember]) -> list[Dataset]:
    datasets: list[Dataset] = []
    for member in members:
        if not any(d is member.data for d in datasets):
            datasets.append(member.data)
    return datasets


def _prepare(
    members: Sequence[PackMember], stack_size: int | None
) -> tuple[list[Dataset], StackedData, list[int], int | None]:
    """The members' distinct datasets, stacked, each member's index into them, and the stack
    size to use."""
    if not members:
        raise ValueError("a pack needs at least one member")
    datasets = _distinct_datasets(members)
    data_index = [next(i for i, d in enumerate(datasets) if d is m.data) for m in members]
    if stack_size is None:
        stack_size = default_stack_size(datasets[0].device)
    return datasets, StackedData.from_datasets(datasets), data_index, stack_size


def _chunks(items: list[T], stack_size: int | None) -> list[list[T]]:
    """`items` in order, cut into the balanced stacks `stack_sizes` gives."""
    out, start = [], 0
    for size in stack_sizes(len(items), stack_size):
        out.append(items[start : start + size])
        start += size
    return out


def _initial(member: PackMember, data: Dataset) -> tuple[torch.nn.Module, torch.Generator]:
    return initial_model(member.hparams, data, seed=member.seed, network=member.network)


def _groups(members: Sequence[PackMember]) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for index, member in enumerate(members):
        groups.setdefault(member_group(member), []).append(index)
    return groups


def run_packed_training(
    members: Sequence[PackMember],
    *,
    epochs: int,
    on_epoch: OnEpoch | None = None,
    stack_size: int | None = None,
) -> list[list[EpochResult]]:
    """Train every member for `epochs` epochs, or until it diverges or `on_epoch` stops it.

    `on_epoch(epoch, results)` sees, after each epoch, the results of the members trained in
    it (keyed by index into `members`, diverged ones included) and returns the indices of
    the members to stop now (None: none). Returns each member's results, as `run_training`
    would. All members must share the split sizes, device and dtype of their datasets (same
    dataset and val_fraction). `stack_size` defaults to `default_stack_size(device)`.
    """
    if not members:
        return []
    run = PackedRun.start(members, stack_size=stack_size)
    results: list[list[EpochResult]] = [[] for _ in members]
    while run.stacks and run.epoch < epochs:
        epoch_results = run.train_epoch()
        for member, result in epoch_results.items():
            results[member].append(result)
        if on_epoch is not None:
            run.drop(set(on_epoch(run.epoch, epoch_results) or ()))
    return results


def _without(stacks: list[Stack], done: set[int], stack_size: int | None) -> list[Stack]:
    """The stacks minus the `done` members, each group re-split into balanced full stacks."""
    by_group: dict[Hashable, list[Stack]] = {}
    for stack in stacks:
        by_group.setdefault(_stack_group(stack), []).append(stack)
    kept: list[Stack] = []
    for group in by_group.values():
        if not any(member in done for stack in group for member in stack.members):
            kept += group
            continue
        rows = [
            (stack, row)
            for stack in group
            for row, member in enumerate(stack.members)
            if member not in done
        ]
        for chunk in _chunks(rows, stack_size) if rows else []:
            parts: dict[int, tuple[Any, list[int]]] = {}
            for stack, row in chunk:
                parts.setdefault(id(stack), (stack, []))[1].append(row)
            # Every stack of a group is of one kind: its own restack joins them.
            kept.append(type(group[0]).restack(list(parts.values())))
    return kept


def _stack_group(stack: Stack) -> Hashable:
    return shape_group(stack.hparams[0]) if isinstance(stack, PackedStack) else stack.group
