"""Panda mode: babysitting one model, rolling back bad periods, and resuming after a kill."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch
from _procs import kill_session

from analysis import ResultsStore, load_epochs, load_table, load_trials, write_report
from sweeps import SpecError, load_spec, parse_spec, run_sweep
from sweeps.panda._babysitter import SitterState
from sweeps.panda._record import panda_epochs_schema
from sweeps.panda._run import checkpoint_dir, model_configs, panda_rules, start_points
from sweeps.panda._trial import (
    PandaJob,
    PeriodReport,
    babysit,
    restore_model,
    save_checkpoint,
    set_base_lr,
)
from sweeps.spec import PandaStrategy, Sweep
from trainables import TrialConfig, build_state, load_dataset, run_training, state_dict

# lr 0.05 learns digits; raised 100-fold (clamped to 5.0) it wrecks the model within an epoch.
PLANTED = textwrap.dedent(
    """
    name: panda
    trainable: {dataset: digits, epochs: 8, fixed: {depth: 1, hidden: 16, batch_size: 64}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 5.0, scale: log}
    strategy: {kind: panda, period: 1, start: {lr: 0.05}, raise_factor: 100.0,
               lower_factor: 0.1, patience: 3}
    seed: 3
    """
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Trials train on one thread; so do these tests, so their numbers match bit for bit."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _job(sweep: Sweep, directory: Path, state: SitterState | None = None) -> PandaJob:
    trial_id, config = next(iter(model_configs(sweep).items()))
    start = state or SitterState(lr=float(config["lr"]))  # type: ignore[arg-type]
    metric = sweep.spec.objective.metric
    return PandaJob(trial_id, config, panda_rules(sweep), start, str(directory), metric)


def _babysit(job: PandaJob) -> list[PeriodReport]:
    reports: list[PeriodReport] = []
    babysit(job, reports.append)
    return reports


@pytest.mark.parametrize(
    ("strategy", "extra", "field", "value"),
    [
        ("{kind: panda, start: {lr: 0.05, momentum: 0.9}}", "", "strategy.start.momentum", "0.9"),
        ("{kind: panda, start: {lr: 50.0}}", "", "strategy.start.lr", "50.0"),
        ("{kind: panda, start: {hidden: 8}}", "", "strategy.start.hidden", "8"),
        ("{kind: panda}", "initial: [{lr: 0.1, hidden: 16}]\n", "initial", "'lr': 0.1"),
        ("{kind: panda, raise_factor: 0.5}", "", "strategy.raise_factor", "0.5"),
    ],
)
def test_start_and_factors_are_checked_against_the_space(
    strategy: str, extra: str, field: str, value: str
) -> None:
    text = textwrap.dedent(
        """
        name: p
        search_space:
          lr: {type: float, low: 1.0e-3, high: 5.0, scale: log}
          hidden: {type: int, low: 16, high: 64, scale: log}
        """
    )
    with pytest.raises(SpecError) as caught:
        parse_spec(text + f"strategy: {strategy}\n" + extra)
    [line] = caught.value.lines()
    assert f"{field}:" in line and value in line


def test_panda_needs_a_learning_rate_to_nudge() -> None:
    text = (
        "name: p\nsearch_space: {beta: {type: float, low: 0.5, high: 0.9}}\nstrategy: {kind: panda}"
    )
    with pytest.raises(SpecError, match=r"search_space\.lr: panda nudges the learning rate"):
        parse_spec(text)
    fixed = parse_spec(text.replace("name: p", "name: p\ntrainable: {fixed: {lr: 0.1}}"))
    assert panda_rules(fixed).lr_high == 10.0  # the hyperparameter's own range


def test_the_example_panda_spec_is_valid() -> None:
    example = Path(__file__).parents[2] / "sweeps" / "examples" / "panda.yaml"
    sweep = load_spec(example)
    assert isinstance(sweep.spec.strategy, PandaStrategy)
    assert start_points(sweep) == [{"lr": 0.01, "hidden": 64}]


def test_members_start_at_start_then_at_seeded_random_points() -> None:
    text = textwrap.dedent(
        """
        name: p
        search_space:
          lr: {type: float, low: 1.0e-4, high: 1.0, scale: log}
          hidden: {type: int, low: 16, high: 256, scale: log}
        strategy: {kind: panda, start: {lr: 0.02}, models: 3}
        """
    )
    sweep = parse_spec(text)
    first, *others = start_points(sweep)
    assert first == {"lr": 0.02, "hidden": sweep.space.domains["hidden"].from_unit(0.5)}
    assert 60 <= first["hidden"] <= 68  # the centre of its log scale, near sqrt(16 * 256)
    assert len(others) == 2 and others[0] != others[1]
    for point in others:
        sweep.space.check_config(point)
    assert start_points(parse_spec(text)) == [first, *others]
    assert start_points(parse_spec(text + "seed: 1\n"))[1:] != others
    seeds = [config["seed"] for config in model_configs(sweep).values()]
    assert len(set(seeds)) == 3


def test_a_planted_too_high_lr_is_rolled_back_and_the_metric_recovers(tmp_path: Path) -> None:
    reports = _babysit(_job(parse_spec(PLANTED), tmp_path))
    decisions = [d for r in reports for d in r.decisions]
    rollbacks = [d for d in decisions if d.action == "rollback"]
    assert rollbacks, [d.describe("val_accuracy") for d in decisions]
    planted = rollbacks[0]
    assert planted.lr_before == 5.0 and planted.lr_after == 0.5
    assert planted.metric is not None and planted.best_metric is not None
    assert planted.metric < planted.best_metric
    # after going back, the model gets better than it ever was before the planted lr
    later = [d for d in decisions if d.index > planted.index and d.action in ("keep", "raise")]
    assert later and max(d.metric or 0.0 for d in later) > planted.best_metric
    # the abandoned period's epochs are flagged as such, the others are not
    for report in reports:
        abandoned = report.decisions[0].action == "rollback"
        assert all(row["abandoned"] is abandoned for row in report.curve)
    assert decisions[-1].action == "stop" and decisions[-1].epochs_trained == 8
    assert sum(len(r.curve) for r in reports) == 8


def test_a_rollback_restores_the_checkpointed_model_bit_for_bit(tmp_path: Path) -> None:
    trial = TrialConfig.from_flat(next(iter(model_configs(parse_spec(PLANTED)).values())))
    data = load_dataset("digits", seed=trial.seed)
    model = build_state(trial.hparams, data, seed=trial.seed)
    run_training(trial.hparams, data, epochs=2, seed=trial.seed, state=model)
    save_checkpoint(tmp_path / "good.pt", model)
    saved = state_dict(model)
    # what the model would do next, had the bad branch never happened
    set_base_lr(model, 0.02)
    [expected] = run_training(trial.hparams, data, epochs=3, seed=trial.seed, state=model)
    expected_weights = state_dict(model)["model"]
    # the bad branch
    set_base_lr(model, 5.0)
    run_training(trial.hparams, data, epochs=6, seed=trial.seed, state=model)

    good = SitterState(lr=0.02, good_epoch=2, good_checkpoint="good.pt")
    restored = restore_model(trial, data, good, tmp_path)
    now = state_dict(restored)
    assert now["epoch"] == saved["epoch"] == 2
    for name, tensor in saved["model"].items():  # weights and BatchNorm running statistics
        assert torch.equal(now["model"][name], tensor), name
    for key, entry in saved["optimizer"]["state"].items():  # momentum buffers
        assert torch.equal(
            now["optimizer"]["state"][key]["momentum_buffer"], entry["momentum_buffer"]
        )
    assert torch.equal(now["generator"], saved["generator"])  # the shuffling stream
    assert torch.equal(now["torch_cpu_rng"], saved["torch_cpu_rng"])
    [again] = run_training(trial.hparams, data, epochs=3, seed=trial.seed, state=restored)
    assert again == expected
    for name, tensor in expected_weights.items():
        assert torch.equal(state_dict(restored)["model"][name], tensor), name


def test_a_resumed_babysitter_repeats_what_the_lost_run_would_have_done(tmp_path: Path) -> None:
    sweep = parse_spec(PLANTED)
    full = _babysit(_job(sweep, tmp_path))
    for cut in (1, 3):  # after a keep and after a rollback, as recorded
        state = SitterState.after(full[cut - 1].decisions[-1])
        assert _timeless(_babysit(_job(sweep, tmp_path, state))) == _timeless(full[cut:])


def _timeless(reports: list[PeriodReport]) -> list[PeriodReport]:
    """Reports with the wall-clock epoch times removed: everything else must repeat exactly."""
    return [
        replace(r, curve=[{k: v for k, v in row.items() if k != "epoch_time_s"} for row in r.curve])
        for r in reports
    ]


def _decisions(events: pd.DataFrame) -> list[tuple[object, ...]]:
    """The event rows that matter, in order; a diverged period's metric (NaN) as None."""
    columns = ["trial_id", "decision", "epoch", "action", "metric", "lr_before", "lr_after"]
    frame = events.sort_values(["trial_id", "decision"])[columns]
    return [
        tuple(None if isinstance(v, float) and math.isnan(v) else v for v in row)
        for row in frame.itertuples(index=False)
    ]


