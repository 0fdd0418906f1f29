"""K BatchNorm MLPs of one shape as stacked tensors, with a hand-written forward and backward.

Why by hand rather than autograd: a stack trains many tiny networks at once, and what costs time
next to the batched matmuls is per-op overhead and memory passes over the activations. The
backward of Linear → BatchNorm → ReLU is short, so writing it out keeps each step at a fixed,
small number of kernels, lets the weight gradients land directly in one flat buffer that the
optimizer updates in a handful of passes, and makes member independence easy to see: every
operation is batched over the leading member dimension and nothing reduces across it.

Members narrower than the stack's `hidden` width are zero-padded. Zero weights into and out of
a padded unit make its pre-activation 0, its BatchNorm output `beta = 0`, its ReLU output 0
and every gradient that reaches it exactly 0, so padded entries stay 0 forever: they change
no output, gradient, statistic or optimizer state of the real units (on finite values).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from trainables._model import BNMLP
from trainables.packing._layout import FlatLayout

# nn.BatchNorm1d's default epsilon, which BNMLP uses.
BN_EPS = 1e-5


@dataclass(frozen=True)
class StackShape:
    """The shape every member of a stack is padded to; `hidden` is the widest member's width."""

    n_features: int
    n_classes: int
    hidden: int
    depth: int
    batchnorm: bool

    @cached_property
    def parameters(self) -> FlatLayout:
        """Hidden weights stored (in, out), i.e. transposed from nn.Linear, so forward is x @ w;
        the output weights keep nn.Linear's (classes, in): with only ~10 classes, MKL's batched
        matmuls run ~3x faster computing the logits transposed, as w_out @ x^T."""
        entries: list[tuple[str, tuple[int, ...]]] = []
        width = self.n_features
        for layer in range(self.depth):
            entries.append((f"w{layer}", (width, self.hidden)))
            if self.batchnorm:
                entries += [(f"gamma{layer}", (self.hidden,)), (f"beta{layer}", (self.hidden,))]
            else:
                entries.append((f"b{layer}", (self.hidden,)))
            width = self.hidden
        entries += [("w_out", (self.n_classes, width)), ("b_out", (self.n_classes,))]
        return FlatLayout(tuple(entries))

    @cached_property
    def running(self) -> FlatLayout:
        """BatchNorm's running mean and variance per layer (empty without BatchNorm)."""
        if not self.batchnorm:
            return FlatLayout(())
        return FlatLayout(
            tuple(
                (f"{kind}{layer}", (self.hidden,))
                for layer in range(self.depth)
                for kind in ("mean", "var")
            )
        )


def member_tensors(model: BNMLP) -> dict[str, torch.Tensor]:
    """A BNMLP's parameters and running statistics under the stack's names and orientation."""
    linears = [m for m in model.hidden if isinstance(m, nn.Linear)]
    norms = [m for m in model.hidden if isinstance(m, nn.BatchNorm1d)]
    tensors: dict[str, torch.Tensor] = {}
    for layer, linear in enumerate(linears):
        tensors[f"w{layer}"] = linear.weight.detach().t()
        if norms:
            norm = norms[layer]
            tensors[f"gamma{layer}"] = norm.weight.detach()
            tensors[f"beta{layer}"] = norm.bias.detach()
            if norm.running_mean is None or norm.running_var is None:
                raise ValueError("a packed BNMLP's BatchNorm must track running statistics")
            tensors[f"mean{layer}"] = norm.running_mean
            tensors[f"var{layer}"] = norm.running_var
        else:
            tensors[f"b{layer}"] = linear.bias.detach()
    tensors["w_out"] = model.output.weight.detach()
    tensors["b_out"] = model.output.bias.detach()
    return tensors


def load_member(
    views: Mapping[str, torch.Tensor], row: int, tensors: Mapping[str, torch.Tensor]
) -> None:
    """Copy one member's tensors into row `row` of the stacked views (the rest stays zero)."""
    for name, target in views.items():
        source = tensors[name]
        index: tuple[int | slice, ...] = (row, *(slice(0, n) for n in source.shape))
        target[index] = source


