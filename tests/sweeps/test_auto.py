"""`strategy: {kind: auto}`: panda with little compute, caviar (coarse-to-fine) with plenty."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from _procs import run_caviar, user_env

from analysis import load_table, load_trials
from sweeps import parse_spec, run_sweep
from sweeps.strategies._auto import decide

SPEC = textwrap.dedent(
    """
    name: auto
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.5, scale: log}
      batch_size: {type: choice, values: [64, 128]}
    strategy: {kind: auto, time_budget: 30m}
    resources: {cpu: 1, gpu: 0}
    seed: 2
    """
)


def _spec(budget: str = "30m", cpu: int = 1, gpu: float = 0) -> str:
    return SPEC.replace("time_budget: 30m", f"time_budget: {budget}").replace(
        "{cpu: 1, gpu: 0}", f"{{cpu: {cpu}, gpu: {gpu}}}"
    )


def test_a_big_cluster_gets_coarse_to_fine_sized_to_the_budget() -> None:
    sweep = parse_spec(_spec("2h", gpu=0.25))
    # 16 nodes of 8 GPUs: 512 quarter-GPU slots; 2 epochs of 0.5 s + 1 s start-up per config
    decision = decide(sweep, cpus=16 * 32, gpus=16 * 8, nodes=16, epoch_s=0.5)
    assert decision.mode == "caviar" and decision.slots == 512
    assert decision.strategy["kind"] == "coarse_to_fine"
    assert decision.strategy["per_round"] == 512 and decision.strategy["rounds"] == 8
    assert "512 trial slot(s) on 16 node(s)" in decision.reasons


def test_one_slot_or_a_short_budget_gets_panda() -> None:
    one_slot = decide(parse_spec(_spec("2h")), cpus=1, gpus=0, nodes=1, epoch_s=0.5)
    assert one_slot.mode == "panda" and one_slot.strategy["models"] == 1
    assert "fewer than 2 slots" in one_slot.reasons
    # 4 slots but time for only 4 x 10 s / 2 s = 20 configurations: too few to narrow on
    short = decide(parse_spec(_spec("10s")), cpus=4, gpus=0, nodes=1, epoch_s=0.5)
    assert short.mode == "panda" and short.affordable == 20 and short.strategy["models"] == 4
    # GPUs bound the slots when trials need them
    gpu = decide(parse_spec(_spec("2h", gpu=1)), cpus=64, gpus=1, nodes=1, epoch_s=0.5)
    assert gpu.mode == "panda" and gpu.slots == 1


@pytest.mark.ray
def test_auto_runs_panda_on_a_one_slot_cluster_and_records_why(
    ray_local: None, tmp_path: Path
) -> None:
    # ray_local has 2 CPUs; trials of 2 CPUs leave one slot
    outcome = run_sweep(parse_spec(_spec("1h", cpu=2)), tmp_path)
    trials = load_trials(tmp_path, "auto")
    assert len(trials) == 1 and trials["run_id"].iloc[0] == outcome.run_id
    events = load_table(tmp_path, "events", "auto")
    why = events[events["action"] == "auto:panda"]
    assert len(why) == 1 and "fewer than 2 slots" in why["reason"].iloc[0]
    assert why["run_id"].iloc[0] == outcome.run_id
    assert (events["action"] != "auto:panda").sum() >= 1  # panda's own decisions follow
    # Every row says what it records: auto's choice, then the babysitter's decisions.
    assert why["kind"].tolist() == ["auto"]
    assert set(events.loc[events["action"] != "auto:panda", "kind"]) == {"panda"}
    saved = json.loads(next((tmp_path / "auto" / "_auto").glob("*.json")).read_text())
    assert saved["mode"] == "panda" and saved["slots"] == 1


@pytest.mark.ray
def test_auto_runs_coarse_to_fine_with_room_and_resume_keeps_the_decision(
    ray_local: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sweeps.strategies._auto as auto

    # A fixed probe makes the decision exact: 2 slots x 33 s / (2 x 0.5 s + 1 s) = 32 configs
    monkeypatch.setattr(auto, "probe_epoch_seconds", lambda sweep: 0.5)
    spec = _spec("33s").replace("epochs: 2", "epochs: 2")
    outcome = run_sweep(parse_spec(spec), tmp_path)
    trials = load_trials(tmp_path, "auto")
    assert len(trials) == 32 and set(trials["origin"]) == {"coarse_to_fine"}
    assert sorted(set(trials["round"])) == [0, 1]
    assert len(load_table(tmp_path, "rounds", "auto")) == 2 * 2
    # a resumed run reuses the decision (no new probe) and finds nothing left to do
    monkeypatch.setattr(auto, "probe_epoch_seconds", lambda sweep: pytest.fail("probed again"))
    again = run_sweep(parse_spec(spec), tmp_path, resume=True)
    assert again.run_id == outcome.run_id and again.evaluated == 0


@pytest.mark.ray
def test_auto_refuses_a_gpu_the_machine_lacks_before_writing_anything(tmp_path: Path) -> None:
    """As `kind: random` is refused: one line naming the field, exit 2, no files, and no
    cost probe left waiting for a GPU that will never come."""
    (tmp_path / "auto.yaml").write_text(_spec("10m", gpu=1))
    proc = run_caviar(
        "run", "auto.yaml", "--results", "out", cwd=tmp_path, env=user_env(tmp_path / "home"),
        timeout=120,
    )  # fmt: skip
    err = proc.stderr
    assert proc.returncode == 2, err
    [line] = err.strip().splitlines()
    assert line.startswith("error: resources.gpu: no node has 1 CPU and 1 GPU for one trial")
    assert line.endswith("0 GPUs) (got 1.0)")
    assert not (tmp_path / "out").exists()
