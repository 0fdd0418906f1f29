"""GPU requests: fractions of one GPU or whole GPUs, and requests no node can hold."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from _procs import run_caviar, user_env
from _ray_nodes import ray_cluster, ray_env

from analysis import load_trials
from sweeps import SpecError, parse_spec

SPEC = textwrap.dedent(
    """
    name: multi
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.5, scale: log}
    strategy: {kind: random, samples: 8}
    resources: {cpu: 1, gpu: 0.5}
    """
)


def _caviar(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return run_caviar(*args, env=user_env(home), timeout=180)


@pytest.mark.cli
@pytest.mark.ray
def test_more_gpus_than_any_node_has_is_refused_up_front(tmp_path: Path) -> None:
    """The embedded instance has no GPU and no autoscaler: the trial could never start."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.replace("gpu: 0.5", "gpu: 1"))
    proc = _caviar("run", str(spec), "--results", str(tmp_path / "out"), home=tmp_path / "home")
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "resources.gpu" in errors[0] and "no node has" in errors[0]
    assert not (tmp_path / "out").exists()


def test_one_and_a_half_gpus_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match=r"resources\.gpu: a trial takes a fraction of one GPU"):
        parse_spec(SPEC.replace("gpu: 0.5", "gpu: 1.5"))


PANDA = "strategy: {kind: panda, period: 1, start: {lr: 0.01}}"


def _custom_refused(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "resources.custom" in errors[0] and "{a10g: 1}" in errors[0]


@pytest.mark.cli
@pytest.mark.ray
@pytest.mark.parametrize("strategy", ["random", "panda"])
def test_a_custom_resource_no_node_has_is_refused_up_front(strategy: str, tmp_path: Path) -> None:
    """Without the check the trials would wait for a node the embedded Ray never gets."""
    text = SPEC.replace("{cpu: 1, gpu: 0.5}", "{cpu: 1, custom: {a10g: 1}}")
    if strategy == "panda":
        text = text.replace("strategy: {kind: random, samples: 8}", PANDA)
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    proc = _caviar("run", str(spec), "--results", str(tmp_path / "out"), home=tmp_path / "home")
    _custom_refused(proc)
    assert not (tmp_path / "out").exists()


@pytest.mark.cli
@pytest.mark.ray
def test_a_retune_asking_for_a_custom_resource_no_node_has_is_refused(tmp_path: Path) -> None:
    spec, out, home = tmp_path / "spec.yaml", tmp_path / "out", tmp_path / "home"
    spec.write_text(SPEC.replace("gpu: 0.5", "gpu: 0").replace("samples: 8", "samples: 2"))
    assert _caviar("run", str(spec), "--results", str(out), home=home).returncode == 0
    before = sorted(str(p) for p in out.rglob("*.parquet"))
    spec.write_text(spec.read_text().replace("{cpu: 1, gpu: 0}", "{cpu: 1, custom: {a10g: 1}}"))
    proc = _caviar("retune", str(spec), "--results", str(out), home=home)
    _custom_refused(proc)
    assert sorted(str(p) for p in out.rglob("*.parquet")) == before
    assert not (out / "multi" / "best.json").exists()


def _most_at_once(rows: pd.DataFrame) -> int:
    """The largest number of the rows' [started_at, ended_at] intervals that overlap."""
    events = [(t, 1) for t in rows["started_at"]] + [(t, -1) for t in rows["ended_at"]]
    running = most = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        running += step
        most = max(most, running)
    return most


@pytest.mark.cli
@pytest.mark.ray
def test_packs_share_one_gpu_in_quarters(tmp_path: Path) -> None:
    """A node that declares one GPU (this machine has none; Ray hands out the fractions all the
    same): four packs asking for a quarter each run side by side, which whole-GPU packs could
    not, and every member lands once."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        SPEC.replace("gpu: 0.5}", "gpu: 0.25}\npack: 2\nmax_concurrent: 4\n").replace(
            "epochs: 2",
            "epochs: 30",  # long enough to overlap on a fast or busy machine
        )
    )
    with ray_cluster(["--num-cpus=4", "--num-gpus=1"]) as (address, _):
        result = subprocess.run(
            [sys.executable, "-m", "sweeps", "run", str(spec), "--address", address,
             "--results", str(tmp_path / "out")],
            capture_output=True, text=True, env=ray_env(), timeout=300,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(tmp_path / "out", "multi")
    assert sorted(trials["trial_id"]) == [f"t{i:05d}" for i in range(8)]
    assert set(trials["status"]) == {"ok"}
    packs = trials.groupby("pack_id").agg(started_at=("started_at", "min"),
                                          ended_at=("ended_at", "max"))  # fmt: skip
    assert len(packs) == 4
    assert _most_at_once(packs) >= 2, packs


def test_auto_packs_on_a_gpu_ask_for_the_share_the_plan_gives() -> None:
    """2048 configurations for one declared GPU: four packs side by side at a quarter each
    (no Ray needed to plan them), where whole-GPU packs would run one after another."""
    from sweeps.plan import INDEX_KEY, ORIGIN_KEY, ROUND_KEY, TRIAL_KEY
    from sweeps.tune._trials import _packed_configs

    sweep = parse_spec(SPEC.replace("gpu: 0.5}", "gpu: 1}\npack: auto"))
    configs = []
    for index in range(2048):
        config = sweep.trial_config({"lr": 0.01}, seed=index)
        config.update(
            {TRIAL_KEY: f"t{index:05d}", INDEX_KEY: index, ORIGIN_KEY: "random", ROUND_KEY: 0}
        )
        configs.append(config)
    packs, share = _packed_configs(sweep, configs, 1, gpus=1.0, cpus=16.0)
    assert share == 0.25
    assert [len(p["members"]) for p in packs] == [512] * 4
    _, none = _packed_configs(sweep, configs, 1, gpus=0.0, cpus=16.0)
    assert none is None  # no GPU in the cluster yet: the spec's request stands
