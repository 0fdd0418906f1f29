"""The HTML report: one self-contained file answering the questions, for one sweep or all."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from analysis import ResultsError, write_report


def test_one_self_contained_file_with_every_section(results_dir: Path, tmp_path: Path) -> None:
    path = write_report(results_dir, tmp_path / "r.html", sweep="s")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    for title in ("Top configurations", "Which hyperparameters mattered",
                  "Where the next search should look", "Parallel coordinates",
                  "Learning curves of the best", "Did the search converge?",
                  "Coarse-to-fine rounds", "BatchNorm and the learning-rate range"):  # fmt: skip
        assert f">{title}</h2>" in page, title
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "not coarse-to-fine" in page  # one round: the zoom is skipped with a note
    assert "decades" in page


def test_default_location_and_all_sweeps_in_one_page(tmp_path: Path, synth) -> None:
    synth.write_sweep(tmp_path, "a", n=24, space=None)
    synth.write_sweep(tmp_path, "b", n=12, rounds=2)
    (tmp_path / "c").mkdir()  # a sweep that has not recorded anything yet
    assert write_report(tmp_path, sweep="c") == tmp_path / "c" / "report.html"
    assert "No trials recorded yet" in (tmp_path / "c" / "report.html").read_text()
    page = write_report(tmp_path).read_text()
    assert page == (tmp_path / "report.html").read_text()
    assert 'id="sweep-a"' in page and 'id="sweep-b"' in page
    assert "inferred from the data" in page and "the stored search space" in page
    assert "range sampled in each round" not in page  # that is a plot title, inside a PNG
    assert page.count("<h3>Coarse-to-fine rounds</h3>") == 2
    assert 'id="sweep-c"' in page


def test_user_errors(results_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such sweep"):
        write_report(results_dir, tmp_path / "r.html", sweep="nope")
    with pytest.raises(ResultsError, match="no such directory"):
        write_report(tmp_path / "absent")
    with pytest.raises(ResultsError, match="out"):
        write_report(results_dir, tmp_path / "missing-dir" / "r.html")
    with pytest.raises(ResultsError, match="objective"):
        write_report(results_dir, tmp_path / "r.html", objective="accuracy")


def test_analysis_imports_neither_ray_nor_the_other_packages() -> None:
    """Nor, until a figure or an importance is asked for, matplotlib or scikit-learn: every
    `caviar` command imports this package, and those two take seconds to import."""
    code = (
        "import sys, analysis\n"
        "heavy = ('ray', 'sweeps', 'trainables', 'search_spaces', 'matplotlib', 'sklearn')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n"
        "analysis.write_report\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "['matplotlib']"]
