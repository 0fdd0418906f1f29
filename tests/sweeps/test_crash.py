"""Driver crashes: a `caviar run` killed with SIGKILL, then `--resume`, records every
configuration exactly once, with one curve row per (trial, epoch)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _procs import caviar_command, kill_session, session_members, user_env

from analysis import SweepLayout, load_epochs, load_table, load_trials

SPEC = textwrap.dedent(
    """
    name: crash
    trainable: {dataset: digits, epochs: 8, fixed: {depth: 1, hidden: 32}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.5, scale: log}
      batch_size: {type: choice, values: [32, 64]}
    strategy: {kind: random, samples: 10}
    max_concurrent: 2
    """
)
N = 10


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str, spec: str = SPEC) -> subprocess.Popen[str]:
        (tmp_path / "spec.yaml").write_text(spec)
        proc = subprocess.Popen(
            [caviar_command(), "run", str(tmp_path / "spec.yaml"),
             "--results", str(tmp_path / "out"), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=user_env(tmp_path / "home"),
            start_new_session=True,
        )  # fmt: skip
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        kill_session(proc.pid)


def _wait_for(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.2)


def _kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kill_session(proc.pid)


def _resume_and_check(
    launch: Callable[..., subprocess.Popen[str]], out: Path, spec: str = SPEC, n: int = N
) -> None:
    proc = launch("--resume", spec=spec)
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-2000:]
    trials = load_trials(out, "crash")
    assert sorted(trials["trial_id"]) == [f"t{i:05d}" for i in range(n)]
    assert trials["run_id"].nunique() == 1
    epochs = load_epochs(out, "crash")
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert len(epochs) == int(trials["epochs_done"].sum())
    leftovers = [p for p in out.rglob(".*") if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.cli
@pytest.mark.ray
def test_kill_before_any_result_then_resume(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = launch()
    _wait_for(lambda: any((out / "crash" / "_runs").glob("*.json")))
    _kill(proc)
    _resume_and_check(launch, out)


@pytest.mark.cli
@pytest.mark.ray
def test_kill_mid_run_after_results_landed_then_resume(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = launch()
    _wait_for(lambda: any((out / "crash" / "trials").rglob("part-*.parquet")))
    _kill(proc)
    # Usually part of the plan has landed; on a slow machine the whole plan may have (one flush),
    # and resuming must then be a no-op that still leaves each configuration once.
    assert 0 < len(load_trials(out, "crash")) <= N
    _resume_and_check(launch, out)


@pytest.mark.cli
@pytest.mark.ray
def test_crash_between_epochs_and_trials_writes_then_resume(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """The window a kill rarely hits, made exact: the last flush wrote its epochs file, then
    died before its trials file was renamed into place (so that file never appeared)."""
    out = tmp_path / "out"
    proc = launch()
    output, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, output[-2000:]
    trials_files = sorted((out / "crash" / "trials").rglob("part-*.parquet"), key=os.path.getmtime)
    trials_files[-1].unlink()
    manifest = next((out / "crash" / "_runs").glob("*.json"))
    manifest.write_text(json.dumps({**json.loads(manifest.read_text()), "status": "running"}))
    assert len(load_trials(out, "crash")) < N
    _resume_and_check(launch, out)


ROUNDS = SPEC.replace(
    "strategy: {kind: random, samples: 10}",
    "strategy: {kind: coarse_to_fine, rounds: 3, per_round: 4, start_next_at: 1.0}",
).replace("epochs: 8", "epochs: 4")
N_ROUNDS = 12


def _check_rounds(out: Path) -> None:
    """Each round's bounds recorded once, and each round holds exactly its own points."""
    rounds = load_table(out, "rounds", "crash")
    assert not rounds.duplicated(["run_id", "round", "parameter"]).any()
    assert sorted(set(rounds["round"])) == [0, 1, 2]
    trials = load_trials(out, "crash")
    assert sorted(trials.groupby("round").size()) == [4, 4, 4]