@pytest.mark.ray
def test_panda_sweep_records_decisions_curves_and_one_row_per_model(
    ray_local: None, tmp_path: Path
) -> None:
    sweep = parse_spec(PLANTED.replace("patience: 3}", "patience: 3, models: 2}"))
    outcome = run_sweep(sweep, tmp_path)
    events = load_table(tmp_path, "events", "panda")
    epochs = load_epochs(tmp_path, "panda")
    trials = load_trials(tmp_path, "panda").sort_values("trial_id")
    assert list(trials["trial_id"]) == ["t00000", "t00001"]
    assert list(trials["origin"]) == ["start", "random"]
    for trial_id, group in events.groupby("trial_id"):
        group = group.sort_values("decision")
        assert list(group["decision"]) == list(range(len(group)))  # each decision once
        stop = group.iloc[-1]
        assert stop["action"] == "stop" and (group["action"] == "stop").sum() == 1
        assert set(group["action"]) <= {"keep", "raise", "rollback", "stop"}
        curve = epochs[epochs["trial_id"] == trial_id]
        assert len(curve) == stop["epochs_trained"] == 8
        rolled_back = set(group.loc[group["action"] == "rollback", "decision"])
        assert set(curve.loc[curve["abandoned"], "decision"]) == rolled_back
        assert not curve.duplicated(["decision", "epoch"]).any()
        row = trials[trials["trial_id"] == trial_id].iloc[0]
        assert row["status"] == "ok" and row["lr"] == stop["lr_after"]
        assert row["val_accuracy"] == stop["metric"] and row["epochs_done"] == 8
        # the babysat model is kept; earlier checkpoints are not
        directory = checkpoint_dir(ResultsStore(tmp_path, "panda"), outcome.run_id, str(trial_id))
        kept = [p.name for p in directory.iterdir()]
        assert kept == [stop["checkpoint"]]
    planted = events[(events["trial_id"] == "t00000") & (events["action"] == "rollback")]
    assert (planted["lr_before"] == 5.0).any()
    assert outcome.best is not None and outcome.best["val_accuracy"] == trials["val_accuracy"].max()
    # the report draws each model's curve with its rollbacks, and lists the decisions
    html = write_report(tmp_path, out=tmp_path / "report.html", sweep="panda").read_text()
    section = html[html.index(">Babysitting<") :]
    assert 'alt="babysitting curves"' in section and section.count("<td>rollback</td>") == len(
        events[events["action"] == "rollback"]
    )
    # resuming a finished run records nothing twice
    again = run_sweep(sweep, tmp_path, resume=True)
    assert (again.evaluated, again.skipped) == (0, 2)
    assert _decisions(load_table(tmp_path, "events", "panda")) == _decisions(events)
    # a crash after a period's epochs landed but before its decision did, then after the last
    # decisions but before the trials rows: the stray epochs go, the rows are rebuilt
    stray = {**epochs.iloc[0].to_dict(), "decision": 99, "epoch": 9}
    store = ResultsStore(tmp_path, "panda")
    store.write("epochs", [stray], panda_epochs_schema(), run_id=outcome.run_id, round_index=0)
    for path in (tmp_path / "panda" / "trials").rglob("part-*.parquet"):
        path.unlink()
    rebuilt = run_sweep(sweep, tmp_path, resume=True)
    assert (rebuilt.evaluated, rebuilt.skipped) == (2, 0)
    assert len(load_epochs(tmp_path, "panda")) == len(epochs)
    columns = ["trial_id", "status", "lr", "val_accuracy", "epochs_done"]
    assert load_trials(tmp_path, "panda").sort_values("trial_id")[columns].equals(trials[columns])


