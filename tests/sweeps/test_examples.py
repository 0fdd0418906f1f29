"""Every example spec, run through the installed `caviar` command as a user runs it.

A user's shell sets no `RAY_AUTH_MODE` and has a home directory with or without
`~/.ray/auth_token`; the rest of the suite runs with the auth mode it sets itself, which once hid
that panda could not start Ray from the CLI. Each spec is shortened (fewer epochs and points)
but keeps its strategy, packing and early stopping.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
import pytest
import yaml
from _procs import run_caviar, user_env

EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"
SPECS = sorted(path.name for path in EXAMPLES.glob("*.yaml"))

pytestmark = [pytest.mark.ray, pytest.mark.cli]


def _shortened(spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The spec with a short run; and how many configurations it then records."""
    spec = {**spec, "trainable": {**spec["trainable"], "epochs": 2}}
    strategy = dict(spec["strategy"])
    kind = strategy["kind"]
    if kind in ("random", "sobol"):
        strategy["samples"] = 4
        planned = 4
    elif kind == "grid":
        strategy["points"] = 2
        planned = 2 ** len(spec["search_space"])
    elif kind == "coarse_to_fine":
        strategy.update(rounds=2, per_round=3)
        planned = 6
    elif kind == "panda":
        spec["trainable"]["epochs"] = 4  # two periods: one decision to judge by
        planned = strategy.get("models", 1)
    else:
        raise AssertionError(f"no shortening for strategy {kind!r}: add one")
    spec["strategy"] = strategy
    spec.pop("initial", None)
    return spec, planned + len(spec.get("initial", []))


@pytest.mark.parametrize("token", [False, True], ids=["no-token-file", "token-file"])
@pytest.mark.parametrize("name", SPECS)
def test_example_runs_through_the_cli(name: str, token: bool, tmp_path: Path) -> None:
    spec, planned = _shortened(yaml.safe_load((EXAMPLES / name).read_text()))
    (tmp_path / name).write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copytree(EXAMPLES / "data", tmp_path / "data")  # examples' data files, as shipped
    for module in EXAMPLES.glob("*.py"):  # and the model factories they name
        shutil.copy(module, tmp_path)
    home = tmp_path / "home"
    if token:
        (home / ".ray").mkdir(parents=True)
        (home / ".ray" / "auth_token").write_text(secrets.token_hex(32))
    env = user_env(home)

    run = run_caviar("run", name, "--results", "out", cwd=tmp_path, env=env)

    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    assert "Traceback" not in run.stderr and "InvalidAuthToken" not in run.stderr
    trials = ds.dataset(tmp_path / "out" / spec["name"] / "trials", partitioning="hive").to_table()
    assert trials.num_rows == planned
    assert set(trials.column("status").to_pylist()) <= {"ok", "diverged", "stopped"}
    assert f"best {spec['objective']['metric']}" in run.stdout
    if "retune" in spec:
        retune = run_caviar("retune", name, "--results", "out", cwd=tmp_path, env=env)
        assert retune.returncode == 0, retune.stdout[-2000:] + retune.stderr[-4000:]
        assert "drift: no" in retune.stdout


def test_no_strategy_imports_ray_before_its_environment_is_prepared() -> None:
    """Ray reads RAY_AUTH_MODE and its token when first imported; every module a strategy's
    entry point imports before `ray_session` prepares the environment must leave Ray alone."""
    modules = [
        "sweeps._cli", "sweeps._run_sweep", "sweeps.panda", "sweeps.panda._record",
        "sweeps.strategies._auto", "sweeps.retune._retune", "sweeps.cluster._submit",
        "sweeps.strategies._coarse_driver", "sweeps.strategies._tpe_driver", "sweeps.run._resume",
        "trainables", "search_spaces", "analysis",
    ]  # fmt: skip
    code = f"import sys\nfor m in {modules!r}: __import__(m)\nprint('ray' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
