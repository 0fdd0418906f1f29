"""The Ray Tune adapter. These import Ray but need no running cluster, so no `ray_local`."""

from __future__ import annotations

import math

import numpy as np
import pytest

from search_spaces import (
    ChoiceDomain,
    FloatDomain,
    IntDomain,
    SearchSpace,
    SearchSpaceError,
)

pytestmark = pytest.mark.ray

ray_sample = pytest.importorskip("ray.tune.search.sample")

SPACE = SearchSpace(
    {
        "lr": FloatDomain(1e-4, 1.0, "log"),
        "beta": FloatDomain(0.9, 0.999, "reverse_log"),
        "hidden": IntDomain(16, 512, "log"),
        "depth": IntDomain(1, 3),
        "batch_size": ChoiceDomain((32, 64, 128, 256)),
        "wd": FloatDomain(0.0, 0.1),
    }
)
N_DRAWS = 20_000


def test_each_domain_maps_to_the_matching_ray_domain():
    tune_space = SPACE.to_tune()
    assert list(tune_space) == list(SPACE.names)
    expected = {
        "lr": (ray_sample.Float, ray_sample.LogUniform, 1e-4, 1.0),
        "wd": (ray_sample.Float, ray_sample.Uniform, 0.0, 0.1),
        # Ray's integer upper bounds are exclusive, ours inclusive.
        "hidden": (ray_sample.Integer, ray_sample.LogUniform, 16, 513),
        "depth": (ray_sample.Integer, ray_sample.Uniform, 1, 4),
    }
    for name, (domain_cls, sampler_cls, lower, upper) in expected.items():
        domain = tune_space[name]
        assert isinstance(domain, domain_cls) and isinstance(domain.get_sampler(), sampler_cls)
        assert (domain.lower, domain.upper) == (lower, upper)
    assert tune_space["batch_size"].categories == [32, 64, 128, 256]


@pytest.mark.parametrize("domain", [IntDomain(1, 3), IntDomain(1, 4, "log")], ids=repr)
def test_ray_int_draws_cover_both_bounds_and_nothing_else(domain: IntDomain):
    draws = SearchSpace({"k": domain}).to_tune()["k"].sample(size=2000, random_state=0)
    assert set(draws.tolist()) == set(range(domain.low, domain.high + 1))


def test_reverse_log_ray_domain_halves_beta_at_0_99():
    beta = SPACE.to_tune()["beta"]
    assert str(beta.get_sampler()) == "ReverseLogUniform"
    draws = beta.sample(size=N_DRAWS, random_state=np.random.default_rng(12))
    assert draws.min() >= 0.9 and draws.max() <= 0.999
    # Seeded; binomial(N, 1/2) has sd sqrt(N)/2 ~ 71 draws, and we allow 5 sd (~354).
    below = int(np.sum(draws < 0.99))
    assert abs(below - N_DRAWS / 2) <= 5 * math.sqrt(N_DRAWS) / 2


@pytest.mark.parametrize(
    "random_state",
    [None, 3, np.random.default_rng(3), np.random.RandomState(3)],
    ids=["none", "int", "generator", "legacy"],
)
def test_reverse_log_ray_domain_accepts_every_random_state(random_state: object):
    beta = SPACE.to_tune()["beta"]
    one = beta.sample(random_state=random_state)
    assert type(one) is float and 0.9 <= one <= 0.999
    assert beta.sample(size=5, random_state=random_state).shape == (5,)


def test_basic_variant_generator_samples_the_reverse_log_domain():
    from ray.tune.search.basic_variant import BasicVariantGenerator

    def trainable(config: dict) -> None:
        pass

    searcher = BasicVariantGenerator(random_state=0)
    searcher.add_configurations(
        {"exp": {"run": trainable, "config": SPACE.to_tune(), "num_samples": 4}}
    )
    configs = [searcher.next_trial().config for _ in range(4)]
    for config in configs:
        SPACE.check_config(config)
    assert len({c["beta"] for c in configs}) == 4


def test_searcher_safe_exposes_one_minus_beta():
    tune_space = SPACE.to_tune(searcher_safe=True)
    assert "beta" not in tune_space
    one_minus = tune_space["one_minus_beta"]
    assert isinstance(one_minus.get_sampler(), ray_sample.LogUniform)
    assert one_minus.lower == pytest.approx(0.001) and one_minus.upper == pytest.approx(0.1)


def test_optuna_accepts_the_searcher_safe_space_only():
    """Why searcher-safe mode exists: Ray's converters reject the custom reverse-log sampler."""
    pytest.importorskip("optuna")
    from ray.tune.search.optuna import OptunaSearch

    converted = OptunaSearch.convert_search_space(SPACE.to_tune(searcher_safe=True))
    assert converted["one_minus_beta"].log and converted["depth"].high == 3
    with pytest.raises(ValueError, match="ReverseLogUniform"):
        OptunaSearch.convert_search_space(SPACE.to_tune())


def test_searcher_safe_round_trip():
    rng = np.random.default_rng(4)
    tune_space = SPACE.to_tune(searcher_safe=True)
    for _ in range(50):
        drawn = {key: domain.sample(random_state=rng) for key, domain in tune_space.items()}
        config = SPACE.from_tune(drawn)
        SPACE.check_config(config)
        assert config["beta"] == pytest.approx(1 - drawn["one_minus_beta"], abs=1e-15)
    # And the distribution survives: half of beta below 0.99 (5 sd as above).
    safe_beta = tune_space["one_minus_beta"].sample(size=N_DRAWS, random_state=5)
    below = int(np.sum(1 - safe_beta < 0.99))
    assert abs(below - N_DRAWS / 2) <= 5 * math.sqrt(N_DRAWS) / 2


def test_reverse_loguniform_validates_with_our_errors():
    from search_spaces._tune import reverse_loguniform

    with pytest.raises(SearchSpaceError, match="high: must be < 1 for scale=reverse_log"):
        reverse_loguniform(0.9, 1.0)
