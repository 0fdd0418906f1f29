"""The contract every `Proposer` keeps (sweeps/plan/_proposer.py), run against the driver
of each adaptive strategy as optuna/testing runs one suite against every sampler. A kind added
to `DRIVERS` must get a `Case` here; `test_every_driver_is_in_the_suite` fails until it does.

Each proposer is opened the way the runner opens it (`DRIVERS[kind](...)`) on a small space (a
log learning rate, a reverse-log beta, log-scaled hidden units, a choice of batch size) with one
`initial` point. No Ray runs: TPE imports Ray Tune's `OptunaSearch` and starts nothing. Trials
are simulated: a point's score is a function of its learning rate, and a "cluster" of `SLOTS`
slots records results in the order a test chooses, some as failures (None).

- it proposes exactly `total` points, each once, then None, and is `finished`, not before;
- every point lies in the space, each value a plain Python value of its parameter's kind;
- `batch` points can be proposed before any result is recorded, and again between batches;
- results recorded in any order (reversed, shuffled stragglers, some failed) finish the sweep;
- `take_queued` returns only points its `match` accepts, counts them, never asks for more;
- reopened mid-sweep from what a run leaves (its `trials` rows and the search state it saved),
  it proposes the rest of the budget and never a configuration already recorded;
- one that keeps a search state (coarse-to-fine) resumes with the very points the uninterrupted
  run proposes, those its crash left unrecorded first. TPE keeps none, by design
  (sweeps/strategies/_tpe_driver.py: a fresh study replays the recorded trials), so that test
  does not apply to it;
- the same seed proposes the same points; another seed others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from analysis import ResultsStore
from search_spaces import ChoiceDomain, FloatDomain, IntDomain
from sweeps import DRIVERS, PlannedPoint, Proposer, Sweep, parse_spec, plan_points

SPEC = """
name: contract
trainable: {{dataset: digits, epochs: 1}}
search_space:
  lr: {{type: float, low: 1.0e-4, high: 0.5, scale: log}}
  beta: {{type: float, low: 0.8, high: 0.999, scale: reverse_log}}
  hidden: {{type: int, low: 8, high: 256, scale: log}}
  batch_size: {{type: choice, values: [32, 64, 128]}}
initial: [{{lr: 0.01, beta: 0.9, hidden: 32, batch_size: 64}}]
strategy: {strategy}
seed: {seed}
"""
RUN = "r-contract"
SLOTS = 4  # trials the simulated cluster runs at once


@dataclass(frozen=True)
class Case:
    kind: str
    strategy: str  # the spec's `strategy:` mapping
    keeps_search_state: bool  # resumes with the very points the uninterrupted run proposes


CASES = [
    # per_round 6 with 13 points before round 3: the model sampler fits its GP there
    Case(
        "coarse_to_fine",
        "{kind: coarse_to_fine, rounds: 3, per_round: 6, sampler: model, start_next_at: 0.75}",
        keeps_search_state=True,
    ),
    Case("tpe", "{kind: tpe, samples: 12, startup: 5}", keeps_search_state=False),
]
each_proposer = pytest.mark.parametrize("case", CASES, ids=lambda c: c.kind)


def _sweep(case: Case, seed: int = 3) -> Sweep:
    return parse_spec(SPEC.format(strategy=case.strategy, seed=seed))


def _open(case: Case, results: Path, *, seed: int = 3, rows: list[dict] | None = None) -> Proposer:
    """The proposer as the runner opens it: fresh, or resumed from this run's `trials` rows
    (and whatever the driver saved under `results`)."""
    sweep = _sweep(case, seed)
    store = ResultsStore(results, sweep.name)
    recorded = pd.DataFrame(rows or [])
    return DRIVERS[case.kind](sweep, store, RUN, plan_points(sweep), recorded, edited=False)


def score(point: PlannedPoint) -> float:
    """A validation accuracy (the objective, maximised) peaking at lr = 1e-2."""
    return 1.0 - (math.log10(float(point.params["lr"])) + 2.0) ** 2 / 16  # type: ignore[arg-type]


def row(point: PlannedPoint, result: float | None) -> dict[str, object]:
    """The `trials` row a recorded point leaves: what a resumed driver reads."""
    return {
        "trial_id": point.trial_id,
        "config_index": point.index,
        "origin": point.origin,
        "round": point.round,
        "status": "ok" if result is not None else "error",
        "val_accuracy": result,
        **point.params,
    }


# --- a simulated cluster ---------------------------------------------------------------------

# Which of the running points finish next, in which order, and with which score.
Policy = Callable[[list[PlannedPoint], random.Random], list[tuple[PlannedPoint, float | None]]]


def in_order(running: list[PlannedPoint], rng: random.Random) -> list:
    return [(p, score(p)) for p in running]


def reversed_order(running: list[PlannedPoint], rng: random.Random) -> list:
    return [(p, score(p)) for p in reversed(running)]


def stragglers(running: list[PlannedPoint], rng: random.Random) -> list:
    """A random part of the running points, shuffled: the rest keep running."""
    done = rng.sample(running, rng.randint(1, len(running)))
    return [(p, score(p)) for p in done]


def failures(running: list[PlannedPoint], rng: random.Random) -> list:
    """Shuffled, and about a third of them failed or diverged."""
    done = rng.sample(running, len(running))
    return [(p, None if rng.random() < 0.35 else score(p)) for p in done]


POLICIES = {
    "reversed": reversed_order,
    "stragglers": stragglers,
    "failures": failures,
}


@dataclass
class Cluster:
    """Runs a proposer's points on `SLOTS` slots; `history` is every proposal, in order."""

    proposer: Proposer
    policy: Policy = in_order
    seed: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.running: list[PlannedPoint] = []
        self.history: list[PlannedPoint] = []
        self.rows: list[dict[str, object]] = []

    def fill(self) -> None:
        """Propose until every slot is busy or the proposer has nothing now."""
        while len(self.running) < SLOTS:
            assert len(self.history) <= self.proposer.total, "more proposals than `total`"
            if (point := self.proposer.propose()) is None:
                return
            assert not self.proposer.finished or len(self.history) + 1 == self.proposer.total
            self.running.append(point)
            self.history.append(point)

    def finish_some(self) -> None:
        for point, result in self.policy(self.running, self.rng):
            self.running.remove(point)
            self.proposer.record(point, result)
            self.rows.append(row(point, result))

    def step(self) -> None:
        self.fill()
        assert self.running, f"stuck: nothing running, nothing proposed, after {self.history}"
        self.finish_some()

    def run(self, steps: int | None = None) -> list[PlannedPoint]:
        """Until the sweep is finished (or for `steps` steps); returns the proposals."""
        while not self.proposer.finished and (steps is None or steps > 0):
            self.step()
            steps = None if steps is None else steps - 1
        return self.history


