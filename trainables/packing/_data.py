"""A pack's datasets as one set of tensors, so that one gather serves every member."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from trainables._data import Dataset

__all__ = ["StackedData"]


@dataclass(frozen=True)
class StackedData:
    """A pack's distinct datasets concatenated, so that one gather serves every member.

    Member rows address their own dataset through an offset (dataset index × split size).
    All datasets have the same split sizes, features, classes, device and dtype.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_train: int
    n_val: int
    n_features: int
    n_classes: int

    @classmethod
    def from_datasets(cls, datasets: Sequence[Dataset]) -> StackedData:
        first = datasets[0]
        signature = _signature(first)
        for data in datasets[1:]:
            if _signature(data) != signature:
                raise ValueError(
                    "datasets packed together must agree in split sizes, features, classes, "
                    f"device and dtype, but got {signature} and {_signature(data)}"
                )
        return cls(
            x_train=torch.cat([d.x_train for d in datasets]),
            y_train=torch.cat([d.y_train for d in datasets]),
            x_val=torch.cat([d.x_val for d in datasets]),
            y_val=torch.cat([d.y_val for d in datasets]),
            n_train=first.x_train.shape[0],
            n_val=first.x_val.shape[0],
            n_features=first.n_features,
            n_classes=first.n_classes,
        )


def _signature(data: Dataset) -> tuple[object, ...]:
    return (
        data.x_train.shape[0],
        data.x_val.shape[0],
        data.n_features,
        data.n_classes,
        data.device,
        data.dtype,
    )
