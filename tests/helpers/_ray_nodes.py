"""Real Ray nodes for tests: `ray start --block` processes in sessions of their own.

Shared by the tests that join a sweep to a cluster by address (two nodes, a fake GPU), so that
each starts, waits for and stops its nodes the same way: stopped by session id, never by name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from _procs import free_port, kill_session

__all__ = ["VENV_BIN", "alive_nodes", "ray_cluster", "ray_env", "start_node"]

VENV_BIN = Path(sys.executable).parent
# What a bare driver prints: the alive nodes as {node_id: ip}.
_LIST_NODES = (
    "import json, sys, time, ray\n"
    "ray.init(address=sys.argv[1], log_to_driver=False, logging_level='ERROR')\n"
    "deadline = time.monotonic() + 120\n"
    "while True:\n"
    "    alive = {n['NodeID']: n['NodeManagerAddress'] for n in ray.nodes() if n['Alive']}\n"
    "    if len(alive) >= int(sys.argv[2]) or time.monotonic() > deadline:\n"
    "        break\n"
    "    time.sleep(0.5)\n"
    "print(json.dumps(alive))\n"
)


def ray_env() -> dict[str, str]:
    """The environment for nodes and drivers: no token auth, no usage stats, this venv first."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    return env


def start_node(args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(VENV_BIN / "ray"), "start", "--block", "--disable-usage-stats",
             f"--dashboard-agent-listen-port={free_port()}", *args],
            stdout=out, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True,
        )  # fmt: skip


def alive_nodes(address: str, count: int) -> dict[str, str]:
    """The cluster's alive nodes once `count` of them are up (or after two minutes)."""
    result = subprocess.run(
        [sys.executable, "-c", _LIST_NODES, address, str(count)],
        capture_output=True, text=True, env=ray_env(), timeout=180, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


@contextmanager
def ray_cluster(
    *nodes: Sequence[str], dashboard_port: int | None = None
) -> Iterator[tuple[str, dict[str, str]]]:
    """A head with `nodes[0]`'s `ray start` arguments, plus one worker per further entry, all
    on 127.0.0.1; yields (GCS address, the alive nodes) and kills every node's session after.

    With `dashboard_port` the head serves the dashboard and its Jobs API there. Each node has
    a temp dir of its own (`h`, `w0`, ... under one folder), as separate machines would.
    """
    temp = Path(tempfile.mkdtemp(prefix="cvrn"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    address = f"127.0.0.1:{port}"
    dashboard = (
        ["--include-dashboard=false"]
        if dashboard_port is None
        else ["--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard_port}"]
    )
    started: list[subprocess.Popen[bytes]] = []
    try:
        started.append(
            start_node(["--head", f"--port={port}", *dashboard,
                        f"--ray-client-server-port={free_port()}", f"--temp-dir={temp / 'h'}",
                        "--node-ip-address=127.0.0.1", *nodes[0]], temp / "head.log")
        )  # fmt: skip
        for index, args in enumerate(nodes[1:]):
            started.append(
                start_node([f"--address={address}", f"--temp-dir={temp / f'w{index}'}",
                            "--node-ip-address=127.0.0.1", *args], temp / f"worker{index}.log")
            )  # fmt: skip
        alive = alive_nodes(address, len(nodes))
        assert len(alive) == len(nodes), f"not every node joined: {alive}"
        yield address, alive
    finally:
        for node in reversed(started):
            kill_session(node)
        shutil.rmtree(temp, ignore_errors=True)
