"""The BatchNorm MLP's structure, its BatchNorm arithmetic and its loss, against the formulas."""

from __future__ import annotations

import torch
from torch import nn

from trainables import BNMLP, softmax_cross_entropy


def _blocks(model: BNMLP, kind: type[nn.Module]) -> list[nn.Module]:
    return [m for m in model.hidden if isinstance(m, kind)]


def _trained_model(bn_momentum: float = 0.1) -> tuple[BNMLP, torch.Tensor]:
    """A model after a few SGD steps, so weights, γ, β and running stats are all non-trivial."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=generator) * 3 + 1
    y = torch.randint(0, 3, (64,), generator=generator)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = BNMLP(5, 3, hidden=8, depth=2, bn_momentum=bn_momentum)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        softmax_cross_entropy(model(x), y).backward()
        optimizer.step()
    return model, x


def test_normalised_layers_have_no_bias() -> None:
    model = BNMLP(10, 4, hidden=16, depth=3, bn_momentum=0.2)
    linears = _blocks(model, nn.Linear)
    norms = _blocks(model, nn.BatchNorm1d)
    assert len(linears) == len(norms) == 3
    assert all(layer.bias is None for layer in linears)
    assert all(n.affine and n.momentum == 0.2 and n.num_features == 16 for n in norms)
    assert [type(m) for m in model.hidden][:3] == [nn.Linear, nn.BatchNorm1d, nn.ReLU]
    assert model.output.bias is not None
    assert (model.output.in_features, model.output.out_features) == (16, 4)


def test_without_batchnorm_layers_have_biases() -> None:
    model = BNMLP(10, 4, hidden=16, depth=2, batchnorm=False)
    assert not _blocks(model, nn.BatchNorm1d)
    linears = _blocks(model, nn.Linear)
    assert len(linears) == 2 and all(layer.bias is not None for layer in linears)
    assert [type(m) for m in model.hidden] == [nn.Linear, nn.ReLU] * 2
    assert model(torch.randn(3, 10)).shape == (3, 4)


def test_eval_mode_uses_running_statistics() -> None:
    model, x = _trained_model()
    model.eval()
    h = x
    for layer in model.hidden:
        if isinstance(layer, nn.BatchNorm1d):
            assert not torch.allclose(layer.running_mean, torch.zeros_like(layer.running_mean))
            assert not torch.allclose(layer.weight, torch.ones_like(layer.weight))
            # The inference formula, with running mean/var and the learnt γ (weight), β (bias).
            h = (h - layer.running_mean) / torch.sqrt(layer.running_var + layer.eps)
            h = h * layer.weight + layer.bias
        elif isinstance(layer, nn.Linear):
            h = h @ layer.weight.T
        else:
            h = torch.relu(h)
    expected = h @ model.output.weight.T + model.output.bias
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)
        # Eval mode does not depend on the rest of the batch.
        assert torch.allclose(model(x[:1]), expected[:1], atol=1e-5)


def test_running_statistics_are_an_ewma_with_bn_momentum() -> None:
    momentum = 0.3
    model, x = _trained_model(bn_momentum=momentum)
    model.train()
    first_linear, norm = model.hidden[0], model.hidden[1]
    old_mean, old_var = norm.running_mean.clone(), norm.running_var.clone()
    batch = x[:16] * 2 - 0.5
    with torch.no_grad():
        z = first_linear(batch)
        model(batch)
    # PyTorch's convention: the new batch gets weight `momentum`; the variance is unbiased.
    expected_mean = (1 - momentum) * old_mean + momentum * z.mean(dim=0)
    expected_var = (1 - momentum) * old_var + momentum * z.var(dim=0, unbiased=True)
    assert torch.allclose(norm.running_mean, expected_mean, atol=1e-6)
    assert torch.allclose(norm.running_var, expected_var, atol=1e-6)


def test_loss_is_softmax_cross_entropy() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.0, 0.0], [-3.0, 4.0, 1.0], [1.0, 2.0, 3.0]])
    targets = torch.tensor([0, 2, 1, 0])
    per_sample = []
    for row, target in zip(logits.tolist(), targets.tolist(), strict=True):
        exps = [torch.tensor(v, dtype=torch.float64).exp() for v in row]
        per_sample.append(-torch.log(exps[target] / sum(exps)))
    expected = torch.stack(per_sample)
    assert torch.allclose(softmax_cross_entropy(logits, targets).double(), expected.mean())
    summed = softmax_cross_entropy(logits, targets, reduction="sum").double()
    assert torch.allclose(summed, expected.sum())
