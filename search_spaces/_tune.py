"""Ray Tune domains for a SearchSpace; the one module in this package that imports Ray.

Each parameter becomes the Ray domain that draws the same distribution:

    float linear  -> tune.uniform(low, high)        float log -> tune.loguniform(low, high)
    int linear    -> tune.randint(low, high + 1)    int log   -> tune.lograndint(low, high + 1)
    choice        -> tune.choice(values)            (Ray's integer upper bounds are exclusive)

Ray's lograndint floors a log-uniform draw, so integer k gets mass log((k + 1) / k) rather than
our log((k + 0.5) / (k - 0.5)): same bounds, slightly different weights on small integers.

A reverse_log float has no Ray equivalent, and there are two ways to hand it over:

- `searcher_safe=False` (default): a real `Float` domain with the `ReverseLogUniform` sampler, so
  Ray's BasicVariantGenerator (random search) draws 1 - beta log-uniformly. Ray's searcher
  converters (`OptunaSearch.convert_search_space`, HyperOpt, ...) only translate the samplers they
  know and raise on any other. `ReverseLogUniform` deliberately does not subclass Ray's
  `Uniform` or `LogUniform`: a converter would then silently treat beta as uniform.
- `searcher_safe=True`: a reverse_log `beta` is exposed as `one_minus_beta`, a
  tune.loguniform(1 - high, 1 - low) that every searcher understands. Configs that Ray hands to
  the trainable must then go through `SearchSpace.from_tune`, which maps `one_minus_beta` back
  to `beta`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import cast

import numpy as np
from ray import tune
from ray.tune.search import sample as ray_sample

from ._domains import ChoiceDomain, Domain, FloatDomain, IntDomain
from ._searcher_safe import searcher_safe_key

# Drawing u through a stock Ray domain lets Ray interpret random_state (None, seed, Generator,
# RandomState or its own wrapper) exactly as it does for its built-in samplers.
_UNIT = tune.uniform(0.0, 1.0)


class ReverseLogUniform(ray_sample.Sampler):
    """Ray sampler for a `Float(low, high)` with high < 1 whose 1 - x is log-uniform."""

    def sample(
        self,
        domain: ray_sample.Domain,
        config: list[dict] | dict | None = None,
        size: int = 1,
        random_state: object = None,
    ) -> float | np.ndarray:
        u = np.atleast_1d(_UNIT.sample(size=size, random_state=random_state))
        bounds = cast(ray_sample.Float, domain)  # this sampler is only given Float domains
        reverse_log = FloatDomain(bounds.lower, bounds.upper, "reverse_log")
        items = np.atleast_1d(reverse_log.from_unit(u))
        # Ray's own samplers return a bare value for size=1 and an array otherwise.
        return items if len(items) > 1 else domain.cast(items[0])

    def __str__(self) -> str:
        return "ReverseLogUniform"


def reverse_loguniform(low: float, high: float) -> ray_sample.Float:
    """A Ray domain on [low, high] (high < 1) whose 1 - x is log-uniform."""
    FloatDomain(low, high, "reverse_log")  # validates, with our error messages
    ray_domain = ray_sample.Float(low, high)
    ray_domain.set_sampler(ReverseLogUniform())
    return ray_domain


def tune_domain(domain: Domain) -> ray_sample.Domain:
    """The Ray Tune domain that samples like `domain` (reverse_log via a custom sampler)."""
    if isinstance(domain, ChoiceDomain):
        return tune.choice(list(domain.values))
    if isinstance(domain, IntDomain):
        make = tune.randint if domain.scale == "linear" else tune.lograndint
        return make(domain.low, domain.high + 1)
    if domain.scale == "linear":
        return tune.uniform(domain.low, domain.high)
    if domain.scale == "log":
        return tune.loguniform(domain.low, domain.high)
    return reverse_loguniform(domain.low, domain.high)


def to_tune(domains: Mapping[str, Domain], *, searcher_safe: bool = False) -> dict[str, object]:
    """A Ray Tune `param_space` for a space's domains (`SearchSpace.to_tune`, which passes them
    in: this module does not import the space); see the module docstring for `searcher_safe`."""
    out: dict[str, object] = {}
    for name, domain in domains.items():
        if searcher_safe and isinstance(domain, FloatDomain) and domain.scale == "reverse_log":
            out[searcher_safe_key(name)] = tune.loguniform(1.0 - domain.high, 1.0 - domain.low)
        else:
            out[name] = tune_domain(domain)
    return out
