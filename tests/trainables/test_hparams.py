"""The hyperparameter declarations, their checks and their error messages."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from trainables import HYPERPARAMETERS, HParams, HyperParameter, HyperParameterError
from trainables._hparams import hyperparameter_errors as find_errors


def test_hparams_fields_and_defaults_match_the_declarations() -> None:
    fields = dataclasses.fields(HParams)
    assert [f.name for f in fields] == list(HYPERPARAMETERS)
    for f in fields:
        assert f.default == HYPERPARAMETERS[f.name].default, f.name
        assert type(f.default).__name__ == HYPERPARAMETERS[f.name].kind, f.name


def test_documented_defaults() -> None:
    hp = HParams()
    assert hp.to_dict() == {
        "lr": 0.01, "beta": 0.9, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
        "weight_decay": 0.0, "lr_decay": "none", "decay_rate": 0.0, "hidden": 64, "depth": 2,
        "batch_size": 64, "batchnorm": True, "bn_momentum": 0.1, "optimizer": "momentum",
    }  # fmt: skip
    assert HParams.from_mapping({}) == hp


def test_declarations_are_read_only_and_documented() -> None:
    with pytest.raises(TypeError):
        HYPERPARAMETERS["lr"] = HYPERPARAMETERS["beta"]  # type: ignore[index]
    assert all(p.doc for p in HYPERPARAMETERS.values())


def test_from_mapping_fills_defaults_and_normalises_types() -> None:
    hp = HParams.from_mapping(
        {"lr": 1, "hidden": np.int64(128), "depth": 3.0, "beta": np.float32(0.5),
         "batchnorm": np.bool_(False), "optimizer": "adam"}
    )  # fmt: skip
    assert hp.lr == 1.0 and type(hp.lr) is float
    assert hp.hidden == 128 and type(hp.hidden) is int
    assert hp.depth == 3 and type(hp.depth) is int
    assert type(hp.beta) is float
    assert hp.batchnorm is False
    assert hp.optimizer == "adam"
    assert hp.batch_size == 64


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("lr", 0, "must be in (0, 10]"),
        ("lr", 10.5, "must be in (0, 10]"),
        ("lr", -1e-3, "must be in (0, 10]"),
        ("lr", True, "must be a number"),
        ("lr", "0.1", "must be a number"),
        ("lr", math.nan, "must be finite"),
        ("lr", math.inf, "must be finite"),
        ("beta", 1.0, "must be in [0, 1)"),
        ("beta", -0.1, "must be in [0, 1)"),
        ("beta1", 1, "must be in [0, 1)"),
        ("beta2", 1.5, "must be in [0, 1)"),
        ("eps", 0.0, "must be > 0"),
        ("weight_decay", -1e-4, "must be >= 0"),
        ("decay_rate", -0.5, "must be >= 0"),
        ("lr_decay", "linear", "must be one of ['exponential', 'inverse_time', 'none']"),
        ("hidden", 0, "must be in [1, 8192]"),
        ("hidden", 8193, "must be in [1, 8192]"),
        ("hidden", 64.5, "must be an integer"),
        ("hidden", True, "must be an integer"),
        ("depth", 33, "must be in [1, 32]"),
        ("batch_size", 0, "must be in [1, 65536]"),
        ("batchnorm", 1, "must be a boolean"),
        ("bn_momentum", 0.0, "must be in (0, 1]"),
        ("bn_momentum", 1.01, "must be in (0, 1]"),
        ("optimizer", "rmsprop", "must be one of ['adam', 'momentum', 'sgd']"),
        ("optimizer", None, "must be a string"),
    ],
)
def test_invalid_values_name_the_field_and_the_value(name: str, value: object, message: str):
    assert HYPERPARAMETERS[name].check(value) == message
    with pytest.raises(HyperParameterError) as caught:
        HParams.from_mapping({name: value})
    error = caught.value
    assert isinstance(error, ValueError)
    assert (error.field, error.message) == (name, message)
    assert error.value is value
    assert str(error) == f"{name}: {message} (got {value!r})"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(HyperParameterError, match=r"^depth: must be in \[1, 32\] \(got 0\)$"):
        HParams(depth=0)


@pytest.mark.parametrize(
    ("name", "value"),
    [("beta", 0), ("beta", 0.999999), ("lr", 10), ("bn_momentum", 1.0), ("hidden", 8192),
     ("weight_decay", 0), ("eps", 1e-30), ("hidden", 64.0)],
)  # fmt: skip
def test_inclusive_bounds_and_ints_for_floats_are_accepted(name: str, value: object) -> None:
    assert HYPERPARAMETERS[name].check(value) is None


def test_unknown_name_lists_the_valid_names() -> None:
    with pytest.raises(HyperParameterError) as caught:
        HParams.from_mapping({"learning_rate": 0.1})
    error = caught.value
    assert error.field == "learning_rate"
    assert error.value == 0.1
    assert str(sorted(HYPERPARAMETERS)) in str(error)


def test_batchnorm_needs_batches_of_two() -> None:
    with pytest.raises(HyperParameterError, match="batch_size: must be >= 2 when batchnorm"):
        HParams(batch_size=1)
    assert HParams(batch_size=1, batchnorm=False).batch_size == 1


def test_all_errors_are_listed_at_once() -> None:
    errors = find_errors({"lr": -1, "depth": 0, "colour": "red"})
    assert sorted(e.field for e in errors) == ["colour", "depth", "lr"]
    assert find_errors({"lr": 0.5}) == []


def test_inconsistent_declaration_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"low < high must hold, but got low=1\.0, high=0\.0"):
        HyperParameter("x", "float", 0.5, "doc", low=1.0, high=0.0)
    with pytest.raises(ValueError, match="default 2 is invalid"):
        HyperParameter("x", "int", 2, "doc", low=3)