def _ids(points: list[PlannedPoint]) -> list[str]:
    return [p.trial_id for p in points]


def _configs(points: list[PlannedPoint]) -> list[tuple]:
    return [tuple(p.params.values()) for p in points]


# --- the contract ----------------------------------------------------------------------------


def test_every_driver_is_in_the_suite() -> None:
    assert sorted(DRIVERS) == sorted(c.kind for c in CASES)


@each_proposer
def test_proposes_exactly_total_points_then_none_and_is_finished(
    case: Case, tmp_path: Path
) -> None:
    proposer = _open(case, tmp_path)
    total = proposer.total
    assert total == 1 + _budget(case) and not proposer.finished
    history = Cluster(proposer).run()
    assert len(history) == total and len(set(_ids(history))) == total
    assert len({p.index for p in history}) == total
    assert proposer.finished and proposer.total == total
    assert [proposer.propose() for _ in range(3)] == [None] * 3
    assert isinstance(proposer.label, str) and proposer.label


def _budget(case: Case) -> int:
    strategy = _sweep(case).spec.strategy
    if case.kind == "coarse_to_fine":
        return strategy.rounds * strategy.per_round  # type: ignore[union-attr]
    return strategy.samples  # type: ignore[union-attr]


@each_proposer
def test_every_point_lies_in_the_space_as_plain_values(case: Case, tmp_path: Path) -> None:
    space = _sweep(case).space
    history = Cluster(_open(case, tmp_path), failures).run()
    assert {p.origin for p in history} == {"initial", case.kind}
    for point in history:
        space.check_config(point.params)  # bounds, integers, choices
        assert list(point.params) == list(space.names)
        for name, domain in space.domains.items():
            value = point.params[name]
            kind = {FloatDomain: float, IntDomain: int, ChoiceDomain: int}[type(domain)]
            assert type(value) is kind, (point.trial_id, name, value)


@each_proposer
def test_a_batch_is_proposed_before_any_result_and_again_between_batches(
    case: Case, tmp_path: Path
) -> None:
    proposer = _open(case, tmp_path)
    assert proposer.batch >= 1
    proposed = 0
    while not proposer.finished:
        wanted = min(proposer.batch, proposer.total - proposed)
        batch = [proposer.propose() for _ in range(wanted)]
        assert None not in batch, f"only {batch.index(None)} of a batch of {wanted} proposed"
        proposed += wanted
        while (point := proposer.propose()) is not None:  # whatever else is ready now
            batch.append(point)
            proposed += 1
        for point in batch:
            proposer.record(point, score(point))  # type: ignore[arg-type]
    assert proposed == proposer.total


