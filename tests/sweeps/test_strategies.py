"""The strategy table: every kind a spec admits has one row, whose model, behaviour, driver and
proposer are its own; nothing else in `sweeps/` names a kind or tells strategies apart by their
type."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from search_spaces import SearchSpace
from sweeps import SpecError, load_spec
from sweeps.spec._strategy_specs import (
    MAX_TRIALS,
    CoarseToFineStrategy,
    GridStrategy,
    PandaStrategy,
    RandomStrategy,
    StrategyModel,
)
from sweeps.spec._strategy_table import (
    STRATEGIES,
    behaviour,
    kind_of,
    parse_strategy,
    resolve,
    strategy_row,
)
from sweeps.tune import DRIVERS as ADAPTIVE_DRIVERS

SWEEPS = Path(__file__).parents[2] / "sweeps"
# A strategy's own driver may narrow the spec's strategy to its model, and nothing else may.
DRIVERS = {
    "strategies/_auto.py": "AutoStrategy",
    "strategies/_coarse_driver.py": "CoarseToFineStrategy",
    "panda/_run.py": "PandaStrategy",
    "strategies/_tpe_driver.py": "TpeStrategy",
}


def test_each_kind_reads_as_its_own_model() -> None:
    models = [row.model for row in STRATEGIES.values()]
    assert len(set(models)) == len(models)
    assert all(issubclass(model, StrategyModel) for model in models)
    for kind, row in STRATEGIES.items():
        assert kind_of(row.model) == kind
        settings = {"time_budget": "1h"} if "time_budget" in row.model.model_fields else {}
        strategy = parse_strategy({"kind": kind, **settings})
        assert type(strategy) is row.model and strategy.kind == kind
        assert strategy_row(strategy) is row and behaviour(strategy) is row.behaviour


def test_every_row_names_a_driver_and_proposer_that_load() -> None:
    """Rows name them by "module:attr" (loaded when a run starts); each must resolve."""
    for row in STRATEGIES.values():
        assert callable(resolve(row.driver))
        assert row.proposer is None or callable(resolve(row.proposer))


def test_every_adaptive_kind_has_a_driver_and_nothing_else_does() -> None:
    adaptive = {kind for kind, row in STRATEGIES.items() if row.adaptive}
    assert {"coarse_to_fine", "tpe"} <= adaptive
    assert set(ADAPTIVE_DRIVERS) == adaptive


# Strings spelled like a kind outside the table that name something else, by module.
NOT_KINDS = {
    "_cli.py": {"auto"},  # `pack: auto`
    "panda/_run.py": {"random"},  # the origin of the models panda adds
    "record/_record.py": {"panda", "auto"},  # the events table's own kinds of row
    "run/_ray_session.py": {"auto"},  # Ray's `address="auto"`
    "spec/_data_spec.py": {"auto"},  # `data_version: auto`
    "spec/_spec.py": {"auto"},  # `pack: auto`
    "strategies/_auto.py": {"panda"},  # auto's decision, "caviar" or "panda"
    "tune/_auto_pack.py": {"auto"},  # `pack: auto`
    "tune/_packing.py": {"auto"},
    "tune/_trials.py": {"auto"},
}


def test_no_module_but_the_table_names_a_strategy_kind() -> None:
    """Kinds are the table's: a module that tests for one (`kind == "panda"`) or spells one
    (`origin="tpe"`) goes around it. Messages may name kinds; a string that is exactly one is
    named in NOT_KINDS with what it means there."""
    offenders = {}
    for path in sorted(SWEEPS.rglob("*.py")):
        module = path.relative_to(SWEEPS).as_posix()
        if module == "spec/_strategy_table.py":
            continue
        spelled = {
            node.value
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.Constant) and node.value in STRATEGIES
        }
        if extra := spelled - NOT_KINDS.get(module, set()):
            offenders[module] = sorted(extra)
    assert offenders == {}


def _strategy_type_checks(path: Path) -> set[str]:
    """Names of *Strategy classes that `isinstance` calls in `path` test against."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance":
            for name in ast.walk(node.args[1]):
                if isinstance(name, ast.Name) and name.id.endswith("Strategy"):
                    found.add(name.id)
    return found


def test_only_a_strategys_own_driver_tests_for_its_type() -> None:
    offenders = {}
    for path in sorted(SWEEPS.rglob("*.py")):
        module = path.relative_to(SWEEPS).as_posix()
        allowed = {DRIVERS[module]} if module in DRIVERS else set()
        if extra := _strategy_type_checks(path) - allowed:
            offenders[path.name] = sorted(extra)
    assert offenders == {}


def test_the_rule_sees_a_type_chain(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f(s):\n    return isinstance(s, RandomStrategy | GridStrategy)\n")
    assert _strategy_type_checks(module) == {"RandomStrategy", "GridStrategy"}


SPACE = SearchSpace.from_dict(
    {"lr": {"type": "float", "low": 1e-3, "high": 1.0, "scale": "log"},
     "depth": {"type": "int", "low": 1, "high": 3},
     "act": {"type": "choice", "values": ["relu", "tanh"]}}
)  # fmt: skip


@pytest.mark.parametrize(
    ("strategy", "budget", "fixed"),
    [
        (RandomStrategy(kind="random", samples=7), 7, 7),
        (GridStrategy(kind="grid", points=4), 4 * 3 * 2, 4 * 3 * 2),
        (CoarseToFineStrategy(kind="coarse_to_fine", rounds=3, per_round=5), 15, 0),
        (PandaStrategy(kind="panda"), None, 0),
    ],
)
def test_budgets_and_planned_points(
    strategy: StrategyModel, budget: int | None, fixed: int
) -> None:
    b = behaviour(strategy)
    assert b.budget(strategy, SPACE) == budget
    points = b.fixed_points(strategy, SPACE, 0)
    assert len(points) == fixed
    for point in points:
        SPACE.check_config(point)  # raises for a point outside the space
    assert b.fixed_points(strategy, SPACE, 0) == points  # seeded: a resume replans the same


def test_coarse_to_fine_previews_its_first_round_exactly() -> None:
    strategy = CoarseToFineStrategy(kind="coarse_to_fine", rounds=2, per_round=4)
    preview = behaviour(strategy).preview(strategy, SPACE, 3, "max")
    assert len(preview) == 4
    assert preview == behaviour(strategy).preview(strategy, SPACE, 3, "max")
    assert (
        behaviour(RandomStrategy(kind="random")).preview(
            RandomStrategy(kind="random"), SPACE, 3, "max"
        )
        == []
    )


def test_a_plan_over_the_limit_with_initial_points_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "big.yaml"
    spec.write_text(
        "name: big\n"
        "search_space:\n  lr: {type: float, low: 1.0e-3, high: 1.0, scale: log}\n"
        f"strategy: {{kind: random, samples: {MAX_TRIALS}}}\n"
        "initial:\n  - {lr: 0.1}\n"
    )
    with pytest.raises(SpecError) as caught:
        load_spec(spec)
    [problem] = caught.value.problems
    assert problem.field == "strategy.kind" and problem.value == "random"
    assert f"plans {MAX_TRIALS} configurations and `initial` 1 more" in problem.message
