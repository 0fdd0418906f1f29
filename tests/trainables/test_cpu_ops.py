"""The packed convolution, BatchNorm and max-pool a user network's stack runs on a CPU
(`_cpu_ops`): the same numbers as vmap's own rules (float64), the running statistics updated in
place, and vmap's rules for every call they do not handle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from trainables.packing import _cpu_ops
from trainables.packing._cpu_ops import CPU_OPS_ENV, packed_cpu_ops

CPU = torch.device("cpu")
K = 3  # members


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many calls took each packed form (so an equality cannot hold by never using it)."""
    counts = {"batch_norm": 0, "pool": 0, "conv": 0}

    def spy(cls: Any, key: str) -> None:
        rule = cls.vmap

        def counted(*args: Any) -> Any:
            counts[key] += 1
            return rule(*args)

        monkeypatch.setattr(cls, "vmap", staticmethod(counted))

    spy(_cpu_ops._MembersAsChannels, "batch_norm")
    spy(_cpu_ops._PoolMembers, "pool")
    spy(_cpu_ops._ConvMembers, "conv")
    return counts


def _members(make: Callable[[], nn.Module]) -> list[nn.Module]:
    members = []
    for seed in range(K):
        torch.manual_seed(seed)
        module = make().double()
        with torch.no_grad():  # members differ in their weights, as a pack's do
            for p in module.parameters():
                p.add_(torch.randn_like(p) * 0.3)
        members.append(module)
    return members


