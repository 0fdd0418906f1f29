"""SGD, SGD with momentum and Adam for a stack, each member with its own hyperparameters.

The update rules are torch.optim's (SGD without dampening, Adam with coupled L2 weight decay,
as `_train._make_optimizer` configures them), written over the stack's flat (K, size) buffers
with every hyperparameter a (K, 1) column: one update is a few elementwise passes over whole
buffers, whatever K is, and no member's numbers ever mix with another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from trainables._hparams import HParams
from trainables.packing._layout import FlatLayout, restack

# Per-member hyperparameters each optimizer reads, and the flat state buffers it keeps.
_HYPER = {
    "sgd": ("weight_decay",),
    "momentum": ("weight_decay", "beta"),
    "adam": ("weight_decay", "beta1", "beta2", "eps"),
}
_STATE = {"sgd": (), "momentum": ("momentum",), "adam": ("exp_avg", "exp_avg_sq")}


@dataclass
class StackedOptimizer:
    """Optimizer state of one stack: hyperparameter columns, flat moment buffers, step count.

    The moment buffers share the parameters' `layout`; all members of a stack take every step
    together, so one step count serves them all.
    """

    kind: str
    layout: FlatLayout
    hyper: dict[str, torch.Tensor]
    state: dict[str, torch.Tensor]
    lr: torch.Tensor
    steps: int = 0
    # Whether any member decays its weights; read once so a step needs no device sync.
    decays: bool = field(init=False)

    def __post_init__(self) -> None:
        self.decays = bool(self.hyper["weight_decay"].any())
        self._state_blocks = {
            name: list(self.layout.views(buffer).values()) for name, buffer in self.state.items()
        }

    @classmethod
    def create(
        cls, kind: str, hparams: Sequence[HParams], layout: FlatLayout, like: torch.Tensor
    ) -> StackedOptimizer:
        """Fresh state for `hparams` (one per member, all of optimizer `kind`); `like` is the
        flat parameter buffer."""

        def column(values: Sequence[float]) -> torch.Tensor:
            return torch.tensor(values, device=like.device, dtype=like.dtype)

        hyper = {name: column([getattr(hp, name) for hp in hparams]) for name in _HYPER[kind]}
        state = {name: torch.zeros_like(like) for name in _STATE[kind]}
        return cls(kind, layout, hyper, state, column([hp.lr for hp in hparams]))

    def set_lr(self, lrs: Sequence[float]) -> None:
        """Each member's learning rate for the coming epoch (its schedule is applied outside)."""
        self.lr.copy_(torch.tensor(lrs, dtype=torch.float64))

    def step(self, params: Sequence[torch.Tensor], grads: Sequence[torch.Tensor]) -> None:
        """One update of the (K, *shape) parameter blocks from their gradients (overwritten).

        The caller counts the step (`steps += 1`) before: an update reads nothing but device
        tensors (Adam aside, whose bias correction reads `steps`), so it can be recorded once
        as a CUDA graph and replayed (`_capture`)."""
        for block, (param, grad) in enumerate(zip(params, grads, strict=True)):
            column = (-1,) + (1,) * (param.dim() - 1)  # a per-member value for this block
            lr = self.lr.view(column)
            # torch.optim skips the decay term when it is 0; 0 * p adds exactly nothing either.
            if self.decays:
                grad.addcmul_(param, self.hyper["weight_decay"].view(column))
            if self.kind == "sgd":
                param.addcmul_(grad, lr, value=-1.0)
            elif self.kind == "momentum":
                # v <- beta v + g (v starts at 0, so the first v is g, as torch.optim's clone);
                # p <- p - lr v.
                velocity = self._state_blocks["momentum"][block]
                torch.addcmul(grad, velocity, self.hyper["beta"].view(column), out=velocity)
                param.addcmul_(velocity, lr, value=-1.0)
            else:
                self._adam(block, param, grad, column)

    def _adam(
        self, block: int, param: torch.Tensor, grad: torch.Tensor, column: tuple[int, ...]
    ) -> None:
        h = {name: values.view(column) for name, values in self.hyper.items()}
        exp_avg = self._state_blocks["exp_avg"][block]
        exp_avg_sq = self._state_blocks["exp_avg_sq"][block]
        exp_avg.lerp_(grad, 1.0 - h["beta1"])
        exp_avg_sq.mul_(h["beta2"]).addcmul_(grad, grad * (1.0 - h["beta2"]))
        # Bias corrections in float64, as torch.optim computes them with Python floats.
        correction1 = 1.0 - h["beta1"].double().pow(self.steps)
        correction2_sqrt = (1.0 - h["beta2"].double().pow(self.steps)).sqrt()
        step_size = (self.lr.view(column).double() / correction1).to(param.dtype)
        denominator = exp_avg_sq.sqrt().div_(correction2_sqrt.to(param.dtype)).add_(h["eps"])
        param.addcmul_(exp_avg / denominator, step_size, value=-1.0)


def restack_optimizers(
    parts: Sequence[tuple[StackedOptimizer, torch.Tensor]], layout: FlatLayout
) -> StackedOptimizer:
    """The rows `index` of each (optimizer, index) part, joined and re-laid out in `layout`.

    The parts must have taken the same number of steps (same group, same epochs).
    """
    first = parts[0][0]
    steps = {optimizer.steps for optimizer, _ in parts}
    if len(steps) != 1:
        raise ValueError(f"cannot join stacks that took different numbers of steps: {steps}")
    hyper = {
        name: torch.cat([opt.hyper[name].index_select(0, index) for opt, index in parts])
        for name in first.hyper
    }
    lr = torch.cat([opt.lr.index_select(0, index) for opt, index in parts])
    state = {
        name: restack([(opt.state[name], opt.layout, index) for opt, index in parts], layout)
        for name in first.state
    }
    return StackedOptimizer(first.kind, layout, hyper, state, lr, first.steps)
