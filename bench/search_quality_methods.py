"""The methods compared by the search-quality benchmark, all at the same parallelism.

Each runs `budget` evaluations in batches of `batch` concurrent configurations (the next batch
is chosen only after the whole previous one is scored) and returns the losses in evaluation
order, so the best-so-far at any smaller budget is a prefix minimum.
"""

from __future__ import annotations

import math

import numpy as np
from search_quality_problems import Objective

from search_spaces import (
    ChoiceDomain,
    CoarseToFine,
    FloatDomain,
    IntDomain,
    SearchSpace,
    SobolSampler,
)
from search_spaces._space import configs_from_unit


def run_random(space: SearchSpace, objective: Objective, budget: int, seed: int, batch: int):
    return objective(space.sample(np.random.default_rng(seed), budget))


def run_sobol(space: SearchSpace, objective: Objective, budget: int, seed: int, batch: int):
    return objective(SobolSampler(seed).sample(space, budget))


def run_coarse_to_fine(
    space: SearchSpace,
    objective: Objective,
    budget: int,
    seed: int,
    batch: int,
    sampler: str,
    **settings: float,
):
    """CoarseToFine with rounds of `batch`; its decisions never look at how many rounds remain,
    so one run of `budget // batch` rounds gives every smaller budget as a prefix. `settings`
    are narrowing settings other than the defaults (a variant's)."""
    search = CoarseToFine(
        space, rounds=budget // batch, per_round=batch, seed=seed, sampler=sampler, **settings
    )
    losses: list[float] = []
    while not search.finished:
        configs = search.ask()
        scores = objective(configs)
        search.tell(configs, scores.tolist())
        losses.extend(scores.tolist())
    return np.asarray(losses)


def run_naive(space: SearchSpace, objective: Objective, budget: int, seed: int, batch: int):
    """The rule issue 3 started from: 4 rounds, box = top 25 % bounding box padded by 10 %.

    Needs its budget up front (4 equal rounds), so it is run once per budget by the caller.
    """
    rng = np.random.default_rng(seed)
    per_round = budget // 4
    low, high = np.zeros(len(space)), np.ones(len(space))
    units: list[np.ndarray] = []
    losses: list[float] = []
    for _ in range(4):
        unit = low + rng.random((per_round, len(space))) * (high - low)
        losses.extend(objective(configs_from_unit(space, unit)).tolist())
        units.extend(unit)
        order = np.argsort(np.nan_to_num(np.asarray(losses), nan=np.inf))
        elite = np.asarray(units)[order[: max(2, math.ceil(0.25 * len(order)))]]
        pad = 0.1 * (elite.max(axis=0) - elite.min(axis=0))
        low = np.clip(elite.min(axis=0) - pad, 0.0, 1.0)
        high = np.clip(elite.max(axis=0) + pad, 0.0, 1.0)
    return np.asarray(losses)


def _optuna_distributions(space: SearchSpace) -> dict:
    """Optuna's view of the space; a reverse-log beta becomes its log-uniform twin 1 - beta."""
    import optuna

    out = {}
    for name, domain in space.domains.items():
        if isinstance(domain, ChoiceDomain):
            out[name] = optuna.distributions.CategoricalDistribution(domain.values)
        elif isinstance(domain, IntDomain):
            out[name] = optuna.distributions.IntDistribution(
                domain.low, domain.high, log=domain.scale == "log"
            )
        elif isinstance(domain, FloatDomain) and domain.scale == "reverse_log":
            out[f"one_minus_{name}"] = optuna.distributions.FloatDistribution(
                1.0 - domain.high, 1.0 - domain.low, log=True
            )
        else:
            out[name] = optuna.distributions.FloatDistribution(
                domain.low, domain.high, log=domain.scale == "log"
            )
    return out