@each_proposer
@pytest.mark.parametrize("policy", POLICIES)
def test_results_in_any_order_and_failures_still_finish(
    case: Case, policy: str, tmp_path: Path
) -> None:
    proposer = _open(case, tmp_path)
    total = proposer.total
    cluster = Cluster(proposer, POLICIES[policy], seed=7)
    history = cluster.run()
    assert proposer.finished and len(history) == total and len(set(_ids(history))) == total
    assert not cluster.running and len(cluster.rows) == total
    if policy == "failures":
        assert any(r["val_accuracy"] is None for r in cluster.rows)


@each_proposer
def test_take_queued_takes_only_what_matches_and_never_asks_for_more(
    case: Case, tmp_path: Path
) -> None:
    proposer = _open(case, tmp_path)
    # Before anything ran, only the spec's `initial` points are decided.
    assert proposer.take_queued(lambda p: False) is None
    taken = []
    while (point := proposer.take_queued(lambda p: True)) is not None:
        taken.append(point)
    assert len(taken) <= len(_sweep(case).spec.initial)
    cluster = Cluster(proposer)
    cluster.history += taken
    cluster.running += taken
    while not proposer.finished:
        cluster.step()
        # fill a pack: points already decided whose batch size is 64
        while (point := proposer.take_queued(lambda p: p.params["batch_size"] == 64)) is not None:
            assert point.params["batch_size"] == 64
            cluster.history.append(point)
            cluster.running.append(point)
    history = cluster.history
    assert len(history) == proposer.total and len(set(_ids(history))) == proposer.total


@each_proposer
@pytest.mark.parametrize("steps", [1, 2, 4])
def test_reopened_mid_sweep_it_proposes_the_rest_and_nothing_recorded_again(
    case: Case, steps: int, tmp_path: Path
) -> None:
    """A crash after `steps` steps of a cluster whose results straggle in: points still
    running are lost; the run is reopened from its rows (and the state its driver saved)."""
    first = Cluster(_open(case, tmp_path), stragglers, seed=steps)
    first.run(steps)
    total = first.proposer.total
    recorded = {str(r["trial_id"]) for r in first.rows}
    resumed = Cluster(_open(case, tmp_path, rows=first.rows), stragglers, seed=steps)
    assert resumed.proposer.total == total - len(recorded)
    rest = resumed.run()
    assert len(rest) == total - len(recorded)
    assert not recorded & set(_ids(rest)), "a recorded trial proposed again"
    done = set(_configs([p for p in first.history if p.trial_id in recorded]))
    assert not done & set(_configs(rest)), "a recorded configuration proposed again"


@pytest.mark.parametrize("case", [c for c in CASES if c.keeps_search_state], ids=lambda c: c.kind)
@pytest.mark.parametrize("steps", [1, 2, 3, 5])
def test_resumed_from_its_saved_state_it_proposes_what_the_uninterrupted_run_does(
    case: Case, steps: int, tmp_path: Path
) -> None:
    """Results come in proposal order, as many as finish (stragglers); at the crash the
    running points are lost. The resumed run proposes them first, the very same trials, and
    then, told the same results, the same points as the run that did not crash."""
    crashed, whole = tmp_path / "crashed", tmp_path / "whole"

    def straggling_in_order(running: list[PlannedPoint], rng: random.Random) -> list:
        return [(p, score(p)) for p in running[: rng.randint(1, len(running))]]

    first = Cluster(_open(case, crashed), straggling_in_order, seed=steps)
    first.run(steps)
    lost = list(first.running)
    resumed = Cluster(_open(case, crashed, rows=first.rows), straggling_in_order, seed=steps)
    again = [resumed.proposer.propose() for _ in lost]
    assert _ids(again) == _ids(lost) and _configs(again) == _configs(lost)  # type: ignore[arg-type]
    resumed.running += again  # type: ignore[arg-type]
    resumed.history += again  # type: ignore[arg-type]
    resumed.rng = first.rng  # and the same stragglers from here on
    after_crash = resumed.run()

    uninterrupted = Cluster(_open(case, whole), straggling_in_order, seed=steps).run()
    assert _ids(uninterrupted) == _ids(first.history[: -len(lost) or None] + after_crash)
    assert _configs(uninterrupted) == _configs(first.history[: -len(lost) or None] + after_crash)


@each_proposer
def test_the_same_seed_proposes_the_same_points_and_another_seed_others(
    case: Case, tmp_path: Path
) -> None:
    def proposals(seed: int, folder: str) -> list[tuple]:
        cluster = Cluster(_open(case, tmp_path / folder, seed=seed), failures, seed=1)
        return [(p.trial_id, p.round, p.origin, *p.params.values()) for p in cluster.run()]

    once = proposals(3, "a")
    assert proposals(3, "b") == once
    assert proposals(4, "c") != once