class _Scratch:
    """Activation buffers reused from step to step, one per (role, shape).

    A fresh megabyte-sized tensor per op costs page faults on every step (glibc hands large
    blocks back to the kernel when they are freed), about a third of a step's time on a CPU.
    """

    def __init__(self) -> None:
        self._buffers: dict[tuple[str, tuple[int, ...]], torch.Tensor] = {}

    def __call__(self, role: str, like: torch.Tensor, *shape: int) -> torch.Tensor:
        key = (role, shape)
        buffer = self._buffers.get(key)
        if buffer is None:
            buffer = self._buffers[key] = like.new_empty(shape)
        return buffer


def gather_rows(source: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """source[index] for a (K, B) index, via index_select (several times faster than [])."""
    torch.index_select(source, 0, index.reshape(-1), out=out.view(-1, *source.shape[1:]))
    return out


class StackedForward:
    """Training and evaluation passes of a stack; holds its shape and reusable scratch buffers.

    `train_step` computes every member's mean batch loss and writes the gradients of their sum
    (i.e. each member's own gradient) into `grad`; BatchNorm running statistics are updated in
    place with each member's momentum, as nn.BatchNorm1d does in training mode.
    """

    def __init__(self, shape: StackShape) -> None:
        self.shape = shape
        self.scratch = _Scratch()

    def train_step(
        self,
        params: Mapping[str, torch.Tensor],
        grad: Mapping[str, torch.Tensor],
        running: Mapping[str, torch.Tensor],
        bn_momentum: torch.Tensor,
        x: torch.Tensor,
        y: torch.Tensor,
    ) -> torch.Tensor:
        """One forward and backward pass; returns the (K,) mean losses of this batch."""
        shape, scratch = self.shape, self.scratch
        k, batch = y.shape
        width = shape.hidden
        inputs: list[torch.Tensor] = []  # each layer's input
        outputs: list[torch.Tensor] = []  # each layer's post-ReLU output
        normalised: list[tuple[torch.Tensor, torch.Tensor]] = []  # (h - mean, 1/std) per BN layer
        a = x
        for layer in range(shape.depth):
            inputs.append(a)
            out = scratch(f"a{layer}", x, k, batch, width)
            if shape.batchnorm:
                h = torch.bmm(a, params[f"w{layer}"], out=scratch(f"h{layer}", x, k, batch, width))
                # Two passes (centre, then mean square): torch.var_mean over the middle
                # dimension takes a slow Welford path, ~50x slower on a CPU.
                mean = h.mean(dim=1, keepdim=True)
                centred = h.sub_(mean)
                square = torch.mul(centred, centred, out=scratch("square", x, k, batch, width))
                var = square.mean(dim=1, keepdim=True)
                rstd = (var + BN_EPS).rsqrt_()
                # x_hat = centred * rstd is never materialised: the backward needs only these.
                scale = params[f"gamma{layer}"].unsqueeze(1) * rstd
                beta = params[f"beta{layer}"].unsqueeze(1)
                a = torch.addcmul(beta, centred, scale, out=out).relu_()
                normalised.append((centred, rstd))
                # nn.BatchNorm1d keeps the unbiased variance in its running estimate.
                running[f"mean{layer}"].lerp_(mean.squeeze(1), bn_momentum)
                running[f"var{layer}"].lerp_(var.squeeze(1) * (batch / (batch - 1)), bn_momentum)
            else:
                bias = params[f"b{layer}"].unsqueeze(1)
                a = torch.baddbmm(bias, a, params[f"w{layer}"], out=out).relu_()
            outputs.append(a)
        # Logits transposed, (K, classes, batch): see `StackShape.parameters`.
        logits = torch.bmm(params["w_out"], a.transpose(1, 2)).add_(params["b_out"].unsqueeze(2))
        log_p = torch.log_softmax(logits, dim=1)
        target = y.unsqueeze(1)
        loss = log_p.gather(1, target).squeeze(1).mean(dim=1).neg_()

        # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch, per member.
        d = log_p.exp_()
        d.scatter_add_(1, target, torch.full_like(target, -1, dtype=d.dtype))
        d.mul_(1.0 / batch)
        torch.bmm(d, a, out=grad["w_out"])
        torch.sum(d, dim=2, out=grad["b_out"])
        upstream, weight = d.transpose(1, 2), params["w_out"]
        for layer in reversed(range(shape.depth)):
            d = torch.bmm(upstream, weight, out=scratch(f"d{layer}", x, k, batch, width))
            torch.ops.aten.threshold_backward.grad_input(d, outputs[layer], 0, grad_input=d)
            if shape.batchnorm:
                self._batchnorm_backward(params, grad, layer, d, *normalised[layer])
            else:
                torch.sum(d, dim=1, out=grad[f"b{layer}"])
            torch.bmm(inputs[layer].transpose(1, 2), d, out=grad[f"w{layer}"])
            upstream, weight = d, params[f"w{layer}"].transpose(1, 2)
        return loss

    def _batchnorm_backward(
        self,
        params: Mapping[str, torch.Tensor],
        grad: Mapping[str, torch.Tensor],
        layer: int,
        d: torch.Tensor,
        centred: torch.Tensor,
        rstd: torch.Tensor,
    ) -> None:
        """Replace d (the gradient at BatchNorm's output) by the gradient at its input."""
        batch = d.shape[1]
        rstd = rstd.squeeze(1)
        d_beta, d_gamma = grad[f"beta{layer}"], grad[f"gamma{layer}"]
        torch.sum(d, dim=1, out=d_beta)
        product = torch.mul(d, centred, out=self.scratch("square", d, *d.shape))
        torch.mul(product.sum(dim=1), rstd, out=d_gamma)
        # (dy - mean(dy) - x_hat mean(dy x_hat)) gamma / std, as one scaled copy of dy plus a
        # multiple of the centred input: two passes over the activations instead of four.
        gain = params[f"gamma{layer}"] * rstd
        shift = (gain * d_beta).mul_(-1.0 / batch).unsqueeze(1)
        slope = (gain * rstd * d_gamma).mul_(-1.0 / batch).unsqueeze(1)
        torch.addcmul(shift, d, gain.unsqueeze(1), out=d)
        d.addcmul_(centred, slope)

    def logits(
        self,
        params: Mapping[str, torch.Tensor],
        running: Mapping[str, torch.Tensor],
        x: torch.Tensor,
    ) -> torch.Tensor:
        """Eval-mode logits (BatchNorm with running statistics), transposed: (K, n_classes, n).

        The result lives in a scratch buffer that the next call overwrites. Validation
        activations are several megabytes per stack, so fresh tensors here cost page faults
        every epoch, as in the training step: a third of the evaluation's time.
        """
        shape, scratch = self.shape, self.scratch
        k, n = x.shape[0], x.shape[1]
        a = x
        for layer in range(shape.depth):
            out = scratch(f"eval{layer}", x, k, n, shape.hidden)
            if shape.batchnorm:
                h = torch.bmm(a, params[f"w{layer}"], out=out)
                scale = params[f"gamma{layer}"] * (running[f"var{layer}"] + BN_EPS).rsqrt()
                shift = params[f"beta{layer}"] - running[f"mean{layer}"] * scale
                a = h.mul_(scale.unsqueeze(1)).add_(shift.unsqueeze(1)).relu_()
            else:
                bias = params[f"b{layer}"].unsqueeze(1)
                a = torch.baddbmm(bias, a, params[f"w{layer}"], out=out).relu_()
        logits = scratch("eval_logits", x, k, shape.n_classes, n)
        torch.bmm(params["w_out"], a.transpose(1, 2), out=logits)
        return logits.add_(params["b_out"].unsqueeze(2))
