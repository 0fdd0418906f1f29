"""A user's network, as caviar takes it: a factory of a BatchNorm CNN for small images.

`make(input_shape, n_classes, **hyperparameters)` returns a module that maps a batch of
`input_shape` samples to `n_classes` logits; caviar trains it (softmax cross-entropy, its
optimizer, checkpoints). The keyword parameters are hyperparameters a spec can search or fix;
`sweeps/examples/digits_cnn.yaml` searches `channels` and `dropout`.
"""

from __future__ import annotations

from torch import nn


def make(
    input_shape: tuple[int, ...], n_classes: int, channels: int = 8, dropout: float = 0.0
) -> nn.Module:
    """Conv 3x3 -> BatchNorm -> ReLU twice (`channels`, then twice as many), max-pool, linear.

    The convolutions have no bias: BatchNorm subtracts the batch mean, and its learnt shift
    plays the bias's role.
    """
    in_channels, height, width = input_shape
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(),
        nn.Conv2d(channels, 2 * channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(2 * channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(dropout),
        nn.Linear(2 * channels * (height // 2) * (width // 2), n_classes),
    )
