"""`caviar export mlflow` and a spec's `export:`: one MLflow run per trial, never twice.

Against a real `mlflow server` on 127.0.0.1 with a SQLite backend (started here, stopped by its
session id), and against the local stores MLflow uses without a server (its default ./mlflow.db
and the `file:` store). The results are small ones written with analysis's writer; one tiny
sweep runs on the shared Ray to check the export at the end of `caviar run`.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _procs import free_port, kill_session, user_env

from analysis import ResultsStore, load_epochs, load_trials, round_bounds
from sweeps import CaviarError, SpecError, parse_spec
from sweeps._cli import main
from sweeps.export import export_at_end, export_command, require_export
from sweeps.export._mlflow import export_mlflow
from sweeps.export._mlflow_runs import sweep_runs
from sweeps.record import epochs_schema, trials_schema

mlflow = pytest.importorskip("mlflow")

SWEEP = "exp"
SPACE = {"lr": {"type": "float", "low": 1e-3, "high": 0.5, "scale": "log"}}
START = datetime(2026, 1, 1, tzinfo=UTC)


def _write(root: Path, run_id: str, round_index: int, trials: list[dict[str, object]]) -> None:
    """`trials` rows of the real schema (fixed `depth`, searched `lr`/`beta`), 3 epochs each."""
    store = ResultsStore(root, SWEEP)
    rows, epochs = [], []
    for i, t in enumerate(trials):
        index = int(str(t["trial_id"])[1:])
        ok = t.get("status", "ok") == "ok"
        acc = float(t["acc"]) if ok else float("nan")
        rows.append(
            {
                "sweep": SWEEP, "run_id": run_id, "round": round_index,
                "trial_id": t["trial_id"], "config_index": index, "origin": "random",
                "pack_id": t.get("pack_id"), "status": t.get("status", "ok"),
                "lr": t["lr"], "beta": 0.9, "depth": 2, "optimizer": "momentum",
                "dataset": "digits", "data_version": "v7", "epochs": 3,
                "val_accuracy": acc, "val_loss": 1 - acc, "best_val_accuracy": acc,
                "epochs_done": 3 if ok else 0, "seed": 100 + index,
                "started_at": START + timedelta(minutes=index),
                "ended_at": START + timedelta(minutes=index, seconds=30 + i),
                "error": None if ok else "RuntimeError: out of memory",
            }
        )  # fmt: skip
        if ok:
            epochs += [
                {
                    "sweep": SWEEP, "run_id": run_id, "round": round_index,
                    "trial_id": t["trial_id"], "epoch": e, "val_accuracy": acc * e / 3,
                    "val_loss": 1 - acc * e / 3, "train_loss": 2.0 / e, "lr": t["lr"],
                }
                for e in (1, 2, 3)
            ]  # fmt: skip
    store.write("trials", rows, trials_schema(), run_id=run_id, round_index=round_index)
    store.layout.space.write_text(json.dumps(SPACE))
    store.write("epochs", epochs, epochs_schema(), run_id=run_id, round_index=round_index)


FIRST_ROUND = [
    {"trial_id": "t00000", "lr": 0.1, "acc": 0.80, "pack_id": "p0"},
    {"trial_id": "t00001", "lr": 0.01, "acc": 0.90, "pack_id": "p0"},
    {"trial_id": "t00002", "lr": 0.5, "acc": 0.0, "status": "error"},
]
SECOND_ROUND = [
    {"trial_id": "t00003", "lr": 0.02, "acc": 0.95},
    {"trial_id": "t00004", "lr": 0.03, "acc": 0.85},
]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results"
    _write(root, "r1", 0, FIRST_ROUND)
    return root


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with a SQLite backend, started for this module and stopped
    by its session id (only what it started)."""
    directory = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "mlflow"), "server",
        "--backend-store-uri", f"sqlite:///{directory / 'mlflow.db'}",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = (directory / "server.log").open("w")
    proc = subprocess.Popen(
        command, cwd=directory, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((directory / "server.log").read_text()[-2000:])
            time.sleep(0.5)
        yield uri
    finally:
        kill_session(proc)
        log.close()


def _runs(uri: str, experiment: str = SWEEP) -> dict[str, object]:
    """Every run of the experiment, by its caviar key tag."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    runs = client.search_runs([found.experiment_id], max_results=1000)
    return {r.data.tags.get("caviar.trial_key") or r.data.tags["caviar.run_key"]: r for r in runs}


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_each_trial_is_one_run_with_its_params_curves_and_tags(results: Path) -> None:
    """What is sent, decided without MLflow: searched and fixed values as params (no metric
    among them), each epoch at its step, the tags, and the parent's best trial and bounds."""
    _write(results, "r1", 1, SECOND_ROUND)
    trials = load_trials(results, SWEEP)
    [parent] = sweep_runs(
        trials, load_epochs(results, SWEEP), round_bounds(trials, None, SPACE), trials.iloc[:0],
        searched=["lr"], objective="val_accuracy", mode="max",
    )  # fmt: skip
    assert parent.key == "exp/r1" and [t.name for t in parent.trials] == [
        "t00000", "t00001", "t00002", "t00003", "t00004",
    ]  # fmt: skip
    first = parent.trials[0]
    assert first.key == "exp/r1/t00000" and not first.failed
    assert first.params["lr"] == "0.1" and first.params["depth"] == "2"
    assert first.params["optimizer"] == "momentum" and first.params["seed"] == "100"
    assert not {"val_accuracy", "val_loss", "status", "trial_id"} & set(first.params)
    curve = [(m.step, m.value) for m in first.metrics if m.key == "val_accuracy"]
    assert curve == [
        (1, pytest.approx(0.8 / 3)),
        (2, pytest.approx(1.6 / 3)),
        (3, pytest.approx(0.8)),
    ]
    assert [m.step for m in first.metrics if m.key == "best_val_accuracy"] == [3]
    tags = first.tags
    assert (tags["caviar.sweep"], tags["caviar.run_id"], tags["caviar.round"]) == ("exp", "r1", "0")
    assert (tags["caviar.origin"], tags["caviar.pack_id"], tags["caviar.status"]) == (
        "random", "p0", "ok",
    )  # fmt: skip
    assert tags["caviar.data_version"] == "v7"
    failed = parent.trials[2]
    assert failed.failed and failed.tags["caviar.error"] == "RuntimeError: out of memory"
    assert failed.metrics == []
    assert parent.tags["caviar.best_trial_id"] == "t00003"
    assert parent.tags["caviar.bounds.round1"] == '{"lr": [0.02, 0.03]}'


def test_export_to_a_server_adds_only_what_is_new(results: Path, mlflow_server: str) -> None:
    lines = export_command(results, sweep=None, tracking_uri=mlflow_server, experiment=None)
    assert lines[0].endswith(
        "3 trial runs created, 0 already there; parent runs: 1 created, 0 updated"
    )
    assert lines[1] == f"see it: {mlflow_server}/#/experiments/1"
    runs = _runs(mlflow_server)
    assert set(runs) == {"exp/r1", "exp/r1/t00000", "exp/r1/t00001", "exp/r1/t00002"}
    trial = runs["exp/r1/t00001"]
    assert trial.info.status == "FINISHED" and runs["exp/r1/t00002"].info.status == "FAILED"
    assert trial.data.tags["mlflow.parentRunId"] == runs["exp/r1"].info.run_id
    assert trial.data.params["lr"] == "0.01" and trial.data.params["depth"] == "2"
    client = mlflow.MlflowClient(tracking_uri=mlflow_server)
    history = client.get_metric_history(trial.info.run_id, "val_accuracy")
    assert [(m.step, round(m.value, 6)) for m in history] == [(1, 0.3), (2, 0.6), (3, 0.9)]
    assert runs["exp/r1"].data.tags["caviar.best_trial_id"] == "t00001"

    again = export_mlflow(results, tracking_uri=mlflow_server)
    assert (again[0].created, again[0].existing, again[0].parents_updated) == (0, 3, 0)
    # A resume adds a round: only its trials are sent; the parent learns its best and bounds.
    _write(results, "r1", 1, SECOND_ROUND)
    [resumed] = export_mlflow(results, tracking_uri=mlflow_server)
    assert (resumed.created, resumed.existing, resumed.parents_updated) == (2, 3, 1)
    runs = _runs(mlflow_server)
    assert len(runs) == 6
    parent = runs["exp/r1"].data.tags
    assert parent["caviar.best_trial_id"] == "t00003" and "caviar.bounds.round1" in parent
    # A run an interrupted export left RUNNING (half-sent) is sent again, not kept twice.
    experiment_id = runs["exp/r1"].info.experiment_id
    client.delete_run(runs["exp/r1/t00004"].info.run_id)
    client.create_run(
        experiment_id, tags={"caviar.trial_key": "exp/r1/t00004", "caviar.sweep": SWEEP}
    )
    [repaired] = export_mlflow(results, tracking_uri=mlflow_server)
    assert (repaired.created, repaired.replaced) == (0, 1)
    runs = _runs(mlflow_server)
    assert len(runs) == 6 and runs["exp/r1/t00004"].info.status == "FINISHED"


def test_export_to_the_local_stores_without_a_server(
    results: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """No --tracking-uri: MLflow's own default, ./mlflow.db, what `mlflow ui` shows when run
    in the same directory; and the `file:` store (./mlruns) where MLflow still allows it."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    capsys.readouterr()
    code = main(["export", "mlflow", str(results), "--sweep", SWEEP, "--experiment", "team"])
    out, err = capsys.readouterr()
    assert code == 0, err
    default = f"sqlite:///{work / 'mlflow.db'}"
    assert out.splitlines() == [
        "mlflow: sweep exp -> experiment 'team' (id 1): 3 trial runs created, 0 already there; "
        "parent runs: 1 created, 0 updated",
        f"see it: mlflow ui --backend-store-uri {default}",
    ]
    assert len(_runs(default, "team")) == 4
    [again] = export_mlflow(results, tracking_uri=default, experiment="team")
    assert (again.created, again.existing) == (0, 3)

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = f"file://{tmp_path / 'mlruns'}"
    for created in (3, 0):
        [summary] = export_mlflow(results, tracking_uri=store)
        assert (summary.created, summary.existing) == (created, 3 - created)
    runs = _runs(store)
    history = mlflow.MlflowClient(store).get_metric_history(
        runs["exp/r1/t00000"].info.run_id, "train_loss"
    )
    assert [(m.step, m.value) for m in history] == [(1, 2.0), (2, 1.0), (3, pytest.approx(2 / 3))]


def test_an_unreachable_server_is_one_line_and_leaves_the_results_untouched(
    results: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = _digests(results)
    uri = f"http://127.0.0.1:{free_port()}"
    capsys.readouterr()
    assert main(["export", "mlflow", str(results), "--tracking-uri", uri]) == 1
    out, err = capsys.readouterr()
    [line] = err.splitlines()
    assert line.startswith(f"error: mlflow: tracking server unreachable at {uri}"), line
    assert out == ""
    assert _digests(results) == before
    assert main(["export", "mlflow", str(results), "--tracking-uri", "ftp://host"]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("error: --tracking-uri: unknown scheme 'ftp'"), line


@pytest.mark.cli
def test_without_mlflow_one_line_says_how_to_install_it(results: Path, tmp_path: Path) -> None:
    """`import mlflow` fails in the subprocess; importing the CLI still works (nothing else
    imports MLflow), and the export says what to install: exit 2."""
    code = (
        "import sys\n"
        "sys.modules['mlflow'] = None  # `import mlflow` raises ImportError, as if absent\n"
        "from sweeps._cli import main\n"
        f"sys.exit(main(['export', 'mlflow', {str(results)!r}]))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=user_env(tmp_path / "home"), cwd=tmp_path,
        capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: the MLflow export needs MLflow: pip install 'caviar[mlflow]'"
    ]


SPEC = textwrap.dedent(
    """
    name: exp
    trainable: {dataset: digits, epochs: 1, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.5, scale: log}
    strategy: {kind: random, samples: 2}
    seed: 3
    """
)


def test_the_spec_key_is_checked_and_leaves_the_digest_alone() -> None:
    plain = parse_spec(SPEC)
    uri = "http://127.0.0.1:5000"
    exporting = parse_spec(SPEC + f"export: {{mlflow: {{tracking_uri: '{uri}', experiment: t}}}}\n")
    assert exporting.digest == plain.digest  # an interrupted run resumes after adding it
    assert exporting.spec.export is not None and exporting.spec.export.mlflow is not None
    assert exporting.spec.export.mlflow.tracking_uri == uri
    cases = {
        "export: {mlflow: {tracking_uri: 'ftp://host'}}": (
            "export.mlflow.tracking_uri", "unknown scheme 'ftp'",
        ),
        "export: {mlflow: {tracking_uri: 'http://me:secret@host'}}": (
            "export.mlflow.tracking_uri", "holds a password",
        ),
        "export: {mlflow: {experiment: ''}}": ("export.mlflow.experiment", "must not be empty"),
        "export: {mlflow: {uri: x}}": (
            "export.mlflow.uri", "unknown key; valid keys: tracking_uri, experiment",
        ),
        "export: {wandb: {}}": ("export.wandb", "unknown key; valid keys: mlflow"),
    }  # fmt: skip
    for text, (field, message) in cases.items():
        with pytest.raises(SpecError) as caught:
            parse_spec(SPEC + text + "\n")
        [line] = caught.value.lines()
        assert line.startswith(f"error: <spec>: {field}: ") and message in line, line


def test_a_spec_that_exports_needs_mlflow_before_it_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    sweep = parse_spec(SPEC + "export: {mlflow: {}}\n")
    require_export(sweep)
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(CaviarError) as caught:
        require_export(sweep)
    [line] = caught.value.lines()
    assert line.startswith("error: <spec>: export.mlflow: the MLflow export needs MLflow: ")
    require_export(parse_spec(SPEC))  # a spec that does not export never asks


@pytest.mark.ray
def test_caviar_run_exports_at_the_end_and_a_failed_export_keeps_the_results(
    ray_local: None, tmp_path: Path, mlflow_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC + f"export: {{mlflow: {{tracking_uri: '{mlflow_server}', experiment: run-end}}}}\n"
    )
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(["run", str(spec), "--results", str(out)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("mlflow: sweep exp -> experiment 'run-end'"), last
    assert "2 trial runs created" in last
    assert len(_runs(mlflow_server, "run-end")) == 3

    # The same end with the server gone: one line, exit 1, the run's results as they were.
    before = _digests(out)
    gone = f"http://127.0.0.1:{free_port()}"
    spec.write_text(SPEC + f"export: {{mlflow: {{tracking_uri: '{gone}'}}}}\n")
    code, line = export_at_end(parse_spec(spec.read_text(), source=str(spec)), out)
    assert code == 1 and line is not None and "\n" not in line
    assert line.startswith(f"error: mlflow: tracking server unreachable at {gone}")
    assert line.endswith(
        f"export them later: caviar export mlflow {out} --sweep exp --tracking-uri {gone}"
    )
    assert _digests(out) == before


def test_a_sweep_where_every_trial_failed_is_exported_without_a_best(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing scored, so there is no objective to rank by: the failed trials still go."""
    _write(tmp_path / "results", "r1", 0, [FIRST_ROUND[2]])
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    store = f"file://{tmp_path / 'mlruns'}"
    [summary] = export_mlflow(tmp_path / "results", tracking_uri=store)
    assert summary.created == 1
    runs = _runs(store)
    assert runs["exp/r1/t00002"].info.status == "FAILED"
    assert "caviar.best_trial_id" not in runs["exp/r1"].data.tags
