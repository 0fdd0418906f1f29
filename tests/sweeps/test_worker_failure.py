"""Worker failures: a trial whose worker is SIGKILLed mid-training is retried from its last
checkpoint and recorded once; with no retries left it is recorded `error` and the sweep goes on."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from analysis import load_epochs, load_trials

pytestmark = pytest.mark.cli

SPEC = textwrap.dedent(
    """
    name: workers
    trainable:
      dataset: digits
      epochs: 15
      checkpoint_every: 1
      fixed: {depth: 2, hidden: 128, batch_size: 16}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.1, scale: log}
    strategy: {kind: random, samples: 2}
    max_concurrent: 1
    max_failures: MAX_FAILURES
    """
)


def _session_pids(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return pids


def _training_worker(sid: int) -> int | None:
    for pid in _session_pids(sid):
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::ImplicitFunc.train"):
            return pid
    return None


def _run_and_kill_one_worker(
    tmp_path: Path, max_failures: int, extra: str = ""
) -> subprocess.CompletedProcess[str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("MAX_FAILURES", str(max_failures)) + extra)
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--results", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        start_new_session=True,
    )  # fmt: skip
    try:
        # Wait until the first trial has reported a few epochs (its checkpoints exist), then kill
        # the worker process that trains it.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            ckpts = list((tmp_path / "out" / "workers" / "_ray").rglob("checkpoint_00000[2-9]"))
            worker = _training_worker(proc.pid)
            if ckpts and worker is not None:
                os.kill(worker, signal.SIGKILL)
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no training worker with checkpoints appeared")
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in _session_pids(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, output, "")


def _assert_one_row_per_epoch_and_whole_curves(tmp_path: Path, trials: pd.DataFrame) -> None:
    epochs = load_epochs(tmp_path / "out", "workers")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    for _, row in trials.iterrows():
        curve = epochs[epochs["trial_id"] == row["trial_id"]]
        assert sorted(curve["epoch"]) == list(range(1, int(row["epochs_done"]) + 1))


@pytest.mark.ray
def test_killed_worker_is_retried_from_its_checkpoint_and_recorded_once(tmp_path: Path) -> None:
    result = _run_and_kill_one_worker(tmp_path, max_failures=2)
    assert result.returncode == 0, result.stdout[-2000:]
    trials = load_trials(tmp_path / "out", "workers")
    assert sorted(trials["trial_id"]) == ["t00000", "t00001"]
    assert set(trials["status"]) <= {"ok", "diverged"}
    _assert_one_row_per_epoch_and_whole_curves(tmp_path, trials)


@pytest.mark.ray
def test_a_trial_out_of_retries_is_recorded_as_error_and_the_sweep_goes_on(tmp_path: Path) -> None:
    result = _run_and_kill_one_worker(tmp_path, max_failures=0)
    assert result.returncode == 0, result.stdout[-2000:]
    trials = load_trials(tmp_path / "out", "workers").set_index("trial_id")
    assert sorted(trials.index) == ["t00000", "t00001"]
    failed = trials[trials["status"] == "error"]
    assert len(failed) == 1
    assert failed["error"].iloc[0]
    assert (trials.drop(failed.index)["status"] == "ok").all()
    assert "1 failed" in result.stdout


@pytest.mark.ray
def test_a_killed_pack_is_retried_from_its_checkpoint_and_each_member_recorded_once(
    tmp_path: Path,
) -> None:
    """Both configurations in one pack trial, killed mid-training and retried: each member
    still gets one row and one whole curve. (That the retry starts from the pack's checkpoint,
    bit-identically, is tests/trainables/test_packed_tune.py's restart test.)"""
    result = _run_and_kill_one_worker(tmp_path, max_failures=2, extra="pack: 2\n")
    assert result.returncode == 0, result.stdout[-2000:]
    trials = load_trials(tmp_path / "out", "workers")
    assert sorted(trials["trial_id"]) == ["t00000", "t00001"]
    assert trials["pack_id"].nunique() == 1 and trials["pack_id"].notna().all()
    assert set(trials["status"]) <= {"ok", "diverged"}
    _assert_one_row_per_epoch_and_whole_curves(tmp_path, trials)
