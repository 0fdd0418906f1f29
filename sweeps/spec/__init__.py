"""What a spec may say and every refusal of a bad one: the YAML, its models (strategies, model
factory, data file, training function), the checks of an edited spec, the strategy table (every
kind, its model, its behaviour, what it can do and who runs it), and the points a spec plans."""

from sweeps.spec._mlflow_uri import experiment_problem, tracking_uri_problem
from sweeps.spec._plan_points import plan_points, preview_points
from sweeps.spec._spec import (
    AutoStrategy,
    CoarseToFineStrategy,
    PandaStrategy,
    RetuneSpec,
    SpecModel,
    Sweep,
    TpeStrategy,
    load_spec,
    parse_spec,
    parse_time_budget,
    with_strategy,
)
from sweeps.spec._spec_edit import check_continuation
from sweeps.spec._strategy_behaviour import panda_start_points
from sweeps.spec._strategy_table import STRATEGIES, behaviour, kind_of, resolve, strategy_row

__all__ = [
    "STRATEGIES",
    "AutoStrategy",
    "CoarseToFineStrategy",
    "PandaStrategy",
    "RetuneSpec",
    "SpecModel",
    "Sweep",
    "TpeStrategy",
    "behaviour",
    "check_continuation",
    "experiment_problem",
    "kind_of",
    "load_spec",
    "panda_start_points",
    "parse_spec",
    "parse_time_budget",
    "plan_points",
    "preview_points",
    "resolve",
    "strategy_row",
    "tracking_uri_problem",
    "with_strategy",
]
