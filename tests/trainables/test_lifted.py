"""Dropout rates and LeakyReLU slopes held per member: what a pack mixing them must keep."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from torch.nn import functional

from trainables import (
    FileSource,
    HParams,
    build_state,
    lift_attributes,
    load_dataset,
    load_factory,
    run_training,
)
from trainables._lifted import MemberDropout, MemberLeakyReLU
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

    packed = run_packed_training(members, epochs=2)
    for seed, network in enumerate(networks):
        state = build_state(hp, data, seed=seed, network=network)
        alone = run_training(hp, data, epochs=2, seed=seed, state=state)
        for got, want in zip(packed[seed], alone, strict=True):
            assert got.train_loss == pytest.approx(want.train_loss, abs=1e-9)
            assert got.val_loss == pytest.approx(want.val_loss, abs=1e-9)
            assert got.val_accuracy == pytest.approx(want.val_accuracy, abs=1e-12)
    assert packed[0][-1].train_loss != packed[2][-1].train_loss  # the rates did differ
