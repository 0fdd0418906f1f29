"""`strategy: {kind: auto}`: panda with little compute, caviar (coarse-to-fine) with plenty."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from _procs import run_caviar, user_env

from analysis import SweepLayout, load_table, load_trials
from sweeps import parse_spec, run_sweep
from sweeps.run import LockHeldError, RaySession, refuse_if_locked, sweep_lock
from sweeps.strategies._auto import decide, decide_auto

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


@pytest.mark.cli
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


def test_a_held_auto_sweep_is_refused_before_ray_starts_or_the_probe_trains(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As a held `kind: random` sweep is: the answer needs neither Ray nor a probe."""
    import sweeps.run._ray_session as ray_session
    import sweeps.strategies._auto as auto

    def no_ray(address: str | None) -> None:
        raise AssertionError("Ray was started for a sweep another run holds")

    monkeypatch.setattr(ray_session, "ray_session", no_ray)
    monkeypatch.setattr(auto, "probe_epoch_seconds", lambda sweep: pytest.fail("probed"))
    held = pytest.raises(LockHeldError, match=f"pid {os.getpid()}")
    with sweep_lock(tmp_path / "auto"), held:
        run_sweep(parse_spec(SPEC), tmp_path)
    assert [p.name for p in (tmp_path / "auto").iterdir()] == [SweepLayout.RUN_LOCK]


@pytest.mark.cli
def test_a_second_caviar_run_of_a_held_auto_sweep_exits_1_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """The line and exit code of a held non-auto sweep (test_crash.py); no `_auto/` decision,
    no `events` row, nothing but the lock file in the sweep's folder."""
    (tmp_path / "auto.yaml").write_text(SPEC)
    with sweep_lock(tmp_path / "out" / "auto"):
        proc = run_caviar(
            "run", "auto.yaml", "--results", "out", cwd=tmp_path, env=user_env(tmp_path / "home"),
            timeout=120,
        )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    [line] = proc.stderr.strip().splitlines()
    holder = f"another `caviar run` of this sweep is running (pid {os.getpid()})"
    assert line == f"error: sweep: {holder} (got 'auto')"
    assert [p.name for p in (tmp_path / "out" / "auto").iterdir()] == [SweepLayout.RUN_LOCK]


def _one_node(cpus: float) -> RaySession:
    return RaySession("embedded", cpus, 0.0, 1, ((cpus, 0.0),), embedded=True)


def test_auto_holds_the_sweep_while_it_probes_and_records_its_decision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that starts while the probe trains is refused as if the run had begun; the lock is
    let go once the decision is recorded, for the run itself to take."""
    import sweeps.strategies._auto as auto

    def probe(sweep: object) -> float:
        with pytest.raises(LockHeldError, match=f"pid {os.getpid()}"):
            refuse_if_locked(tmp_path / "auto")
        return 0.5

    monkeypatch.setattr(auto, "probe_epoch_seconds", probe)
    concrete, run_id = decide_auto(parse_spec(SPEC), tmp_path, _one_node(1))
    assert concrete.spec.strategy.kind == "panda" and run_id is not None
    assert len(list((tmp_path / "auto" / "_auto").glob("*.json"))) == 1
    assert load_table(tmp_path, "events", "auto")["action"].tolist() == ["auto:panda"]
    refuse_if_locked(tmp_path / "auto")  # free again
