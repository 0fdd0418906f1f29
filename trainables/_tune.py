"""Ray Tune function trainables: the only module in `trainables` that imports Ray.

Thin adapters: parse the config, pick the device and thread count Ray granted, restore a
checkpoint if Tune hands one back, and turn each epoch's results into a
`tune.report`: one configuration per trial (`train_bn_mlp`) or a pack of them
(`train_bn_mlp_packed`).
"""

from __future__ import annotations

import logging
import math
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from trainables._data import Dataset, load_dataset
from trainables._hparams import HyperParameterError
from trainables._train import (
    EpochResult,
    TrainState,
    build_state,
    load_state,
    precision_problem,
    run_training,
    state_dict,
)
from trainables._trial_config import TrialConfig
from trainables.packing import PackConfig, PackedRun, PackMember, member_metrics

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "train_state.pt"
PACK_CHECKPOINT_FILE = "pack_state.pt"


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


def _granted_gpu_share() -> float:
    """The fraction of a GPU Ray reserved for this trial (1 with a whole GPU or more): how
    much of the device's memory a pack may plan for when packs share it."""
    try:
        gpus = tune.get_context().get_trial_resources().required_resources.get("GPU", 0.0)
    except AttributeError:  # no Tune session (called directly)
        return 1.0
    return 1.0 if gpus <= 0 else min(1.0, float(gpus))


def trial_device() -> torch.device:
    """Where this Ray worker trains: CUDA only when Ray granted it a GPU (a visible GPU may
    belong to another trial). Trials and anything that must cost like them (the `auto` probe)
    decide the same way."""
    if torch.cuda.is_available() and ray.get_gpu_ids():
        return torch.device("cuda")
    return torch.device("cpu")


def trial_data(trial: TrialConfig, device: torch.device | None = None) -> Dataset:
    """The dataset split `trial` trains on, on `device` (default: `trial_device()`). One place
    for trials, pack members and the `auto` probe, so they cannot drift apart in what they load.
    """
    return load_dataset(
        trial.dataset,
        seed=trial.seed,
        val_fraction=trial.val_fraction,
        device=trial_device() if device is None else device,
        data_version=trial.data_version,
    )


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
        **asdict(result),
        # Ray's own `node_ip` cannot tell apart two nodes on one host; the node id can.
        "node_id": ray.get_runtime_context().get_node_id(),
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
    device = trial_device()
    _check_precision(device, trial.precision)
    data = trial_data(trial, device)
    state = build_state(trial.hparams, data, seed=trial.seed, network=trial.network)
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
        trial.hparams, data, epochs=trial.epochs, seed=trial.seed, state=state, on_epoch=report,
        precision=trial.precision,
    )  # fmt: skip


