"""Coarse-to-fine search as plain ask/tell: sample the space, narrow around what worked, repeat.

The strategy owns only decisions, never evaluation: a driver (the Ray Tune adapter in `sweeps`,
a notebook, the benchmark) asks for a round of configurations, evaluates them however it likes
and tells the scores back. Everything the strategy knows fits in a JSON `state_dict`, so a
driver can persist it after each round and resume after a crash with identical next asks; and
`replay` rebuilds one from recorded history under an edited space ("edit and continue").

Each round's randomness comes from `(seed, round)` alone, so resuming needs no generator state.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast, get_args

import numpy as np

from ._box_sampling import SamplerName, clip_to_domains, sample_in_box
from ._domains import ChoiceDomain, plain_value
from ._errors import Problem, SearchSpaceError
from ._narrowing import (
    Box,
    NarrowingSettings,
    TrustRegion,
    box_domains,
    next_region,
    region_box,
)
from ._space import SearchSpace, configs_from_unit

Mode = Literal["min", "max"]
Config = dict[str, object]
Bounds = dict[str, tuple[float, float] | tuple[int, int] | list[object]]

STATE_FORMAT = 1  # bump when the layout of `state_dict` changes


def _is_int(value: object, low: int) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= low


def _unit_point(space: SearchSpace, config: object, where: str) -> np.ndarray:
    """Unit coordinates of a told config; values outside the space are placed outside [0, 1].

    History from a wider space must still inform the narrowing, so only values that have no
    place at all on a parameter's scale (a negative log value, a string for a float) are errors.
    A choice value the space no longer has is NaN: known, but on none of today's options.
    """
    if not isinstance(config, Mapping):
        raise SearchSpaceError([Problem(where, config, "a configuration must be a mapping")])
    problems: list[Problem] = []
    point = np.empty(len(space))
    for j, (name, domain) in enumerate(space.domains.items()):
        field = f"{where}.{name}"
        if name not in config:
            problems.append(Problem(field, dict(config), "missing from the configuration"))
            continue
        value = plain_value(config[name])
        if isinstance(domain, ChoiceDomain):
            point[j] = domain.to_unit(value) if domain.contains(value) else math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            problems.append(Problem(field, value, "must be a number"))
            continue
        with np.errstate(all="ignore"):
            point[j] = float(domain.to_unit(cast(Any, value)))  # outside the space is allowed
        if not math.isfinite(point[j]):
            message = f"cannot be placed on the {domain.scale} scale of this parameter"
            problems.append(Problem(field, value, message))
    if problems:
        raise SearchSpaceError(problems)
    return point


def _key(space: SearchSpace, config: Mapping[str, object]) -> tuple[object, ...]:
    return tuple((isinstance(v, bool), v) for v in (plain_value(config[n]) for n in space.names))


class CoarseToFine:
    """Rounds of sampling, each inside a box narrowed around the best results so far.

    `ask()` returns the next round (`per_round` configurations); `tell(configs, scores)`
    records results (NaN, inf or None for a diverged or failed run: always ranked worst). A
    round is complete once every configuration it asked for has been told; configurations
    that were never asked (known `initial` points, earlier history) may be told at any time and
    inform the narrowing like any other. Scores are minimised unless `mode="max"`.

    `sampler` picks the points inside a round's box: "model" (a local Gaussian process with
    Thompson sampling; Sobol until it has 2 results per parameter), "random" (uniform) or
    "sobol" (scrambled, more even). "model" is the default because it searched best, on the
    BBOB functions and on real tuning tasks alike, at a cost per round that is small next to a
    trial. The keyword knobs tune the narrowing; all defaults were chosen on the benchmark in
    docs/search-quality.md (see `NarrowingSettings`).
    """

    def __init__(
        self,
        space: SearchSpace,
        rounds: int = 4,
        per_round: int = 64,
        seed: int = 0,
        mode: Mode = "min",
        sampler: SamplerName = "model",
        *,
        initial_window: float = 0.5,
        min_window: float = 1.0 / 64,
        shrink: float = 0.5,
        expand: float = 2.0,
        success_rounds: int = 3,
        failure_rounds: int = 1,
        elite_fraction: float = 0.25,
        improvement: float = 1e-3,
    ) -> None:
        problems: list[Problem] = []
        if not isinstance(space, SearchSpace):
            problems.append(Problem("space", space, "must be a SearchSpace"))
        integers = (("rounds", rounds, 1), ("per_round", per_round, 1), ("seed", seed, 0))
        for name, value, low in integers:
            if not _is_int(value, low):
                problems.append(Problem(name, value, f"must be an integer >= {low}"))
        if mode not in get_args(Mode):
            problems.append(Problem("mode", mode, "must be 'min' or 'max'"))
        if sampler not in get_args(SamplerName):
            problems.append(Problem("sampler", sampler, "must be 'random', 'sobol' or 'model'"))
        try:
            settings = NarrowingSettings(
                initial_window, min_window, shrink, expand,
                success_rounds, failure_rounds, elite_fraction, improvement,
            )  # fmt: skip
        except SearchSpaceError as err:
            problems += err.problems
        if problems:
            raise SearchSpaceError(problems)
        self._space = space
        self._rounds, self._per_round, self._seed = int(rounds), int(per_round), int(seed)
        self._mode: Mode = mode
        self._sampler: SamplerName = sampler
        self._settings = settings
        self._configs: list[Config] = []
        self._points: list[np.ndarray] = []
        self._losses: list[float] = []  # minimised; every non-finite score is +inf
        self._asked: list[Config] | None = None  # the pending round's configurations
        self._awaiting: list[int] = []  # indices into _asked of those not told yet
        self._boxes: list[Box | None] = []
        self._region = TrustRegion()
        self._round = 0

    # --- what a driver reads --------------------------------------------------------------

    @property
    def space(self) -> SearchSpace:
        return self._space

    @property
    def round(self) -> int:
        """How many rounds are complete, i.e. the index of the round being (or next) run."""
        return self._round

    @property
    def rounds(self) -> int:
        return self._rounds

    @property
    def finished(self) -> bool:
        return self._round >= self._rounds

    @property
    def bounds(self) -> list[Bounds | None]:
        """The bounds of every round asked so far, in each parameter's own units.

        Floats and ints as (low, high), choices as the list of values still allowed. Entry r is
        round r; rounds that `replay` took from history (not run by this object) are None.
        """
        return [None if box is None else self._bounds_of(box) for box in self._boxes]

    @property
    def best(self) -> tuple[Config, float] | None:
        """The best configuration told so far and its score; None before any finite score."""
        if not self._losses:
            return None
        i = int(np.argmin(self._losses))
        if math.isinf(self._losses[i]):
            return None
        loss = self._losses[i]
        return dict(self._configs[i]), (loss if self._mode == "min" else -loss)

    def narrowed_space(self) -> SearchSpace:
        """The current round's region as a space of its own (the one asked, or the next)."""
        return SearchSpace(box_domains(self._space, self._current_box()))

    # --- ask / tell -----------------------------------------------------------------------

    def ask(self) -> list[Config]:
        """The next round's `per_round` configurations, inside its narrowed bounds."""
        if self.finished:
            raise RuntimeError(f"all {self._rounds} rounds are done; nothing left to ask")
        if self._asked is not None:
            raise RuntimeError(
                f"round {self._round} was already asked and {len(self._awaiting)} of its "
                f"{len(self._asked)} configurations are not told yet; "
                "tell their scores (NaN for a failed run) before asking again"
            )
        box = self._current_box()
        rng = np.random.default_rng([self._seed, self._round])
        unit = sample_in_box(self._sampler, self._space, box, self._per_round, rng, *self._arrays())
        configs = clip_to_domains(
            configs_from_unit(self._space, unit), box_domains(self._space, box)
        )
        self._boxes += [None] * (self._round - len(self._boxes)) + [box]
        self._asked = [dict(c) for c in configs]
        self._awaiting = list(range(len(configs)))
        return configs

    def tell(self, configs: Sequence[Mapping[str, object]], scores: Sequence[float | None]) -> None:
        """Record results; completes the round once all its asked configurations are told.

        A score of NaN, ±inf or None marks a failed or diverged run and ranks worst. Keys of a
        config outside the space (fixed hyperparameters) are ignored.
        """
        if len(configs) != len(scores):
            message = f"got {len(configs)} configs but {len(scores)} scores"
            raise SearchSpaceError([Problem("scores", len(scores), message)])
        problems: list[Problem] = []
        points, losses = [], []
        for i, (config, score) in enumerate(zip(configs, scores, strict=True)):
            try:
                points.append(_unit_point(self._space, config, f"configs[{i}]"))
                losses.append(self._loss(score, f"scores[{i}]"))
            except SearchSpaceError as err:
                problems += err.problems
        if problems:  # every problem of the batch at once, and nothing recorded
            raise SearchSpaceError(problems)
        for config, point, loss in zip(configs, points, losses, strict=True):
            self._configs.append({n: plain_value(config[n]) for n in self._space.names})
            self._points.append(point)
            self._losses.append(loss)
            if self._asked is not None:
                key = _key(self._space, config)
                match = [i for i in self._awaiting if _key(self._space, self._asked[i]) == key]
                if match:
                    self._awaiting.remove(match[0])
        if self._asked is not None and not self._awaiting:
            self._complete_round()

    @property
    def awaiting(self) -> int:
        """How many of the pending round's configurations are not told yet (0 between rounds)."""
        return len(self._awaiting)

    def close_round(self) -> None:
        """Complete the pending round with what has been told so far.

        For drivers that keep a cluster busy: the next round can start while the last
        stragglers of this one still run. Their scores, told later, still inform later rounds
        (a late tell is history like any other); they just miss this round's narrowing step.
        """
        if self._asked is None:
            raise RuntimeError("no round is pending; ask() one before closing it")
        self._complete_round()

    def _complete_round(self) -> None:
        self._asked, self._awaiting = None, []
        self._region = next_region(self._region, *self._arrays(), self._settings, self._boxes[-1])
        self._round += 1

    # --- persistence ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume, as plain JSON types (non-finite scores become None)."""
        return {
            "format": STATE_FORMAT,
            "space": self._space.to_dict(),
            "rounds": self._rounds,
            "per_round": self._per_round,
            "seed": self._seed,
            "mode": self._mode,
            "sampler": self._sampler,
            "settings": self._settings.to_dict(),
            "round": self._round,
            "history": [
                {"config": dict(c), "score": self._score_of(loss)}
                for c, loss in zip(self._configs, self._losses, strict=True)
            ],
            "asked": None if self._asked is None else [dict(c) for c in self._asked],
            "awaiting": list(self._awaiting),
            "boxes": [None if b is None else b.to_dict() for b in self._boxes],
            "trust_region": self._region.to_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: Mapping[str, Any]) -> CoarseToFine:
        """The strategy exactly as it was when `state_dict` was taken."""
        if not isinstance(state, Mapping) or state.get("format") != STATE_FORMAT:
            found = state.get("format") if isinstance(state, Mapping) else state
            message = f"not a CoarseToFine state of format {STATE_FORMAT}"
            raise SearchSpaceError([Problem("format", found, message)])
        space = SearchSpace.from_dict(state["space"])
        search = cls(
            space, state["rounds"], state["per_round"], state["seed"], state["mode"],
            state["sampler"], **state["settings"],
        )  # fmt: skip
        history = state["history"]
        search.tell([h["config"] for h in history], [h["score"] for h in history])
        search._round = int(state["round"])
        search._boxes = [None if b is None else Box.from_dict(b) for b in state["boxes"]]
        search._region = TrustRegion.from_dict(state["trust_region"])
        if state["asked"] is not None:
            search._asked = [dict(c) for c in state["asked"]]
            search._awaiting = [int(i) for i in state["awaiting"]]
        return search

    @classmethod
    def replay(
        cls,
        space: SearchSpace,
        history: Sequence[tuple[Mapping[str, object], float | None]],
        rounds: int = 4,
        per_round: int = 64,
        seed: int = 0,
        mode: Mode = "min",
        sampler: SamplerName = "model",
        *,
        rounds_done: int | None = None,
        **knobs: Any,
    ) -> CoarseToFine:
        """A strategy that continues from recorded `(config, score)` history under `space`.

        For "edit the spec and continue": the space may differ from the one the history was
        sampled in. Points outside it still inform the narrowing (the focus starts from the
        best point, moved to the nearest place inside), while new samples stay inside `space`.
        `rounds_done` (default: as many whole rounds as the history holds) says where to go on;
        the narrowing restarts from the data, not from the earlier run's round-by-round state.
        """
        search = cls(space, rounds, per_round, seed, mode, sampler, **knobs)
        if rounds_done is None:
            rounds_done = len(history) // search._per_round
        if not _is_int(rounds_done, 0):
            raise SearchSpaceError([Problem("rounds_done", rounds_done, "must be an integer >= 0")])
        if history:
            configs, scores = zip(*history, strict=True)
            search.tell(list(configs), list(scores))
        search._round = min(int(rounds_done), search._rounds)
        search._boxes = [None] * search._round
        if search._round > 0:
            search._region = next_region(TrustRegion(), *search._arrays(), search._settings)
        return search

    # --- internals --------------------------------------------------------------------------

    def _loss(self, score: object, where: str) -> float:
        if score is None:
            return math.inf
        if isinstance(score, bool) or not isinstance(score, numbers.Real):
            raise SearchSpaceError([Problem(where, score, "must be a number, NaN or None")])
        value = float(score)
        if not math.isfinite(value):
            return math.inf
        return value if self._mode == "min" else -value

    def _score_of(self, loss: float) -> float | None:
        if math.isinf(loss):
            return None
        return loss if self._mode == "min" else -loss

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        points = np.array(self._points).reshape(len(self._points), len(self._space))
        return points, np.array(self._losses, dtype=np.float64)

    def _current_box(self) -> Box:
        if self._asked is not None:
            box = self._boxes[-1]
            assert box is not None
            return box
        return region_box(self._region, self._space, *self._arrays(), self._settings)

    def _bounds_of(self, box: Box) -> Bounds:
        out: Bounds = {}
        for name, domain in box_domains(self._space, box).items():
            if isinstance(domain, ChoiceDomain):
                out[name] = list(domain.values)
            else:
                out[name] = (domain.low, domain.high)
        return out