def _run(
    make: Callable[[], nn.Module], x: torch.Tensor, *, training: bool, packed: bool
) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Outputs, parameter gradients and buffers after one vmapped forward (and backward)."""
    members = _members(make)
    for m in members:
        m.train(training)
    params, buffers = stack_module_state(members)
    params = {n: p.detach().requires_grad_() for n, p in params.items()}
    template = members[0]
    xs = x.detach().clone().requires_grad_()

    def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xi: torch.Tensor) -> Any:
        return functional_call(template, (p, b), (xi,))

    context = packed_cpu_ops(CPU, "fp32") if packed else torch.autograd.set_grad_enabled(True)
    with context:
        out = vmap(one)(params, buffers, xs)
    weights = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    grads = {n: p.grad for n, p in params.items() if p.grad is not None}
    grads["input"] = xs.grad  # type: ignore[assignment]
    return out.detach(), grads, {n: b.clone() for n, b in buffers.items()}


def _assert_same(a: Any, b: Any) -> None:
    out_a, grads_a, buffers_a = a
    out_b, grads_b, buffers_b = b
    torch.testing.assert_close(out_a, out_b, rtol=0, atol=1e-12)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=0, atol=1e-12)
    assert buffers_a.keys() == buffers_b.keys()
    for name in buffers_a:
        torch.testing.assert_close(buffers_a[name], buffers_b[name], rtol=0, atol=1e-12)


BATCHNORMS = {
    "2d": (lambda: nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4)),
           (K, 5, 2, 6, 6)),
    "1d": (lambda: nn.Sequential(nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5, momentum=0.3)),
           (K, 7, 6)),
    "1d-sequence": (lambda: nn.BatchNorm1d(3, eps=1e-3), (K, 4, 3, 5)),
    "no-affine": (lambda: nn.BatchNorm2d(2, affine=False), (K, 4, 2, 3, 3)),
    "no-running-stats": (lambda: nn.BatchNorm2d(2, track_running_stats=False), (K, 4, 2, 3, 3)),
}  # fmt: skip


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", BATCHNORMS, ids=str)
def test_packed_batchnorm_gives_vmaps_numbers(
    case: str, training: bool, routed: dict[str, int]
) -> None:
    make, shape = BATCHNORMS[case]
    x = torch.randn(*shape, dtype=torch.float64)
    default = _run(make, x, training=training, packed=False)
    assert routed["batch_norm"] == 0
    packed = _run(make, x, training=training, packed=True)
    assert routed["batch_norm"] == 1  # one call, all members
    _assert_same(packed, default)


def test_running_statistics_are_each_members_own() -> None:
    """The folded call updates the stacked buffers in place, member by member."""
    make = BATCHNORMS["2d"][0]
    x = torch.randn(K, 5, 2, 6, 6, dtype=torch.float64)
    x[1] += 3.0  # member 1's batch has another mean
    _, _, buffers = _run(make, x, training=True, packed=True)
    means = buffers["1.running_mean"]
    assert means.shape == (K, 4)
    assert not torch.allclose(means[0], means[1])
    for member in range(K):
        alone = _members(make)[member].train()
        alone(x[member])
        torch.testing.assert_close(means[member], alone[1].running_mean, rtol=0, atol=1e-12)


def _relu_rounded(shape: tuple[int, ...]) -> torch.Tensor:
    """Many exact ties (zeros and equal integers): the routing of the gradient must match."""
    return torch.randn(*shape, dtype=torch.float64).mul(2).round().relu()


POOLS = {
    "2x2": lambda: nn.MaxPool2d(2),
    "3x3": lambda: nn.MaxPool2d((3, 3), stride=3),
    "odd-size": lambda: nn.MaxPool2d(2),  # 7x7 input: the last row and column are dropped
}


@pytest.mark.parametrize("case", POOLS, ids=str)
def test_packed_pool_gives_vmaps_numbers_ties_included(case: str, routed: dict[str, int]) -> None:
    size = 7 if case == "odd-size" else 6
    x = _relu_rounded((K, 4, 3, size, size))
    make = POOLS[case]
    default = _run(make, x, training=True, packed=False)
    packed = _run(make, x, training=True, packed=True)
    assert routed["pool"] == 1
    _assert_same(packed, default)


UNHANDLED = {
    "padding": lambda: nn.MaxPool2d(2, padding=1),
    "overlapping": lambda: nn.MaxPool2d(3, stride=2),
    "ceil-mode": lambda: nn.MaxPool2d(2, ceil_mode=True),
    "dilation": lambda: nn.MaxPool2d(2, dilation=2),
}


@pytest.mark.parametrize("case", UNHANDLED, ids=str)
def test_other_poolings_keep_vmaps_rule(case: str, routed: dict[str, int]) -> None:
    x = _relu_rounded((K, 4, 3, 7, 7))
    make = UNHANDLED[case]
    default = _run(make, x, training=True, packed=False)
    packed = _run(make, x, training=True, packed=True)
    assert routed["pool"] == 0
    _assert_same(packed, default)


CONVOLUTIONS = {
    "3x3": lambda: nn.Conv2d(2, 4, 3, padding=1),
    "no-bias-strided": lambda: nn.Conv2d(2, 3, 3, stride=2, bias=False),
    "same-dilated": lambda: nn.Conv2d(2, 3, 3, padding="same", dilation=2),
    "grouped": lambda: nn.Conv2d(4, 6, 1, groups=2),
}


@pytest.mark.parametrize("case", CONVOLUTIONS, ids=str)
def test_packed_convolution_gives_vmaps_numbers(case: str, routed: dict[str, int]) -> None:
    x = torch.randn(K, 5, 4 if case == "grouped" else 2, 7, 7, dtype=torch.float64)
    make = CONVOLUTIONS[case]
    default = _run(make, x, training=True, packed=False)
    packed = _run(make, x, training=True, packed=True)
    assert routed["conv"] == 1
    _assert_same(packed, default)


def test_a_whole_cnn_gives_vmaps_numbers(routed: dict[str, int]) -> None:
    """The packed ops hand each other members folded into channels, channels-last: the layers
    after them (ReLU, flatten, dropout off, linear) must read that layout right."""

    def make() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
            nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
            nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 3 * 3, 5),
        )  # fmt: skip

    x = torch.randn(K, 6, 1, 6, 6, dtype=torch.float64)
    for training in (True, False):
        default = _run(make, x, training=training, packed=False)
        packed = _run(make, x, training=training, packed=True)
        _assert_same(packed, default)
    assert routed == {"batch_norm": 4, "pool": 2, "conv": 4}


def test_shared_weights_keep_vmaps_rule(routed: dict[str, int]) -> None:
    """A BatchNorm whose weight is the same tensor for every member (not stacked) cannot be
    folded: vmap's rule runs it."""
    norm = nn.BatchNorm2d(2).double()
    x = torch.randn(K, 4, 2, 3, 3, dtype=torch.float64)

    def one(xi: torch.Tensor) -> torch.Tensor:
        return nn.functional.batch_norm(xi, None, None, norm.weight, norm.bias, True)

    default = vmap(one)(x)
    with packed_cpu_ops(CPU, "fp32"):
        packed = vmap(one)(x)
    assert routed["batch_norm"] == 1  # it was offered, and declined
    torch.testing.assert_close(packed, default, rtol=0, atol=1e-12)


def test_calls_outside_vmap_are_left_alone(routed: dict[str, int]) -> None:
    x = _relu_rounded((4, 2, 6, 6))
    with packed_cpu_ops(CPU, "fp32"):
        pooled = nn.functional.max_pool2d(x, 2)
        normed = nn.functional.batch_norm(x, None, None, training=True)
    assert routed == {"batch_norm": 0, "pool": 0, "conv": 0}
    assert torch.equal(pooled, nn.functional.max_pool2d(x, 2))
    assert torch.equal(normed, nn.functional.batch_norm(x, None, None, training=True))


@pytest.mark.parametrize(
    ("device", "precision", "env"),
    [("cpu", "bf16", None), ("meta", "fp32", None), ("cpu", "fp32", "0")],
    ids=["bf16", "not-a-cpu", "switched-off"],
)
def test_where_the_packed_forms_are_not_used(
    device: str, precision: str, env: str | None, routed: dict[str, int], monkeypatch: Any
) -> None:
    if env is not None:
        monkeypatch.setenv(CPU_OPS_ENV, env)
    x = _relu_rounded((K, 4, 2, 6, 6))
    with packed_cpu_ops(torch.device(device), precision):
        vmap(lambda xi: nn.functional.max_pool2d(xi, 2))(x)
    assert routed["pool"] == 0
