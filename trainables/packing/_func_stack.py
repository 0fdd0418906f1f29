"""K copies of a user's network trained in lockstep as one vectorized model (torch.func).

The built-in MLP has a hand-written stack (`_mlp_stack`); a user's network is any
`nn.Module`, so its stack is generic: the members' parameters and buffers are stacked along a
leading member dimension, and one step runs `functional_call` under `vmap`, the mechanism of
PyTorch's model-ensembling guide, extended to training. Each member keeps its own
initialisation, data order and BatchNorm running statistics (buffers are batched, so each
member's running mean and variance update in place from its own batch). Random layers draw
per member (`randomness="different"`), not the numbers an unpacked run would draw.

All members of a stack build the same network (equal `network_signature`: module types, plain
attributes, parameter shapes) and share batch size and optimizer. They differ in caviar's
training hyperparameters (learning rate and its schedule, momentum, Adam's betas, weight
decay), which the stacked optimizer holds as per-member columns, in their seeds and in any
factory keyword that only changes initial values. The parameters live in one flat buffer laid
out by member-contiguous blocks, so the optimizer, the loops and compaction are the ones every
stack shares (`_optim`, `_stack.Stack`, `_layout.restack`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any, ClassVar, cast

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._lifted import batchnorm_per_member
from trainables._network_signature import first_difference, network_signature
from trainables._train import Network, autocast, has_batchnorm, initial_model
from trainables.packing._cpu_ops import packed_cpu_ops
from trainables.packing._data import StackedData
from trainables.packing._layout import FlatLayout
from trainables.packing._optim import StackedOptimizer
from trainables.packing._stack import Rows, Stack

__all__ = ["FuncStack", "vectorize_problem"]


class FuncStack(Stack):
    """K members of one user network, trained together through `vmap`.

    Build with `build` (or `from_models`, from networks already built), continue a
    checkpoint with `load_state_dict`, drop or join members with `restack`.
    """

    eval_chunk: ClassVar[int] = 4096

    def __init__(
        self,
        members: list[int],
        hparams: list[HParams],
        group: Hashable,
        template: nn.Module,
        layout: FlatLayout,
        params: torch.Tensor,
        buffers: dict[str, torch.Tensor],
        optimizer: StackedOptimizer,
        generators: list[torch.Generator],
        data_index: torch.Tensor,
        epoch: int,
        precision: str = "fp32",
    ) -> None:
        super().__init__(
            members, hparams, params.requires_grad_(True), optimizer, generators, data_index, epoch
        )
        self._group = group
        self._layout = layout
        self.buffers = buffers
        self.precision = precision  # forward passes under `autocast` for bf16
        self._template = template  # one member's module: the code every member runs
        self._batchnorm = has_batchnorm(template, hparams[0])
        # Written under no_grad by the optimizer; the same storage as `params`.
        self._param_blocks = list(layout.views(self.params.detach()).values())

    @classmethod
    def build(
        cls,
        members: list[int],
        hparams: list[HParams],
        seeds: list[int],
        data_index: list[int],
        datasets: Sequence[Dataset],
        networks: Sequence[Network],
        group: Hashable,
        precision: str = "fp32",
    ) -> FuncStack:
        """Fresh members, each built by its own network builder and initialised as
        `build_state` would for its seed."""
        built = [
            initial_model(hp, datasets[index], seed=seed, network=network)
            for hp, seed, index, network in zip(hparams, seeds, data_index, networks, strict=True)
        ]
        return cls.from_models(
            members, hparams, [m for m, _ in built], [g for _, g in built], data_index, group,
            precision=precision,
        )  # fmt: skip

    @classmethod
    def from_models(
        cls,
        members: list[int],
        hparams: list[HParams],
        models: list[nn.Module],
        generators: list[torch.Generator],
        data_index: list[int],
        group: Hashable,
        precision: str = "fp32",
    ) -> FuncStack:
        """A stack of built members (`initial_model`). They may differ in parameter values
        (a keyword that only changes the initialisation) but not in `network_signature`."""
        first = models[0]
        signature = network_signature(first)
        for member, model in zip(members[1:], models[1:], strict=True):
            other = network_signature(model)
            if other != signature:
                raise ValueError(
                    f"member {member} builds another network than member {members[0]} "
                    f"({first_difference(signature, other)}): they cannot share a stack"
                )
        stacked_params, buffers = stack_module_state(models)
        layout = FlatLayout(tuple((n, tuple(t.shape[1:])) for n, t in stacked_params.items()))
        sample = next(iter(stacked_params.values()))
        params = layout.zeros(len(models), device=sample.device, dtype=sample.dtype)
        for name, view in layout.views(params).items():
            view.copy_(stacked_params[name].detach())
        optimizer = StackedOptimizer.create(hparams[0].optimizer, hparams, layout, params)
        index_tensor = torch.tensor(data_index, device=sample.device)
        # The structure joins the group: stacks that `restack` joins must match.
        return cls(
            members, hparams, (group, signature), first, layout, params,
            {n: b.detach().clone() for n, b in buffers.items()},
            optimizer, list(generators), index_tensor, 0, precision,
        )  # fmt: skip

    @property
    def layout(self) -> FlatLayout:
        return self._layout

    @property
    def group(self) -> Hashable:
        return self._group

    @property
    def batchnorm(self) -> bool:
        return self._batchnorm

    def _set_training(self, training: bool) -> None:
        self._template.train(training)

    @property
    def capturable(self) -> bool:
        # bfloat16 autocast caches its casts of the weights, which a recording must not keep.
        return super().capturable and self.precision == "fp32"

    def _logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        def one(
            p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xs: torch.Tensor
        ) -> torch.Tensor:
            return functional_call(self._template, (p, b), (xs,))

        with packed_cpu_ops(x.device, self.precision):  # faster BatchNorm and pooling on a CPU
            return vmap(one, randomness="different")(params, self.buffers, x)

    def _train_step(self, index: torch.Tensor, data: StackedData) -> torch.Tensor:
        k, b = index.shape
        flat = index.reshape(-1)
        x = data.x_train.index_select(0, flat).view(k, b, *data.x_train.shape[1:])
        y = data.y_train.index_select(0, flat)
        with autocast(x.device, self.precision):  # weights, gradients, moments: float32
            logits = self._logits(self.layout.views(self.params), x)
            losses = functional.cross_entropy(logits.reshape(k * b, -1), y, reduction="none")
        loss = losses.view(k, b).mean(dim=1)
        # Members share no weights: the gradient of the sum is each member's own gradient.
        (grad,) = torch.autograd.grad(loss.sum(), self.params)
        with torch.no_grad():
            self.optimizer.step(self._param_blocks, list(self.layout.views(grad).values()))
        return loss

    def _eval_chunk(
        self, index: torch.Tensor, data: StackedData
    ) -> tuple[torch.Tensor, torch.Tensor]:
        k, b = index.shape
        flat = index.reshape(-1)
        x = data.x_val.index_select(0, flat).view(k, b, *data.x_val.shape[1:])
        y = data.y_val.index_select(0, flat)
        with autocast(x.device, self.precision):
            logits = self._logits(self.layout.views(self.params.detach()), x)
        if self.precision != "fp32":
            logits = logits.float()
        losses = functional.cross_entropy(logits.reshape(k * b, -1), y, reduction="none")
        hits = (logits.argmax(dim=2) == y.view(k, b)).sum(dim=1)
        return losses.view(k, b).sum(dim=1), hits

    def _extra_state(self) -> dict[str, Any]:
        # What the members' BatchNorms hold per member (`lift_batchnorm`): a restarted trial
        # must build its stacks the same way to load these buffers.
        lifted = list(batchnorm_per_member(self._template))
        return {"buffers": dict(self.buffers), "batchnorm_per_member": lifted}

    def _load_extra_state(self, saved: dict[str, Any]) -> None:
        for name, buffer in self.buffers.items():
            buffer.copy_(saved["buffers"][name])

    def _restacked(self, rows: Rows) -> FuncStack:
        """The same network and layout: members of one group never differ in shape."""
        params = rows.restack_flat([s.params.detach() for s, _ in rows.pairs], self.layout)
        pairs = cast(list[tuple[FuncStack, torch.Tensor]], rows.pairs)  # `restack` checked
        buffers = {
            name: torch.cat([s.buffers[name].index_select(0, i) for s, i in pairs])
            for name in self.buffers
        }
        return FuncStack(
            members=rows.members,
            hparams=rows.hparams,
            group=self.group,
            template=self._template,
            layout=self.layout,
            params=params,
            buffers=buffers,
            optimizer=rows.restack_optimizer(self.layout),
            generators=rows.generators,
            data_index=rows.data_index,
            epoch=self.epoch,
            precision=self.precision,
        )


def vectorize_problem(network: Network, data: Dataset) -> str | None:
    """Why `network` cannot be packed, found by training two members for one small epoch and
    evaluating them; None when it can. Data-dependent control flow, in-place changes of an
    input and ops vmap does not support fail here, before any trial is started."""
    n = min(8, data.x_train.shape[0], data.x_val.shape[0])
    tiny = replace(
        data,
        x_train=data.x_train[:n],
        y_train=data.y_train[:n],
        x_val=data.x_val[:n],
        y_val=data.y_val[:n],
    )
    hp = HParams(batch_size=max(2, n // 2))
    try:
        stack = FuncStack.build(
            [0, 1], [hp, hp], [0, 1], [0, 0], [tiny], [network, network], "probe"
        )
        stacked = StackedData.from_datasets([tiny])
        stack.train_epoch(stacked)
        stack.evaluate(stacked)
    except Exception as exc:  # whatever the user's network does under vmap
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return None
