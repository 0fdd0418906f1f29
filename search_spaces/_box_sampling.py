"""The samplers inside one round's box: random, Sobol, or model-guided.

The narrowing decides *where* a round searches; these decide *which* points it tries there, so
they are interchangeable (`sampler: random | sobol | model`). All work in the parent space's
unit coordinates: a numeric parameter is uniform between the box's low and high, a choice is
one of the values the box still allows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import numpy as np

from ._domains import Domain, FloatDomain, IntDomain
from ._narrowing import Box, cube_to_box
from ._space import SearchSpace

# The spec admits exactly these (sweeps/spec/_strategy_specs.py uses this type).
SamplerName = Literal["random", "sobol", "model"]


def model_ready(space: SearchSpace, losses: np.ndarray) -> bool:
    """Whether there are enough results for a surrogate to beat a space-filling design."""
    return int(np.isfinite(losses).sum()) >= max(8, 2 * len(space))


def sample_in_box(
    sampler: SamplerName,
    space: SearchSpace,
    box: Box,
    n: int,
    rng: np.random.Generator,
    points: np.ndarray,
    losses: np.ndarray,
) -> np.ndarray:
    """n points of the box (unit coordinates), given every result so far (for the model).

    The model sampler starts with Sobol points until `model_ready`: a surrogate fitted to a
    handful of results is no better than an even spread.
    """
    if sampler == "model" and model_ready(space, losses):
        from ._surrogate import thompson_batch

        return thompson_batch(space, points, losses, box, n, rng)
    if sampler == "random":
        cube = rng.random((n, len(space)))
    else:
        from scipy.stats import qmc  # scipy.stats takes ~1 s to import; only Sobol needs it

        engine = qmc.Sobol(len(space), scramble=True, seed=rng)
        cube = engine.random_base2(max(0, math.ceil(math.log2(n))))[:n]
    return cube_to_box(space, box, cube)


def clip_to_domains(
    configs: list[dict[str, object]], domains: Mapping[str, Domain]
) -> list[dict[str, object]]:
    """Keep every value inside the round's bounds despite float rounding at the box's edges."""
    for config in configs:
        for name, domain in domains.items():
            value = config[name]
            if isinstance(domain, FloatDomain):
                # Why the type ignore below: drawn by this module for a float domain
                config[name] = min(max(float(value), domain.low), domain.high)  # type: ignore[arg-type]
            elif isinstance(domain, IntDomain):
                # Why the type ignore below: drawn by this module for an int domain
                config[name] = min(max(int(value), domain.low), domain.high)  # type: ignore[call-overload]
    return configs
