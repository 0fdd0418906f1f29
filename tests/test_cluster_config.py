"""cluster.yaml is checked offline with Ray's own launcher schema; no cloud is called."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

CLUSTER_YAML = Path(__file__).parents[1] / "cluster.yaml"


def _load() -> dict[str, Any]:
    return yaml.safe_load(CLUSTER_YAML.read_text())


def _validate(config: dict[str, Any]) -> dict[str, Any]:
    from ray.autoscaler._private.util import prepare_config, validate_config

    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


def test_cluster_yaml_passes_rays_launcher_validation() -> None:
    prepared = _validate(_load())
    types = prepared["available_node_types"]
    head = types[prepared["head_node_type"]]
    assert head["resources"] == {"CPU": 0}, "trials must not run on the head"
    gpu_types = [t for name, t in types.items() if name != prepared["head_node_type"]]
    assert any(t["node_config"].get("InstanceMarketOptions") for t in gpu_types), "a spot type"
    assert all(t["min_workers"] == 0 for t in gpu_types), "GPU workers autoscale from zero"


def test_cluster_yaml_is_secure_and_matches_the_pins() -> None:
    import ray

    config = _load()
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    for commands in (config["head_start_ray_commands"], config["worker_start_ray_commands"]):
        assert any("RAY_AUTH_MODE=token ray start" in c for c in commands)
    assert "/home/ray/.ray/auth_token" in config["file_mounts"]
    assert f"ray:{ray.__version__}-py311" in config["docker"]["image"]
    assert any("pip install" in c and "caviar" in c for c in config["setup_commands"])


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["available_node_types"]["head"].update(bogus_field=1),
        lambda c: c.update(max_workers="many"),
        lambda c: c["provider"].pop("type"),
    ],
    ids=["unknown-field", "wrong-type", "missing-provider-type"],
)
def test_a_broken_copy_is_rejected(breakage: Any) -> None:
    config = _load()
    breakage(config)
    with pytest.raises((jsonschema.ValidationError, KeyError, ValueError)):
        _validate(config)
