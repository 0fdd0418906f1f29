"""`trainable: {function: module:function}`: a user's whole training loop under caviar's
sampling, recording, resuming and re-tuning; what needs caviar's loop refused in one line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from _procs import assert_refused, run_caviar, user_env

from analysis import load_epochs, load_trials
from sweeps import load_spec, run_sweep
from sweeps._cli import main

TRAIN = textwrap.dedent(
    '''
    import math

    def train(config, report):
        """A made-up curve with its optimum at lr = 0.1: no data, so the test is quick."""
        distance = abs(math.log10(config["lr"]) + 1.0)
        for epoch in range(1, config["epochs"] + 1):
            if config["lr"] > 0.9:
                report(val_accuracy=float("nan"))  # diverges
            accuracy = (1 - distance / 4) * (1 - 0.5 ** epoch) * (1 - config["penalty"])
            report(val_accuracy=accuracy, val_loss=1 - accuracy, grad_norm=distance * epoch)

    def forgets(config, report):
        report(val_loss=0.5)

    def no_report_arg(config):
        pass
    '''
)

SPEC = textwrap.dedent(
    """
    name: own
    objective: {metric: val_accuracy, mode: max}
    trainable:
      function: loops:train
      epochs: 3
      fixed: {penalty: 0.1}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 1.0, scale: log}
    strategy: {kind: coarse_to_fine, rounds: 2, per_round: 4}
    initial: [{lr: 0.95}]
    retune: {budget: 3}
    seed: 2
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "loops.py").write_text(TRAIN)
    (tmp_path / "own.yaml").write_text(SPEC)
    return tmp_path


@pytest.mark.ray
def test_a_training_function_is_sampled_recorded_and_retuned(
    ray_local: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sweep = load_spec(project / "own.yaml")
    outcome = run_sweep(sweep, project / "out")
    trials = load_trials(project / "out", "own").sort_values("trial_id")
    assert len(trials) == 9 and sorted(trials["round"].unique()) == [0, 1]
    first = trials.iloc[0]
    assert first["lr"] == 0.95 and first["status"] == "diverged"  # the `initial` point
    ok = trials[trials["status"] == "ok"]
    assert len(ok) == 8 and (ok["penalty"] == 0.1).all()
    assert trials["hidden"].isna().all() and trials["optimizer"].isna().all()
    epochs = load_epochs(project / "out", "own")
    assert "grad_norm" in epochs.columns  # a metric of the function's own, as a column
    assert len(epochs[epochs["trial_id"].isin(ok["trial_id"])]) == 8 * 3
    assert outcome.best is not None and abs(outcome.best["lr"] - 0.1) < 0.3
    capsys.readouterr()
    assert main(["retune", str(project / "own.yaml"), "--results", str(project / "out")]) == 0
    assert "drift: no" in capsys.readouterr().out


@pytest.mark.ray
def test_a_report_without_the_objective_fails_the_trial_with_a_message(
    ray_local: None, project: Path
) -> None:
    text = SPEC.replace("loops:train", "loops:forgets").replace("initial: [{lr: 0.95}]\n", "")
    (project / "forgets.yaml").write_text(text.replace("per_round: 4", "per_round: 1"))
    with pytest.raises(Exception, match="every trial failed"):
        run_sweep(load_spec(project / "forgets.yaml"), project / "out")
    trials = load_trials(project / "out", "own")
    assert set(trials["status"]) == {"error"}
    assert trials["error"].str.contains("report\\(\\) must include 'val_accuracy'").all()


BAD = [
    ("function: loops:train", "function: loops:missing", "trainable.function",
     "has no function 'missing'"),
    ("function: loops:train", "function: loops:no_report_arg", "trainable.function",
     "must take (config, report)"),
    ("function: loops:train", "function: loops:train\n  model: bn_mlp", "trainable.model",
     "builds its own model"),
    ("function: loops:train", "function: loops:train\n  dataset: digits", "trainable.dataset",
     "loads its own data"),
    ("seed: 2", "seed: 2\npack: 4", "pack", "a training function owns its own"),
    ("strategy: {kind: coarse_to_fine, rounds: 2, per_round: 4}",
     "strategy: {kind: panda, start: {lr: 0.1}}", "strategy.kind", "rolls back"),
    ("fixed: {penalty: 0.1}", "fixed: {penalty: 0.1, hidden: 64}", "trainable.fixed.hidden",
     "a name of the built-in MLP's"),
    ("fixed: {penalty: 0.1}", "fixed: {penalty: 0.1, lr: 0.1}", "trainable.fixed.lr",
     "is also in search_space"),
    ("fixed: {penalty: 0.1}", "fixed: {penalty: 0.1, optimizer: 3}",
     "trainable.fixed.optimizer", "must be"),
]  # fmt: skip


@pytest.mark.cli
@pytest.mark.parametrize(("old", "new", "field", "message"), BAD)
def test_what_needs_caviars_loop_is_refused_in_one_line(
    project: Path, old: str, new: str, field: str, message: str
) -> None:
    assert old in SPEC
    (project / "bad.yaml").write_text(SPEC.replace(old, new).replace("initial: [{lr: 0.95}]\n", ""))
    assert_refused(project, "bad.yaml", field, message)


NICENESS = textwrap.dedent(
    """
    import os

    def train(config, report):
        for _ in range(config["epochs"]):
            report(val_loss=config["lr"], niceness=float(os.nice(0)))
    """
)
NICE_SPEC = textwrap.dedent(
    """
    name: nice
    objective: {metric: val_loss, mode: min}
    trainable: {function: nice:train, epochs: 1}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 1.0, scale: log}
    strategy: {kind: random, samples: 2}
    """
)


@pytest.mark.cli
@pytest.mark.ray
@pytest.mark.parametrize("worker_niceness", [None, "15"])
def test_trials_of_an_embedded_ray_run_at_normal_priority_unless_the_user_says(
    tmp_path: Path, worker_niceness: str | None
) -> None:
    """Ray's default nice 15 let anything else on the machine starve a sweep (20x slower
    beside two busy loops); the user's RAY_worker_niceness still decides."""
    (tmp_path / "nice.py").write_text(NICENESS)
    (tmp_path / "nice.yaml").write_text(NICE_SPEC)
    env = user_env(tmp_path / "home")
    env.pop("RAY_worker_niceness", None)
    if worker_niceness is not None:
        env["RAY_worker_niceness"] = worker_niceness
    proc = run_caviar("run", "nice.yaml", "--results", "out", cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    epochs = load_epochs(tmp_path / "out", "nice")
    assert len(epochs) == 2
    assert (epochs["niceness"] == float(worker_niceness or 0)).all()
