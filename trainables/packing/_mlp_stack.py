"""The built-in BatchNorm MLP as a stack, with the hand-written step of `_mlp_forward`.

Members that differ in width share a stack: each is zero-padded to the widest member's
`hidden`, which changes none of its numbers (see `_mlp_forward`), and `restack` trims the
padding when the widest members leave.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any, ClassVar, cast

import torch
import torch.nn.functional as F  # noqa: N812  (the conventional alias)

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._model import BNMLP
from trainables._train import initial_model
from trainables.packing._data import StackedData
from trainables.packing._groups import shape_group
from trainables.packing._layout import FlatLayout, restack
from trainables.packing._mlp_forward import (
    StackedForward,
    StackShape,
    gather_rows,
    load_member,
    member_tensors,
)
from trainables.packing._optim import StackedOptimizer
from trainables.packing._stack import Rows, Stack

__all__ = ["MLPStack"]


class MLPStack(Stack):
    """K built-in MLPs that share batch size, depth, BatchNorm and optimizer."""

    eval_chunk: ClassVar[int] = 8192  # as in the unpacked `evaluate`

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
        super().__init__(members, hparams, params, optimizer, generators, data_index, epoch)
        self.shape = shape
        self.running = running
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
    ) -> MLPStack:
        """Fresh members: the weights and generators `build_state` gives each one's seed."""
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
        optimizer = StackedOptimizer.create(hparams[0].optimizer, hparams, shape.parameters, params)
        index_tensor = torch.tensor(data_index, device=data.device)
        return cls(members, hparams, shape, params, running, optimizer, generators, index_tensor, 0)

    @property
    def layout(self) -> FlatLayout:
        return self.shape.parameters

    @property
    def group(self) -> Hashable:
        return shape_group(self.hparams[0])

    @property
    def batchnorm(self) -> bool:
        return self.shape.batchnorm

    def _train_step(self, index: torch.Tensor, data: StackedData) -> torch.Tensor:
        k, b = index.shape
        scratch = self._forward.scratch
        x = gather_rows(data.x_train, index, scratch("x", data.x_train, k, b, data.n_features))
        y = data.y_train.index_select(0, index.reshape(-1)).view(k, b)
        loss = self._forward.train_step(
            self._param_views, self._grad_views, self._running_views, self._bn_momentum, x, y
        )
        self.optimizer.step(self._param_blocks, self._grad_blocks)
        return loss

    def _eval_chunk(
        self, index: torch.Tensor, data: StackedData
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k, b = index.shape
        scratch = self._forward.scratch
        x = gather_rows(data.x_val, index, scratch("x_val", data.x_val, k, b, data.n_features))
        y = data.y_val.index_select(0, index.reshape(-1)).view(k, b)
        logits = self._forward.logits(self._param_views, self._running_views, x)
        # logits are (K, classes, n): cross_entropy's (N, C, d) form.
        losses = F.cross_entropy(logits, y, reduction="none").sum(dim=1)
        # max's indices are argmax's (the first maximum), but max reduces over this strided
        # class dimension ~7x faster on a CPU.
        return losses, (logits.max(dim=1).indices == y).sum(dim=1)

    def _extra_state(self) -> dict[str, Any]:
        return {"running": self.running}

    def _load_extra_state(self, saved: dict[str, Any]) -> None:
        self.running.copy_(saved["running"])

    def _restacked(self, rows: Rows) -> MLPStack:
        """Re-padded to the widest member left: dropping the widest trims the padding."""
        shape = _shape(rows.hparams, self.shape.n_features, self.shape.n_classes)
        params = rows.restack_flat([s.params for s, _ in rows.pairs], shape.parameters)
        pairs = cast(list[tuple[MLPStack, torch.Tensor]], rows.pairs)  # `restack` checked
        running = restack([(s.running, s.shape.running, i) for s, i in pairs], shape.running)
        return MLPStack(
            members=rows.members,
            hparams=rows.hparams,
            shape=shape,
            params=params,
            running=running,
            optimizer=rows.restack_optimizer(shape.parameters),
            generators=rows.generators,
            data_index=rows.data_index,
            epoch=self.epoch,
        )

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
