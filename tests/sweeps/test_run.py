"""A real sweep end to end on Ray: rows land once, curves land, resume skips what is recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from _readers import READERS, check_reads_everything

from analysis import load_epochs, load_trials
from sweeps import SpecError, parse_spec, run_sweep
from sweeps._cli import main

SPEC = textwrap.dedent(
    """
    name: tiny
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr:   {type: float, low: 1.0e-3, high: 0.5, scale: log}
      beta: {type: float, low: 0.9, high: 0.999, scale: reverse_log}
      batch_size: {type: choice, values: [64, 128]}
    strategy: {kind: random, samples: 3}
    initial: [{lr: 0.1, beta: 0.9, batch_size: 64}]
    seed: 7
    """
)


@pytest.mark.ray
def test_sweep_records_one_row_per_configuration_with_curves(
    ray_local: None, tmp_path: Path
) -> None:
    sweep = parse_spec(SPEC)
    outcome = run_sweep(sweep, tmp_path)
    trials = load_trials(tmp_path, "tiny").sort_values("config_index")
    assert list(trials["trial_id"]) == ["t00000", "t00001", "t00002", "t00003"]
    assert trials["run_id"].nunique() == 1 and trials["run_id"].iloc[0] == outcome.run_id
    assert list(trials["origin"]) == ["initial", "random", "random", "random"]
    first = trials.iloc[0]
    assert (first["lr"], first["beta"], first["batch_size"]) == (0.1, 0.9, 64)
    # fixed values and defaults are recorded too
    assert set(trials["hidden"]) == {16} and set(trials["depth"]) == {1}
    assert set(trials["optimizer"]) == {"momentum"}
    assert set(trials["status"]) <= {"ok", "diverged"}
    ok = trials[trials["status"] == "ok"]
    assert ((ok["val_accuracy"] >= 0) & (ok["val_accuracy"] <= 1)).all()
    assert (trials["epochs_done"] <= 2).all()
    assert trials["seed"].nunique() == 4
    epochs = load_epochs(tmp_path, "tiny")
    assert len(epochs) == int(trials["epochs_done"].sum())
    assert set(epochs["trial_id"]) == set(trials["trial_id"])
    assert outcome.best is not None
    assert outcome.best["val_accuracy"] == ok["val_accuracy"].max()
    # Ray's state lives under the results directory, and its per-trial loggers are off
    assert (tmp_path / "tiny" / "_ray" / outcome.run_id).is_dir()
    assert not list((tmp_path / "tiny" / "_ray").rglob("progress.csv"))
    # and every reader docs/results.md shows reads the folders as they are
    for reader in READERS:
        check_reads_everything(reader, str(tmp_path / "tiny" / "trials"), trials)
        check_reads_everything(reader, str(tmp_path / "tiny" / "epochs"), epochs)
    # and `caviar report` turns them into one self-contained page
    out = tmp_path / "report.html"
    assert main(["report", str(tmp_path), "--sweep", "tiny", "--out", str(out)]) == 0
    html = out.read_text()
    assert "tiny" in html and "data:image/png;base64," in html
    assert main(["report", str(tmp_path), "--sweep", "nope"]) == 2


@pytest.mark.ray
def test_resume_runs_only_what_is_missing(ray_local: None, tmp_path: Path) -> None:
    sweep = parse_spec(SPEC)
    first = run_sweep(sweep, tmp_path)
    # Simulate a crash that lost everything after the run started: the manifest survives.
    manifest = tmp_path / "tiny" / "_runs" / f"{first.run_id}.json"
    state = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**state, "status": "running"}))
    kept = sorted((tmp_path / "tiny" / "trials").rglob("*.parquet"))
    assert kept
    again = run_sweep(sweep, tmp_path, resume=True)
    assert again.run_id == first.run_id
    assert again.evaluated == 0 and again.skipped == 4
    trials = load_trials(tmp_path, "tiny")
    assert sorted(trials["trial_id"]) == ["t00000", "t00001", "t00002", "t00003"]


def test_resume_refuses_a_changed_spec(tmp_path: Path) -> None:
    from sweeps.run._manifests import RunManifest, write_manifest

    sweep = parse_spec(SPEC)
    write_manifest(tmp_path / "tiny", RunManifest("r0", "other-digest", "running", 4, "", ""))
    with pytest.raises(SpecError, match="spec changed"):
        run_sweep(sweep, tmp_path, resume=True)


def test_resume_without_history_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no earlier run"):
        run_sweep(parse_spec(SPEC), tmp_path, resume=True)


def test_unwritable_results_fail_before_anything_starts(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(SpecError, match="results"):
        run_sweep(parse_spec(SPEC), blocker / "results")


@pytest.mark.cli
@pytest.mark.ray
def test_cli_runs_its_own_embedded_ray_beside_a_live_cluster(
    ray_local: None, tmp_path: Path
) -> None:
    """The test session's Ray is alive; `caviar run` must start and stop its own instance."""
    import ray

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("samples: 3", "samples: 1"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--results", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "best val_accuracy = " in proc.stdout
    assert "[2/2 done" in proc.stderr
    assert len(load_trials(tmp_path / "out", "tiny")) == 2
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2


@pytest.mark.cli
@pytest.mark.ray
def test_cli_joins_an_existing_cluster_with_address_and_leaves_it_running(
    ray_local: None, tmp_path: Path
) -> None:
    import ray

    address = ray.get_runtime_context().gcs_address
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("samples: 3", "samples: 1"))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--results", str(tmp_path / "out"),
         "--address", address],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(load_trials(tmp_path / "out", "tiny")) == 2
    assert ray.is_initialized() and ray.cluster_resources().get("CPU") == 2


@pytest.mark.cli
def test_cli_reports_an_unreachable_address_in_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--results", str(tmp_path / "out"),
         "--address", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "127.0.0.1:1" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.ray
def test_two_resumes_one_after_the_other_record_each_configuration_once(
    ray_local: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second resume read the run's state before the first one, holding the lock, recorded
    everything: it must re-read under the lock instead of running the configurations again."""
    import shutil

    import sweeps.run._lifecycle as lifecycle

    sweep = parse_spec(SPEC)
    run_sweep(sweep, tmp_path)
    shutil.rmtree(tmp_path / "tiny" / "trials")  # an interrupted run: nothing recorded yet
    real = lifecycle.ray_session
    raced = []

    def another_resume_first(address: str | None = None) -> object:
        if not raced:  # while this resume starts Ray, another one runs to completion
            raced.append(True)
            run_sweep(sweep, tmp_path, resume=True)
        return real(address)

    # Where the run's frame starts Ray: after its first look at the run, before the lock.
    monkeypatch.setattr(lifecycle, "ray_session", another_resume_first)
    second = run_sweep(sweep, tmp_path, resume=True)

    trials = load_trials(tmp_path, "tiny")
    assert raced and len(trials) == 4
    assert trials["trial_id"].is_unique
    assert second.evaluated == 0 and second.skipped == 4


@pytest.mark.cli
def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    proc = subprocess.run(
        [str(Path(sys.executable).parent / "caviar"), "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"caviar {version('caviar')}"
