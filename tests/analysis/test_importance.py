"""Importance: fANOVA in sampling coordinates, cross-checked against Optuna's evaluators."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
from scipy.stats import spearmanr

from analysis import ResultsError, importance, infer_scale, load_trials, resolve_scales
from analysis._fanova import fanova

SCALES = {"lr": "log", "beta": "reverse_log", "hidden": "log", "batch_size": "choice"}


def _sample(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "lr": 10 ** rng.uniform(-4, 0, n),
            "beta": 1 - 10 ** rng.uniform(-3, -1, n),
            "hidden": np.round(10 ** rng.uniform(np.log10(16), np.log10(256), n)).astype(int),
            "batch_size": rng.choice([32, 64, 128, 256], n),
            "status": "ok",
        }
    )


def _dominated_by_lr(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Effects with clear gaps: lr >> beta >> hidden >> batch_size (none), plus small noise."""
    df = _sample(n, seed)
    rng = np.random.default_rng(seed + 1)
    df["val_accuracy"] = (
        1.0 * np.exp(-((np.log10(df["lr"]) + 2) ** 2))
        + 0.35 * (np.log10(1 - df["beta"]) + 2)
        + 0.3 * np.log2(df["hidden"] / 16) / 4
        + rng.normal(0, 0.01, n)
    )
    return df


def _optuna_importances(df: pd.DataFrame, evaluator: object) -> dict[str, float]:
    """The same trials as an Optuna study; reverse-log beta enters as log-uniform 1 - beta."""
    distributions = {
        "lr": optuna.distributions.FloatDistribution(1e-4, 1.0, log=True),
        "beta": optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True),
        "hidden": optuna.distributions.IntDistribution(16, 256, log=True),
        "batch_size": optuna.distributions.CategoricalDistribution([32, 64, 128, 256]),
    }
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize")
    for row in df.itertuples():
        params = {"lr": row.lr, "beta": 1 - row.beta, "hidden": int(row.hidden),
                  "batch_size": int(row.batch_size)}  # fmt: skip
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions=distributions, value=row.val_accuracy
            )
        )
    return optuna.importance.get_param_importances(study, evaluator=evaluator)  # type: ignore[arg-type]


def test_the_dominant_parameter_ranks_first_with_documented_columns() -> None:
    result = importance(_dominated_by_lr(), "val_accuracy", SCALES)
    assert list(result["parameter"]) == ["lr", "beta", "hidden", "batch_size"]
    assert result["importance"].sum() == pytest.approx(1.0)
    assert result.loc[0, "importance"] > 0.5
    assert {c: str(t) for c, t in result.dtypes.items()} == {
        "parameter": "str", "scale": "str", "importance": "float64",
        "variance_fraction": "float64", "std": "float64",
    }  # fmt: skip


@pytest.mark.parametrize(
    "evaluator",
    [
        optuna.importance.FanovaImportanceEvaluator(seed=0),
        optuna.importance.PedAnovaImportanceEvaluator(),
    ],
    ids=["fanova", "ped-anova"],
)
def test_agrees_with_optuna_on_the_same_trials(evaluator: object) -> None:
    df = _dominated_by_lr(120)  # Optuna's fANOVA is pure Python: keep the forest small
    ours = importance(df, "val_accuracy", SCALES).set_index("parameter")["importance"]
    theirs = pd.Series(_optuna_importances(df, evaluator))
    assert ours.idxmax() == theirs.idxmax() == "lr"
    rho = spearmanr(ours.loc[theirs.index], theirs).statistic
    assert rho > 0.79, f"rank correlation {rho:.2f}: ours {ours.to_dict()}, Optuna {theirs}"


def test_importance_is_measured_in_sampling_coordinates() -> None:
    """A bump in the lowest decade of lr is a quarter of a log-uniform search but 0.1 % of the
    raw range: fANOVA on the raw scale would call lr unimportant."""
    df = _sample(300, 3)
    df["val_accuracy"] = np.where(df["lr"] < 1e-3, 1.0, 0.0) + 0.2 * (np.log10(1 - df["beta"]) + 2)
    warped = importance(df, "val_accuracy", {"lr": "log", "beta": "reverse_log"})
    raw = importance(df, "val_accuracy", {"lr": "linear", "beta": "reverse_log"})
    share = {name: t.set_index("parameter")["importance"]["lr"] for name, t in
             (("warped", warped), ("raw", raw))}  # fmt: skip
    assert warped.loc[0, "parameter"] == "lr" and share["warped"] > 0.7
    assert share["raw"] < share["warped"] / 2


def test_fanova_recovers_an_additive_decomposition() -> None:
    """f = 2 x0 + x1 on the unit square: main effects 4/5 and 1/5 of the variance, no rest."""
    grid = np.linspace(0.0125, 0.9875, 40)
    x = np.array([(a, b) for a in grid for b in grid])
    result = fanova(x, 2 * x[:, 0] + x[:, 1], np.array([[0.0, 1.0], [0.0, 1.0]]), n_trees=16)
    assert result.fraction == pytest.approx([0.8, 0.2], abs=0.05)


def test_scales_come_from_the_stored_space_or_are_inferred(results_dir: Path, synth) -> None:
    trials = load_trials(results_dir, "s")
    assert resolve_scales(trials) == {n: synth.SPACE[n].get("scale", "choice") for n in synth.SPACE}
    trials.attrs.clear()
    inferred = resolve_scales(trials, exclude=("val_accuracy", "val_loss"))
    assert inferred == {"lr": "log", "beta": "reverse_log", "hidden": "log",
                        "batch_size": "choice", "batchnorm": "choice"}  # fmt: skip


def test_infer_scale_prefers_the_warp_that_looks_uniform() -> None:
    rng = np.random.default_rng(0)
    assert infer_scale(pd.Series(rng.uniform(0.1, 0.9, 200))) == "linear"
    assert infer_scale(pd.Series(10 ** rng.uniform(-5, -1, 200))) == "log"
    assert infer_scale(pd.Series(1 - 10 ** rng.uniform(-4, -1, 200))) == "reverse_log"
    assert infer_scale(pd.Series(["a", "b"] * 5)) == "choice"


def test_diverged_trials_count_as_the_worst_unless_dropped() -> None:
    df = _sample(120, 5)
    df["val_accuracy"] = 0.9 + 0.01 * np.log10(1 - df["beta"])
    diverged = df["lr"] > 0.1
    df.loc[diverged, "status"] = "diverged"
    df.loc[diverged, "val_accuracy"] = np.nan
    scales = {"lr": "log", "beta": "reverse_log"}

    def lr_share(**kwargs: str) -> float:
        table = importance(df, "val_accuracy", scales, **kwargs).set_index("parameter")
        return float(table.loc["lr", "importance"])

    assert lr_share() > 0.3  # the top quarter of the lr range fails: lr matters
    assert lr_share(diverged="drop") < 0.1  # among the survivors only beta does


def test_user_errors_name_the_field() -> None:
    df = _dominated_by_lr(20)
    with pytest.raises(ResultsError, match="objective: no such column"):
        importance(df, "accuracy", SCALES)
    with pytest.raises(ResultsError, match="unknown scale"):
        importance(df, "val_accuracy", {"lr": "exp"})
    with pytest.raises(ResultsError, match="not columns of the trials"):
        importance(df, "val_accuracy", {"momentum": "linear"})
    with pytest.raises(ResultsError, match="at least 4 finished trials"):
        importance(df.head(3), "val_accuracy", SCALES)
