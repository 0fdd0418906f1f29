"""Which built networks may share a stack: equal structure, any parameter values."""

from __future__ import annotations

import torch
from torch import nn

from trainables import lift_attributes, network_signature
from trainables._network_signature import first_difference


def _net(channels: int = 4, dropout: float = 0.0, scale: float = 1.0) -> nn.Module:
    net = nn.Sequential(
        nn.Conv2d(1, channels, 3, bias=False), nn.BatchNorm2d(channels), nn.ReLU(),
        nn.Flatten(), nn.Dropout(dropout), nn.Linear(channels, 10),
    )  # fmt: skip
    with torch.no_grad():
        net[0].weight.mul_(scale)
    return net


def test_two_builds_with_other_initial_values_have_one_signature() -> None:
    a, b = _net(scale=0.5), _net(scale=2.0)
    assert not torch.equal(a[0].weight, b[0].weight)
    assert network_signature(a) == network_signature(b)
    assert first_difference(network_signature(a), network_signature(b)) == ""


def test_a_dropout_rate_changes_the_signature_though_no_shape_changes() -> None:
    a, b = network_signature(_net(dropout=0.1)), network_signature(_net(dropout=0.5))
    assert a != b
    assert "0.1" in first_difference(a, b) and "0.5" in first_difference(a, b)


def test_lifted_dropout_rates_share_one_signature_and_other_dropout_kinds_do_not() -> None:
    a = network_signature(lift_attributes(_net(dropout=0.1)))
    b = network_signature(lift_attributes(_net(dropout=0.5)))
    assert a == b
    channelwise = _net(dropout=0.1)
    channelwise[4] = nn.Dropout1d(0.1)
    assert network_signature(lift_attributes(channelwise)) != a


def test_a_width_changes_the_signature() -> None:
    assert network_signature(_net(channels=4)) != network_signature(_net(channels=6))


class _WithPlainAttributes(nn.Module):
    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.activation = lambda x: x.clamp(min=0)  # a new function object per build
        self.table = table  # a plain tensor, not a buffer: every member reads the template's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.linear(x)) + self.table


def test_functions_compare_by_name_and_plain_tensors_by_value() -> None:
    same = [_WithPlainAttributes(torch.zeros(2)) for _ in range(2)]
    assert network_signature(same[0]) == network_signature(same[1])
    other = _WithPlainAttributes(torch.ones(2))
    assert network_signature(other) != network_signature(same[0])
    half = _WithPlainAttributes(torch.zeros(2, dtype=torch.bfloat16))
    assert network_signature(half) != network_signature(same[0])
