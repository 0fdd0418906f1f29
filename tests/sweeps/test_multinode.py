"""A sweep joined to a two-node cluster by address spreads its trials over both nodes (a custom
resource stands in for one GPU per node) and records every configuration once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from _procs import free_port, kill_session

from analysis import load_trials
from sweeps._errors import SpecError
from sweeps._spec import parse_spec

VENV_BIN = Path(sys.executable).parent
SPEC = textwrap.dedent(
    """
    name: two-nodes
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16, batch_size: 64}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.3, scale: log}
    strategy: {kind: random, samples: 6}
    resources: {cpu: 1, custom: {accel: 1}}
    max_concurrent: 2   # without it Tune asks for one trial's resources at a time
    """
)
# What a bare driver prints: the alive nodes as {node_id: ip}.
LIST_NODES = (
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


def _env() -> dict[str, str]:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.pop("RAY_ADDRESS", None)
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [str(VENV_BIN / "ray"), "start", "--block", "--disable-usage-stats",
             f"--dashboard-agent-listen-port={free_port()}", *args],
            stdout=out, stderr=subprocess.STDOUT, env=_env(), start_new_session=True,
        )  # fmt: skip


def _alive_nodes(address: str, count: int) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-c", LIST_NODES, address, str(count)],
        capture_output=True, text=True, env=_env(), timeout=180, check=True,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker on this machine, each able to hold one trial; yields (GCS address,
    the nodes)."""
    temp = Path(tempfile.mkdtemp(prefix="cvmn"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    address = f"127.0.0.1:{port}"
    per_node = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--num-gpus=0",
                '--resources={"accel": 1}']  # fmt: skip
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        nodes.append(
            _start(["--head", f"--port={port}", "--include-dashboard=false",
                    f"--ray-client-server-port={free_port()}", f"--temp-dir={temp / 'h'}",
                    *per_node], temp / "head.log")
        )  # fmt: skip
        nodes.append(
            _start([f"--address={address}", f"--temp-dir={temp / 'w'}", *per_node],
                   temp / "worker.log")
        )  # fmt: skip
        alive = _alive_nodes(address, 2)
        assert len(alive) == 2, f"the worker did not join: {alive}"
        yield address, alive
    finally:
        for node in reversed(nodes):
            kill_session(node)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.ray
def test_trials_run_on_both_nodes_and_land_once(two_nodes, tmp_path):
    address, alive = two_nodes
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"

    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--address", address,
         "--results", str(out)],
        capture_output=True, text=True, env=_env(), timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(out, sweep="two-nodes")
    assert len(trials) == 6
    assert trials["trial_id"].is_unique
    assert set(trials["status"]) == {"ok"}
    assert set(trials["node_id"]) == set(alive)


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ("{GPU: 1}", "'GPU' is a built-in resource"),
        ("{'a b': 1}", "resource name 'a b' must match"),
        ("{accel: 1.5}", "amount of 'accel' must be in (0, 1] or a whole number"),
        ("{accel: 0}", "amount of 'accel' must be in (0, 1] or a whole number"),
        ("{accel: many}", "amount of 'accel' must be a number"),
    ],
)
def test_a_bad_custom_resource_names_the_field_and_value(custom, message):
    text = SPEC.replace("custom: {accel: 1}", f"custom: {custom}")

    with pytest.raises(SpecError) as caught:
        parse_spec(text)

    (problem,) = caught.value.problems
    assert problem.field == "resources.custom"
    assert message in problem.message


def test_custom_resources_are_requested_and_absent_ones_change_nothing():
    with_custom = parse_spec(SPEC)
    without = parse_spec(SPEC.replace(", custom: {accel: 1}", ""))

    assert with_custom.spec.resources.custom == {"accel": 1.0}
    assert without.spec.resources.custom == {}
    # Specs written before `custom` existed keep their digest, so their runs still resume.
    assert "custom" not in without.spec.model_dump(mode="json")["resources"]
    assert with_custom.digest != without.digest
