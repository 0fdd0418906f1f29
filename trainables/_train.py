"""Training and evaluation as plain functions, so they are tested and reused without Ray.

Everything random is derived from one seed and carried in `TrainState`, and `state_dict` /
`load_state` capture all of it: a run interrupted after any epoch and resumed from its state
dict ends bit-identical (on CPU) to one that never stopped.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from trainables._data import Dataset
from trainables._hparams import HParams
from trainables._lifted import MemberBatchNorm, lift_attributes
from trainables._model import BNMLP, softmax_cross_entropy
from trainables._trial_config import PRECISIONS

logger = logging.getLogger(__name__)

STATE_FORMAT = 1  # bump when the layout of `state_dict` changes
_EVAL_CHUNK = 8192  # evaluation batch: bounds memory without changing the (eval-mode) result


@dataclass
class TrainState:
    """Everything that evolves during training, including the shuffling generator.

    `epoch` counts completed epochs; it is also the `t` of the learning-rate schedule.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    epoch: int = 0


@dataclass(frozen=True)
class EpochResult:
    """What one epoch produced. `epoch` is 1-based; `lr` is the rate used during the epoch."""

    epoch: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    lr: float
    diverged: bool


def lr_factor(hp: HParams) -> Callable[[int], float]:
    """The multiplier of `hp.lr` after `t` completed epochs, as documented for `lr_decay`."""
    rate = hp.decay_rate
    if hp.lr_decay == "inverse_time":
        return lambda t: 1.0 / (1.0 + rate * t)
    if hp.lr_decay == "exponential":
        return lambda t: math.exp(-rate * t)
    return lambda t: 1.0


def _derived_seeds(seed: int) -> tuple[int, int, int]:
    # Independent streams for initialisation, shuffling and dropout masks, so none mirrors
    # another. SeedSequence's words are a stream: the first two are what they always were.
    words = np.random.SeedSequence(seed).generate_state(3, dtype=np.uint32)
    return int(words[0]), int(words[1]), int(words[2])


def _make_optimizer(hp: HParams, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if hp.optimizer == "adam":
        # Coupled L2 weight decay (added to the gradient), as in torch.optim.Adam.
        return torch.optim.Adam(
            params, lr=hp.lr, betas=(hp.beta1, hp.beta2), eps=hp.eps, weight_decay=hp.weight_decay
        )
    # PyTorch's momentum: v ← beta·v + g, p ← p − lr·v (no dampening).
    momentum = hp.beta if hp.optimizer == "momentum" else 0.0
    return torch.optim.SGD(params, lr=hp.lr, momentum=momentum, weight_decay=hp.weight_decay)


Network = Callable[[Dataset], nn.Module]


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context forward passes run in: nothing for fp32; bfloat16 autocast for bf16, which
    leaves the weights, their gradients and the optimizer's state in float32 (no loss scaling
    is needed: bfloat16 has float32's exponent range)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)


def precision_problem(device: torch.device | str, precision: str) -> str | None:
    """Why `precision` cannot train on `device`; None when it can. CPUs run bfloat16 autocast
    everywhere (emulated where the CPU lacks native support); GPUs need it in hardware."""
    if precision not in PRECISIONS:
        return f"must be one of {', '.join(PRECISIONS)}"
    device = torch.device(device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        name = torch.cuda.get_device_name(device)
        return f"this GPU ({name}) has no bfloat16 support; use precision: fp32"
    return None


def initial_model(
    hp: HParams, data: Dataset, *, seed: int, network: Network | None = None
) -> tuple[nn.Module, torch.Generator]:
    """The initial model and shuffling generator for `seed`; no optimizer.

    `network` builds a user's model for the data (`TrialConfig.network`); without it, the
    built-in BatchNorm MLP of `hp`.

    The weights are drawn on the CPU from a forked RNG, so the same seed gives the same
    initial model on any device and the caller's global RNG state is left untouched. Packs
    start from here too (without torch.optim, whose first use costs ~4 s of imports).
    """
    init_seed, shuffle_seed, mask_seed = _derived_seeds(seed)
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(init_seed)
        model = (
            BNMLP(
                data.n_features,
                data.n_classes,
                hidden=hp.hidden,
                depth=hp.depth,
                batchnorm=hp.batchnorm,
                bn_momentum=hp.bn_momentum,
            )
            if network is None
            # Dropout rates and the like as per-member buffers, packed or not: `_lifted`.
            else lift_attributes(network(data), mask_seed)
        )
    model.to(device=data.device, dtype=data.dtype)
    generator = torch.Generator(device="cpu")
    generator.manual_seed(shuffle_seed)
    return model, generator


def build_state(
    hp: HParams, data: Dataset, *, seed: int, network: Network | None = None
) -> TrainState:
    """A freshly initialised model and optimizer on the dataset's device and dtype.

    The weights are drawn on the CPU from a forked RNG, so the same seed gives the same
    initial model on any device and the caller's global RNG state is left untouched.
    """
    model, generator = initial_model(hp, data, seed=seed, network=network)
    optimizer = _make_optimizer(hp, model)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=lr_factor(hp))
    return TrainState(model, optimizer, scheduler, generator, epoch=0)


def train_epoch(state: TrainState, data: Dataset, hp: HParams, precision: str = "fp32") -> float:
    """One pass over the shuffled training set; returns the sample-weighted mean loss.

    The last partial batch is kept, except when BatchNorm is on and it holds a single sample:
    batch statistics of one sample are undefined (PyTorch raises). That sample is still seen in
    other epochs, since every epoch is shuffled differently.
    """
    model = state.model
    model.train()
    # Shuffled on the CPU generator so the order does not depend on the device.
    n = data.x_train.shape[0]
    order = torch.randperm(n, generator=state.generator).to(data.device)
    starts = batch_starts(n, hp.batch_size, batchnorm=has_batchnorm(model, hp))
    batches = [order[start : start + hp.batch_size] for start in starts]
    # Accumulated on the device, in float64, so the epoch needs a single host sync.
    total = torch.zeros((), dtype=torch.float64, device=data.device)
    seen = 0
    for index in batches:
        with autocast(data.device, precision):
            loss = softmax_cross_entropy(model(data.x_train[index]), data.y_train[index])
        state.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        state.optimizer.step()
        total += loss.detach().to(torch.float64) * index.numel()
        seen += index.numel()
    state.scheduler.step()
    state.epoch += 1
    return total.item() / seen


def batch_starts(n: int, batch_size: int, *, batchnorm: bool) -> list[int]:
    """Where each batch of an epoch of `n` samples starts: every `batch_size`, the last
    partial batch kept, except a last batch of one sample when the network has BatchNorm
    (batch statistics of one sample are undefined; PyTorch raises).

    Packed and unpacked training both cut their epochs here, so a member sees exactly the
    batches its unpacked twin sees: packing's exactness depends on it.
    """
    starts = list(range(0, n, batch_size))
    if batchnorm and len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return starts


_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, MemberBatchNorm)


