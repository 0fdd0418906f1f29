"""One stack: K members of one group trained in lockstep as a single vectorized model.

Everything a stack does outside its network's arithmetic is the same whichever network it
holds, and lives here: each member's learning rate for the epoch, its own data order drawn from
its own generator, the batches (`batch_starts`, shared with unpacked training), the
sample-weighted epoch loss, evaluation in chunks, the checkpoint and the restacking of rows
when members leave. A subclass supplies the network: one training step (forward, backward and
the optimizer's update) and one evaluation chunk, plus whatever per-member state it keeps
beside the flat parameters (BatchNorm running statistics, a module's buffers).

Members keep everything that evolves per member (weights, running statistics, optimizer
moments, shuffling generator) as rows of stacked tensors, initialised exactly as `build_state`
initialises an unpacked member, so each member trains as its unpacked twin would.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Sequence
from typing import Any, ClassVar, TypeVar

import torch

from trainables._hparams import HParams
from trainables._train import batch_starts, lr_factor
from trainables.packing._capture import GraphBackend, StepCapture, graph_backend
from trainables.packing._data import StackedData
from trainables.packing._layout import FlatLayout, restack
from trainables.packing._optim import StackedOptimizer, restack_optimizers

__all__ = ["Rows", "Stack"]

S = TypeVar("S", bound="Stack")


class Rows:
    """The per-member bookkeeping a restack carries over: ids, hyperparameters, generators,
    dataset indices, and the index tensors of the rows picked from each part."""

    def __init__(self, parts: Sequence[tuple[Stack, list[int]]]) -> None:
        picked = [(stack, rows) for stack, rows in parts if rows]
        if not picked:
            raise ValueError("a restack needs at least one row")
        self.first = picked[0][0]
        device = self.first.params.device
        self.pairs = [(stack, torch.tensor(rows, device=device)) for stack, rows in picked]
        self.members = [stack.members[r] for stack, rows in picked for r in rows]
        self.hparams = [stack.hparams[r] for stack, rows in picked for r in rows]
        self.generators = [stack.generators[r] for stack, rows in picked for r in rows]
        self.data_index = torch.cat([s.data_index.index_select(0, i) for s, i in self.pairs])
        epochs = {stack.epoch for stack, _ in picked}
        if len(epochs) != 1:
            raise ValueError(f"stacks restacked together must share their epoch, got {epochs}")

    def restack_flat(self, flat: Sequence[torch.Tensor], layout: FlatLayout) -> torch.Tensor:
        """Each part's `flat` buffer (in part order), its picked rows, laid out in `layout`."""
        parts = [
            (buffer, stack.layout, index)
            for buffer, (stack, index) in zip(flat, self.pairs, strict=True)
        ]
        return restack(parts, layout)

    def restack_optimizer(self, layout: FlatLayout) -> StackedOptimizer:
        return restack_optimizers([(s.optimizer, i) for s, i in self.pairs], layout)


