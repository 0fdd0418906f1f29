"""Process helpers for tests that start Ray (or `caviar run`) as processes of their own.

Each such process is started with `start_new_session=True`, so everything it spawns (GCS,
raylet, agents, workers) shares its session id and can be stopped together by that id: only
what the test started, never by name.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = [
    "assert_refused",
    "caviar_command",
    "free_port",
    "kill_session",
    "run_caviar",
    "session_members",
    "starts_caviar",
    "user_env",
]


# Settings a user's shell does not have: the suite's own (tests/conftest.py) and Ray's.
_TEST_ONLY = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS")


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a user's `caviar` runs in: no auth-mode override, no cluster address,
    and a home directory of its own (where `~/.ray/auth_token` may or may not be)."""
    env = {k: v for k, v in os.environ.items() if k not in _TEST_ONLY}
    home.mkdir(parents=True, exist_ok=True)
    return {**env, "HOME": str(home), **extra}


def caviar_command() -> str:
    """The installed console script, as a user runs it (not `python -m sweeps`)."""
    return str(Path(sys.executable).parent / "caviar")


def starts_caviar(args: object) -> bool:
    """Whether a child with these arguments runs caviar's command line: the `caviar` script,
    `python -m sweeps`, or a `python -c` script that imports `sweeps._cli`. A test that starts
    one carries `@pytest.mark.cli` (tests/conftest.py fails one that does not)."""
    argv = [
        os.fsdecode(a) for a in ([args] if isinstance(args, str | bytes | os.PathLike) else args)
    ]
    if argv and Path(argv[0]).name == "caviar":
        return True
    return any(
        (arg == "-m" and nxt == "sweeps") or (arg == "-c" and "sweeps._cli" in nxt)
        for arg, nxt in itertools.pairwise(argv)
    )


def run_caviar(
    *args: str, env: dict[str, str], cwd: Path | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """`caviar ARGS` to the end, in a session of its own that is emptied afterwards: a run
    that times out (or leaves Ray behind) takes nothing with it into the next test."""
    proc = subprocess.Popen(
        [caviar_command(), *args], cwd=cwd, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        kill_session(proc)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_refused(cwd: Path, spec: str, field: str, message: str) -> None:
    """`caviar run SPEC` as a user runs it refuses the spec: exit 2, one line on stderr naming
    `field` and saying `message`, no traceback, and no results written."""
    proc = run_caviar("run", spec, "--results", "out", cwd=cwd, env=user_env(cwd / "home"))
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {spec}: {field}: ") and message in line, line
    assert "Traceback" not in proc.stderr
    assert not (cwd / "out").exists()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def session_members(sid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if os.getsid(int(entry.name)) == sid:
                    pids.append(int(entry.name))
    return pids


def kill_session(leader: int | subprocess.Popen[bytes] | subprocess.Popen[str]) -> None:
    """SIGKILL every process of the session `leader` leads, and check that none survive.

    Nothing of a throwaway test process needs a clean shutdown. Ray's agents may outlive a
    killed driver for a while, hence the second pass.
    """
    sid = leader if isinstance(leader, int) else leader.pid
    for _ in range(2):
        for pid in session_members(sid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while session_members(sid) and time.monotonic() < deadline:
            if not isinstance(leader, int):
                leader.poll()  # reap the leader so it leaves the session
            time.sleep(0.2)
    if not isinstance(leader, int):
        leader.wait(timeout=5)
    assert not session_members(sid), f"processes of session {sid} survived"
