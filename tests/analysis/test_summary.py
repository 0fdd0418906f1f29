"""best, best_so_far, round_summary, next_bounds, round_bounds and lr_range_width."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import (
    ResultsError,
    best,
    best_so_far,
    load_trials,
    lr_range_width,
    next_bounds,
    round_bounds,
    round_summary,
)


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": ["r"] * 6,
            "round": [0, 0, 0, 1, 1, 1],
            "trial_id": [f"t{i}" for i in range(6)],
            "status": ["ok", "ok", "diverged", "ok", "error", "ok"],
            "lr": [1e-3, 1e-2, 1.0, 3e-3, 0.1, 5e-3],
            "val_accuracy": [0.80, 0.90, 0.99, 0.95, np.nan, 0.90],
        }
    )


def test_best_ranks_only_ok_trials_and_keeps_trial_order_on_ties() -> None:
    top = best(_frame(), 3)
    assert list(top["trial_id"]) == ["t3", "t1", "t5"]  # t2 diverged: its 0.99 does not count
    assert list(best(_frame(), 1, "val_accuracy", mode="min")["trial_id"]) == ["t0"]


def test_best_user_errors() -> None:
    with pytest.raises(ResultsError, match="objective: no such column"):
        best(_frame(), 3, "accuracy")
    with pytest.raises(ResultsError, match="mode"):
        best(_frame(), 3, mode="maximise")  # type: ignore[arg-type]
    with pytest.raises(ResultsError, match="k"):
        best(_frame(), 0)


def test_round_summary_counts_outcomes_and_tracks_the_running_best() -> None:
    summary = round_summary(_frame())
    assert summary[["round", "trials", "ok", "diverged", "failed"]].values.tolist() == [
        [0, 3, 2, 1, 0],
        [1, 3, 2, 0, 1],
    ]
    assert list(summary["best"]) == [0.90, 0.95]
    assert list(summary["best_trial_id"]) == ["t1", "t3"]
    assert list(summary["best_so_far"]) == [0.90, 0.95]
    assert str(summary["round"].dtype) == "int64" and str(summary["best"].dtype) == "float64"


def test_a_plain_sweep_has_one_round(results_dir: Path) -> None:
    summary = round_summary(load_trials(results_dir, "s"))
    assert list(summary["round"]) == [0] and summary.loc[0, "trials"] == 120


def test_best_so_far_is_monotone_in_finishing_order(results_dir: Path) -> None:
    history = best_so_far(load_trials(results_dir, "s"))
    assert list(history["n"]) == list(range(1, 121))
    assert history["best"].dropna().is_monotonic_increasing
    assert history["best"].notna().sum() == len(history) - history["best"].isna().cumprod().sum()
    assert history["best"].iloc[-1] == history["value"].max()


def test_next_bounds_flags_an_optimum_at_the_edge() -> None:
    rng = np.random.default_rng(0)
    lr = 10 ** rng.uniform(-4, 0, 200)
    df = pd.DataFrame({"lr": lr, "status": "ok", "val_accuracy": np.log10(lr)})  # best at lr=1
    result = next_bounds(df, space={"lr": {"type": "float", "low": 1e-4, "high": 1.0,
                                           "scale": "log"}})  # fmt: skip
    row = result.iloc[0]
    assert row["at_edge"] == "high" and row["searched_high"] == 1.0
    assert 0.3 < row["low"] < row["high"] <= 1.0


def test_round_bounds_reads_long_and_wide_rounds_tables_and_falls_back_to_samples(
    tmp_path: Path, synth
) -> None:
    synth.write_sweep(tmp_path, n=20, rounds=3)
    trials = load_trials(tmp_path, "s")
    observed = round_bounds(trials)
    assert set(observed["source"]) == {"observed"}
    assert sorted(set(observed["parameter"])) == ["beta", "hidden", "lr"]  # choices have none
    long = pd.DataFrame({"round": [0, 1], "parameter": ["lr", "lr"], "low": [1e-4, 1e-3],
                         "high": [1.0, 0.1]})  # fmt: skip
    assert round_bounds(trials, long)[["round", "low", "high"]].values.tolist() == [
        [0, 1e-4, 1.0],
        [1, 1e-3, 0.1],
    ]
    wide = pd.DataFrame({"round": [0, 1], "lr_low": [1e-4, 1e-3], "lr_high": [1.0, 0.1]})
    assert round_bounds(trials, wide)["high"].tolist() == [1.0, 0.1]
    single = trials.loc[trials["round"] == 0]
    assert round_bounds(single).empty


def _bn_frame() -> pd.DataFrame:
    """Same lr grid (6 per decade over 4 decades) with and without BN; peak at lr = 1e-2."""
    lr = np.repeat(10 ** np.linspace(-4, 0, 25), 2)
    bn = np.tile([True, False], 25)
    centre = np.log10(lr) + 2
    acc = np.where(bn, 0.99 - 0.3 * np.clip(np.abs(centre) - 1, 0, None),
                   0.97 - 0.3 * np.clip(np.abs(centre) - 0.25, 0, None))  # fmt: skip
    return pd.DataFrame({"lr": lr, "batchnorm": bn, "status": "ok", "val_accuracy": acc})


def test_lr_range_width_measures_decades_per_group() -> None:
    widths = lr_range_width(_bn_frame()).set_index("batchnorm")
    # Cutoff 0.95 x best: BN allows |log10(lr) + 2| <= 1.165, without BN <= 0.41; grid 1/6.
    assert widths.loc[True, "width_decades"] == pytest.approx(2.0)
    assert widths.loc[False, "width_decades"] == pytest.approx(2 / 3)
    assert widths.loc[True, "holes"] == 0
    assert widths.loc[True, "cutoff"] == pytest.approx(0.95 * 0.99)
    assert str(widths["good"].dtype) == "int64"


def test_lr_range_width_counts_holes_and_ignores_diverged_trials() -> None:
    df = _bn_frame()
    middle = (df["batchnorm"]) & np.isclose(df["lr"], 1e-2)
    df.loc[middle, "status"] = "diverged"
    row = lr_range_width(df).set_index("batchnorm").loc[True]
    assert row["holes"] == 1
    assert row["contiguous_decades"] < row["width_decades"]


def test_lr_range_width_against_the_overall_best_and_for_losses() -> None:
    df = _bn_frame()
    overall = lr_range_width(df, reference="overall").set_index("batchnorm")
    assert np.allclose(overall["cutoff"], 0.95 * 0.99)
    df["val_loss"] = 1 - df["val_accuracy"]
    loss = lr_range_width(df, "val_loss", mode="min", threshold=0.5).set_index("batchnorm")
    assert loss.loc[True, "cutoff"] == pytest.approx(0.01 / 0.5)
    with pytest.raises(ResultsError, match="threshold"):
        lr_range_width(df, threshold=1.5)
    with pytest.raises(ResultsError, match="no such column"):
        lr_range_width(df, by="optimizer")
