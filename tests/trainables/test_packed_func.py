"""A user's network packed through torch.func: each member trains as its unpacked twin would
(float64: to 1e-9), with its own BatchNorm statistics, and a pack saved mid-run continues
bit-identically."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import nn

from trainables import (
    Dataset,
    EpochResult,
    FileSource,
    HParams,
    PackMember,
    build_state,
    load_dataset,
    load_factory,
    run_packed_training,
    run_training,
)
from trainables.packing import (
    FuncStack,
    PackedRun,
)

EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"
IMAGES = FileSource(str(EXAMPLES / "data" / "digits_images.npz")).to_config()


def _cnn(channels: int = 4) -> tuple[object, object]:
    factory = load_factory("digits_cnn:make", EXAMPLES)
    return (lambda d: factory.build(d.input_shape, d.n_classes, {"channels": channels})), (
        "cnn",
        channels,
    )


def _mlp(data: Dataset) -> nn.Module:
    """A user's MLP with BatchNorm: flat input, BatchNorm1d before the activation."""
    width = 12
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(data.n_features, width, bias=False),
        nn.BatchNorm1d(width, momentum=0.2),
        nn.Tanh(),
        nn.Linear(width, data.n_classes),
    )


# Every optimizer, a schedule of each kind, weight decay, and two data splits (seeds).
CONFIGS: list[tuple[HParams, int]] = [
    (HParams(lr=0.1, beta=0.95, weight_decay=1e-4, batch_size=64), 0),
    (HParams(lr=0.05, beta=0.8, lr_decay="exponential", decay_rate=0.2, batch_size=64), 1),
    (HParams(lr=0.02, optimizer="sgd", batch_size=64, lr_decay="inverse_time", decay_rate=1.0), 0),
    (HParams(lr=0.01, optimizer="adam", weight_decay=1e-3, batch_size=64), 1),
    (HParams(lr=0.003, optimizer="adam", beta1=0.8, beta2=0.99, eps=1e-6, batch_size=64), 0),
]


def _data(dtype: torch.dtype, seeds: Sequence[int]) -> dict[int, Dataset]:
    return {s: load_dataset(IMAGES, seed=s, dtype=dtype) for s in seeds}


def _members(network, key, data: dict[int, Dataset]) -> list[PackMember]:
    return [PackMember(hp, seed, data[seed], network, key) for hp, seed in CONFIGS]


def _unpacked(network, data: dict[int, Dataset], epochs: int) -> list[list[EpochResult]]:
    runs = []
    for hp, seed in CONFIGS:
        state = build_state(hp, data[seed], seed=seed, network=network)
        runs.append(run_training(hp, data[seed], epochs=epochs, seed=seed, state=state))
    return runs


def _max_difference(a: Sequence[EpochResult], b: Sequence[EpochResult]) -> float:
    assert len(a) == len(b)
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        assert (x.epoch, x.diverged, x.lr) == (y.epoch, y.diverged, y.lr)
        for name in ("train_loss", "val_loss", "val_accuracy"):
            worst = max(worst, abs(getattr(x, name) - getattr(y, name)))
    return worst


@pytest.mark.parametrize("model", ["cnn", "mlp"])
def test_float64_packed_user_network_equals_unpacked_runs(model: str) -> None:
    data = _data(torch.float64, [0, 1])
    network, key = _cnn() if model == "cnn" else (_mlp, "mlp")
    epochs = 3

    packed = run_packed_training(_members(network, key, data), epochs=epochs, stack_size=3)
    alone = _unpacked(network, data, epochs)

    for p, a in zip(packed, alone, strict=True):
        assert len(p) == epochs
        assert _max_difference(p, a) < 1e-9


def test_members_keep_their_own_batchnorm_statistics_and_optimizer_groups() -> None:
    data = _data(torch.float64, [0, 1])
    network, key = _cnn()
    run = PackedRun.start(_members(network, key, data))
    # sgd, momentum and adam members cannot share an update rule: one stack per optimizer.
    assert sorted(len(s.members) for s in run.stacks) == [1, 2, 2]
    run.train_epoch()
    stack = next(s for s in run.stacks if len(s.members) == 2)
    assert isinstance(stack, FuncStack)
    means = [name for name in stack.buffers if name.endswith("running_mean")]
    assert means
    for name in means:
        first, second = stack.buffers[name]
        assert not torch.equal(first, second)  # each member saw its own batches
    counts = [b for n, b in stack.buffers.items() if n.endswith("num_batches_tracked")]
    assert counts and all(int(c) > 0 for b in counts for c in b)


def test_networks_with_different_keywords_never_share_a_stack() -> None:
    data = _data(torch.float64, [0, 1])
    narrow, narrow_key = _cnn(channels=4)
    wide, wide_key = _cnn(channels=6)
    members = [
        PackMember(CONFIGS[0][0], 0, data[0], narrow, narrow_key),
        PackMember(CONFIGS[0][0], 1, data[1], wide, wide_key),
    ]
    run = PackedRun.start(members)
    assert len(run.stacks) == 2


