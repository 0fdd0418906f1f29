"""A sweep joined to a two-node cluster by address spreads its trials over both nodes (a custom
resource stands in for one GPU per node) and records every configuration once."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator

import pytest
from _ray_nodes import ray_cluster, ray_env

from analysis import load_trials
from sweeps._errors import SpecError
from sweeps.spec import parse_spec

SPEC = textwrap.dedent(
    """
    name: two-nodes
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16, batch_size: 64}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.3, scale: log}
    strategy: {kind: random, samples: 6}
    resources: {cpu: 1, custom: {accel: 1}}
    max_concurrent: 2   # without it Tune asks for one trial's resources at a time
    """
)


@pytest.fixture
def two_nodes() -> Iterator[tuple[str, dict[str, str]]]:
    """A head and a worker on this machine, each able to hold one trial; yields (GCS address,
    the nodes)."""
    per_node = ["--num-cpus=1", "--num-gpus=0", '--resources={"accel": 1}']
    with ray_cluster(per_node, per_node) as cluster:
        yield cluster


@pytest.mark.cli
@pytest.mark.ray
def test_trials_run_on_both_nodes_and_land_once(two_nodes, tmp_path):
    address, alive = two_nodes
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    out = tmp_path / "out"

    result = subprocess.run(
        [sys.executable, "-m", "sweeps", "run", str(spec), "--address", address,
         "--results", str(out)],
        capture_output=True, text=True, env=ray_env(), timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(out, sweep="two-nodes")
    assert len(trials) == 6
    assert trials["trial_id"].is_unique
    assert set(trials["status"]) == {"ok"}
    assert set(trials["node_id"]) == set(alive)


@pytest.mark.parametrize(
    ("custom", "message"),
    [
        ("{GPU: 1}", "'GPU' is a built-in resource"),
        ("{'a b': 1}", "resource name 'a b' must match"),
        ("{accel: 1.5}", "amount of 'accel' must be in (0, 1] or a whole number"),
        ("{accel: 0}", "amount of 'accel' must be in (0, 1] or a whole number"),
        ("{accel: many}", "amount of 'accel' must be a number"),
    ],
)
def test_a_bad_custom_resource_names_the_field_and_value(custom, message):
    text = SPEC.replace("custom: {accel: 1}", f"custom: {custom}")

    with pytest.raises(SpecError) as caught:
        parse_spec(text)

    (problem,) = caught.value.problems
    assert problem.field == "resources.custom"
    assert message in problem.message


def test_custom_resources_are_requested_and_absent_ones_change_nothing():
    with_custom = parse_spec(SPEC)
    without = parse_spec(SPEC.replace(", custom: {accel: 1}", ""))

    assert with_custom.spec.resources.custom == {"accel": 1.0}
    assert without.spec.resources.custom == {}
    # Specs written before `custom` existed keep their digest, so their runs still resume.
    assert "custom" not in without.spec.model_dump(mode="json")["resources"]
    assert with_custom.digest != without.digest
