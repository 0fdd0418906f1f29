"""SearchSpace: building from the spec, whole-configuration conversions and checks."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import search_spaces
from search_spaces import (
    ChoiceDomain,
    FloatDomain,
    IntDomain,
    SearchSpace,
    SearchSpaceError,
)

SPEC = {
    "lr": {"type": "float", "low": 1.0e-4, "high": 1.0, "scale": "log"},
    "beta": {"type": "float", "low": 0.9, "high": 0.999, "scale": "reverse_log"},
    "hidden": {"type": "int", "low": 16, "high": 512, "scale": "log"},
    "batch_size": {"type": "choice", "values": [32, 64, 128, 256]},
}


@pytest.fixture
def space() -> SearchSpace:
    return SearchSpace.from_dict(SPEC)


def test_from_dict_keeps_the_spec_order(space: SearchSpace):
    assert space.names == ("lr", "beta", "hidden", "batch_size")
    assert list(space) == list(space.names) and len(space) == 4
    assert space.domains["beta"] == FloatDomain(0.9, 0.999, "reverse_log")
    assert space.domains["batch_size"] == ChoiceDomain((32, 64, 128, 256))


def test_domains_are_read_only(space: SearchSpace):
    with pytest.raises(TypeError):
        space.domains["lr"] = FloatDomain(0.0, 1.0)  # type: ignore[index]


def test_to_dict_round_trips_and_pickles(space: SearchSpace):
    assert space.to_dict() == {
        name: {"scale": "linear", **d} if d["type"] != "choice" else d for name, d in SPEC.items()
    }
    assert SearchSpace.from_dict(space.to_dict()) == space
    assert pickle.loads(pickle.dumps(space)) == space
    assert hash(SearchSpace.from_dict(SPEC)) == hash(space)


def test_from_dict_reports_every_bad_parameter():
    bad = {
        "lr": {"type": "float", "low": 0.1, "high": 0.001, "scale": "log"},
        "beta": {"type": "float", "low": 0.9, "high": 1.0, "scale": "reverse_log"},
        "depth": 3,
        "ok": {"type": "int", "low": 1, "high": 4},
    }
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(bad)
    fields = [p.field for p in info.value.problems]
    assert fields == ["lr.high", "beta.high", "depth"]
    message = str(info.value)
    assert "lr.high: low < high must hold, but got low=0.1, high=0.001" in message
    assert "beta.high: must be < 1 for scale=reverse_log (got 1.0)" in message
    assert "depth: must be a mapping" in message and "(got 3)" in message


@pytest.mark.parametrize(
    ("d", "field", "shown"),
    [
        ({}, "", "the search space is empty"),
        ({"1lr": {"type": "float", "low": 0, "high": 1}}, "1lr", "must match"),
        ({"a-b": {"type": "float", "low": 0, "high": 1}}, "a-b", "must match"),
        ({"lr": {"type": "float", "low": 0}}, "lr.high", "missing key"),
        ({"lr": {"type": "float", "low": 0, "high": 1, "q": 1}}, "lr.q", "unknown key"),
        ({"lr": [0, 1]}, "lr", "[0, 1]"),
        (
            {
                "beta": {"type": "float", "low": 0.9, "high": 0.99, "scale": "reverse_log"},
                "one_minus_beta": {"type": "float", "low": 0, "high": 1},
            },
            "one_minus_beta",
            "searcher-safe",
        ),
    ],
    ids=["empty", "leading digit", "dash", "missing", "unknown", "not mapping", "clash"],
)
def test_from_dict_problems(d: dict, field: str, shown: str):
    with pytest.raises(SearchSpaceError) as info:
        SearchSpace.from_dict(d)
    assert field in {p.field for p in info.value.problems}
    assert shown in str(info.value)


def test_constructor_validates_too():
    with pytest.raises(SearchSpaceError, match="the search space is empty"):
        SearchSpace({})
    with pytest.raises(SearchSpaceError, match="lr: must be a FloatDomain"):
        SearchSpace({"lr": {"type": "float", "low": 0, "high": 1}})  # type: ignore[dict-item]


def test_sample_gives_python_scalars_inside_the_space(space: SearchSpace):
    configs = space.sample(np.random.default_rng(0), 50)
    assert len(configs) == 50
    for config in configs:
        space.check_config(config)
        assert [type(config[name]) for name in space.names] == [float, float, int, int]


def test_sample_is_reproducible_and_matches_the_domains(space: SearchSpace):
    a = space.sample(np.random.default_rng(7), 20)
    assert a == space.sample(np.random.default_rng(7), 20)
    assert a != space.sample(np.random.default_rng(8), 20)
    # Parameter i draws what domains[i].sample would draw, in spec order, from the same stream.
    rng = np.random.default_rng(7)
    for name, domain in space.domains.items():
        assert [c[name] for c in a] == domain.sample(rng, 20).tolist()
    assert space.sample(np.random.default_rng(0), 0) == []


def test_unit_vector_round_trip(space: SearchSpace):
    config = {"lr": 1e-2, "beta": 0.99, "hidden": 100, "batch_size": 128}
    u = space.to_unit(config)
    assert u.shape == (4,) and u.dtype == np.float64
    np.testing.assert_allclose(u[:2], [0.5, 0.5])
    back = space.from_unit(u)
    assert back["hidden"] == 100 and back["batch_size"] == 128
    assert back["lr"] == pytest.approx(1e-2, rel=1e-12)
    assert back["beta"] == pytest.approx(0.99, rel=1e-12)
    assert [type(v) for v in back.values()] == [float, float, int, int]


def test_to_unit_ignores_fixed_keys_but_checks_its_own(space: SearchSpace):
    config = {"lr": 1e-2, "beta": 0.99, "hidden": 100, "batch_size": 128, "depth": 2}
    assert space.to_unit(config).shape == (4,)
    with pytest.raises(SearchSpaceError, match="hidden: must lie in"):
        space.to_unit({**config, "hidden": 1000})


def test_from_unit_clips_and_checks_shape(space: SearchSpace):
    corner = space.from_unit([-1.0, 2.0, 0.0, 1.0])
    assert corner == {"lr": 1e-4, "beta": 0.999, "hidden": 16, "batch_size": 256}
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        space.from_unit([0.5, 0.5])


def test_check_config_reports_every_problem(space: SearchSpace):
    with pytest.raises(SearchSpaceError) as info:
        space.check_config({"lr": "0.01", "beta": 0.5, "hidden": 16.5, "depth": 2})
    by_field = {p.field: p for p in info.value.problems}
    assert set(by_field) == {"lr", "beta", "hidden", "batch_size", "depth"}
    assert by_field["lr"].message == "must be a number"
    assert by_field["beta"].message == "must lie in [0.9, 0.999]"
    assert by_field["hidden"].message == "must be an integer"
    assert "missing" in by_field["batch_size"].message
    assert "unknown parameter; valid names: lr, beta, hidden, batch_size" in str(info.value)
    with pytest.raises(SearchSpaceError, match=r"batch_size: must be one of \[32, 64, 128, 256\]"):
        space.check_config({"lr": 0.01, "beta": 0.95, "hidden": 16, "batch_size": 48})


def test_from_tune_maps_searcher_safe_keys_back(space: SearchSpace):
    converted = space.from_tune({"lr": 0.1, "one_minus_beta": 0.01, "depth": 2})
    assert converted["beta"] == pytest.approx(0.99) and "one_minus_beta" not in converted
    assert converted["lr"] == 0.1 and converted["depth"] == 2
    # 1 - value outside the bounds (searcher round-off) is clipped into them.
    assert space.from_tune({"one_minus_beta": 0.2})["beta"] == 0.9


def test_int_and_choice_mix_in_a_direct_space():
    space = SearchSpace({"k": IntDomain(1, 3), "act": ChoiceDomain(("relu", "tanh"))})
    assert space.from_unit([0.0, 1.0]) == {"k": 1, "act": "tanh"}


def test_importing_and_using_the_package_does_not_import_ray():
    code = (
        "import sys, numpy as np, search_spaces as s\n"
        f"space = s.SearchSpace.from_dict({SPEC!r})\n"
        "space.sample(np.random.default_rng(0), 3); space.from_tune({'one_minus_beta': 0.01})\n"
        "s.SobolSampler(0).sample(space, 3); s.grid_points(space, 2)\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    root = Path(search_spaces.__file__).parent.parent
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


def test_only_the_adapter_module_mentions_ray():
    package = Path(search_spaces.__file__).parent
    importing = {
        path.name
        for path in package.glob("*.py")
        if any(
            line.lstrip().startswith(("import ray", "from ray"))
            for line in path.read_text().splitlines()
        )
    }
    assert importing == {"_tune.py"}
