"""Packed training: many configurations trained together, each as if it were trained alone.

Members are grouped by what changes tensor shapes or the update rule (batch size, depth,
BatchNorm on/off, optimizer); each group is trained as stacks of at most `stack_size`
members (see `_stack`). Every epoch, each member's result is the `EpochResult` its
unpacked `run_training` would produce, up to floating-point rounding. A member whose loss is
no longer finite is reported diverged and removed from its stack; the caller can stop members
after any epoch. Removed members cost nothing from the next epoch on: their rows are
compacted away and the padding is trimmed to the widest member left.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import torch

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._lifted import BATCHNORM_LIFTED, lift_batchnorm
from trainables._network_signature import network_signature
from trainables._train import EpochResult, Network, initial_model
from trainables.packing._data import StackedData
from trainables.packing._func_stack import FuncStack
from trainables.packing._groups import default_stack_size, pack_group, stack_sizes
from trainables.packing._malloc import keep_freed_memory
from trainables.packing._memory import device_memory, member_memory, memory_cap
from trainables.packing._mlp_stack import MLPStack
from trainables.packing._stack import Stack

__all__ = ["OnEpoch", "PackMember", "PackedRun", "run_packed_training"]

logger = logging.getLogger(__name__)
T = TypeVar("T")

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
    precision: str = "fp32"  # shared by a pack; see `_train.autocast`


def member_group(member: PackMember) -> Hashable:
    return pack_group(member.hparams, None if member.network is None else member.network_key)


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
    def start(
        cls,
        members: Sequence[PackMember],
        *,
        stack_size: int | None = None,
        memory_share: float = 1.0,
    ) -> PackedRun:
        """Fresh members, grouped by shape and split into stacks of at most `stack_size`
        (default: `default_stack_size` of their device). On a GPU, a user network's stacks
        are also cut to what the device's free memory holds (`_memory`), of which this pack
        may use `memory_share` (its fraction of a shared GPU)."""
        datasets, data, data_index, stack_size = _prepare(members, stack_size)
        memory = device_memory(datasets[0].device)
        stacks: list[Stack] = []
        for indices in _groups(members).values():
            if members[indices[0]].network is None:
                stacks += [
                    _new_stack(members, chunk, datasets, data_index)
                    for chunk in _chunks(indices, stack_size)
                ]
                continue
            built = {i: _initial(members[i], datasets[data_index[i]]) for i in indices}
            by_structure: dict[Hashable, list[int]] = {}
            for i in indices:
                signature = network_signature(built[i][0], batchnorm_per_member=BATCHNORM_LIFTED)
                by_structure.setdefault(signature, []).append(i)
            if len(by_structure) > 1:
                logger.info("a pack group builds %d network structures", len(by_structure))
            for same in by_structure.values():
                lifted = _differing_batchnorm(built[i][0] for i in same)
                if lifted:  # held per member instead, in every stack of these members
                    built.update({i: _lifted(built[i], lifted) for i in same})
                size = stack_size
                if memory is not None:
                    size = _memory_bound(members, same, built, datasets, data_index, size,
                                         memory, memory_share)  # fmt: skip
                stacks += [
                    _new_stack(members, chunk, datasets, data_index, built)
                    for chunk in _chunks(same, size)
                ]
        return cls(members, stacks, data, stack_size)

    @classmethod
    def from_state(
        cls,
        members: Sequence[PackMember],
        saved: Mapping[str, Any],
        *,
        stack_size: int | None = None,
    ) -> PackedRun:
        """The run `state_dict` saved, for the same `members` (same order) it was started with:
        each saved stack is built afresh for its rows, then loaded."""
        datasets, data, data_index, stack_size = _prepare(members, stack_size)
        epoch = int(saved["epoch"])
        stacks: list[Stack] = []
        for state in saved["stacks"]:
            rows = [int(m) for m in state["members"]]
            if any(not 0 <= m < len(members) for m in rows):
                raise ValueError(
                    f"the saved pack has members {rows}, but this pack has {len(members)}"
                )
            built = None
            lifted = tuple(state.get("batchnorm_per_member", ()))  # as `start` built them
            if lifted:
                built = {
                    i: _lifted(_initial(members[i], datasets[data_index[i]]), lifted) for i in rows
                }
            stack = _new_stack(members, rows, datasets, data_index, built)
            stack.load_state_dict(state, epoch)
            stacks.append(stack)
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
        """The epoch reached and every stack's state (see `Stack.state_dict`)."""
        return {"epoch": self.epoch, "stacks": [stack.state_dict() for stack in self.stacks]}


