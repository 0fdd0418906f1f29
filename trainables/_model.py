"""The BatchNorm multilayer perceptron whose hyperparameters the sweeps tune."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812  (the conventional alias)
from torch import nn


class BNMLP(nn.Module):
    """`depth` hidden blocks of Linear → BatchNorm1d → ReLU, then a linear layer to logits.

    The normalised Linear layers have no bias because BatchNorm subtracts the batch mean, which
    would cancel it; BatchNorm's learnt shift β plays its role. With `batchnorm=False` the blocks
    are Linear(with bias) → ReLU, the baseline the BatchNorm sweeps are compared with.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: int,
        depth: int,
        batchnorm: bool = True,
        bn_momentum: float = 0.1,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(depth):
            if batchnorm:
                layers += [
                    nn.Linear(width, hidden, bias=False),
                    nn.BatchNorm1d(hidden, momentum=bn_momentum, affine=True),
                ]
            else:
                layers.append(nn.Linear(width, hidden, bias=True))
            layers.append(nn.ReLU())
            width = hidden
        self.hidden = nn.Sequential(*layers)
        self.output = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised class scores (logits), shape (batch, n_classes)."""
        return self.output(self.hidden(x))


def softmax_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, *, reduction: str = "mean"
) -> torch.Tensor:
    """The training loss: −log softmax(logits)[true class], averaged (or summed) over the batch.

    Named so that the loss the sweeps optimise is stated once and tested against its formula.
    """
    return F.cross_entropy(logits, targets, reduction=reduction)
