"""Real networking: a Ray worker in its own network namespace joins the head over a veth pair,
and a sweep whose trials only that worker can hold runs there and is recorded as run there."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from _procs import free_port, kill_session
from _ray_nodes import VENV_BIN, alive_nodes, ray_env

from analysis import load_trials

pytestmark = pytest.mark.cli

SPEC = textwrap.dedent(
    """
    name: across-veth
    trainable: {dataset: digits, epochs: 1, fixed: {depth: 1, hidden: 16, batch_size: 64}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.3, scale: log}
    strategy: {kind: random, samples: 4}
    resources: {cpu: 1, custom: {remote: 1}}
    max_concurrent: 2
    """
)


@dataclass(frozen=True)
class Namespace:
    name: str
    host_ip: str  # the head's side of the veth pair, in this namespace
    worker_ip: str  # inside `name`


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)


def _free_subnet() -> int:
    """A 10.77.X.0/24 no interface on this machine uses (another run may hold one)."""
    used = _ip("-o", "addr", "show").stdout
    for third in range(256):
        if f" 10.77.{third}." not in used:
            return third
    pytest.skip("no free 10.77.X.0/24 subnet for the veth pair")


@pytest.fixture
def netns() -> Iterator[Namespace]:
    """A second host: a network namespace joined to this one by a veth pair."""
    if shutil.which("ip") is None:
        pytest.skip("the `ip` command (iproute2) is not installed")
    tag = f"{os.getpid() % 100_000}"
    name, host_end, ns_end = f"caviar-{tag}", f"cvh{tag}", f"cvn{tag}"
    made = _ip("netns", "add", name)
    if made.returncode != 0:
        pytest.skip(f"cannot create a network namespace: {made.stderr.strip()}")
    try:
        third = _free_subnet()
        host_ip, worker_ip = f"10.77.{third}.1", f"10.77.{third}.2"
        steps = [
            ("link", "add", host_end, "type", "veth", "peer", "name", ns_end),
            ("link", "set", ns_end, "netns", name),
            ("addr", "add", f"{host_ip}/24", "dev", host_end),
            ("link", "set", host_end, "up"),
            ("netns", "exec", name, "ip", "addr", "add", f"{worker_ip}/24", "dev", ns_end),
            ("netns", "exec", name, "ip", "link", "set", ns_end, "up"),
            ("netns", "exec", name, "ip", "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step)
            assert done.returncode == 0, f"ip {' '.join(step)}: {done.stderr}"
        yield Namespace(name, host_ip, worker_ip)
    finally:
        _ip("netns", "del", name)  # takes the veth pair with it
        _ip("link", "del", host_end)  # in case the pair was made but never moved
        assert name not in _ip("netns", "list").stdout


def _start(prefix: list[str], args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [*prefix, str(VENV_BIN / "ray"), "start", "--block", "--disable-usage-stats", *args],
            stdout=out, stderr=subprocess.STDOUT, env=ray_env(), start_new_session=True,
        )  # fmt: skip


@pytest.fixture
def cluster_across_veth(netns: Namespace) -> Iterator[tuple[str, dict[str, str]]]:
    """The head on the host end of the veth, the worker inside the namespace; only the worker
    has the `remote` resource. Yields (GCS address, alive nodes {node_id: ip})."""
    temp = Path(tempfile.mkdtemp(prefix="cvns"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port(netns.host_ip)
    address = f"{netns.host_ip}:{port}"
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(
            _start([], ["--head", f"--node-ip-address={netns.host_ip}", f"--port={port}",
                        "--include-dashboard=false", f"--ray-client-server-port={free_port('')}",
                        f"--dashboard-agent-listen-port={free_port('')}", "--num-cpus=1",
                        "--num-gpus=0", f"--temp-dir={temp / 'h'}"], temp / "head.log")
        )  # fmt: skip
        nodes.append(
            _start(["ip", "netns", "exec", netns.name],
                   [f"--address={address}", f"--node-ip-address={netns.worker_ip}",
                    "--num-cpus=2", "--num-gpus=0", '--resources={"remote": 2}',
                    f"--temp-dir={temp / 'w'}"], temp / "worker.log")
        )  # fmt: skip
        alive = alive_nodes(address, 2)
        logs = "".join(p.read_text(errors="replace")[-1500:] for p in temp.glob("*.log"))
        assert netns.worker_ip in alive.values(), f"the worker did not join: {alive}\n{logs}"
        yield address, alive
    finally:
        for node in reversed(nodes):
            kill_session(node)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.ray
def test_trials_run_on_the_worker_across_the_veth(cluster_across_veth, netns, tmp_path):
    address, alive = cluster_across_veth
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"

    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--address", address,
         "--results", str(out)],
        capture_output=True, text=True, env=ray_env(), timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(out, sweep="across-veth")
    assert len(trials) == 4
    assert trials["trial_id"].is_unique
    assert set(trials["status"]) == {"ok"}
    worker = {node_id for node_id, ip in alive.items() if ip == netns.worker_ip}
    assert set(trials["node_id"]) == worker
    assert set(trials["node"]) == {netns.worker_ip}
