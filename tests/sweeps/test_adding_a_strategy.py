"""docs/layout.md's recipe, followed: a strategy is one module (this one: its settings model and
its behaviour) and one row in the strategy table. With the row added, a spec may name the new
kind, `validate` describes it, and `caviar run` runs it; nothing else in `sweeps/` changes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Annotated, Any

import pytest
from pydantic import Field

from analysis import load_trials
from search_spaces import SearchSpace
from sweeps import SpecError, parse_spec, plan_points, run_sweep
from sweeps._cli import main
from sweeps.spec._strategy_behaviour import StrategyBehaviour
from sweeps.spec._strategy_specs import StrategyModel
from sweeps.spec._strategy_table import STRATEGIES, StrategyRow


# --- the new module: the strategy's settings and its behaviour ---------------------------------
class DiagonalStrategy(StrategyModel):
    """`points` configurations evenly spaced along the space's diagonal (in the warped
    coordinates, where sampling is uniform)."""

    points: Annotated[int, Field(ge=1, le=100)] = 2


class DiagonalBehaviour(StrategyBehaviour[DiagonalStrategy]):
    def budget(self, strategy: DiagonalStrategy, space: SearchSpace) -> int:
        return strategy.points

    def fixed_points(
        self, strategy: DiagonalStrategy, space: SearchSpace, seed: int
    ) -> list[dict[str, Any]]:
        return [
            space.from_unit([(i + 0.5) / strategy.points] * len(space))
            for i in range(strategy.points)
        ]


# --- the row ------------------------------------------------------------------------------------
@pytest.fixture
def diagonal(monkeypatch: pytest.MonkeyPatch) -> None:
    """The table with the new row, for one test (a real strategy's row is in the table's source)."""
    monkeypatch.setitem(STRATEGIES, "diagonal", StrategyRow(DiagonalStrategy, DiagonalBehaviour()))


SPEC = textwrap.dedent(
    """
    name: diagonal
    trainable: {dataset: digits, epochs: 1, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.3, scale: log}
    strategy: {kind: diagonal, points: 2}
    seed: 3
    """
)


def test_without_its_row_the_kind_is_unknown() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC)
    [problem] = caught.value.problems
    assert problem.field == "strategy" and "'diagonal' found using 'kind'" in problem.message


def test_a_spec_names_the_new_kind_and_its_settings_are_checked(diagonal: None) -> None:
    sweep = parse_spec(SPEC)
    assert isinstance(sweep.spec.strategy, DiagonalStrategy) and sweep.spec.strategy.points == 2
    points = plan_points(sweep)
    assert [p.origin for p in points] == ["diagonal", "diagonal"]
    lrs = [p.params["lr"] for p in points]
    assert 1e-3 < lrs[0] < lrs[1] < 0.3
    assert parse_spec(SPEC).digest == sweep.digest  # the spec's digest, as for any kind

    bad = SPEC.replace("points: 2", "points: 0, pionts: 2")
    with pytest.raises(SpecError) as caught:
        parse_spec(bad)
    problems = {p.field: p.message for p in caught.value.problems}
    assert problems["strategy.points"] == "Input should be greater than or equal to 1"
    assert problems["strategy.pionts"] == "unknown key; valid keys: kind, points"
    # what the row does not grant is refused, as for a built-in kind
    with pytest.raises(SpecError) as caught:
        parse_spec(SPEC + "pack: 2\n")
    [problem] = caught.value.problems
    assert problem.field == "pack" and "strategy 'diagonal' needs 1" in problem.message


def test_validate_describes_it(
    diagonal: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "diagonal.yaml"
    spec.write_text(SPEC)
    assert main(["validate", str(spec), "--explain"]) == 0
    out = capsys.readouterr().out
    assert "strategy: diagonal, 2 configurations (0 from `initial`)" in out
    assert "t00001 [diagonal]" in out


@pytest.mark.ray
def test_it_runs(diagonal: None, ray_local: None, tmp_path: Path) -> None:
    outcome = run_sweep(parse_spec(SPEC), tmp_path)
    trials = load_trials(tmp_path, "diagonal").sort_values("config_index")
    assert list(trials["origin"]) == ["diagonal", "diagonal"]
    assert list(trials["epochs_done"]) == [1, 1]
    assert outcome.evaluated == 2 and outcome.best is not None
