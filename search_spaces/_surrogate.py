"""The model-guided sampler inside a round's box: a Gaussian process and Thompson sampling.

Random points inside a narrowed box are only as good as the box; a surrogate fitted to every
result so far (TuRBO's local model) puts a round's points where the objective is likely low.
A batch comes from Thompson sampling: each point is the minimiser, over many candidates in the
box, of its own draw from the posterior, so one round gets a diverse batch of concurrently
evaluable points without fantasised results.

Scores enter the model as normal scores of their ranks (a Gaussian copula): heavy tails,
plateaus and diverged runs (ranked worst) cannot wreck the fit, and only the order matters to
where the minimum is. Choices are one-hot features, so the model never assumes their order.
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from ._domains import ChoiceDomain
from ._narrowing import Box, cube_to_box
from ._space import SearchSpace

# Thompson draws are taken jointly over this many candidates (a 512x512 Cholesky per round);
# 1024 was no better on the benchmark and twice as slow.
_CANDIDATES = 512
_JITTER = 1e-8
# The model sees only the points nearest the box (TuRBO's local model): a local fit follows the
# objective's local scale, costs O(64^3) whatever the history, and was as good or better than a
# global fit on every budget of the benchmark.
_MAX_TRAIN = 64


def _nearest(points: np.ndarray, box: Box, k: int) -> np.ndarray:
    """Indices of the k points nearest the box's centre, measured in box widths."""
    if len(points) <= k:
        return np.arange(len(points))
    low, high = np.asarray(box.low), np.asarray(box.high)
    numeric = np.array([a is None for a in box.allowed])
    scaled = (np.nan_to_num(points[:, numeric]) - (low + high)[numeric] / 2) / (high - low)[numeric]
    return np.sort(np.argsort(np.max(np.abs(scaled), axis=1), kind="stable")[:k])


def features(space: SearchSpace, points: np.ndarray) -> np.ndarray:
    """Model inputs: numeric unit coordinates, and a one-hot block per choice parameter."""
    columns: list[np.ndarray] = []
    for j, domain in enumerate(space.domains.values()):
        u = points[:, j]
        if isinstance(domain, ChoiceDomain):
            n = len(domain.values)
            index = np.where(np.isfinite(u), np.minimum((np.nan_to_num(u) * n), n - 1), -1)
            columns.append(index.astype(int)[:, None] == np.arange(n)[None, :])
        else:
            # History from a wider space may lie outside [0, 1]; far outside it says little.
            columns.append(np.clip(u, -0.5, 1.5)[:, None])
    return np.hstack(columns).astype(np.float64)


def normal_scores(losses: np.ndarray) -> np.ndarray:
    """Losses as standard-normal quantiles of their ranks; non-finite ones share the worst rank."""
    from scipy.stats import norm, rankdata

    ranks = rankdata(np.where(np.isfinite(losses), losses, np.inf), method="average")
    return norm.ppf((ranks - 0.5) / len(losses))


@threadpool_limits.wrap(limits=1)
def thompson_batch(
    space: SearchSpace,
    points: np.ndarray,
    losses: np.ndarray,
    box: Box,
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """n distinct points of the box (unit coordinates), each the argmin of one posterior draw.

    Linear algebra runs on one BLAS thread: the matrices are at most a few hundred wide, too
    small for threads to pay, and on a node busy with trials the BLAS threads wait on each
    other. Measured next to a test run on two cores: 180 ms per round with the default
    threads, 35 ms with one, the same points either way.
    """
    from ._gaussian_process import GaussianProcess

    near = _nearest(points, box, _MAX_TRAIN)
    model = GaussianProcess().fit(features(space, points[near]), normal_scores(losses[near]))
    pool = cube_to_box(space, box, rng.random((max(_CANDIDATES, 2 * n), len(space))))
    mean, cov = model.posterior(features(space, pool))
    cov[np.diag_indices_from(cov)] += _JITTER * max(1.0, float(np.mean(np.diag(cov))))
    try:
        factor = np.linalg.cholesky(cov)
    except np.linalg.LinAlgError:
        factor = np.diag(np.sqrt(np.clip(np.diag(cov), 0.0, None)))  # independent draws
    draws = mean[:, None] + factor @ rng.standard_normal((len(pool), n))
    chosen: list[int] = []
    taken = np.zeros(len(pool), dtype=bool)
    for k in range(n):
        order = np.argsort(draws[:, k])
        pick = int(order[np.argmax(~taken[order])])
        chosen.append(pick)
        taken[pick] = True
    return pool[chosen]
