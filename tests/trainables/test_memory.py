"""On a GPU a pack cuts its stacks to what the device's memory holds (`packing/_memory.py`).

A CPU has no such bound, so the pack tests below hand `PackedRun.start` a device that reports
little free memory; cutting a pack into more stacks must not change any member's numbers.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from trainables import Dataset, HParams, load_dataset
from trainables.packing import PackedRun, PackMember
from trainables.packing._memory import MemberMemory, member_memory, memory_cap


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("digits", seed=0)


def _net(data: Dataset, width: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Linear(data.n_features, width, bias=False),
        nn.BatchNorm1d(width),
        nn.ReLU(),
        nn.Linear(width, data.n_classes),
    )


def _weights(network: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in network.parameters())


def test_a_members_state_counts_weights_gradients_and_moments(data: Dataset) -> None:
    network = _net(data)
    buffers = sum(b.numel() * b.element_size() for b in network.buffers())
    for optimizer, copies in (("sgd", 2), ("momentum", 3), ("adam", 4)):
        hp = HParams(batch_size=32, optimizer=optimizer)
        assert member_memory(network, hp, data).state == copies * _weights(network) + buffers


def test_activations_grow_with_the_batch_and_the_width(data: Dataset) -> None:
    small = member_memory(_net(data), HParams(batch_size=32), data).activations
    double_batch = member_memory(_net(data), HParams(batch_size=64), data).activations
    wide = member_memory(_net(data, width=128), HParams(batch_size=32), data).activations
    assert 1.8 * small < double_batch < 2.2 * small  # linear in the batch
    assert wide > 2 * small
    # at least the hidden layer's saved input of the ReLU: batch x width float32, twice
    assert small >= 2 * 32 * 32 * 4


def test_measuring_leaves_the_network_as_it_was_asked_to(data: Dataset) -> None:
    network = _net(data).eval()
    member_memory(network, HParams(batch_size=16), data)
    assert not network.training


def test_the_cap_keeps_every_state_resident_and_one_stack_of_activations() -> None:
    member = MemberMemory(state=1_000, activations=10_000)
    # 1 MB free of 2 MB: 0.8 MB usable, 100 members' state 0.1 MB, 70 stacks of activations
    assert memory_cap(member, 100, (1_000_000, 2_000_000)) == 70
    # a quarter of the GPU: 0.5 MB of it, 0.4 MB usable, 0.3 MB left for activations
    assert memory_cap(member, 100, (1_000_000, 2_000_000), share=0.25) == 30
    assert memory_cap(member, 100, (10, 2_000_000)) == 1  # never below one member
    assert memory_cap(member, 100, None) is None  # a CPU


@pytest.mark.parametrize(
    ("members", "share", "message"),
    [(0, 1.0, "members must be >= 1, but got 0"), (5, 1.5, "share must be in (0, 1], but got 1.5")],
)
def test_the_cap_refuses_nonsense(members: int, share: float, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        memory_cap(MemberMemory(1, 1), members, (100, 100), share)


def _members(data: Dataset) -> list[PackMember]:
    return [
        PackMember(HParams(lr=lr, beta=0.9, batch_size=64), seed, data, _net, "net")
        for seed, lr in enumerate((0.02, 0.05, 0.1, 0.2, 0.3))
    ]


def _losses(run: PackedRun, epochs: int) -> list[list[float]]:
    out = []
    for _ in range(epochs):
        results = run.train_epoch()
        out.append([results[i].val_loss for i in sorted(results)])
    return out


def test_a_pack_on_a_full_device_is_cut_into_stacks_that_train_as_one(
    data: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    members = _members(data)
    whole = PackedRun.start(members, stack_size=None)
    assert [len(s.members) for s in whole.stacks] == [5]
    one = member_memory(copy.deepcopy(_net(data)), members[0].hparams, data)
    # room for every member's state and two members' activations, with the usable fraction
    free = int((5 * one.state + 2 * one.activations) / 0.8) + 1
    monkeypatch.setattr("trainables.packing._run.device_memory", lambda device: (free, 10 * free))
    cut = PackedRun.start(members, stack_size=None)
    assert [len(s.members) for s in cut.stacks] == [2, 2, 1]
    assert _losses(cut, 2) == _losses(whole, 2)


def test_a_pack_with_room_keeps_its_stack(data: Dataset, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("trainables.packing._run.device_memory", lambda device: (10**12, 10**12))
    assert [len(s.members) for s in PackedRun.start(_members(data), stack_size=None).stacks] == [5]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_estimate_covers_a_cuda_step() -> None:
    """The measured peak of one member's real step on the GPU stays under the estimate."""
    data = load_dataset("digits", seed=0, device="cuda")
    hp = HParams(batch_size=256)
    network = _net(data, width=512).cuda()
    estimate = member_memory(copy.deepcopy(network), hp, data)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1, momentum=0.9)
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    loss = nn.functional.cross_entropy(network(data.x_train[:256]), data.y_train[:256])
    loss.backward()
    optimizer.step()
    torch.cuda.synchronize()
    peak = (
        torch.cuda.max_memory_allocated()
        - base
        + _weights(network)
        + sum(b.numel() * b.element_size() for b in network.buffers())
    )
    assert peak <= estimate.state + estimate.activations, (peak, estimate)