@pytest.mark.cli
@pytest.mark.ray
def test_kill_between_rounds_then_resume(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """Killed the moment round 1's bounds are recorded: round 0 is complete, round 1 not run."""
    out = tmp_path / "out"
    proc = launch(spec=ROUNDS)
    _wait_for(lambda: any((out / "crash" / "rounds").glob("run-*/round-1/part-*.parquet")))
    _kill(proc)
    _resume_and_check(launch, out, ROUNDS, N_ROUNDS)
    _check_rounds(out)


@pytest.mark.cli
@pytest.mark.ray
def test_kill_mid_round_then_resume(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    proc = launch(spec=ROUNDS)
    _wait_for(lambda: any((out / "crash" / "trials").rglob("part-*.parquet")))
    _kill(proc)
    _resume_and_check(launch, out, ROUNDS, N_ROUNDS)
    _check_rounds(out)


@pytest.mark.cli
def test_a_second_run_of_the_same_sweep_is_refused(tmp_path: Path) -> None:
    from sweeps.run import sweep_lock

    (tmp_path / "spec.yaml").write_text(SPEC)
    with sweep_lock(tmp_path / "out" / "crash"):
        proc = subprocess.run(
            [caviar_command(), "run", str(tmp_path / "spec.yaml"),
             "--results", str(tmp_path / "out")],
            capture_output=True, text=True, env=user_env(tmp_path / "home"), timeout=120,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"another `caviar run` of this sweep is running (pid {os.getpid()})" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_a_sweep_another_run_holds_is_refused_before_ray_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starting Ray takes seconds; the answer "another run has it" does not need it."""
    from sweeps.run import LockHeldError, _lifecycle, sweep_lock
    from sweeps.spec import load_spec

    (tmp_path / "spec.yaml").write_text(SPEC)
    sweep = load_spec(tmp_path / "spec.yaml")

    def no_ray(address: str | None) -> None:
        raise AssertionError("Ray was started for a sweep another run holds")

    monkeypatch.setattr(_lifecycle, "ray_session", no_ray)
    out = tmp_path / "out"
    held = pytest.raises(LockHeldError, match=f"pid {os.getpid()}")
    opened = _lifecycle.open_run(sweep, out, address=None, resume=False, run_id=None, planned=N)
    with sweep_lock(out / "crash"), held, opened:
        pass
    assert [p.name for p in (out / "crash").iterdir()] == [SweepLayout.RUN_LOCK]


def test_taking_the_lock_removes_what_a_killed_run_left_half_written(tmp_path: Path) -> None:
    """A SIGKILL between an atomic write's write and rename leaves its temporary; the next run
    removes those, and only those: a report is not written under the run lock."""
    from analysis import write_text_atomically
    from sweeps.run import sweep_lock

    sweep = tmp_path / "crash"
    token = "0123456789abcdef0123456789abcdef"
    left = [
        sweep / "_runs" / f".20261203T103809Z-1426bb.json.{token}.tmp",
        sweep / "trials" / "run=r1" / "round=0" / f".part-1.parquet.{token}.tmp",
        sweep / "_schema" / f".trials.json.{token}.tmp",
        sweep / "_panda" / "r1" / "t00000" / f".epoch-3.pt.{token}.tmp",
        sweep / f".best.json.{token}.tmp",
    ]
    kept = [
        sweep / f".report.html.{token}.tmp",  # a report being written meanwhile
        sweep / "_runs" / ".notes.tmp",  # not a name our writer makes
        sweep / "trials" / f"part-{token}.parquet",
    ]
    for path in left + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    with sweep_lock(sweep):
        assert [p for p in left if p.exists()] == []
        assert all(p.exists() for p in kept)
        write_text_atomically(sweep / "best.json", "{}")  # the writer's own names still match
    assert sorted(p.name for p in sweep.rglob("*.tmp")) == sorted(p.name for p in kept[:2])


@pytest.mark.cli
@pytest.mark.ray
def test_sigterm_stops_like_ctrl_c_then_resume(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """What cron's `timeout`, systemd and Kubernetes send: one line saying how to resume,
    exit 143, Ray stopped by caviar itself, the lock released, the run resumable."""
    from sweeps.run import sweep_lock

    out, spec, n = tmp_path / "out", SPEC.replace("samples: 10", "samples: 40"), 40
    proc = launch(spec=spec)  # long enough that the signal comes mid-run on a fast machine
    _wait_for(lambda: any((out / "crash" / "epochs").rglob("part-*.parquet")))
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, output[-3000:]
    assert output.strip().splitlines()[-1] == (
        f"stopped by SIGTERM; continue with `caviar run {tmp_path / 'spec.yaml'} --resume`"
    )
    assert "SIGTERM received" not in output and "Traceback" not in output  # no Ray stack dump
    _wait_for(lambda: not session_members(proc.pid), timeout=30)  # caviar stopped its Ray
    with sweep_lock(out / "crash"):
        pass
    (manifest,) = (out / "crash" / "_runs").glob("*.json")
    assert json.loads(manifest.read_text())["status"] == "failed"
    assert len(load_trials(out, "crash")) < n
    _resume_and_check(launch, out, spec, n)


USER_MODEL_SPEC = textwrap.dedent(
    """
    name: crash
    trainable:
      model: digits_cnn:make
      dataset: {path: data/digits_images.npz}
      epochs: 4
      fixed: {batch_size: 64}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.5, scale: log}
      channels: {type: int, low: 4, high: 8}
    strategy: {kind: random, samples: 10}
    max_concurrent: 2
    """
)


@pytest.mark.cli
@pytest.mark.ray
def test_a_user_model_killed_mid_run_resumes_with_each_configuration_once(
    launch: Callable[..., subprocess.Popen[str]], tmp_path: Path
) -> None:
    """The user's module and data sit beside the spec, as in a project of their own."""
    examples = Path(__file__).parents[2] / "sweeps" / "examples"
    shutil.copy(examples / "digits_cnn.py", tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(examples / "data" / "digits_images.npz", tmp_path / "data")
    out = tmp_path / "out"
    proc = launch(spec=USER_MODEL_SPEC)
    _wait_for(lambda: any((out / "crash" / "trials").rglob("part-*.parquet")))
    _kill(proc)
    assert 0 < len(load_trials(out, "crash")) <= N
    _resume_and_check(launch, out, USER_MODEL_SPEC)
    assert load_trials(out, "crash")["channels"].between(4, 8).all()
