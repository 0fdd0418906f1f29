"""One babysat model, trained period by period inside a single Ray Tune trial.

The loop (`babysit`) is plain PyTorch around `sweeps.panda._babysitter.judge`, so it is tested
without Ray; `panda_trial` is the thin Ray Tune function that runs it and reports each period.
A kept model is saved before its decision is reported, so a recorded decision never points at
a missing file; a rollback reloads the good checkpoint from disk, which is exactly what a
resumed run does. Checkpoints live beside the results: a local directory, or the results'
bucket (each checkpoint one upload), read back wherever the trial runs.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from analysis import ResultsPath, results_path, write_bytes_atomically
from sweeps.panda._babysitter import Decision, PandaRules, SitterState, judge, period_length
from trainables import (
    Dataset,
    EpochResult,
    TrainState,
    TrialConfig,
    build_state,
    load_state,
    run_training,
    state_dict,
)

__all__ = [
    "JOB_KEY",
    "PandaJob",
    "PeriodReport",
    "babysit",
    "panda_trial",
    "restore_model",
    "save_checkpoint",
    "set_base_lr",
]

JOB_KEY = "caviar_panda_job"  # the one key of a panda trial's Ray config


@dataclass(frozen=True)
class PandaJob:
    """Everything a trial needs to babysit one model from a given state."""

    trial_id: str
    config: dict[str, Any]  # the flat trial config `TrialConfig.from_flat` takes
    rules: PandaRules
    state: SitterState
    checkpoint_dir: str  # a local path or an s3:// URI (`analysis.results_path` opens it)
    metric: str

    def to_config(self) -> dict[str, Any]:
        # Plain dicts: Ray copies and pickles trial configs, and prints them in errors.
        return {
            JOB_KEY: {
                **asdict(self),
                "rules": asdict(self.rules),
                "state": asdict(self.state),
            }
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PandaJob:
        job = dict(config[JOB_KEY])
        job["rules"] = PandaRules(**job["rules"])
        job["state"] = SitterState(**job["state"])
        return cls(**job)


@dataclass(frozen=True)
class PeriodReport:
    """What one period produced: its epochs (flagged if abandoned) and its decisions."""

    trial_id: str
    curve: list[dict[str, Any]]
    decisions: list[Decision]
    state: SitterState

    def to_metrics(self) -> dict[str, Any]:
        last = self.curve[-1]
        return {
            "caviar_trial_id": self.trial_id,
            "epoch": last["epoch"],
            "curve": self.curve,
            "decisions": [asdict(d) for d in self.decisions],
        }

    @classmethod
    def from_metrics(cls, result: dict[str, Any]) -> PeriodReport:
        decisions = [Decision(**d) for d in result["decisions"]]
        # The state after the last decision: the same one the trial went on with.
        return cls(
            trial_id=result["caviar_trial_id"],
            curve=list(result["curve"]),
            decisions=decisions,
            state=SitterState.after(decisions[-1]),
        )


def set_base_lr(state: TrainState, lr: float) -> None:
    """Make `lr` the base learning rate from the current epoch on, schedule kept.

    The `lr_decay` schedule multiplies the base rate by a factor of the epoch, so the nudged
    rate is the new base and the group's current rate is that base times today's factor.
    """
    scheduler = state.scheduler
    factor = scheduler.lr_lambdas[0](scheduler.last_epoch)
    scheduler.base_lrs = [lr for _ in scheduler.base_lrs]
    for group in state.optimizer.param_groups:
        group["initial_lr"] = lr
        group["lr"] = lr * factor


def save_checkpoint(path: ResultsPath, state: TrainState) -> None:
    """Weights, optimizer, BatchNorm statistics and RNGs; the file appears whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state_dict(state), buffer)
    write_bytes_atomically(path, buffer.getbuffer())


def restore_model(
    trial: TrialConfig, data: Dataset, state: SitterState, checkpoint_dir: ResultsPath
) -> TrainState:
    """The model the next period starts from: the good checkpoint (or a fresh model) at `lr`."""
    train_state = build_state(trial.hparams, data, seed=trial.seed, network=trial.network)
    if state.good_checkpoint is not None:
        saved = torch.load(
            io.BytesIO((checkpoint_dir / state.good_checkpoint).read_bytes()),
            map_location=data.device,
            weights_only=True,
        )
        load_state(train_state, saved)
    set_base_lr(train_state, state.lr)
    return train_state


def _curve_row(
    result: EpochResult, seconds: float, decision: int, abandoned: bool
) -> dict[str, Any]:
    return {
        **asdict(result),
        "epoch_time_s": seconds,
        "decision": decision,
        "abandoned": abandoned,
    }


class _EpochClock:
    """Seconds each epoch took, for the `epoch_time_s` column."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = time.perf_counter()

    def tick(self, result: EpochResult, state: TrainState) -> bool:
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now
        return True


def babysit(
    job: PandaJob,
    report: Callable[[PeriodReport], None],
    *,
    device: torch.device | None = None,
) -> SitterState:
    """Train, judge and report period after period until the babysitter stops; returns the end.

    Deterministic from the job: a run resumed from a recorded state repeats, bit for bit on
    the CPU, what the interrupted run would have done.
    """
    # Imported on use: it lives in trainables' Ray adapter module, which imports Ray Tune.
    from trainables import trial_data

    trial = TrialConfig.from_flat(job.config)
    data = trial_data(trial, device or torch.device("cpu"))
    checkpoint_dir = results_path(job.checkpoint_dir)
    state = job.state
    model = restore_model(trial, data, state, checkpoint_dir)
    while not state.stopped:
        clock = _EpochClock()
        results = run_training(
            trial.hparams,
            data,
            epochs=model.epoch + period_length(state, job.rules),
            seed=trial.seed,
            state=model,
            on_epoch=clock.tick,
            precision=trial.precision,
        )
        last = results[-1]
        new, decisions = judge(
            state,
            job.rules,
            epoch=last.epoch,
            metric=float(getattr(last, job.metric)),
            diverged=last.diverged,
            epochs_run=len(results),
        )
        rolled_back = decisions[0].action == "rollback"
        if new.good_checkpoint != state.good_checkpoint:
            save_checkpoint(checkpoint_dir / str(new.good_checkpoint), model)
        curve = [
            _curve_row(r, s, decisions[0].index, rolled_back)
            for r, s in zip(results, clock.seconds, strict=True)
        ]
        report(PeriodReport(job.trial_id, curve, decisions, new))
        state = new
        if state.stopped:
            break
        if rolled_back:
            model = restore_model(trial, data, state, checkpoint_dir)
        else:
            set_base_lr(model, state.lr)
    return state


def panda_trial(config: dict[str, Any]) -> None:
    """The Ray Tune function trainable: one `tune.report` per period, no Tune checkpoints.

    The babysitter's state lives in the results (events) and its own checkpoint files, not in
    Tune, so a run resumed after a driver crash starts a fresh trial from the recorded state.
    """
    import ray
    from ray import tune

    from trainables import trial_device

    try:
        cpus = max(1, int(tune.get_context().get_trial_resources().head_cpus))
    except AttributeError:
        cpus = 1
    # One thread per granted CPU: concurrent trials would otherwise oversubscribe the cores.
    torch.set_num_threads(cpus)
    device = trial_device()
    node = ray.get_runtime_context().get_node_id()

    def send(period: PeriodReport) -> None:
        tune.report({**period.to_metrics(), "node_id": node})

    babysit(PandaJob.from_config(config), send, device=device)
