"""K copies of a user's network trained in lockstep as one vectorized model (torch.func).

The built-in MLP has a hand-written stack (`_packed_stack`); a user's network is any
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
out by member-contiguous blocks, so the optimizer and compaction are the built-in stack's own
(`_packed_optim`, `restack`).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn import functional

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._network_signature import first_difference, network_signature
from trainables._packed_model import FlatLayout, restack
from trainables._packed_optim import StackedOptimizer, restack_optimizers
from trainables._packed_stack import StackedData
from trainables._train import Network, has_batchnorm, initial_model, lr_factor

__all__ = ["FuncStack", "vectorize_problem"]

_EVAL_CHUNK = 4096  # validation samples per member per vectorized call: bounds memory


class FuncStack:
    """K members of one user network, trained together; `members` are the caller's row ids.

    Build with `build`, continue a checkpoint with `from_state`, drop or join members with
    `restack`. The interface is `PackedStack`'s, so a pack drives either kind the same way.
    """

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
    ) -> None:
        self.members = members
        self.hparams = hparams
        self.group = group
        self.layout = layout
        self.params = params.requires_grad_(True)
        self.buffers = buffers
        self.optimizer = optimizer
        self.generators = generators
        self.data_index = data_index
        self.epoch = epoch
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
    ) -> FuncStack:
        """Fresh members, each built by its own network builder and initialised as
        `build_state` would for its seed."""
        built = [
            initial_model(hp, datasets[index], seed=seed, network=network)
            for hp, seed, index, network in zip(hparams, seeds, data_index, networks, strict=True)
        ]
        return cls.from_models(
            members, hparams, [m for m, _ in built], [g for _, g in built], data_index, group
        )

    @classmethod
    def from_models(
        cls,
        members: list[int],
        hparams: list[HParams],
        models: list[nn.Module],
        generators: list[torch.Generator],
        data_index: list[int],
        group: Hashable,
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
        # The structure joins the group: stacks that `_without` re-packs together must match.
        return cls(
            members, hparams, (group, signature), first, layout, params,
            {n: b.detach().clone() for n, b in buffers.items()},
            optimizer, list(generators), index_tensor, 0,
        )  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        """Everything a restarted trial needs to continue this stack bit-identically (CPU)."""
        return {
            "members": list(self.members),
            "params": self.params.detach(),
            "buffers": dict(self.buffers),
            "moments": dict(self.optimizer.state),
            "steps": self.optimizer.steps,
            "generators": torch.stack([g.get_state() for g in self.generators]),
        }

    @classmethod
    def from_state(
        cls,
        saved: dict[str, Any],
        hparams: list[HParams],
        seeds: list[int],
        data_index: list[int],
        datasets: Sequence[Dataset],
        networks: Sequence[Network],
        group: Hashable,
        epoch: int,
    ) -> FuncStack:
        """The stack `state_dict` saved; the other arguments are its members', in row order."""
        members: list[int] = list(saved["members"])
        fresh = cls.build(members, hparams, seeds, data_index, datasets, networks, group)
        params = saved["params"].to(device=fresh.params.device, dtype=fresh.params.dtype)
        if params.shape != fresh.params.shape:
            raise ValueError(
                f"saved parameters hold {params.numel()} values, but {len(members)} members of "
                f"this network need {fresh.params.numel()}"
            )
        with torch.no_grad():
            fresh.params.copy_(params)
            for name, buffer in fresh.buffers.items():
                buffer.copy_(saved["buffers"][name])
            for name, moment in fresh.optimizer.state.items():
                moment.copy_(saved["moments"][name])
        fresh.optimizer.steps = int(saved["steps"])
        for generator, state in zip(fresh.generators, saved["generators"], strict=True):
            generator.set_state(state.cpu().clone())
        fresh.epoch = epoch
        return fresh

    @staticmethod
    def restack(parts: Sequence[tuple[FuncStack, list[int]]]) -> FuncStack:
        """A new stack of rows `rows` of each (stack, rows) part, in that order; the parts must
        come from one group and have trained the same number of epochs."""
        picked = [(stack, rows) for stack, rows in parts if rows]
        first = picked[0][0]
        device = first.params.device
        indices = [torch.tensor(rows, device=device) for _, rows in picked]
        pairs = list(zip(picked, indices, strict=True))
        params = restack([(s.params.detach(), s.layout, i) for (s, _), i in pairs], first.layout)
        buffers = {
            name: torch.cat([s.buffers[name].index_select(0, i) for (s, _), i in pairs])
            for name in first.buffers
        }
        optimizer = restack_optimizers([(s.optimizer, i) for (s, _), i in pairs], first.layout)
        return FuncStack(
            members=[stack.members[r] for stack, rows in picked for r in rows],
            hparams=[stack.hparams[r] for stack, rows in picked for r in rows],
            group=first.group,
            template=first._template,
            layout=first.layout,
            params=params,
            buffers=buffers,
            optimizer=optimizer,
            generators=[stack.generators[r] for stack, rows in picked for r in rows],
            data_index=torch.cat([s.data_index.index_select(0, i) for (s, _), i in pairs]),
            epoch=first.epoch,
        )

    def learning_rates(self) -> list[float]:
        """Each member's rate for the coming epoch, computed exactly as its LambdaLR would."""
        return [hp.lr * lr_factor(hp)(self.epoch) for hp in self.hparams]

    def _logits(self, params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        def one(
            p: dict[str, torch.Tensor], b: dict[str, torch.Tensor], xs: torch.Tensor
        ) -> torch.Tensor:
            return functional_call(self._template, (p, b), (xs,))

        return vmap(one, randomness="different")(params, self.buffers, x)

    def train_epoch(self, data: StackedData) -> torch.Tensor:
        """One epoch of every member; returns the (K,) sample-weighted mean losses (float64).

        Batching follows the unpacked `train_epoch`: each member's own permutation, split
        into batches of the shared size, the final batch kept unless the network has
        BatchNorm and that batch holds one sample.
        """
        self.optimizer.set_lr(self.learning_rates())
        self._template.train()
        device = self.params.device
        n, batch_size = data.n_train, self.hparams[0].batch_size
        order = torch.stack([torch.randperm(n, generator=g) for g in self.generators])
        order = order.to(device) + (self.data_index * n).unsqueeze(1)
        starts = list(range(0, n, batch_size))
        if self._batchnorm and len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        total = torch.zeros(len(self.members), dtype=torch.float64, device=device)
        seen = 0
        for start in starts:
            index = order[:, start : start + batch_size]
            k, b = index.shape
            flat = index.reshape(-1)
            x = data.x_train.index_select(0, flat).view(k, b, *data.x_train.shape[1:])
            y = data.y_train.index_select(0, flat)
            logits = self._logits(self.layout.views(self.params), x)
            losses = functional.cross_entropy(logits.reshape(k * b, -1), y, reduction="none")
            loss = losses.view(k, b).mean(dim=1)
            self.params.grad = None
            loss.sum().backward()  # members share no weights: each gets its own gradient
            grad = self.params.grad
            assert grad is not None  # backward just wrote it
            with torch.no_grad():
                self.optimizer.step(self._param_blocks, list(self.layout.views(grad).values()))
            total.add_(loss.detach().to(torch.float64), alpha=b)
            seen += b
        self.params.grad = None
        self.epoch += 1
        return total / seen

    def evaluate(self, data: StackedData) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) validation losses and accuracies (float64), BatchNorm in eval mode."""
        self._template.eval()
        device = self.params.device
        k, n = len(self.members), data.n_val
        offsets = (self.data_index * n).unsqueeze(1)
        total = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.int64, device=device)
        try:
            with torch.no_grad():
                params = self.layout.views(self.params.detach())
                for start in range(0, n, _EVAL_CHUNK):
                    stop = min(n, start + _EVAL_CHUNK)
                    flat = (offsets + torch.arange(start, stop, device=device)).reshape(-1)
                    b = stop - start
                    x = data.x_val.index_select(0, flat).view(k, b, *data.x_val.shape[1:])
                    y = data.y_val.index_select(0, flat)
                    logits = self._logits(params, x)
                    losses = functional.cross_entropy(
                        logits.reshape(k * b, -1), y, reduction="none"
                    )
                    total += losses.view(k, b).sum(dim=1).to(torch.float64)
                    correct += (logits.argmax(dim=2) == y.view(k, b)).sum(dim=1)
        finally:
            self._template.train()
        return total / n, correct.to(torch.float64) / n


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