def _plain(data: Dataset) -> nn.Module:
    """No BatchNorm, so a learning rate far too large blows it up."""
    return nn.Sequential(
        nn.Linear(data.n_features, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
        nn.Linear(32, data.n_classes),
    )  # fmt: skip


def test_a_diverging_member_is_dropped_and_the_others_are_untouched() -> None:
    data = _data(torch.float64, [0, 1])
    members = _members(_plain, "plain", data)
    wild_hp = HParams(lr=10.0, optimizer="sgd", weight_decay=0.5, batch_size=64)
    wild = PackMember(wild_hp, 0, data[0], _plain, "plain")
    seen: list[dict[int, EpochResult]] = []

    results = run_packed_training(
        [*members, wild], epochs=2, stack_size=8, on_epoch=lambda e, r: seen.append(r)
    )

    assert results[-1][-1].diverged and len(results[-1]) == 1
    assert 5 in seen[0] and 5 not in seen[1]  # gone from epoch 2 on
    calm = run_packed_training(members, epochs=2, stack_size=8)
    for got, want in zip(results[:-1], calm, strict=True):
        assert _max_difference(got, want) < 1e-12  # another stack size, so not bit for bit


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_user_network_pack_continued_from_its_saved_state_ends_bit_identical(
    dtype: torch.dtype,
) -> None:
    data = _data(dtype, [0, 1])
    network, key = _cnn()
    members = _members(network, key, data)
    whole = PackedRun.start(members, stack_size=2)
    expected = [whole.train_epoch()]
    whole.drop({4})
    expected += [whole.train_epoch() for _ in range(2)]

    first = PackedRun.start(members, stack_size=2)
    before = [first.train_epoch()]
    first.drop({4})  # stopped before the save: the saved stacks are compacted ones
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = PackedRun.from_state(members, torch.load(buffer, weights_only=True), stack_size=2)
    after = [resumed.train_epoch() for _ in range(2)]

    assert repr(before[0]) == repr(expected[0])
    assert repr(after) == repr(expected[1:])


def _scaled(scale: float, channels: int = 4):  # type: ignore[no-untyped-def]
    """The worked example's CNN, its first convolution's initial weights scaled: a keyword
    that changes only initial values."""
    factory = load_factory("digits_cnn:make", EXAMPLES)

    def build(d: Dataset) -> nn.Module:
        net = factory.build(d.input_shape, d.n_classes, {"channels": channels})
        with torch.no_grad():
            next(iter(net.parameters())).mul_(scale)
        return net

    return build


def test_members_that_differ_only_in_initial_values_share_a_stack_and_train_as_alone() -> None:
    data = _data(torch.float64, [0, 1])
    hp = CONFIGS[0][0]
    builders = [_scaled(s) for s in (0.5, 1.0, 2.0)]
    members = [PackMember(hp, i % 2, data[i % 2], b, "scaled") for i, b in enumerate(builders)]

    run = PackedRun.start(members)
    assert [len(s.members) for s in run.stacks] == [3]
    packed = run_packed_training(members, epochs=2)

    for member, got in zip(members, packed, strict=True):
        assert member.network is not None
        state = build_state(hp, member.data, seed=member.seed, network=member.network)
        alone = run_training(hp, member.data, epochs=2, seed=member.seed, state=state)
        assert _max_difference(got, alone) < 1e-9


def test_a_group_key_that_misses_a_structural_difference_costs_a_stack_not_correctness() -> None:
    """The key says 'one network' but two widths are built: stacks split by structure, and
    stay split when a dropped member makes the run re-pack its stacks."""
    data = _data(torch.float64, [0])
    hp = CONFIGS[0][0]
    widths = [4, 6, 4, 6, 4]
    members = [PackMember(hp, i, data[0], _scaled(1.0, w), "one") for i, w in enumerate(widths)]

    run = PackedRun.start(members, stack_size=8)
    assert sorted(sorted(s.members) for s in run.stacks) == [[0, 2, 4], [1, 3]]
    first = run.train_epoch()
    run.drop({0})
    assert sorted(sorted(s.members) for s in run.stacks) == [[1, 3], [2, 4]]
    second = run.train_epoch()

    for i, member in enumerate(members):
        assert member.network is not None
        state = build_state(hp, member.data, seed=i, network=member.network)
        alone = run_training(hp, member.data, epochs=2, seed=i, state=state)
        got = [first[i]] + ([] if i == 0 else [second[i]])
        assert _max_difference(got, alone[: len(got)]) < 1e-9


def test_a_stack_refuses_members_that_build_different_networks() -> None:
    data = _data(torch.float64, [0])[0]
    hp = CONFIGS[0][0]
    networks = [_scaled(1.0, 4), _scaled(1.0, 6)]
    with pytest.raises(ValueError, match=r"builds another network than member 0 .*cannot share"):
        FuncStack.build([0, 1], [hp, hp], [0, 1], [0, 0], [data], networks, "g")