def run_tpe(space: SearchSpace, objective: Objective, budget: int, seed: int, batch: int):
    """Optuna's TPE (its defaults: multivariate, constant liar) asking `batch` before telling."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    distributions = _optuna_distributions(space)
    losses: list[float] = []
    for _ in range(budget // batch):
        trials = [study.ask(distributions) for _ in range(batch)]
        configs = [space.from_tune(trial.params) for trial in trials]
        for config in configs:
            for name, domain in space.domains.items():  # 1 - (1 - beta) may leave the bounds
                if isinstance(domain, FloatDomain):
                    config[name] = min(max(config[name], domain.low), domain.high)
        scores = objective(configs)
        for trial, score in zip(trials, scores, strict=True):
            study.tell(
                trial,
                float(score) if np.isfinite(score) else None,
                state=None if np.isfinite(score) else optuna.trial.TrialState.FAIL,
            )
        losses.extend(scores.tolist())
    return np.asarray(losses)


METHODS = {
    "random": run_random,
    "sobol": run_sobol,
    "naive": run_naive,
    "c2f-random": lambda *a: run_coarse_to_fine(*a, sampler="random"),
    "c2f-sobol": lambda *a: run_coarse_to_fine(*a, sampler="sobol"),
    "c2f-model": lambda *a: run_coarse_to_fine(*a, sampler="model"),
    "tpe": run_tpe,
}
BUDGET_DEPENDENT = {"naive"}  # run once per budget; the others once at the largest budget


# --- candidate changes to the model sampler, tried on the benchmark before adopting one -------
# (docs/search-quality.md, "Choosing the default sampler"; none was adopted)


def _wide_pool(share: float):
    """Thompson candidates: `share` of them from the whole space, the rest from the box, so
    the model can send points outside a box narrowed on little data."""
    from search_spaces import _surrogate
    from search_spaces._narrowing import full_box

    original_cube_to_box = _surrogate.cube_to_box

    def cube_to_box(space, box, cube):
        outside = round(share * len(cube))
        inner = original_cube_to_box(space, box, cube[outside:])
        if outside == 0:
            return inner
        return np.vstack([original_cube_to_box(space, full_box(space), cube[:outside]), inner])

    return _surrogate, "cube_to_box", cube_to_box


def _global_until(results: int):
    """No narrowing until `results` results are in: the model searches the whole space first."""
    from search_spaces import _coarse_to_fine

    original = _coarse_to_fine.next_region

    def next_region(tr, points, losses, settings, box=None):
        if int(np.isfinite(losses).sum()) < results:
            return tr
        return original(tr, points, losses, settings, box)

    return _coarse_to_fine, "next_region", next_region


def _mean_incumbent(space: SearchSpace):
    """The box centres on the run's point with the best posterior mean, not the best raw score:
    on a noisy objective (a 114-row validation split) the best raw score is partly luck."""
    from search_spaces import _coarse_to_fine
    from search_spaces._gaussian_process import GaussianProcess
    from search_spaces._surrogate import features, normal_scores

    original = _coarse_to_fine.next_region

    def next_region(tr, points, losses, settings, box=None):
        run = np.arange(tr.since, len(losses))
        run = run[np.isfinite(losses[run])]
        if len(run) < 8:
            return original(tr, points, losses, settings, box)
        x = features(space, np.clip(points[run], 0.0, 1.0))
        model = GaussianProcess().fit(x, normal_scores(losses[run]))
        mean, _ = model.posterior(x)
        pick = run[int(np.argmin(mean))]
        # The centre is the run's best-ranked point: move the pick to the front, scores intact.
        reordered = losses.copy()
        best = float(np.min(losses[run]))
        reordered[pick] = min(best, reordered[pick]) - 1e-12 * max(1.0, abs(best))
        return original(tr, points, reordered, settings, box)

    return _coarse_to_fine, "next_region", next_region


def _every_choice_open(space: SearchSpace):
    """Boxes never drop a choice's values: the model alone decides which values to try, so a
    value the noisy first rounds happened to miss is not shut out for the rest of the run."""
    from search_spaces import _coarse_to_fine
    from search_spaces._narrowing import Box

    original = _coarse_to_fine.region_box

    def region_box(tr, space, points, losses, settings):
        box = original(tr, space, points, losses, settings)
        domains = list(space.domains.values())
        allowed = tuple(
            tuple(range(len(d.values))) if isinstance(d, ChoiceDomain) else None for d in domains
        )
        return Box(box.low, box.high, allowed)

    return _coarse_to_fine, "region_box", region_box


def _variant(*patches_of, **settings: float):
    def run(*args):
        patches = [make(args[0]) for make in patches_of]  # args[0]: the space searched
        saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
        for module, name, value in patches:
            setattr(module, name, value)
        try:
            return run_coarse_to_fine(*args, sampler="model", **settings)
        finally:
            for module, name, value in saved:
                setattr(module, name, value)

    return run


def _random_redraw(space: SearchSpace, objective: Objective, budget: int, seed: int, batch: int):
    """Random search again on the same problem instance, from another stream of draws: a
    yardstick, not a candidate. How far its median moves from `random`'s is how far a median
    moves by luck of the draw alone."""
    return run_random(space, objective, budget, seed + _REDRAW_OFFSET, batch)


_REDRAW_OFFSET = 1_000_003  # far from every paired seed the benchmark runs


VARIANTS = {
    "c2f-model-wide": _variant(lambda space: _wide_pool(0.5)),
    "c2f-model-g32": _variant(lambda space: _global_until(32)),
    "c2f-model-g64": _variant(lambda space: _global_until(64)),
    "c2f-model-mean": _variant(_mean_incumbent),
    "c2f-model-choices": _variant(_every_choice_open),
    "c2f-model-patient": _variant(failure_rounds=2),
    "c2f-model-w75": _variant(initial_window=0.75),
    "c2f-model-w100": _variant(initial_window=1.0),
    "random-redraw": _random_redraw,
}
METHODS.update(VARIANTS)
