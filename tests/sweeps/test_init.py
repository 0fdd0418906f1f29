"""`caviar init DIR`: a starter project the other commands accept as written."""

from __future__ import annotations

from pathlib import Path

import pytest
from _procs import run_caviar, user_env

from analysis import load_trials

pytestmark = pytest.mark.cli


@pytest.mark.ray
def test_the_starter_project_validates_and_runs_as_written(tmp_path: Path) -> None:
    env = user_env(tmp_path / "home")
    made = run_caviar("init", "my-project", cwd=tmp_path, env=env)
    assert made.returncode == 0, made.stderr
    project = tmp_path / "my-project"
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()) == [
        "data/train.csv", "model.py", "sweep.yaml",
    ]  # fmt: skip
    assert "next: caviar validate" in made.stdout
    checked = run_caviar("validate", "sweep.yaml", "--explain", cwd=project, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "sweep my-project: ok" in checked.stdout and "search width" in checked.stdout
    # shortened only so the test is quick; the spec is otherwise run as written
    spec = (project / "sweep.yaml").read_text()
    (project / "sweep.yaml").write_text(
        spec.replace("epochs: 10", "epochs: 2").replace("per_round: 8", "per_round: 3")
    )
    ran = run_caviar("run", "sweep.yaml", cwd=project, env=env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    trials = load_trials(project / "results", "my-project")
    assert len(trials) == 9 and set(trials["status"]) == {"ok"}
    assert trials["width"].between(8, 128).all()


def test_init_refuses_a_directory_with_files_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    proc = run_caviar("init", "taken", cwd=tmp_path, env=user_env(tmp_path / "home"))
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("error: DIR: exists and is not an empty directory")
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["notes.txt"]
