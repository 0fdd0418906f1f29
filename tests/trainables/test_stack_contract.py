"""The contract every `Stack` keeps, run against each implementation (as optuna/testing runs one
suite against every sampler): a new kind of stack is added to `KINDS` and must pass it all.

- float64 exactness: each member's epochs equal its unpacked `run_training`;
- a checkpoint (`state_dict`, through `torch.save`, into a freshly built stack) continues
  bit-identically;
- `restack` drops rows without changing the training of the rows kept;
- a member whose numbers stop being finite does not disturb the others, and once restacked
  out (how a diverged member is frozen) leaves no trace in the rows kept.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from trainables import Dataset, HParams, build_state, load_dataset, run_training
from trainables.packing import FuncStack, MLPStack, PackMember, Stack, StackedData


def _user_mlp(data: Dataset) -> nn.Module:
    """A user's network with BatchNorm before the activation and no bias in the normalised
    layer, as a user would write it."""
    return nn.Sequential(
        nn.Linear(data.n_features, 10, bias=False),
        nn.BatchNorm1d(10, momentum=0.2),
        nn.ReLU(),
        nn.Linear(10, data.n_classes),
    )


@dataclass(frozen=True)
class Kind:
    """How to build one kind of stack, and the same members as a `PackedRun` would."""

    name: str
    network: Callable[[Dataset], nn.Module] | None

    def build(self, hparams: Sequence[HParams], seeds: Sequence[int], data: Dataset) -> Stack:
        rows = list(range(len(hparams)))
        if self.network is None:
            return MLPStack.build(rows, list(hparams), list(seeds), [0] * len(rows), [data])
        networks = [self.network] * len(rows)
        return FuncStack.build(
            rows, list(hparams), list(seeds), [0] * len(rows), [data], networks, "contract"
        )

    def member(self, hp: HParams, seed: int, data: Dataset) -> PackMember:
        key = None if self.network is None else self.name
        return PackMember(hp, seed, data, self.network, key)


KINDS = [Kind("mlp", None), Kind("func", _user_mlp)]

# One shape group: every optimizer, a schedule, weight decay; widths differ for the MLP.
MEMBERS: list[tuple[HParams, int]] = [
    (HParams(lr=0.1, beta=0.95, weight_decay=1e-4, hidden=16, batch_size=128), 0),
    (HParams(lr=0.05, beta=0.8, hidden=8, lr_decay="exponential", decay_rate=0.2,
             batch_size=128), 1),
    (HParams(lr=0.3, beta=0.9, hidden=12, batch_size=128), 2),
]  # fmt: skip


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("digits", seed=0, dtype=torch.float64)


def _epochs(stack: Stack, stacked: StackedData, epochs: int) -> list[list[tuple[float, ...]]]:
    """Each epoch's (train loss, val loss, correct count) per row."""
    out = []
    for _ in range(epochs):
        train = stack.train_epoch(stacked).tolist()
        correct, total = stack.evaluate_counts(stacked)
        out.append(
            [
                (t, v, c)
                for t, v, c in zip(
                    train, (total / stacked.n_val).tolist(), correct.tolist(), strict=True
                )
            ]
        )
    return out


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_float64_members_equal_their_unpacked_runs(kind: Kind, data: Dataset) -> None:
    hparams, seeds = [hp for hp, _ in MEMBERS], [s for _, s in MEMBERS]
    stack = kind.build(hparams, seeds, data)
    packed = _epochs(stack, StackedData.from_datasets([data]), 2)
    for row, (hp, seed) in enumerate(MEMBERS):
        state = build_state(hp, data, seed=seed, network=kind.network)
        alone = run_training(hp, data, epochs=2, seed=seed, state=state)
        for epoch, result in enumerate(alone):
            train, val, correct = packed[epoch][row]
            assert train == pytest.approx(result.train_loss, abs=1e-10)
            assert val == pytest.approx(result.val_loss, abs=1e-10)
            # Counts, not accuracies: a division may round differently on another device.
            assert correct == round(result.val_accuracy * data.x_val.shape[0])


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_checkpoint_continues_bit_identically(kind: Kind, data: Dataset) -> None:
    hparams, seeds = [hp for hp, _ in MEMBERS], [s for _, s in MEMBERS]
    stacked = StackedData.from_datasets([data])
    whole = _epochs(kind.build(hparams, seeds, data), stacked, 3)

    first = kind.build(hparams, seeds, data)
    before = _epochs(first, stacked, 2)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = kind.build(hparams, seeds, data)  # a restarted trial builds afresh, then loads
    resumed.load_state_dict(torch.load(buffer, weights_only=True), epoch=first.epoch)

    assert before + _epochs(resumed, stacked, 1) == whole


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_saved_stack_is_refused_for_other_members(kind: Kind, data: Dataset) -> None:
    hparams, seeds = [hp for hp, _ in MEMBERS], [s for _, s in MEMBERS]
    saved = kind.build(hparams, seeds, data).state_dict()
    other = kind.build(hparams[:2], seeds[:2], data)
    with pytest.raises(ValueError, match="cannot be loaded"):
        other.load_state_dict(saved, epoch=0)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_restack_keeps_the_rows_training_as_before(kind: Kind, data: Dataset) -> None:
    hparams, seeds = [hp for hp, _ in MEMBERS], [s for _, s in MEMBERS]
    stacked = StackedData.from_datasets([data])
    whole = _epochs(kind.build(hparams, seeds, data), stacked, 2)

    stack = kind.build(hparams, seeds, data)
    first = _epochs(stack, stacked, 1)
    kept = Stack.restack([(stack, [2, 0])])  # the widest MLP member leaves: padding trimmed
    assert type(kept) is type(stack)
    assert kept.members == [2, 0] and kept.epoch == stack.epoch
    second = _epochs(kept, stacked, 1)

    assert first == whole[:1]
    _assert_close(second[0], [whole[1][2], whole[1][0]])