class Stack(ABC):
    """K members trained together; `members` are the caller's ids for the rows, in row order.

    The contract every stack keeps (tests/trainables/test_stack_contract.py): in float64 each
    member's epoch results equal its unpacked run's; `state_dict` and `load_state_dict`
    continue a stack bit-identically; `restack` drops or joins rows without changing the
    training of the rows kept.
    """

    eval_chunk: ClassVar[int]  # validation samples per member per pass: bounds memory
    # Where a stack's full-batch steps may be recorded as a CUDA graph (`_capture`); a test
    # puts a CPU stand-in here.
    graph_backend: ClassVar[Callable[[torch.device], GraphBackend | None]] = staticmethod(
        graph_backend
    )

    def __init__(
        self,
        members: list[int],
        hparams: list[HParams],
        params: torch.Tensor,
        optimizer: StackedOptimizer,
        generators: list[torch.Generator],
        data_index: torch.Tensor,
        epoch: int,
    ) -> None:
        self.members = members
        self.hparams = hparams
        self.params = params
        self.optimizer = optimizer
        self.generators = generators
        self.data_index = data_index
        self.epoch = epoch
        self._capture: StepCapture | None = None
        self._captured_data: StackedData | None = None

    # What a network supplies.

    @property
    @abstractmethod
    def layout(self) -> FlatLayout:
        """How one member's parameters lie in `params`."""

    @property
    @abstractmethod
    def group(self) -> Hashable:
        """What stacks that may be joined into one by `restack` share."""

    @property
    @abstractmethod
    def batchnorm(self) -> bool:
        """Whether a last training batch of one sample must be dropped (`batch_starts`)."""

    @abstractmethod
    def _train_step(self, index: torch.Tensor, data: StackedData) -> torch.Tensor:
        """One step on the (K, B) sample rows `index`: forward, backward and the optimizer's
        update of every member; returns the (K,) mean batch losses (not synchronised)."""

    @abstractmethod
    def _eval_chunk(
        self, index: torch.Tensor, data: StackedData
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) summed validation losses and (K,) counts of correct predictions over the
        (K, B) validation rows `index`, in eval mode, without gradients."""

    @abstractmethod
    def _extra_state(self) -> dict[str, Any]:
        """Per-member state beside the parameters (running statistics, buffers) to save."""

    @abstractmethod
    def _load_extra_state(self, saved: dict[str, Any]) -> None:
        """Copy what `_extra_state` saved back into this stack."""

    @abstractmethod
    def _restacked(self, rows: Rows) -> Stack:
        """The stack of `rows` (this stack is `rows.first`), of this stack's class."""

    def _set_training(self, training: bool) -> None:  # noqa: B027 (a hook: no-op by default)
        """Put the network in training or eval mode (for networks that have modes)."""

    @property
    def capturable(self) -> bool:
        """Whether a step can be recorded as a CUDA graph: every value it reads per step must
        be a device tensor, and Adam reads its step count as a Python number."""
        return self.optimizer.kind != "adam"

    @property
    def capture(self) -> StepCapture | None:
        """How this stack's steps run, once it has trained (for logs and tests)."""
        return self._capture

    def _stepper(self, data: StackedData) -> StepCapture:
        """The step for `data`, eager or recorded: one recording per stack and dataset."""
        if self._capture is None or self._captured_data is not data:
            device = self.params.device
            backend = type(self).graph_backend(device) if self.capturable else None
            self._capture = StepCapture(lambda index: self._train_step(index, data), backend)
            self._captured_data = data
        return self._capture

    # The loops every stack shares.

    def learning_rates(self) -> list[float]:
        """Each member's rate for the coming epoch, computed exactly as its LambdaLR would."""
        return [hp.lr * lr_factor(hp)(self.epoch) for hp in self.hparams]

    def train_epoch(self, data: StackedData) -> torch.Tensor:
        """One epoch of every member; returns the (K,) sample-weighted mean losses (float64).

        Batching follows the unpacked `train_epoch`: each member's own permutation, drawn on
        its CPU generator (so the order does not depend on the device), cut by
        `batch_starts`. The losses stay on the device until the caller reads them: one host
        synchronisation per epoch, not per step.
        """
        self.optimizer.set_lr(self.learning_rates())
        self._set_training(True)
        device = self.params.device
        n, batch_size = data.n_train, self.hparams[0].batch_size
        order = torch.stack([torch.randperm(n, generator=g) for g in self.generators])
        order = order.to(device) + (self.data_index * n).unsqueeze(1)
        total = torch.zeros(len(self.members), dtype=torch.float64, device=device)
        seen = 0
        step = self._stepper(data)
        for start in batch_starts(n, batch_size, batchnorm=self.batchnorm):
            index = order[:, start : start + batch_size]
            self.optimizer.steps += 1  # here, not in the step: a recorded step replays no Python
            loss = step(index)
            total.add_(loss.detach().to(torch.float64), alpha=index.shape[1])
            seen += index.shape[1]
        self.epoch += 1
        return total / seen

    def evaluate(self, data: StackedData) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) validation losses and accuracies (float64), BatchNorm in eval mode."""
        correct, total = self.evaluate_counts(data)
        return total / data.n_val, correct.to(torch.float64) / data.n_val

    def evaluate_counts(self, data: StackedData) -> tuple[torch.Tensor, torch.Tensor]:
        """(K,) counts of correct validation predictions (int64) and summed losses (float64):
        the exact quantities behind `evaluate`, for comparisons that must not depend on how
        a device rounds a division."""
        device = self.params.device
        k, n = len(self.members), data.n_val
        offsets = (self.data_index * n).unsqueeze(1)
        total = torch.zeros(k, dtype=torch.float64, device=device)
        correct = torch.zeros(k, dtype=torch.int64, device=device)
        self._set_training(False)
        try:
            with torch.no_grad():
                for start in range(0, n, self.eval_chunk):
                    index = offsets + torch.arange(
                        start, min(n, start + self.eval_chunk), device=device
                    )
                    losses, hits = self._eval_chunk(index, data)
                    total += losses.to(torch.float64)
                    correct += hits
        finally:
            self._set_training(True)
        return correct, total

    def state_dict(self) -> dict[str, Any]:
        """Everything a restarted trial needs to continue this stack bit-identically.

        Hyperparameters and shapes are not saved: they follow from the members, which the
        restarted trial gets again from its config.
        """
        return {
            "members": list(self.members),
            "params": self.params.detach(),
            **self._extra_state(),
            "moments": dict(self.optimizer.state),
            "steps": self.optimizer.steps,
            "generators": torch.stack([g.get_state() for g in self.generators]),
        }

    def load_state_dict(self, saved: dict[str, Any], epoch: int) -> None:
        """Continue from `state_dict`'s snapshot: this stack must have been built for the same
        members, in the same order (the restarted trial builds it fresh, then loads)."""
        if list(saved["members"]) != list(self.members):
            raise ValueError(
                f"a saved stack of members {list(saved['members'])} cannot be loaded into a "
                f"stack of members {self.members}"
            )
        params = saved["params"].to(device=self.params.device, dtype=self.params.dtype)
        if params.shape != self.params.shape:
            raise ValueError(
                f"saved parameters hold {params.numel()} values, but {len(self.members)} "
                f"members of this network need {self.params.numel()}"
            )
        with torch.no_grad():
            self.params.copy_(params)
            for name, moment in self.optimizer.state.items():
                moment.copy_(saved["moments"][name])
            self._load_extra_state(saved)
        self.optimizer.steps = int(saved["steps"])
        for generator, state in zip(self.generators, saved["generators"], strict=True):
            generator.set_state(state.cpu().clone())  # a CPU generator, wherever it was loaded
        self.epoch = epoch

    @staticmethod
    def restack(parts: Sequence[tuple[S, list[int]]]) -> S:
        """A new stack of rows `rows` of each (stack, rows) part, in that order.

        Training state carries over unchanged; the parts must be of one class and one group
        and have trained the same number of epochs.
        """
        rows = Rows(parts)
        kinds = {(type(stack), stack.group) for stack, _ in rows.pairs}
        if len(kinds) != 1:
            raise ValueError("only stacks of one kind and one group can be restacked together")
        restacked = rows.first._restacked(rows)
        restacked.epoch = rows.first.epoch
        return restacked  # type: ignore[return-value]  # `_restacked` keeps the class