# Long enough (a dozen periods of 0.2-0.4 s) that a kill lands mid-run.
KILLED = textwrap.dedent(
    """
    name: panda
    trainable: {dataset: digits, epochs: 24, fixed: {depth: 2, hidden: 128, batch_size: 16}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 5.0, scale: log}
    strategy: {kind: panda, period: 2, start: {lr: 0.02}, raise_factor: 3.0, patience: 20}
    seed: 5
    """
)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)

    def start(*extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sweeps", "run", str(tmp_path / "spec.yaml"),
             "--results", str(tmp_path / "out"), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
            start_new_session=True,
        )  # fmt: skip
        started.append(proc)
        return proc

    (tmp_path / "spec.yaml").write_text(KILLED)
    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_session(proc.pid)


@pytest.mark.cli
@pytest.mark.ray
@pytest.mark.slow  # two `caviar run` processes, each starting its own Ray: about a minute
def test_kill_then_resume_continues_from_the_last_decision(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = launch()
    deadline = time.monotonic() + 180
    while not any((out / "panda" / "events").rglob("part-*.parquet")):
        assert proc.poll() is None and time.monotonic() < deadline, "no decision recorded"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kill_session(proc.pid)
    before = _decisions(load_table(out, "events", "panda"))
    assert before

    resumed = launch("--resume")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output[-2000:]
    events = load_table(out, "events", "panda")
    after = _decisions(events)
    assert after[: len(before)] == before  # what was recorded stays, and is not recorded again
    assert [d[1] for d in after] == list(range(len(after)))
    assert after[-1][3] == "stop"
    epochs = load_epochs(out, "panda")
    assert not epochs.duplicated(["trial_id", "decision", "epoch"]).any()
    assert len(epochs) == events["epochs_trained"].max()
    assert len(load_trials(out, "panda")) == 1
    assert [p for p in out.rglob(".*") if p.name.endswith(".tmp")] == []
    # and the record is what an uninterrupted babysitter does, decision for decision
    sweep = parse_spec(KILLED)
    expected = [d for r in _babysit(_job(sweep, tmp_path / "fresh")) for d in r.decisions]
    assert [(d.index, d.action, d.metric, d.lr_after) for d in expected] == [
        (d[1], d[3], d[4], d[6]) for d in after
    ]


def test_the_babysat_model_trains_on_the_specs_data_version(tmp_path: Path) -> None:
    """The synthetic dataset drifts with its version; the babysitter must load the version the
    spec names, as a sweep's trials do (`trial_data`), not the default one."""
    spec = textwrap.dedent(
        """
        name: drift
        trainable: {dataset: synthetic, data_version: 2, epochs: 1,
                    fixed: {depth: 1, hidden: 16, batch_size: 64, batchnorm: false}}
        search_space:
          lr: {type: float, low: 1.0e-3, high: 1.0, scale: log}
        strategy: {kind: panda, period: 1, start: {lr: 0.01}}
        seed: 3
        """
    )
    job = _job(parse_spec(spec), tmp_path)
    [report] = _babysit(job)
    trial = TrialConfig.from_flat(job.config)
    assert trial.data_version == "2"
    for version, same in (("2", True), ("1", False)):
        data = load_dataset("synthetic", seed=trial.seed, data_version=version)
        [alone] = run_training(trial.hparams, data, epochs=1, seed=trial.seed)
        assert (report.curve[0]["train_loss"] == alone.train_loss) is same, version