def _assert_close(got: Sequence[tuple[float, ...]], want: Sequence[tuple[float, ...]]) -> None:
    """Losses to float64 rounding (another stack size may pick other kernels), counts exact."""
    assert len(got) == len(want)
    for (train, val, correct), (train_w, val_w, correct_w) in zip(got, want, strict=True):
        assert train == pytest.approx(train_w, abs=1e-10)
        assert val == pytest.approx(val_w, abs=1e-10)
        assert correct == correct_w


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_member_gone_non_finite_leaves_the_others_untouched(kind: Kind, data: Dataset) -> None:
    """Nothing reduces across members: NaN weights in one row change no other row's numbers
    (`PackedRun` then drops the row: tests/trainables/test_packed.py)."""
    hparams, seeds = [hp for hp, _ in MEMBERS], [s for _, s in MEMBERS]
    stacked = StackedData.from_datasets([data])
    clean = _epochs(kind.build(hparams, seeds, data), stacked, 2)

    poisoned = kind.build(hparams, seeds, data)
    with torch.no_grad():
        for view in poisoned.layout.views(poisoned.params.detach()).values():
            view[1] = math.nan
    got = _epochs(poisoned, stacked, 2)

    for epoch in range(2):
        assert not math.isfinite(got[epoch][1][0]) and not math.isfinite(got[epoch][1][1])
        assert got[epoch][0] == clean[epoch][0] and got[epoch][2] == clean[epoch][2]


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.name)
def test_a_diverged_member_restacked_out_leaves_no_trace(kind: Kind, data: Dataset) -> None:
    """Divergence freezes a member as `PackedRun.drop` does: its row is restacked out, and the
    rows kept train on as in a stack where nothing diverged (no NaN carried over in the
    parameters, the optimizer state or the BatchNorm statistics)."""
    hparams, seeds = [hp for hp, _ in MEMBERS], [s for _, s in MEMBERS]
    stacked = StackedData.from_datasets([data])
    clean = _epochs(kind.build(hparams, seeds, data), stacked, 2)

    poisoned = kind.build(hparams, seeds, data)
    with torch.no_grad():
        for view in poisoned.layout.views(poisoned.params.detach()).values():
            view[1] = math.nan
    diverged = _epochs(poisoned, stacked, 1)[0]
    assert not math.isfinite(diverged[1][0])
    kept = Stack.restack([(poisoned, [0, 2])])
    assert kept.members == [0, 2]

    _assert_close(_epochs(kept, stacked, 1)[0], [clean[1][0], clean[1][2]])
