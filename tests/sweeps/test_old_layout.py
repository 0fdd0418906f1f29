"""A sweep folder an older caviar wrote (hive `run=/round=` folders) still works with `caviar`.

`report` and `best` read it as it is; a writer (`run --resume`, `retune`) moves it to today's
layout under the run lock first, after which every other reader reads it too.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from _readers import READERS, check_reads_everything

from analysis import TABLES, load_table, load_trials
from sweeps._cli import main
from sweeps.run import sweep_lock

FIXTURE = Path(__file__).parents[1] / "fixtures" / "old_layout"
SWEEP = "old-layout"


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    """The fixture's spec and results folder, copied: tests write into them."""
    shutil.copytree(FIXTURE, tmp_path / "old")
    return tmp_path / "old" / "spec.yaml", tmp_path / "old" / "store"


def _legacy_folders(results: Path) -> list[Path]:
    return [p for p in results.rglob("*") if p.is_dir() and "=" in p.name]


def test_report_and_best_read_an_old_sweep_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, results = _copy(tmp_path)
    out = tmp_path / "report.html"
    assert main(["report", str(results), "--sweep", SWEEP, "--out", str(out)]) == 0
    assert "data:image/png;base64," in out.read_text()
    capsys.readouterr()
    assert main(["best", str(spec), "--results", str(results)]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best == json.loads((results / SWEEP / "best.json").read_text())
    assert best["trial_id"] in set(load_trials(results, SWEEP)["trial_id"])
    assert len(_legacy_folders(results)) == 15  # readers move nothing (6 run, 9 round folders)


def test_the_run_lock_moves_an_old_sweep_to_todays_layout(tmp_path: Path) -> None:
    _, results = _copy(tmp_path)
    before = {table: len(load_table(results, table, SWEEP)) for table in TABLES}
    with sweep_lock(results / SWEEP):
        assert _legacy_folders(results) == []
    assert {table: len(load_table(results, table, SWEEP)) for table in TABLES} == before


@pytest.mark.ray
def test_resume_continues_an_old_sweep_in_todays_layout(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, results = _copy(tmp_path)
    lost = next((results / SWEEP / "trials").glob("run=*c991b7/round=1"))
    shutil.rmtree(lost)  # round 1's two trials, as if the run had died before recording them
    capsys.readouterr()
    assert main(["run", str(spec), "--results", str(results), "--resume"]) == 0
    assert "2 evaluated, 2 already recorded" in capsys.readouterr().out
    assert _legacy_folders(results) == []
    trials = load_trials(results, SWEEP)
    assert len(trials) == 6 and sorted(trials["round"]) == [0, 0, 0, 0, 1, 1]
    for table in ("trials", "epochs", "rounds", "events"):
        expected = load_table(results, table, SWEEP)
        for reader in READERS:
            check_reads_everything(reader, str(results / SWEEP / table), expected)


@pytest.mark.ray
@pytest.mark.slow
def test_retune_of_an_old_sweep_records_its_event_in_todays_layout(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec, results = _copy(tmp_path)
    assert main(["retune", str(spec), "--results", str(results)]) == 0
    assert _legacy_folders(results) == []
    events = load_table(results, "events", SWEEP)
    assert list(events["kind"]) == ["retune", "retune"]
    best = json.loads((results / SWEEP / "best.json").read_text())
    assert best["last_retune"]["run_id"] == events["run_id"].max()
    for reader in READERS:
        check_reads_everything(reader, str(results / SWEEP / "events"), events)
