"""Adaptive strategies on Ray: coarse-to-fine rounds with their bounds recorded, resuming and
editing a search, TPE through OptunaSearch, and ASHA early stopping."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from analysis import load_table, load_trials, round_bounds
from search_spaces import FloatDomain
from sweeps import SpecError, parse_spec, run_sweep
from sweeps._cli import main

C2F = textwrap.dedent(
    """
    name: zoom
    trainable: {dataset: digits, epochs: 2, fixed: {depth: 1, hidden: 16}}
    search_space:
      lr:   {type: float, low: 1.0e-3, high: 0.5, scale: log}
      beta: {type: float, low: 0.9, high: 0.999, scale: reverse_log}
      batch_size: {type: choice, values: [64, 128]}
    strategy: {kind: coarse_to_fine, rounds: 3, per_round: 4, sampler: sobol}
    initial: [{lr: 0.1, beta: 0.9, batch_size: 64}]
    seed: 3
    """
)


def _inside_their_rounds(trials: pd.DataFrame, rounds: pd.DataFrame) -> None:
    """Every coarse-to-fine point lies inside the bounds recorded for its round."""
    for row in trials[trials["origin"] == "coarse_to_fine"].to_dict("records"):
        mine = rounds[(rounds["round"] == row["round"]) & (rounds["run_id"] == row["run_id"])]
        mine = mine.sort_values("asked_at").drop_duplicates("parameter", keep="last")
        for bound in mine.to_dict("records"):
            value = row[bound["parameter"]]
            if bound["type"] == "choice":
                assert value in json.loads(bound["values"]), (row["trial_id"], bound)
            else:
                assert bound["low"] - 1e-12 <= value <= bound["high"] + 1e-12, (row, bound)


@pytest.mark.ray
def test_coarse_to_fine_runs_its_rounds_and_records_each_round_s_bounds(
    ray_local: None, tmp_path: Path
) -> None:
    outcome = run_sweep(parse_spec(C2F), tmp_path)
    trials = load_trials(tmp_path, "zoom").sort_values("config_index")
    assert list(trials["trial_id"]) == [f"t{i:05d}" for i in range(13)]
    assert list(trials["origin"]) == ["initial"] + ["coarse_to_fine"] * 12
    assert list(trials["round"]) == [0] * 5 + [1] * 4 + [2] * 4
    rounds = load_table(tmp_path, "rounds", "zoom")
    assert sorted(set(rounds["round"])) == [0, 1, 2]
    assert len(rounds) == 3 * 3  # one row per (round, parameter)
    first = rounds[(rounds["round"] == 0) & (rounds["parameter"] == "lr")].iloc[0]
    assert (first["low"], first["high"]) == (1e-3, 0.5)  # round 0 is the whole space
    _inside_their_rounds(trials, rounds)
    # the zoom: later rounds search a narrower lr window, in decades
    lr = FloatDomain(1e-3, 0.5, "log")
    width = {
        r["round"]: float(lr.to_unit(r["high"]) - lr.to_unit(r["low"]))
        for r in rounds[rounds["parameter"] == "lr"].to_dict("records")
    }
    assert width[2] < width[0]
    assert outcome.best is not None and outcome.best["round"] in (0, 1, 2)
    # analysis reads the recorded bounds (choices have values, not bounds)
    bounds = round_bounds(trials, rounds)
    assert set(bounds["source"]) == {"rounds"} and set(bounds["parameter"]) == {"lr", "beta"}
    state = json.loads(next((tmp_path / "zoom" / "_search").glob("*.json")).read_text())
    assert state["strategy"]["round"] == 3 and len(state["planned"]) == 13


@pytest.mark.ray
def test_an_edited_spec_continues_the_search_from_its_history(
    ray_local: None, tmp_path: Path
) -> None:
    first = run_sweep(parse_spec(C2F.replace("rounds: 3", "rounds: 2")), tmp_path)
    # more rounds, a larger round, a narrower lr range, and `hidden` (fixed at 16 so far, so
    # every recorded row has it) searched from now on: continue, not restart
    edited = (
        C2F.replace("rounds: 3, per_round: 4", "rounds: 3, per_round: 5")
        .replace("low: 1.0e-3, high: 0.5", "low: 1.0e-2, high: 0.3")
        .replace("fixed: {depth: 1, hidden: 16}", "fixed: {depth: 1}")
        .replace(
            "values: [64, 128]}", "values: [64, 128]}\n  hidden: {type: int, low: 8, high: 32}"
        )
        .replace("batch_size: 64}", "batch_size: 64, hidden: 16}")
    )
    second = run_sweep(parse_spec(edited), tmp_path, resume=True)
    assert second.run_id == first.run_id and second.skipped == 9 and second.evaluated == 5
    trials = load_trials(tmp_path, "zoom").sort_values("config_index")
    assert len(trials) == 14 and not trials["trial_id"].duplicated().any()
    new = trials[trials["round"] == 2]
    assert len(new) == 5 and new["lr"].between(1e-2, 0.3).all()
    assert new["hidden"].between(8, 32).all() and set(trials["hidden"].iloc[:9]) == {16}
    rounds = load_table(tmp_path, "rounds", "zoom")
    assert rounds["spec_digest"].nunique() == 2
    _inside_their_rounds(trials, rounds)
    # the same edited spec again: nothing left to do, nothing recorded twice
    third = run_sweep(parse_spec(edited), tmp_path, resume=True)
    assert third.evaluated == 0 and len(load_trials(tmp_path, "zoom")) == 14


@pytest.mark.ray
def test_an_edit_that_contradicts_the_history_is_refused_naming_the_field(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_sweep(parse_spec(C2F.replace("rounds: 3", "rounds: 1")), tmp_path)
    removed = C2F.replace(
        "  beta: {type: float, low: 0.9, high: 0.999, scale: reverse_log}\n", ""
    ).replace("beta: 0.9, ", "")
    with pytest.raises(SpecError) as err:
        run_sweep(parse_spec(removed), tmp_path, resume=True)
    assert [p.field for p in err.value.problems] == ["search_space.beta"]
    other_metric = C2F.replace("name: zoom", "name: zoom\nobjective: {metric: val_loss}")
    retyped = C2F.replace(
        "batch_size: {type: choice, values: [64, 128]}",
        "batch_size: {type: int, low: 32, high: 128}",
    )
    with pytest.raises(SpecError) as err:
        run_sweep(parse_spec(retyped), tmp_path, resume=True)
    assert [p.field for p in err.value.problems] == ["search_space.batch_size.type"]
    spec = tmp_path / "spec.yaml"
    spec.write_text(other_metric)
    before = sorted(p.name for p in (tmp_path / "zoom").rglob("*"))
    code = main(["run", str(spec), "--results", str(tmp_path), "--resume"])
    assert code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "objective.metric" in lines[0] and "val_loss" in lines[0]
    assert sorted(p.name for p in (tmp_path / "zoom").rglob("*")) == before


@pytest.mark.ray
def test_tpe_proposes_through_optuna_with_beta_as_its_log_twin(
    ray_local: None, tmp_path: Path
) -> None:
    spec = C2F.replace(
        "strategy: {kind: coarse_to_fine, rounds: 3, per_round: 4, sampler: sobol}",
        "strategy: {kind: tpe, samples: 6, startup: 3}",
    )
    run_sweep(parse_spec(spec), tmp_path)
    trials = load_trials(tmp_path, "zoom").sort_values("config_index")
    assert list(trials["origin"]) == ["initial"] + ["tpe"] * 6
    assert trials["beta"].between(0.9, 0.999).all() and trials["lr"].between(1e-3, 0.5).all()
    assert trials["beta"].nunique() == 7
    # resuming a finished TPE run adds nothing
    again = run_sweep(parse_spec(spec), tmp_path, resume=True)
    assert again.evaluated == 0 and len(load_trials(tmp_path, "zoom")) == 7


@pytest.mark.ray
def test_asha_stops_trailing_trials_and_records_them_stopped(
    ray_local: None, tmp_path: Path
) -> None:
    spec = textwrap.dedent(
        """
        name: halving
        trainable: {dataset: digits, epochs: 4, fixed: {depth: 1, hidden: 16}}
        search_space:
          lr: {type: float, low: 1.0e-5, high: 0.5, scale: log}
        strategy: {kind: random, samples: 10}
        early_stopping: {kind: asha, grace_period: 1, reduction_factor: 2}
        seed: 1
        """
    )
    run_sweep(parse_spec(spec), tmp_path)
    trials = load_trials(tmp_path, "halving")
    assert len(trials) == 10 and set(trials["status"]) <= {"ok", "stopped", "diverged"}
    stopped = trials[trials["status"] == "stopped"]
    assert len(stopped) >= 1 and (stopped["epochs_done"] < 4).all()
    assert (trials.loc[trials["status"] == "ok", "epochs_done"] == 4).all()
