"""Dropout rates, LeakyReLU slopes and BatchNorm momentum and eps held per member: what a pack
mixing them must keep."""

from __future__ import annotations

import copy
import io
from collections.abc import Hashable
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional

from trainables import (
    Dataset,
    EpochResult,
    FileSource,
    HParams,
    build_state,
    lift_attributes,
    load_dataset,
    load_factory,
    network_signature,
    run_training,
)
from trainables._lifted import MemberBatchNorm, MemberDropout, MemberLeakyReLU, lift_batchnorm
from trainables._train import Network, has_batchnorm
from trainables.packing import PackedRun, PackMember, run_packed_training

EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"
IMAGES = FileSource(str(EXAMPLES / "data" / "digits_images.npz")).to_config()


def test_lifting_swaps_exactly_the_registered_modules() -> None:
    class OwnDropout(nn.Dropout):  # a subclass may read `p` in its own forward: kept
        pass

    net = nn.Sequential(
        nn.Linear(4, 4), nn.Dropout(0.2), nn.LeakyReLU(0.05),
        nn.Sequential(nn.Dropout2d(0.3)), OwnDropout(0.1),
    )  # fmt: skip
    lifted = lift_attributes(net, seed=7)
    kinds = [type(m) for m in lifted]
    assert kinds == [nn.Linear, MemberDropout, MemberLeakyReLU, nn.Sequential, OwnDropout]
    inner = lifted[3][0]
    assert isinstance(inner, MemberDropout) and inner.dims == 2
    assert float(lifted[1].p) == pytest.approx(0.2) and float(inner.p) == pytest.approx(0.3)
    assert {lifted[1].salt, inner.salt} == {1, 2}  # two layers, two mask streams


def test_member_dropout_keeps_one_minus_p_scales_and_is_off_in_eval_mode() -> None:
    layer = MemberDropout(0.3, dims=0, salt=1, seed=11)
    x = torch.ones(200, 500, dtype=torch.float64)
    y = layer(x)
    kept = y != 0
    assert kept.double().mean().item() == pytest.approx(0.7, abs=0.01)
    assert torch.equal(y[kept], torch.full_like(y[kept], 1 / 0.7))
    again = layer(x)  # the next call draws another mask
    assert not torch.equal(again != 0, kept)
    layer.eval()
    assert torch.equal(layer(x), x)
    assert int(layer.calls) == 2  # eval calls draw nothing


def test_member_dropout_masks_follow_the_seed_and_channel_dropout_drops_whole_channels() -> None:
    x = torch.ones(8, 6, 5, 5)
    a = MemberDropout(0.5, dims=2, salt=1, seed=3)(x)
    b = MemberDropout(0.5, dims=2, salt=1, seed=3)(x)
    c = MemberDropout(0.5, dims=2, salt=1, seed=4)(x)
    assert torch.equal(a, b) and not torch.equal(a, c)
    per_channel = a.reshape(8, 6, 25)
    assert torch.equal(per_channel.amin(dim=2), per_channel.amax(dim=2))  # all or nothing
    assert MemberDropout(1.0, dims=0, salt=1)(x).abs().sum() == 0  # p = 1 drops everything


