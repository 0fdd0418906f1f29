"""The strategy table: every `kind` a spec may name, with its settings model, its behaviour, what
it can do and who runs it. The only place that names the kinds: the spec's `strategy` field,
its error messages, the planner, `validate`, `--resume`, `retune` and the runner read a row.

Adding a strategy is one module (its model and its behaviour) and one row below
(docs/layout.md, "Adding a strategy"). The code that runs a sweep imports Ray, so a row names
it by "module:attr" and it is imported when a run starts (`resolve`): reading a spec never
loads it, and a driver's module may import the spec without a cycle.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import PlainValidator, SerializeAsAny
from pydantic_core import PydanticCustomError

from sweeps.spec._strategy_behaviour import (
    AutoBehaviour,
    CoarseToFineBehaviour,
    GridBehaviour,
    PandaBehaviour,
    RandomBehaviour,
    SobolBehaviour,
    StrategyBehaviour,
    TpeBehaviour,
)
from sweeps.spec._strategy_specs import (
    AutoStrategy,
    CoarseToFineStrategy,
    GridStrategy,
    PandaStrategy,
    RandomStrategy,
    SobolStrategy,
    StrategyModel,
    TpeStrategy,
)

__all__ = [
    "ON_TUNE",
    "STRATEGIES",
    "Strategy",
    "StrategyRow",
    "behaviour",
    "default_strategy",
    "kind_of",
    "parse_strategy",
    "resolve",
    "strategy_row",
]

# How a strategy whose configurations are Ray Tune trials runs: a fixed plan, or a proposer's.
ON_TUNE = "sweeps.tune._run_on_tune:run_on_tune"


@dataclass(frozen=True)
class StrategyRow:
    """One strategy.

    - `model`: its settings (`strategy:` less `kind`), checked when the spec is read;
    - `behaviour`: its budget, fixed points, checks of the rest of the spec, first proposals
      and `validate` line;
    - `driver`: "module:attr" of the function that runs a sweep of this kind, called as
      `run_sweep` is (`sweeps.run.RunStrategy`);
    - `proposer`: "module:attr" of the `open` of its `Proposer` (`plan/_proposer.py`)
      when it proposes configurations from results as they come; None for a fixed plan;
    - `packs`: its points can share packs (they are decided in batches);
    - `continues_after_edit`: `--resume` may continue a run whose spec was edited since;
    - `requires`: an optional module it needs, refused at validation when missing;
    - `refuses_function`: why a user's training function cannot run it (None: it can);
    - `refuses_retune`: why `caviar retune` cannot warm-start it (None: it can).
    """

    model: type[StrategyModel]
    behaviour: StrategyBehaviour[Any]
    driver: str = ON_TUNE
    proposer: str | None = None
    packs: bool = False
    continues_after_edit: bool = False
    requires: str | None = None
    refuses_function: str | None = None
    refuses_retune: str | None = None

    @property
    def adaptive(self) -> bool:
        """It proposes configurations from results as they come."""
        return self.proposer is not None


STRATEGIES: dict[str, StrategyRow] = {
    "random": StrategyRow(RandomStrategy, RandomBehaviour(), packs=True),
    "sobol": StrategyRow(SobolStrategy, SobolBehaviour(), packs=True),
    "grid": StrategyRow(GridStrategy, GridBehaviour(), packs=True),
    "coarse_to_fine": StrategyRow(
        CoarseToFineStrategy,
        CoarseToFineBehaviour(),
        proposer="sweeps.strategies._coarse_driver:CoarseToFineProposer.open",
        packs=True,  # a round's points are known together
        continues_after_edit=True,  # the edited space narrows the rounds to come (docs)
    ),
    "tpe": StrategyRow(
        TpeStrategy,
        TpeBehaviour(),
        proposer="sweeps.strategies._tpe_driver:TpeProposer.open",
        requires="optuna",
    ),
    "panda": StrategyRow(
        PandaStrategy,
        PandaBehaviour(),
        driver="sweeps.panda:run_panda",  # babysitting has its own loop (docs/panda.md)
        refuses_function="panda rolls back to caviar's checkpoints",
        refuses_retune="re-tuning samples configurations; a panda sweep babysits one model",
    ),
    "auto": StrategyRow(
        AutoStrategy,
        AutoBehaviour(),
        driver="sweeps.strategies._auto:run_auto",  # decides, then runs what it chose
        refuses_function="auto's cost probe trains with caviar's loop",
    ),
}
_DEFAULT = "random"  # a spec without `strategy:` samples 64 random configurations


def strategy_row(strategy: StrategyModel) -> StrategyRow:
    """The row of a spec's strategy (a spec holds only kinds the table has)."""
    return STRATEGIES[strategy.kind]


def behaviour(strategy: StrategyModel) -> StrategyBehaviour[Any]:
    return strategy_row(strategy).behaviour


def kind_of(model: type[StrategyModel]) -> str:
    """The kind whose settings `model` holds (auto names the strategies it may choose so)."""
    [kind] = [kind for kind, row in STRATEGIES.items() if row.model is model]
    return kind


def default_strategy() -> StrategyModel:
    return STRATEGIES[_DEFAULT].model(kind=_DEFAULT)


def parse_strategy(value: object) -> StrategyModel:
    """The spec's `strategy:` as its kind's model; pydantic reports a bad setting under
    `strategy.<key>` and a bad kind under `strategy`, in the words of a tagged union."""
    kind = value.kind if isinstance(value, StrategyModel) else None
    if isinstance(value, dict):
        if "kind" not in value:
            message = "Unable to extract tag using discriminator 'kind'"
            raise PydanticCustomError("union_tag_not_found", message)
        kind = value["kind"]
    elif kind is None:
        message = "Input should be a valid dictionary or object to extract fields from"
        raise PydanticCustomError("model_attributes_type", message)
    row = STRATEGIES.get(kind) if isinstance(kind, str) else None
    if row is None:
        raise PydanticCustomError(
            "union_tag_invalid",
            "Input tag '{tag}' found using 'kind' does not match any of the expected tags: "
            "{expected_tags}",
            {"tag": str(kind), "expected_tags": ", ".join(f"'{k}'" for k in STRATEGIES)},
        )
    return row.model.model_validate(value)


# The spec's `strategy` field: any kind of the table, serialized with its own model's keys.
Strategy = Annotated[SerializeAsAny[StrategyModel], PlainValidator(parse_strategy)]


def resolve(reference: str) -> Any:
    """The object a row names as "module:attr" (attr may be dotted), imported now."""
    module, _, path = reference.partition(":")
    found: Any = importlib.import_module(module)
    for name in path.split("."):
        found = getattr(found, name)
    return found