def has_batchnorm(model: nn.Module, hp: HParams) -> bool:
    """Batch statistics of one sample are undefined: such models drop a last batch of one."""
    if isinstance(model, BNMLP):
        return hp.batchnorm
    return any(isinstance(m, _BATCHNORMS) for m in model.modules())


def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str = "fp32"
) -> tuple[float, float]:
    """(mean loss, accuracy) in eval mode, i.e. with BatchNorm's running statistics.

    The model's train/eval mode is restored afterwards, so evaluating mid-training is harmless.
    """
    was_training = model.training
    model.eval()
    total_loss = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    try:
        with torch.no_grad(), autocast(x.device, precision):
            for x_chunk, y_chunk in zip(x.split(_EVAL_CHUNK), y.split(_EVAL_CHUNK), strict=True):
                logits = model(x_chunk)
                if precision != "fp32":  # bfloat16 logits: the loss in float32, as in training
                    logits = logits.float()
                loss = softmax_cross_entropy(logits, y_chunk, reduction="sum")
                total_loss += loss.to(torch.float64)
                correct += (logits.argmax(dim=1) == y_chunk).sum()
    finally:
        model.train(was_training)
    n = y.shape[0]
    return total_loss.item() / n, correct.item() / n


def state_dict(state: TrainState) -> dict[str, Any]:
    """A snapshot of the training state, suitable for `torch.save` (weights-only loading).

    Deep-copied, so training on does not change a snapshot already taken. Also holds torch's
    global CPU RNG state: nothing here draws from it today, but an added op that did (dropout,
    say) would otherwise silently break bit-identical resumption.
    """
    return copy.deepcopy(
        {
            "format": STATE_FORMAT,
            "epoch": state.epoch,
            "model": state.model.state_dict(),  # includes BatchNorm's running statistics
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "generator": state.generator.get_state(),
            "torch_cpu_rng": torch.get_rng_state(),
        }
    )


def load_state(state: TrainState, saved: dict[str, Any]) -> None:
    """Restore a `state_dict` snapshot into `state`, built with the same hyperparameters.

    Restores torch's global CPU RNG too (see `state_dict`).
    """
    if saved.get("format") != STATE_FORMAT:
        raise ValueError(f"unsupported training-state format {saved.get('format')!r}")
    state.model.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(dict(saved["scheduler"]))
    state.generator.set_state(saved["generator"])
    state.epoch = int(saved["epoch"])
    torch.set_rng_state(saved["torch_cpu_rng"])


def run_training(
    hp: HParams,
    data: Dataset,
    *,
    epochs: int,
    seed: int,
    state: TrainState | None = None,
    on_epoch: Callable[[EpochResult, TrainState], bool] | None = None,
    precision: str = "fp32",
) -> list[EpochResult]:
    """Train until `epochs` epochs are complete in total, divergence, or `on_epoch` says stop.

    A given `state` (e.g. a restored checkpoint) continues from its own epoch and `seed` is
    then unused. A non-finite train or validation loss marks the epoch diverged and ends
    training: nothing useful can follow, and the caller reports it as an outcome, not a crash.
    `on_epoch` sees every epoch, the diverged one included, and returns False to stop early.
    `precision` "bf16" runs the forward passes under bfloat16 autocast (`autocast`).
    """
    if state is None:
        state = build_state(hp, data, seed=seed)
    results: list[EpochResult] = []
    while state.epoch < epochs:
        lr = float(state.optimizer.param_groups[0]["lr"])
        train_loss = train_epoch(state, data, hp, precision)
        val_loss, val_accuracy = evaluate(state.model, data.x_val, data.y_val, precision)
        diverged = not (math.isfinite(train_loss) and math.isfinite(val_loss))
        result = EpochResult(state.epoch, train_loss, val_loss, val_accuracy, lr, diverged)
        results.append(result)
        if diverged:
            logger.info("diverged at epoch %d (train loss %s)", state.epoch, train_loss)
        keep_going = on_epoch(result, state) if on_epoch is not None else True
        if diverged or not keep_going:
            break
    return results