def train_bn_mlp_packed(config: dict[str, Any]) -> None:
    """Ray Tune function trainable for a pack of BN-MLP configurations trained together.

    `config` is `{"members": [member, ...], "early_stopping": {...}}` (see `PackConfig`):
    each member is the flat config `train_bn_mlp` takes plus an opaque `member_id`; all
    members share model, dataset, val_fraction, epochs and checkpoint_every. Once per epoch it
    reports `{"epoch": e, "members": [entry, ...], "node_id": ..., "device": "cpu" | "cuda"}`
    with one entry (keys `MEMBER_METRICS`) per member trained in that epoch: the active ones,
    including, once, a member that diverged (`diverged=True`) or was stopped by the pack's
    successive halving (`stopped=True`) in it.
    Each member's numbers are those its own `train_bn_mlp` trial would report, up to
    floating-point rounding. With `checkpoint_every` the whole pack (every stack's weights,
    BatchNorm statistics, optimizer moments and shuffling generators) is checkpointed like a
    single trial, and a restarted pack continues from its last checkpoint bit-identically on a
    CPU; members that had left the pack before it stay out.
    """
    pack = PackConfig.from_config(config)
    torch.set_num_threads(_granted_cpus())
    device = trial_device()
    _check_precision(device, pack.members[0].trial.precision)  # shared by the pack
    datasets: dict[int, Dataset] = {}
    for member in pack.members:
        # Members share dataset and val_fraction (PackConfig checks): one split per seed,
        # loaded for the first member with that seed.
        if member.trial.seed not in datasets:
            datasets[member.trial.seed] = trial_data(member.trial, device)
    members = [
        PackMember(
            m.trial.hparams, m.trial.seed, datasets[m.trial.seed], m.trial.network,
            m.trial.network_key, m.trial.precision,
        )
        for m in pack.members
    ]  # fmt: skip
    run = _restore_pack(members, device) or PackedRun.start(
        members, memory_share=_granted_gpu_share()
    )
    schedule = pack.members[0].trial  # checkpoint_every and epochs are shared by the pack
    # node_id as in single trials' metrics, once per report: it is the same for all members.
    node = ray.get_runtime_context().get_node_id()
    while run.stacks and run.epoch < pack.epochs:
        results = run.train_epoch()
        stopping = pack.early_stopping
        stop = stopping.stops(run.epoch, results, pack.epochs) if stopping is not None else set()
        run.drop(stop)
        entries = [
            member_metrics(pack.members[index].member_id, result, stopped=index in stop)
            for index, result in sorted(results.items())
        ]
        metrics = {"epoch": run.epoch, "members": entries, "node_id": node, "device": device.type}
        if not (run.stacks and schedule.checkpoint_due(run.epoch)):
            tune.report(metrics)
            continue
        with tempfile.TemporaryDirectory(prefix="caviar-checkpoint-") as directory:
            torch.save(run.state_dict(), Path(directory) / PACK_CHECKPOINT_FILE)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def _check_precision(device: torch.device, precision: str) -> None:
    """A GPU without bfloat16 fails the trial with one line, before any data is loaded."""
    problem = precision_problem(device, precision)
    if problem is not None:
        raise HyperParameterError("precision", precision, problem)


def _restore_pack(members: list[PackMember], device: torch.device) -> PackedRun | None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as directory:
        saved = torch.load(
            Path(directory) / PACK_CHECKPOINT_FILE, map_location=device, weights_only=True
        )
    run = PackedRun.from_state(members, saved)
    logger.info("pack resumed from a checkpoint after epoch %d", run.epoch)
    return run


FUNCTION_KEY = "function"  # module:function of a whole training function
FUNCTION_DIR_KEY = "function_dir"  # where it is imported from first
OBJECTIVE_KEY = "objective"  # the metric every report must carry
USER_METRICS_KEY = "caviar_metrics"  # the names the function reported, for `epochs` columns


class _DivergedError(BaseException):  # not swallowed by the function's `except Exception`
    """Raised out of `report` to end a training function whose metrics went non-finite."""


def train_function(config: dict[str, Any]) -> None:
    """Ray Tune trainable for a user's whole training function `train(config, report)`.

    The function gets its hyperparameters plus `seed` and `epochs`, and calls
    `report(**metrics)` once per epoch. Each report becomes a Tune result numbered by epoch;
    a report without the objective's metric, or with a value that is not a number, fails the
    trial with a message saying so. A non-finite metric marks the epoch diverged and ends the
    function (the trial's status is then `diverged`, as for caviar's own loop).
    """
    from trainables._factory import load_training_function

    config = dict(config)
    function = load_training_function(config.pop(FUNCTION_KEY), config.pop(FUNCTION_DIR_KEY, ""))
    objective = str(config.pop(OBJECTIVE_KEY))
    torch.set_num_threads(_granted_cpus())
    node = ray.get_runtime_context().get_node_id()
    epoch = 0

    def report(**metrics: object) -> None:
        nonlocal epoch
        if objective not in metrics:
            raise ValueError(f"report() must include {objective!r}; got {sorted(metrics)}")
        values: dict[str, float] = {}
        for name, value in metrics.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"report({name}=...) must be a number, got {value!r}")
            values[name] = float(value)
        epoch += 1
        diverged = not all(math.isfinite(v) for v in values.values())
        tune.report(
            {**values, "epoch": epoch, "diverged": diverged, "node_id": node,
             USER_METRICS_KEY: sorted(values)}
        )  # fmt: skip
        if diverged:
            raise _DivergedError

    try:
        function(config, report)
    except _DivergedError:
        logger.info("diverged at epoch %d", epoch)
