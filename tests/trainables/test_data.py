"""Local datasets: shapes, stratified splits, train-only standardisation, no network."""

from __future__ import annotations

import random
import socket

import numpy as np
import pytest
import torch

from trainables import DATASETS, HyperParameterError, _data, _data_settings, load_dataset

# (samples, features, classes) of each dataset before the split.
SHAPES = {"digits": (1797, 64, 10), "mnist1d": (5000, 40, 10), "synthetic": (2000, 20, 5)}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("dataset loading tried to open a network connection")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_mnist1d_is_generated_offline_without_touching_global_rngs(no_network: None) -> None:
    # Generated anew (cache cleared) under the patched socket; later tests reuse this entry.
    _data._raw_arrays.cache_clear()
    numpy_state, python_state = np.random.get_state(), random.getstate()
    data = load_dataset("mnist1d", seed=0)
    assert data.x_train.shape[1] == 40
    after = np.random.get_state()
    assert numpy_state[0] == after[0] and np.array_equal(numpy_state[1], after[1])
    assert random.getstate() == python_state


@pytest.mark.parametrize("name", DATASETS)
def test_shapes_classes_and_dtypes(name: str, no_network: None) -> None:
    n, n_features, n_classes = SHAPES[name]
    data = load_dataset(name, seed=0, val_fraction=0.2)
    assert data.name == name
    assert (data.n_features, data.n_classes) == (n_features, n_classes)
    assert data.x_train.shape[0] + data.x_val.shape[0] == n
    assert abs(data.x_val.shape[0] - 0.2 * n) <= 1
    assert data.x_train.shape[1] == data.x_val.shape[1] == n_features
    assert data.x_train.dtype == data.x_val.dtype == torch.float32
    assert data.y_train.dtype == data.y_val.dtype == torch.int64
    assert set(data.y_train.tolist()) == set(data.y_val.tolist()) == set(range(n_classes))
    assert data.device == torch.device("cpu")


@pytest.mark.parametrize("name", DATASETS)
def test_split_is_stratified(name: str) -> None:
    data = load_dataset(name, seed=0, val_fraction=0.25)
    n_classes = data.n_classes
    train = torch.bincount(data.y_train, minlength=n_classes) / data.y_train.numel()
    val = torch.bincount(data.y_val, minlength=n_classes) / data.y_val.numel()
    # Stratification keeps every class share within one validation sample of the train share.
    assert torch.all((train - val).abs() <= 1.0 / data.y_val.numel())


@pytest.mark.parametrize("name", DATASETS)
def test_standardisation_uses_train_statistics_only(name: str) -> None:
    data = load_dataset(name, seed=0, dtype=torch.float64)
    train_mean = data.x_train.mean(dim=0)
    train_std = data.x_train.std(dim=0, unbiased=False)
    assert torch.allclose(train_mean, torch.zeros_like(train_mean), atol=1e-10)
    varying = train_std > 0
    assert torch.allclose(train_std[varying], torch.ones_like(train_std[varying]), atol=1e-10)
    # Constant features (blank digits pixels) stay at 0 rather than dividing by zero.
    assert torch.all(data.x_train[:, ~varying] == 0)
    assert torch.isfinite(data.x_val).all()
    # The validation split was not standardised with its own statistics.
    assert data.x_val.mean(dim=0).abs().max() > 1e-3


def test_same_seed_same_data_other_seed_other_split() -> None:
    a = load_dataset("synthetic", seed=5)
    b = load_dataset("synthetic", seed=5)
    c = load_dataset("synthetic", seed=6)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_val, b.y_val)
    assert not torch.equal(a.x_train[:, :3], c.x_train[:, :3])
    d1 = load_dataset("digits", seed=1)
    d2 = load_dataset("digits", seed=2)
    assert not torch.equal(d1.y_val, d2.y_val)


def test_mnist1d_seed_changes_the_generated_data() -> None:
    _, y0 = _data._raw_arrays("mnist1d", 0)
    x1, _ = _data._raw_arrays("mnist1d", 1)
    x0, _ = _data._raw_arrays("mnist1d", 0)
    assert not np.array_equal(x0, x1)
    assert np.bincount(y0).tolist() == [500] * 10


def test_cached_arrays_are_read_only() -> None:
    x, _ = _data._raw_arrays("digits", 0)
    with pytest.raises(ValueError, match="read-only"):
        x[0, 0] = 1.0
    assert _data._raw_arrays("digits", 0)[0] is x


def test_dtype_choice() -> None:
    data = load_dataset("digits", seed=0, dtype=torch.float64)
    assert data.x_train.dtype == data.dtype == torch.float64
    assert data.y_train.dtype == torch.int64


def test_bad_name_or_fraction() -> None:
    with pytest.raises(HyperParameterError, match="dataset: must be one of"):
        load_dataset("mnist", seed=0)
    with pytest.raises(HyperParameterError, match="val_fraction: must be in"):
        load_dataset("digits", seed=0, val_fraction=1.0)


def test_synthetic_versions_scale_the_standardised_inputs() -> None:
    v1 = load_dataset("synthetic", seed=3)
    assert torch.equal(load_dataset("synthetic", seed=3, data_version="1").x_train, v1.x_train)
    v3 = load_dataset("synthetic", seed=3, data_version="3")
    assert torch.allclose(v3.x_train, v1.x_train * _data_settings.SYNTHETIC_DRIFT**2)
    assert torch.equal(v3.y_val, v1.y_val)  # same problem, other units
    for bad in ("0", "two", "1.5"):
        with pytest.raises(HyperParameterError, match=r"data_version: .* integers >= 1"):
            load_dataset("synthetic", seed=3, data_version=bad)


def test_fingerprint_tells_data_versions_apart_and_labels_change_nothing() -> None:
    fingerprint = _data.dataset_fingerprint
    synthetic = fingerprint(load_dataset("synthetic", seed=3))
    assert fingerprint(load_dataset("synthetic", seed=3)) == synthetic
    assert fingerprint(load_dataset("synthetic", seed=3, data_version="2")) != synthetic
    assert fingerprint(load_dataset("synthetic", seed=4)) != synthetic
    digits = load_dataset("digits", seed=0)
    # for real datasets the version is only a label: same arrays, same fingerprint
    assert fingerprint(load_dataset("digits", seed=0, data_version="2026-06-01")) == fingerprint(
        digits
    )