def test_member_leaky_relu_matches_torchs_values_and_gradients() -> None:
    x = torch.randn(64, dtype=torch.float64, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    y = MemberLeakyReLU(0.07).double()(x)
    y_ref = functional.leaky_relu(x_ref, 0.07)
    (y * torch.arange(64)).sum().backward()
    (y_ref * torch.arange(64)).sum().backward()
    assert torch.equal(y, y_ref) and torch.equal(x.grad, x_ref.grad)  # type: ignore[arg-type]


def test_a_float64_pack_mixing_dropout_rates_equals_the_separate_runs() -> None:
    factory = load_factory("digits_cnn:make", EXAMPLES)
    data = load_dataset(IMAGES, seed=0, dtype=torch.float64)
    rates = [0.0, 0.2, 0.5]
    networks = [
        (lambda d, p=p: factory.build(d.input_shape, d.n_classes, {"channels": 4, "dropout": p}))
        for p in rates
    ]
    hp = HParams(lr=0.05, beta=0.9, batch_size=64)
    members = [PackMember(hp, seed, data, net, "cnn") for seed, net in enumerate(networks)]
    assert len(PackedRun.start(members).stacks) == 1  # the rates share one stack

    packed = _packed_equal_to_separate_runs(members, networks)
    assert packed[0][-1].train_loss != packed[2][-1].train_loss  # the rates did differ


@pytest.mark.parametrize("eps_per_member", [False, True], ids=["kernel", "tensor-ops"])
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize(
    ("kind", "shape"),
    [
        (nn.BatchNorm1d, (16, 5)),
        (nn.BatchNorm1d, (16, 5, 7)),
        (nn.BatchNorm2d, (16, 5, 4, 3)),
        (nn.BatchNorm3d, (8, 5, 2, 3, 2)),
    ],
)
def test_member_batchnorm_matches_torchs_values_gradients_and_running_statistics(
    kind: type[nn.Module], shape: tuple[int, ...], affine: bool, eps_per_member: bool
) -> None:
    torch.manual_seed(0)
    original = kind(5, momentum=0.3, eps=1e-3, affine=affine).double()  # type: ignore[call-arg]
    if affine:
        with torch.no_grad():
            original.weight.uniform_(0.5, 1.5)
            original.bias.uniform_(-0.5, 0.5)
    reference = copy.deepcopy(original)
    twin = MemberBatchNorm(original, eps_per_member=eps_per_member)  # type: ignore[arg-type]
    for _ in range(3):  # the running statistics move three times
        x = (torch.randn(shape, dtype=torch.float64) * 2 + 1).requires_grad_(True)
        x_ref = x.detach().clone().requires_grad_(True)
        weights = torch.randn(shape, dtype=torch.float64)
        (twin(x) * weights).sum().backward()
        (reference(x_ref) * weights).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(twin(x), reference(x_ref), rtol=1e-10, atol=1e-12)
    for name in ("running_mean", "running_var"):
        torch.testing.assert_close(getattr(twin, name), getattr(reference, name))
    assert int(twin.num_batches_tracked) == int(reference.num_batches_tracked) == 4
    if affine:
        torch.testing.assert_close(twin.weight.grad, reference.weight.grad)  # type: ignore[union-attr]
        torch.testing.assert_close(twin.bias.grad, reference.bias.grad)  # type: ignore[union-attr]
    twin.eval()
    reference.eval()  # the running statistics now, not the batch's
    x = torch.randn(shape, dtype=torch.float64)
    torch.testing.assert_close(twin(x), reference(x), rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="expected"):
        twin(torch.randn(2, 5, 1, 1, 1, 1, dtype=torch.float64))


def test_only_exact_batchnorms_with_an_exponential_average_are_lifted() -> None:
    class OwnNorm(nn.BatchNorm1d):  # a subclass may read momentum in its own forward: kept
        pass

    net = nn.Sequential(
        nn.BatchNorm1d(4, momentum=0.2, eps=1e-3),
        nn.BatchNorm1d(4, momentum=None),  # a cumulative average: another computation
        nn.BatchNorm1d(4, track_running_stats=False),  # always the batch's: nothing to lift
        OwnNorm(4),
        nn.Sequential(nn.BatchNorm2d(3)),
    )
    lifted = lift_batchnorm(net)
    kinds = [type(m) for m in lifted]
    assert kinds == [MemberBatchNorm, nn.BatchNorm1d, nn.BatchNorm1d, OwnNorm, nn.Sequential]
    assert type(lifted[4][0]) is MemberBatchNorm
    assert float(lifted[0].momentum) == pytest.approx(0.2)
    assert float(lifted[0].eps) == pytest.approx(1e-3)
    assert has_batchnorm(
        nn.Sequential(nn.Linear(4, 4), MemberBatchNorm(nn.BatchNorm1d(4))), HParams()
    )


def test_signatures_leave_out_batchnorm_momentum_and_eps_only_where_a_stack_lifts_them() -> None:
    def net(momentum: float | None, eps: float = 1e-5) -> tuple[Hashable, ...]:
        built = nn.Sequential(nn.Linear(3, 4, bias=False), nn.BatchNorm1d(4, eps, momentum))
        return network_signature(built, batchnorm_per_member=("momentum",))

    assert net(0.1) == net(0.3)
    assert net(0.1) != net(0.1, 1e-3)  # eps is not left out here
    assert net(None) != net(0.1)  # a cumulative average is another computation
    full = nn.Sequential(nn.BatchNorm1d(4, 1e-3, 0.3))
    assert network_signature(full) != network_signature(nn.Sequential(nn.BatchNorm1d(4)))
    assert network_signature(full, batchnorm_per_member=("momentum", "eps")) == network_signature(
        nn.Sequential(nn.BatchNorm1d(4)), batchnorm_per_member=("momentum", "eps")
    )


def _normed(momentum: float, eps: float, dropout: float = 0.0) -> Network:
    """A small CNN with BatchNorm after its convolution and its hidden layer, whose momentum
    and eps a factory keyword would set."""

    def build(d: Dataset) -> nn.Module:
        c, h, w = d.input_shape
        return nn.Sequential(
            nn.Unflatten(1, d.input_shape),  # caviar's datasets hold samples flat
            nn.Conv2d(c, 4, 3, padding=1, bias=False),
            nn.BatchNorm2d(4, eps=eps, momentum=momentum),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(4 * (h // 2) * (w // 2), 16, bias=False),
            nn.BatchNorm1d(16, eps=eps, momentum=momentum),
            nn.ReLU(),
            nn.Linear(16, d.n_classes),
        )

    return build


@pytest.mark.parametrize(
    ("eps", "lifted"),
    [
        ([1e-5, 1e-5, 1e-5], ["momentum"]),  # torch's kernel normalises, eps its float
        ([1e-5, 1e-3, 1e-5], ["momentum", "eps"]),  # the statistics in tensor ops
    ],
    ids=["momentum", "momentum-and-eps"],
)
def test_a_float64_pack_mixing_batchnorm_settings_equals_the_separate_runs(
    eps: list[float], lifted: list[str]
) -> None:
    data = load_dataset(IMAGES, seed=0, dtype=torch.float64)
    settings = zip([0.1, 0.01, 0.5], eps, [0.0, 0.2, 0.5], strict=True)
    networks = [_normed(*setting) for setting in settings]
    hp = HParams(lr=0.05, beta=0.9, batch_size=64)
    members = [PackMember(hp, seed, data, net, "cnn") for seed, net in enumerate(networks)]
    (stack,) = PackedRun.start(members).state_dict()["stacks"]
    assert stack["batchnorm_per_member"] == lifted  # one stack, its BatchNorms lifted

    packed = _packed_equal_to_separate_runs(members, networks)  # alone: nn.BatchNorm*
    assert packed[0][-1].val_loss != packed[1][-1].val_loss  # the settings did differ


def test_members_that_agree_on_their_batchnorms_keep_torchs() -> None:
    data = load_dataset(IMAGES, seed=0)
    hp = HParams(batch_size=64)
    same = [
        PackMember(hp, seed, data, _normed(0.1, 1e-5, p), "cnn")
        for seed, p in enumerate([0.0, 0.3])
    ]
    (kept,) = PackedRun.start(same).state_dict()["stacks"]
    assert kept["batchnorm_per_member"] == []


def test_a_pack_with_lifted_batchnorms_continues_from_its_saved_state_bit_identically() -> None:
    data = load_dataset(IMAGES, seed=0, dtype=torch.float64)
    hp = HParams(lr=0.05, beta=0.9, batch_size=64)
    members = [
        PackMember(hp, seed, data, _normed(momentum, 1e-5), "cnn")
        for seed, momentum in enumerate([0.05, 0.1, 0.3, 0.6])
    ]
    whole = PackedRun.start(members, stack_size=2)
    whole.train_epoch()
    whole.drop({1})
    expected = [whole.train_epoch() for _ in range(2)]

    first = PackedRun.start(members, stack_size=2)
    first.train_epoch()
    first.drop({1})  # the saved stacks are compacted ones
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = PackedRun.from_state(members, torch.load(buffer, weights_only=True), stack_size=2)
    after = [resumed.train_epoch() for _ in range(2)]

    assert repr(after) == repr(expected)


def _packed_equal_to_separate_runs(
    members: list[PackMember], networks: list[Network]
) -> list[list[EpochResult]]:
    """The pack's results over 2 epochs, checked against each member trained alone (float64:
    to 1e-9)."""
    packed = run_packed_training(members, epochs=2)
    for results, member, network in zip(packed, members, networks, strict=True):
        hp, data, seed = member.hparams, member.data, member.seed
        state = build_state(hp, data, seed=seed, network=network)
        alone = run_training(hp, data, epochs=2, seed=seed, state=state)
        for got, want in zip(results, alone, strict=True):
            assert got.train_loss == pytest.approx(want.train_loss, abs=1e-9)
            assert got.val_loss == pytest.approx(want.val_loss, abs=1e-9)
            assert got.val_accuracy == pytest.approx(want.val_accuracy, abs=1e-12)
    return packed
