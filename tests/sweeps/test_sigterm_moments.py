"""`caviar run` stopped by SIGTERM at any moment (cron's `timeout`, systemd, Kubernetes do not
wait for a good one): exit 143, the resume line last, and nothing left of the Ray it started.

Three moments, each waited for rather than timed: while Ray starts (its first daemon is up,
`ray.init` has not returned), while trials run (an epoch is recorded), and once the run is
recorded complete and Ray is being stopped. Before the fix, the first ended with status 15 and
no word (Ray's own handler, `sys.exit(15)`), leaving Ray's agents running; the last was killed
by the signal itself (`ray.shutdown` leaves SIGTERM at its default action).
"""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from _procs import caviar_command, kill_session, session_members, user_env

pytestmark = pytest.mark.cli

SPEC = textwrap.dedent(
    """
    name: stop
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.5, scale: log}
    strategy: {kind: random, samples: 2}
    max_concurrent: 2
    """
)


def _ray_starting(proc: subprocess.Popen[str], sweep: Path) -> Callable[[], bool]:
    """A process of the run's session other than caviar itself: Ray's first daemon is up, so
    `ray.init` is under way (it starts several more and then connects the driver)."""
    return lambda: len(session_members(proc.pid)) > 1


def _trials_running(proc: subprocess.Popen[str], sweep: Path) -> Callable[[], bool]:
    """An epoch recorded: trials run, and results are being written."""
    return lambda: any((sweep / "epochs").rglob("part-*.parquet"))


def _ray_stopping(proc: subprocess.Popen[str], sweep: Path) -> Callable[[], bool]:
    """The run recorded as complete, and one of the daemons `ray.init` started (caviar's own
    children) gone: `ray.shutdown` is under way; after it, the best row is read."""
    children: set[int] = set()

    def stopping() -> bool:
        if not _complete(sweep):
            return False
        for pid in session_members(proc.pid):
            state = _state_and_parent(pid)
            if state is not None and state[1] == proc.pid:
                if state[0] == "Z":
                    return True
                children.add(pid)
        return any(not Path(f"/proc/{pid}").exists() for pid in children)

    return stopping


def _complete(sweep: Path) -> bool:
    try:
        runs = [json.loads(m.read_text()) for m in (sweep / "_runs").glob("*.json")]
    except (OSError, ValueError):  # a manifest being replaced
        return False
    return any(r["status"] == "complete" for r in runs)


def _state_and_parent(pid: int) -> tuple[str, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0], int(fields[1])


MOMENTS = {"ray_starting": _ray_starting, "trials_running": _trials_running,
           "ray_stopping": _ray_stopping}  # fmt: skip


@pytest.fixture
def run(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    (tmp_path / "spec.yaml").write_text(SPEC)
    proc = subprocess.Popen(
        [caviar_command(), "run", str(tmp_path / "spec.yaml"), "--results", str(tmp_path / "out")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=user_env(tmp_path / "home"), start_new_session=True,
    )  # fmt: skip
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    kill_session(proc.pid)


def _wait_for(condition: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the moment never came")
        time.sleep(0.02)


@pytest.mark.ray
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigterm_at_any_moment_exits_143_with_the_resume_line_and_leaves_no_ray(
    run: subprocess.Popen[str], tmp_path: Path, moment: str
) -> None:
    came = MOMENTS[moment](run, tmp_path / "out" / "stop")
    _wait_for(lambda: came() or run.poll() is not None, timeout=180)
    assert run.poll() is None, "the run ended before the moment came"
    run.send_signal(signal.SIGTERM)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 143, output[-3000:]
    assert output.strip().splitlines()[-1] == (
        f"stopped by SIGTERM; continue with `caviar run {tmp_path / 'spec.yaml'} --resume`"
    ), output[-3000:]
    # No stack dump of caviar's (Ray's raylet may print a trial worker's, prefixed `(raylet)`).
    assert not [line for line in output.splitlines() if line.startswith("Traceback")], output
    assert "SIGTERM received" not in output  # nor the C++ one of Ray's failure-signal handler
    # caviar stopped its Ray itself: every process of the run's session goes (Ray's agents
    # notice their raylet is gone within a second or so).
    deadline = time.monotonic() + 30
    while session_members(run.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert session_members(run.pid) == [], _describe(session_members(run.pid))


def _describe(pids: list[int]) -> str:
    """What each process left is, for the failure message."""
    lines = []
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            command = "(gone)"
        lines.append(f"{pid} {_state_and_parent(pid)}: {command[:200]}")
    return "\n".join(lines)