def _new_stack(
    members: Sequence[PackMember],
    rows: list[int],
    datasets: Sequence[Dataset],
    data_index: list[int],
    built: Mapping[int, tuple[torch.nn.Module, torch.Generator]] | None = None,
) -> Stack:
    """A fresh stack of `members[rows]` (one group): the built-in MLP's hand-written stack, or
    the torch.func stack of a user's network (from the networks in `built` when given)."""
    hparams = [members[i].hparams for i in rows]
    seeds = [members[i].seed for i in rows]
    index = [data_index[i] for i in rows]
    precision = members[rows[0]].precision
    if members[rows[0]].network is None:
        if precision != "fp32":
            raise ValueError(
                f"the built-in MLP's packed step is written for float32, not {precision}: "
                "train it with pack: 1, or pack a model factory"
            )
        return MLPStack.build(rows, hparams, seeds, index, datasets)
    if built is None:
        built = {i: _initial(members[i], datasets[data_index[i]]) for i in rows}
    return FuncStack.from_models(
        rows,
        hparams,
        [built[i][0] for i in rows],
        [built[i][1] for i in rows],
        index,
        member_group(members[rows[0]]),
        precision=precision,
    )


def _memory_bound(
    members: Sequence[PackMember],
    same: list[int],
    built: Mapping[int, tuple[torch.nn.Module, torch.Generator]],
    datasets: Sequence[Dataset],
    data_index: list[int],
    stack_size: int | None,
    memory: tuple[int, int],
    share: float,
) -> int | None:
    """`stack_size`, lowered to what the device's memory holds for these members."""
    first = same[0]
    throwaway = copy.deepcopy(built[first][0])  # measuring moves its running statistics
    member = member_memory(throwaway, members[first].hparams, datasets[data_index[first]])
    cap = memory_cap(member, len(members), memory, share)
    if cap is not None and cap < len(same) and (stack_size is None or cap < stack_size):
        logger.info(
            "stacks of at most %d members: %.1f MB of state and %.1f MB of activations a "
            "member, %.1f GB free of %.1f GB (share %g)", cap, member.state / 1e6,
            member.activations / 1e6, memory[0] / 1e9, memory[1] / 1e9, share,
        )  # fmt: skip
        return cap
    return stack_size


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
    if datasets[0].device.type == "cpu":
        keep_freed_memory()  # a step's fresh tensors would page-fault in every step
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


def _differing_batchnorm(models: Iterable[torch.nn.Module]) -> tuple[str, ...]:
    """Which BatchNorm attributes of these networks (of one structure, those left out) differ:
    (), ("momentum",), or ("momentum", "eps") when eps does, which costs the twin more."""
    models = list(models)
    if len({network_signature(m) for m in models}) == 1:
        return ()
    momentum = BATCHNORM_LIFTED[:1]
    by_eps = {network_signature(m, batchnorm_per_member=momentum) for m in models}
    return BATCHNORM_LIFTED if len(by_eps) > 1 else momentum


def _lifted(
    built: tuple[torch.nn.Module, torch.Generator], lifted: tuple[str, ...]
) -> tuple[torch.nn.Module, torch.Generator]:
    model, generator = built
    return lift_batchnorm(model, eps_per_member="eps" in lifted), generator


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
        by_group.setdefault((type(stack), stack.group), []).append(stack)
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
            parts: dict[int, tuple[Stack, list[int]]] = {}
            for stack, row in chunk:
                parts.setdefault(id(stack), (stack, []))[1].append(row)
            kept.append(Stack.restack(list(parts.values())))
    return kept
