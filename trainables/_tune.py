"""Ray Tune function trainables: the only module in `trainables` that imports Ray.

A thin adapter: parse the flat config, pick the device and thread count Ray granted, restore a
checkpoint if Tune hands one back, and turn each `EpochResult` into a `tune.report`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from trainables._data import load_dataset
from trainables._train import (
    EpochResult,
    TrainState,
    build_state,
    load_state,
    run_training,
    state_dict,
)
from trainables._trial_config import TrialConfig

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "train_state.pt"


def _granted_cpus() -> int:
    """CPUs Ray reserved for this trial (at least 1).

    torch would otherwise start one thread per core on the node, and two concurrent trials on
    two cores would oversubscribe them and both run slower.
    """
    try:
        cpus = tune.get_context().get_trial_resources().head_cpus
    except AttributeError:  # no Tune session (called directly): be conservative
        return 1
    return max(1, int(cpus))


def _device() -> torch.device:
    # CUDA only when Ray actually gave this trial a GPU: a visible GPU may belong to another.
    if torch.cuda.is_available() and ray.get_gpu_ids():
        return torch.device("cuda")
    return torch.device("cpu")


def _restore(state: TrainState, device: torch.device) -> None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return
    with checkpoint.as_directory() as directory:
        saved = torch.load(
            Path(directory) / CHECKPOINT_FILE, map_location=device, weights_only=True
        )
    load_state(state, saved)
    logger.info("resumed from a checkpoint after epoch %d", state.epoch)


def _metrics(result: EpochResult) -> dict[str, Any]:
    return {
        "epoch": result.epoch,
        "train_loss": result.train_loss,
        "val_loss": result.val_loss,
        "val_accuracy": result.val_accuracy,
        "lr": result.lr,
        "diverged": result.diverged,
    }


def train_bn_mlp(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for the BatchNorm MLP; one `tune.report` per epoch.

    `config` is flat: hyperparameter names plus model, dataset, epochs, seed, val_fraction and
    checkpoint_every (see `TRIAL_SETTINGS`); anything else raises HyperParameterError. A
    diverged run reports once with `diverged=True` and returns normally, so Tune records it as
    an outcome rather than an error. With a checkpoint from Tune (trial restart or restore) it
    continues from that epoch and ends bit-identical to an uninterrupted run.
    """
    trial = TrialConfig.from_flat(config)
    torch.set_num_threads(_granted_cpus())
    device = _device()
    data = load_dataset(
        trial.dataset, seed=trial.seed, val_fraction=trial.val_fraction, device=device
    )
    state = build_state(trial.hparams, data, seed=trial.seed)
    _restore(state, device)

    def report(result: EpochResult, state: TrainState) -> bool:
        if result.diverged or not trial.checkpoint_due(result.epoch):
            tune.report(_metrics(result))
            return True
        # `tune.report` copies the checkpoint into trial storage before returning, so a
        # temporary directory is enough.
        with tempfile.TemporaryDirectory(prefix="caviar-checkpoint-") as directory:
            torch.save(state_dict(state), Path(directory) / CHECKPOINT_FILE)
            tune.report(_metrics(result), checkpoint=tune.Checkpoint.from_directory(directory))
        return True

    run_training(
        trial.hparams, data, epochs=trial.epochs, seed=trial.seed, state=state, on_epoch=report
    )
