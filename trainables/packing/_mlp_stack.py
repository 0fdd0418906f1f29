"""One stack: members of one shape group trained as a single stacked model.

A stack owns everything that evolves per member (weights, BatchNorm running statistics,
optimizer moments, shuffling generator) as rows of stacked tensors, plus the plain Python list
of each member's hyperparameters. Members are initialised as `build_state` initialises them, so
a member starts from exactly the weights and shuffling generator its unpacked twin gets, and
each epoch draws each member's permutation from that member's own generator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812  (the conventional alias)

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._model import BNMLP
from trainables._packed_model import (
    StackedForward,
    StackShape,
    gather_rows,
    load_member,
    member_tensors,
    restack,
)
from trainables._packed_optim import StackedOptimizer, restack_optimizers
from trainables._train import initial_model, lr_factor

_EVAL_CHUNK = 8192  # validation samples per member per pass, as in the unpacked `evaluate`


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


class PackedStack:
    """K members that share batch size, depth, BatchNorm and optimizer, trained in lockstep.

    `members` are the caller's ids for the rows, in row order. Build with `build`; drop or
    join members with `restack`, which also trims the padding to the widest remaining member.
    """

    def __init__(
        self,
        members: list[int],
        hparams: list[HParams],
        shape: StackShape,
        params: torch.Tensor,
        running: torch.Tensor,
        optimizer: StackedOptimizer,
        generators: list[torch.Generator],
        data_index: torch.Tensor,
        epoch: int,
    ) -> None:
        self.members = members
        self.hparams = hparams
        self.shape = shape
        self.params = params
        self.running = running
        self.optimizer = optimizer
        self.generators = generators
        self.data_index = data_index
        self.epoch = epoch
        self.grad = torch.zeros_like(params)
        self._forward = StackedForward(shape)
        self._param_views = shape.parameters.views(params)
        self._grad_views = shape.parameters.views(self.grad)
        self._param_blocks = list(self._param_views.values())
        self._grad_blocks = list(self._grad_views.values())
        self._running_views = shape.running.views(running)
        self._bn_momentum = params.new_tensor([hp.bn_momentum for hp in hparams]).unsqueeze(1)

    @classmethod
    def build(
        cls,
        members: list[int],
        hparams: list[HParams],
        seeds: list[int],
        data_index: list[int],
        datasets: Sequence[Dataset],
    ) -> PackedStack:
        """Fresh members: the weights and generators `build_state` gives each one's seed."""
        first = hparams[0]
        data = datasets[data_index[0]]
        shape = _shape(hparams, data.n_features, data.n_classes)
        k = len(members)
        params = shape.parameters.zeros(k, device=data.device, dtype=data.dtype)
        running = shape.running.zeros(k, device=data.device, dtype=data.dtype)
        param_views = shape.parameters.views(params)
        running_views = shape.running.views(running)
        generators = []
        for row, (hp, seed, index) in enumerate(zip(hparams, seeds, data_index, strict=True)):
            model, generator = initial_model(hp, datasets[index], seed=seed)
            if not isinstance(model, BNMLP):  # no network given: the built-in MLP
                raise TypeError(f"a packed stack holds BNMLPs, not {type(model).__name__}")
            tensors = member_tensors(model)
            load_member(param_views, row, tensors)
            load_member(running_views, row, tensors)
            generators.append(generator)
        optimizer = StackedOptimizer.create(first.optimizer, hparams, shape.parameters, params)
        index_tensor = torch.tensor(data_index, device=data.device)
        return cls(members, hparams, shape, params, running, optimizer, generators, index_tensor, 0)

    def state_dict(self) -> dict[str, Any]:
        """Everything a restarted trial needs to continue this stack bit-identically.

        Hyperparameters and shapes are not saved: they follow from the members, which the
        restarted trial gets again from its config.
        """
        return {
            "members": list(self.members),
            "params": self.params,
            "running": self.running,
            "moments": dict(self.optimizer.state),
            "steps": self.optimizer.steps,
            "generators": torch.stack([g.get_state() for g in self.generators]),
        }

    @classmethod
    def from_state(
        cls,
        saved: dict[str, Any],
        hparams: list[HParams],
        data_index: list[int],
        datasets: Sequence[Dataset],
        epoch: int,
    ) -> PackedStack:
        """The stack `state_dict` saved; `hparams` and `data_index` are its members', in order."""
        members: list[int] = list(saved["members"])
        if len(members) != len(hparams) or len(members) != len(data_index):
            raise ValueError(
                f"a saved stack of {len(members)} members needs as many hyperparameter sets "
                f"and data indices, but got {len(hparams)} and {len(data_index)}"
            )
        first = hparams[0]
        data = datasets[data_index[0]]
        shape = _shape(hparams, data.n_features, data.n_classes)
        params = saved["params"].to(device=data.device, dtype=data.dtype)
        if params.numel() != len(members) * shape.parameters.size:
            raise ValueError(
                f"saved parameters hold {params.numel()} values, but {len(members)} members of "
                f"shape {shape} need {len(members) * shape.parameters.size}"
            )
        running = saved["running"].to(device=data.device, dtype=data.dtype)
        optimizer = StackedOptimizer.create(first.optimizer, hparams, shape.parameters, params)
        for name, buffer in optimizer.state.items():
            buffer.copy_(saved["moments"][name])
        optimizer.steps = int(saved["steps"])
        generators = []
        for state in saved["generators"]:
            generator = torch.Generator()
            generator.set_state(state.cpu().clone())  # a CPU generator, wherever it was loaded
            generators.append(generator)
        index_tensor = torch.tensor(data_index, device=data.device)
        return cls(
            members, hparams, shape, params, running, optimizer, generators, index_tensor, epoch
        )

    @staticmethod
    def restack(parts: Sequence[tuple[PackedStack, list[int]]]) -> PackedStack:
        """A new stack of rows `rows` of each (stack, rows) part, in that order.

        Training state carries over unchanged; the parts must come from one group and have
        trained the same number of epochs.
        """
        picked = [(stack, rows) for stack, rows in parts if rows]
        first = picked[0][0]
        hparams = [stack.hparams[r] for stack, rows in picked for r in rows]
        shape = _shape(hparams, first.shape.n_features, first.shape.n_classes)
        device = first.params.device
        indices = [torch.tensor(rows, device=device) for _, rows in picked]
        params = restack(
            [(s.params, s.shape.parameters, i) for (s, _), i in zip(picked, indices, strict=True)],
            shape.parameters,
        )
        running = restack(
            [(s.running, s.shape.running, i) for (s, _), i in zip(picked, indices, strict=True)],
            shape.running,
        )
        optimizer = restack_optimizers(
            [(s.optimizer, i) for (s, _), i in zip(picked, indices, strict=True)], shape.parameters
        )
        return PackedStack(
            members=[stack.members[r] for stack, rows in picked for r in rows],
            hparams=hparams,
            shape=shape,
            params=params,
            running=running,
            optimizer=optimizer,
            generators=[stack.generators[r] for stack, rows in picked for r in rows],
            data_index=torch.cat(
                [s.data_index.index_select(0, i) for (s, _), i in zip(picked, indices, strict=True)]
            ),
            epoch=first.epoch,
        )

    def learning_rates(self) -> list[float]:
        """Each member's rate for the coming epoch, computed exactly as its LambdaLR would."""
        return [hp.lr * lr_factor(hp)(self.epoch) for hp in self.hparams]

    def train_epoch(self, data: StackedData) -> torch.Tensor:
        """One epoch of every member; returns the (K,) sample-weighted mean losses (float64).

        Batching follows the unpacked `train_epoch`: each member's own permutation, split
        into batches of the shared size, the final batch kept unless BatchNorm is on and it
        holds one sample.
        """
        self.optimizer.set_lr(self.learning_rates())
        device = self.params.device
        n, batch_size = data.n_train, self.hparams[0].batch_size
        # Drawn on each member's CPU generator, as unpacked, so the order is device-independent.
        order = torch.stack([torch.randperm(n, generator=g) for g in self.generators])
        order = order.to(device) + (self.data_index * n).unsqueeze(1)
        starts = list(range(0, n, batch_size))
        if self.shape.batchnorm and len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        total = torch.zeros(len(self.members), dtype=torch.float64, device=device)
        seen = 0
        for start in starts:
            index = order[:, start : start + batch_size]
            k, b = index.shape
            scratch = self._forward.scratch
            x = gather_rows(data.x_train, index, scratch("x", data.x_train, k, b, data.n_features))
            y = data.y_train.index_select(0, index.reshape(-1)).view(k, b)
            loss = self._forward.train_step(
                self._param_views, self._grad_views, self._running_views, self._bn_momentum, x, y
            )
            self.optimizer.step(self._param_blocks, self._grad_blocks)
            total.add_(loss, alpha=index.shape[1])
            seen += index.shape[1]
        self.epoch += 1
        return total / seen

    def evaluate(self, data: StackedData) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) validation losses and accuracies (float64), BatchNorm in eval mode."""
        device = self.params.device
        k, n = len(self.members), data.n_val
        offsets = (self.data_index * n).unsqueeze(1)
        total = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.int64, device=device)
        scratch = self._forward.scratch
        with torch.no_grad():
            for start in range(0, n, _EVAL_CHUNK):
                index = offsets + torch.arange(start, min(n, start + _EVAL_CHUNK), device=device)
                b = index.shape[1]
                x = gather_rows(
                    data.x_val, index, scratch("x_val", data.x_val, k, b, data.n_features)
                )
                y = data.y_val.index_select(0, index.reshape(-1)).view(k, b)
                logits = self._forward.logits(self._param_views, self._running_views, x)
                # logits are (K, classes, n): cross_entropy's (N, C, d) form.
                losses = F.cross_entropy(logits, y, reduction="none")
                total += losses.sum(dim=1).to(torch.float64)
                # max's indices are argmax's (the first maximum), but max reduces over this
                # strided class dimension ~7x faster on a CPU.
                correct += (logits.max(dim=1).indices == y).sum(dim=1)
        return total / n, correct.to(torch.float64) / n

    @property
    def padding(self) -> float:
        """Share of hidden units that are padding (compute spent on nothing)."""
        widths = [hp.hidden for hp in self.hparams]
        return 1.0 - sum(widths) / (self.shape.hidden * len(widths))


def _shape(hparams: Sequence[HParams], n_features: int, n_classes: int) -> StackShape:
    """The shape a stack of `hparams` (one shape group) is padded to: its widest member."""
    first = hparams[0]
    return StackShape(
        n_features,
        n_classes,
        hidden=max(hp.hidden for hp in hparams),
        depth=first.depth,
        batchnorm=first.batchnorm,
    )


def flops_per_sample(n_features: int, n_classes: int, hidden: int, depth: int) -> int:
    """Forward matmul FLOPs of one sample through a BN-MLP (2 per multiply-add)."""
    inner = n_features * hidden + (depth - 1) * hidden * hidden + hidden * n_classes
    return 2 * inner


def stack_sizes(total: int, limit: int | None) -> list[int]:
    """`total` members split into the fewest stacks of at most `limit`, sizes balanced."""
    if limit is None or total <= limit:
        return [total]
    count = math.ceil(total / limit)
    base, extra = divmod(total, count)
    return [base + 1] * extra + [base] * (count - extra)
