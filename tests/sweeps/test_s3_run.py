"""`caviar` with results in an object store (moto's local S3): run, best, resume; user errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import pyarrow.fs as pafs
import pytest
import torch
from _procs import kill_session
from _readers import READERS, check_reads_everything

from analysis import ObjectPath, load_epochs, load_table, load_trials, results_path
from sweeps import parse_spec
from sweeps._cli import main
from sweeps.panda._babysitter import SitterState
from sweeps.panda._run import model_configs, panda_rules
from sweeps.panda._trial import PandaJob, PeriodReport, babysit
from sweeps.run import sweep_lock

SPEC = textwrap.dedent(
    """
    name: tiny
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr:   {type: float, low: 1.0e-3, high: 0.5, scale: log}
      batch_size: {type: choice, values: [64, 128]}
    strategy: {kind: random, samples: 1}
    initial: [{lr: 0.1, batch_size: 64}]
    seed: 7
    """
)


# lr 0.05 learns digits; raised 100-fold (clamped to 5.0) it wrecks the model: a rollback.
PANDA = textwrap.dedent(
    """
    name: panda
    trainable: {dataset: digits, epochs: 4, fixed: {depth: 1, hidden: 16, batch_size: 64}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 5.0, scale: log}
    strategy: {kind: panda, period: 1, start: {lr: 0.05}, raise_factor: 100.0,
               lower_factor: 0.1, patience: 3}
    seed: 3
    """
)


def _caviar(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`caviar` in a session of its own (its embedded Ray inherits the S3 environment)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=300)
    finally:
        kill_session(proc)  # whatever of its Ray lingers; only what this test started
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _keys(uri: str) -> list[str]:
    root = results_path(uri)
    assert isinstance(root, ObjectPath)
    selector = pafs.FileSelector(root.path.split("/")[0], recursive=True)
    return sorted(i.path for i in root.fs.get_file_info(selector) if i.type == pafs.FileType.File)


@pytest.mark.ray
def test_a_sweep_runs_resumes_and_reports_its_best_from_s3(
    ray_local: None, tmp_path: Path, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    uri = f"{s3_bucket}/x"
    assert main(["run", str(spec), "--results", uri]) == 0
    assert f"results: {uri}/tiny" in capsys.readouterr().out
    trials = load_trials(uri, "tiny")
    assert sorted(trials["trial_id"]) == ["t00000", "t00001"]
    assert trials["run_id"].nunique() == 1
    assert len(load_epochs(uri, "tiny")) == int(trials["epochs_done"].sum())
    bucket = s3_bucket.removeprefix("s3://")
    keys = [k.removeprefix(f"{bucket}/x/tiny/") for k in _keys(uri)]
    assert "_space.json" in keys and "best.json" not in keys
    assert [k for k in keys if k.startswith("_runs/")] == [f"_runs/{trials['run_id'][0]}.json"]
    assert any(k.startswith("_ray/") for k in keys)  # Ray's own state sits in the bucket too
    ours = [k for k in keys if not k.startswith("_ray/")]
    assert not [k for k in ours if "/." in k or k.startswith(".")], ours  # no temporary, no probe
    assert not (tmp_path / "results").exists()  # and nothing local
    for reader in READERS:  # every reader docs/results.md shows reads the bucket's folders
        check_reads_everything(reader, f"{uri}/tiny/trials", trials)

    assert main(["best", str(spec), "--results", uri]) == 0
    best = json.loads(capsys.readouterr().out)
    ok = trials[trials["status"] == "ok"]
    assert best["score"] == ok["val_accuracy"].max() and best["sweep"] == "tiny"

    assert main(["run", str(spec), "--results", uri, "--resume"]) == 0
    assert "0 evaluated, 2 already recorded" in capsys.readouterr().out
    assert len(load_trials(uri, "tiny")) == 2


# A sweep an older caviar wrote, with hive `run=/round=` partition folders.
OLD = Path(__file__).parents[1] / "fixtures" / "old_layout"


def _upload_old_sweep(uri: str) -> ObjectPath:
    root = results_path(uri)
    assert isinstance(root, ObjectPath)
    pafs.copy_files(str(OLD / "store"), root.path, destination_filesystem=root.fs)
    return root / "old-layout"


def test_the_run_lock_moves_an_old_sweep_in_a_bucket_to_todays_layout(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/x"
    sweep = _upload_old_sweep(uri)
    before = len(load_trials(uri, "old-layout"))
    with sweep_lock(sweep):
        assert not [key for key in _keys(uri) if "=" in key]
    assert len(load_trials(uri, "old-layout")) == before == 6


@pytest.mark.ray
@pytest.mark.slow
def test_resume_continues_an_old_sweep_in_a_bucket(
    ray_local: None, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    uri = f"{s3_bucket}/x"
    sweep = _upload_old_sweep(uri)
    lost = [k for k in _keys(uri) if "/trials/run=20261204T203605Z-c991b7/round=1/" in k]
    assert len(lost) == 1
    sweep.fs.delete_file(lost[0])  # round 1's two trials, as if the run died before recording
    assert main(["run", str(OLD / "spec.yaml"), "--results", uri, "--resume"]) == 0
    assert "2 evaluated, 2 already recorded" in capsys.readouterr().out
    assert not [key for key in _keys(uri) if "=" in key]
    for table in ("trials", "epochs", "rounds", "events"):
        expected = load_table(uri, table, "old-layout")
        for reader in READERS:
            check_reads_everything(reader, f"{sweep}/{table}", expected)


@pytest.mark.cli
@pytest.mark.ray
@pytest.mark.slow
def test_caviar_run_in_its_own_process_passes_the_s3_settings_to_its_ray(
    tmp_path: Path, s3_bucket: str
) -> None:
    """The real path: `caviar run` starts an embedded Ray whose workers inherit AWS_* settings."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    uri = f"{s3_bucket}/x"
    first = _caviar("run", str(spec), "--results", uri, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(load_trials(uri, "tiny")) == 2
    again = _caviar("run", str(spec), "--results", uri, "--resume", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 evaluated, 2 already recorded" in again.stdout
    assert len(load_trials(uri, "tiny")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # nothing local


def test_a_missing_bucket_is_one_line_and_nothing_is_written(
    tmp_path: Path,
    s3_bucket: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    monkeypatch.chdir(tmp_path)
    before = _keys(s3_bucket)
    assert main(["run", str(spec), "--results", "s3://no-such-bucket-here/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results" in err[0] and "s3://no-such-bucket-here/x" in err[0]
    assert "no such bucket" in err[0]
    assert _keys(s3_bucket) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_other_schemes_are_one_line_spec_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC + "results: gs://bucket/x\n")
    for argv in (["run", str(spec)], ["validate", str(spec)], ["best", str(spec)]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "results" in err[0] and "'gs://bucket/x'" in err[0], err
    spec.write_text(SPEC)
    assert main(["run", str(spec), "--results", "hdfs://namenode/x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "results" in err[0] and "'hdfs://namenode/x'" in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]


def test_retune_on_s3_is_a_one_line_error(
    tmp_path: Path, s3_bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    before = _keys(s3_bucket)
    assert main(["retune", str(spec), "--results", f"{s3_bucket}/x"]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "results" in err[0] and f"'{s3_bucket}/x'" in err[0], err
    assert "lock" in err[0] and not captured.out
    assert _keys(s3_bucket) == before


def _babysat(checkpoints: str) -> list[PeriodReport]:
    sweep = parse_spec(PANDA)
    trial_id, config = next(iter(model_configs(sweep).items()))
    state = SitterState(lr=float(config["lr"]))  # type: ignore[arg-type]
    job = PandaJob(trial_id, config, panda_rules(sweep), state, checkpoints, "val_accuracy")
    reports: list[PeriodReport] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # both runs alike, so their numbers match bit for bit
    try:
        babysit(job, reports.append)
    finally:
        torch.set_num_threads(threads)
    # wall-clock epoch times differ; everything else must repeat exactly
    return [
        replace(r, curve=[{k: v for k, v in row.items() if k != "epoch_time_s"} for row in r.curve])
        for r in reports
    ]


def test_panda_checkpoints_go_to_the_bucket_and_rollbacks_read_them_back(
    tmp_path: Path, s3_bucket: str
) -> None:
    local = _babysat(str(tmp_path))
    remote = _babysat(f"{s3_bucket}/x/panda/_panda/r1/t00000")
    assert [d.action for r in remote for d in r.decisions].count("rollback") >= 1
    assert remote == local  # the rollback restored the same model from the bucket
    bucket = s3_bucket.removeprefix("s3://")
    names = [k.removeprefix(f"{bucket}/x/panda/_panda/r1/t00000/") for k in _keys(s3_bucket)]
    assert names == sorted(p.name for p in tmp_path.iterdir()) != []


def test_submit_hands_an_s3_location_to_the_job_as_it_is() -> None:
    from sweeps import SpecError
    from sweeps.cluster._submit import _cluster_results

    assert _cluster_results("s3://bucket/sweeps") == ("s3://bucket/sweeps", "s3://bucket/sweeps")
    with pytest.raises(SpecError, match=r"results: only a local path or s3://"):
        _cluster_results("gs://bucket/sweeps")
