"""`pack:` in a spec: configurations trained together in one Ray trial, recorded as if alone."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from analysis import load_epochs, load_table, load_trials
from sweeps import SpecError, parse_spec, run_sweep

SPEC = textwrap.dedent(
    """
    name: packs
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr:   {type: float, low: 1.0e-2, high: 0.3, scale: log}
      hidden_placeholder: 0
      batch_size: {type: choice, values: [64, 128]}
    strategy: {kind: random, samples: 6}
    initial: [{lr: 0.1, batch_size: 64}]
    seed: 5
    """
).replace("  hidden_placeholder: 0\n", "")


@pytest.mark.ray
def test_packed_results_match_unpacked_runs_row_for_row(ray_local: None, tmp_path: Path) -> None:
    run_sweep(parse_spec(SPEC), tmp_path / "alone")
    run_sweep(parse_spec(SPEC + "pack: 3\n"), tmp_path / "packed")
    alone = load_trials(tmp_path / "alone", "packs").set_index("trial_id").sort_index()
    packed = load_trials(tmp_path / "packed", "packs").set_index("trial_id").sort_index()
    assert list(packed.index) == [f"t{i:05d}" for i in range(7)]
    assert alone["pack_id"].isna().all() and packed["pack_id"].notna().all()
    # grouped by shape: batch 64 and batch 128 never share a pack, and no pack exceeds 3
    for _, members in packed.groupby("pack_id"):
        assert members["batch_size"].nunique() == 1 and len(members) <= 3
    for column in ("lr", "batch_size", "seed", "origin", "status", "epochs_done"):
        assert list(packed[column]) == list(alone[column]), column
    # float32, stacked matmuls vs one model: equal up to rounding noise
    assert (packed["val_loss"] - alone["val_loss"]).abs().max() < 1e-2
    epochs = load_epochs(tmp_path / "packed", "packs")
    assert len(epochs) == 14 and not epochs.duplicated(["trial_id", "epoch"]).any()


@pytest.mark.ray
def test_early_stopping_inside_packs_records_stopped_members(
    ray_local: None, tmp_path: Path
) -> None:
    spec = SPEC.replace("epochs: 2", "epochs: 4").replace("low: 1.0e-2", "low: 1.0e-5")
    spec += "pack: auto\nearly_stopping: {kind: asha, grace_period: 1, reduction_factor: 2}\n"
    run_sweep(parse_spec(spec), tmp_path)
    trials = load_trials(tmp_path, "packs")
    assert len(trials) == 7 and trials["pack_id"].notna().all()
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) >= 1 and (stopped["epochs_done"] < 4).all()
    assert len(load_epochs(tmp_path, "packs")) == int(trials["epochs_done"].sum())


@pytest.mark.ray
def test_coarse_to_fine_rounds_run_in_packs(ray_local: None, tmp_path: Path) -> None:
    spec = SPEC.replace(
        "strategy: {kind: random, samples: 6}",
        "strategy: {kind: coarse_to_fine, rounds: 3, per_round: 6, start_next_at: 1.0}",
    )
    run_sweep(parse_spec(spec + "pack: 3\n"), tmp_path)
    trials = load_trials(tmp_path, "packs").sort_values("config_index")
    assert list(trials["trial_id"]) == [f"t{i:05d}" for i in range(19)]
    assert list(trials["round"]) == [0] * 7 + [1] * 6 + [2] * 6
    assert trials["pack_id"].notna().all()
    for _, members in trials.groupby("pack_id"):
        # a pack never mixes rounds or shapes, and holds at most 3
        assert len(members) <= 3 and members["round"].nunique() == 1
        assert members["batch_size"].nunique() == 1
    assert trials["pack_id"].nunique() < len(trials)
    rounds = load_table(tmp_path, "rounds", "packs")
    assert sorted(set(rounds["round"])) == [0, 1, 2]
    assert len(load_epochs(tmp_path, "packs")) == int(trials["epochs_done"].sum())


def test_pack_is_refused_where_points_come_one_at_a_time() -> None:
    spec = SPEC.replace("strategy: {kind: random, samples: 6}", "strategy: {kind: tpe, samples: 4}")
    with pytest.raises(SpecError) as err:
        parse_spec(spec + "pack: auto\n")
    assert [p.field for p in err.value.problems] == ["pack"]
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC + "pack: 0\n")
    assert [p.field for p in err.value.problems] == ["pack"]
