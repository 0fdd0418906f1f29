"""Commands that train nothing import neither torch nor Ray: `caviar --version`, `best`,
`report`, `export mlflow --help` and `validate` of a built-in MLP's spec start in a fraction of
the second torch alone takes to import (bench/cli_startup.py times them)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from _procs import user_env

pytestmark = pytest.mark.cli

ROOT = Path(__file__).parents[2]
DEMO = ROOT / "sweeps" / "examples" / "demo.yaml"
# A small sweep of the built-in MLP, as `caviar run` wrote it (tests/fixtures/old_layout).
FIXTURE = ROOT / "tests" / "fixtures" / "old_layout"
HEAVY = ("torch", "ray")

# Run in a fresh interpreter, as `caviar` runs: each command through the CLI's `main`, then
# which of HEAVY have been imported so far. The last step asks `trainables` for a torch name,
# so the test also shows that the check sees an import when one happens.
_SCRIPT = """
import json, sys
heavy = lambda: sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
from sweeps._cli import main
seen = [["import sweeps._cli", 0, heavy()]]
for argv in json.loads(sys.argv[2]):
    try:
        code = main(argv)
    except SystemExit as exc:  # --version and --help exit from argparse
        code = exc.code
    seen.append([" ".join(argv), code, heavy()])
import trainables
trainables.load_dataset
seen.append(["trainables.load_dataset", 0, heavy()])
open(sys.argv[1], "w").write(json.dumps(seen))
"""


def test_commands_that_train_nothing_import_neither_torch_nor_ray(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "sweep")
    spec, results = tmp_path / "sweep" / "spec.yaml", tmp_path / "sweep" / "store"
    commands = [
        ["--version"],
        ["validate", str(DEMO)],
        ["validate", str(DEMO), "--explain"],
        ["best", str(spec), "--results", str(results)],
        ["report", str(results), "--out", str(tmp_path / "report.html")],
        ["export", "mlflow", "--help"],
    ]
    seen_file = tmp_path / "seen.json"
    script = _SCRIPT.replace("HEAVY", repr(HEAVY))
    proc = subprocess.run(
        [sys.executable, "-c", script, str(seen_file), json.dumps(commands)],
        cwd=tmp_path, env=user_env(tmp_path / "home"), capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = json.loads(seen_file.read_text())
    assert [(step, code) for step, code, _ in seen] == [
        ("import sweeps._cli", 0),
        *((" ".join(argv), 0) for argv in commands),
        ("trainables.load_dataset", 0),
    ], proc.stderr[-3000:]
    assert {step: imported for step, _, imported in seen[:-1]} == {
        step: [] for step, _, _ in seen[:-1]
    }
    assert seen[-1][2] == ["torch"]  # loaded on first use, and seen by the check
    assert '"trial_id"' in proc.stdout and (tmp_path / "report.html").exists()
