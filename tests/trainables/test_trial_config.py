"""Parsing the flat Ray Tune config into a validated TrialConfig (no Ray needed)."""

from __future__ import annotations

import pytest

from trainables import HParams, HyperParameterError, TrialConfig
from trainables._trial_config import trial_config_errors


def test_defaults() -> None:
    trial = TrialConfig.from_flat({})
    assert trial == TrialConfig()
    assert (trial.model, trial.dataset, trial.epochs, trial.seed) == ("bn_mlp", "digits", 20, 0)
    assert (trial.val_fraction, trial.checkpoint_every) == (0.2, 0)
    assert trial.hparams == HParams()


def test_hyperparameters_and_settings_are_split() -> None:
    trial = TrialConfig.from_flat(
        {"lr": 0.3, "depth": 3, "dataset": "synthetic", "epochs": 5, "seed": 7}
    )
    assert trial.hparams == HParams(lr=0.3, depth=3)
    assert (trial.dataset, trial.epochs, trial.seed) == ("synthetic", 5, 7)


def test_unknown_key_lists_settings_and_hyperparameters() -> None:
    with pytest.raises(HyperParameterError) as caught:
        TrialConfig.from_flat({"epoch": 3})
    assert caught.value.field == "epoch"
    assert "'epochs'" in str(caught.value) and "'lr'" in str(caught.value)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("dataset", "mnist", "must be one of ['digits', 'mnist1d', 'synthetic'] or a data file"),
        ("model", "resnet", "must be 'bn_mlp' or 'module:function'"),
        ("epochs", 0, "must be in [1, 100000]"),
        ("seed", -1, "must be in [0, 4294967295]"),
        ("val_fraction", 0.0, "must be in [0.01, 0.9]"),
        ("checkpoint_every", -1, "must be >= 0"),
        ("lr", 0, "must be in (0, 10]"),
    ],
)
def test_invalid_settings(key: str, value: object, message: str) -> None:
    with pytest.raises(HyperParameterError) as caught:
        TrialConfig.from_flat({key: value})
    assert str(caught.value) == f"{key}: {message} (got {value!r})"


def test_all_errors_at_once() -> None:
    errors = trial_config_errors({"epochs": 0, "lr": -1, "x": 1})
    assert sorted(e.field for e in errors) == ["epochs", "lr", "x"]


@pytest.mark.parametrize(
    ("every", "epochs", "due"),
    [(0, 5, []), (1, 3, [1, 2, 3]), (2, 5, [2, 4, 5]), (10, 4, [4])],
)
def test_checkpoint_schedule(every: int, epochs: int, due: list[int]) -> None:
    trial = TrialConfig.from_flat({"checkpoint_every": every, "epochs": epochs})
    assert [e for e in range(1, epochs + 1) if trial.checkpoint_due(e)] == due
