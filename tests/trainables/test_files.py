"""A user's data files: tables and arrays become classes and standardised splits, and every
way a file can be unusable is a HyperParameterError naming the field and the value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trainables import FileSource, HyperParameterError, file_digest, load_dataset
from trainables._files import read_file_arrays


def _table(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    labels = np.array(["setosa", "virginica", "versicolor"])[np.arange(n) % 3]
    return pd.DataFrame(
        {
            "width": rng.normal(size=n),
            "height": rng.normal(size=n) * 10 + 5,
            "count": rng.integers(0, 9, size=n),
            "species": labels,
        }
    )


def _parquet(tmp_path: Path, df: pd.DataFrame, name: str = "t.parquet") -> str:
    path = tmp_path / name
    df.to_parquet(path, index=False)
    return str(path)


def test_string_labels_become_classes_in_sorted_order(tmp_path: Path) -> None:
    df = _table()
    arrays, val = read_file_arrays(FileSource(_parquet(tmp_path, df), target="species"))
    assert val is None
    assert arrays.classes == ("setosa", "versicolor", "virginica")
    expected = df["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2}).to_numpy()
    np.testing.assert_array_equal(arrays.y, expected)
    np.testing.assert_array_equal(arrays.x, df[["width", "height", "count"]].to_numpy(float))


def test_csv_reads_like_parquet_and_features_select_columns(tmp_path: Path) -> None:
    df = _table()
    df.to_csv(tmp_path / "t.csv", index=False)
    source = FileSource(str(tmp_path / "t.csv"), target="species", features=("height",))
    arrays, _ = read_file_arrays(source)
    np.testing.assert_allclose(arrays.x[:, 0], df["height"].to_numpy())
    assert arrays.x.shape == (60, 1)


def test_integer_labels_map_to_contiguous_classes(tmp_path: Path) -> None:
    df = _table().assign(species=np.arange(60) % 3 * 4 + 3)  # labels 3, 7, 11
    arrays, _ = read_file_arrays(FileSource(_parquet(tmp_path, df), target="species"))
    assert arrays.classes == ("3", "7", "11")
    assert set(arrays.y.tolist()) == {0, 1, 2}


def test_image_npz_is_standardised_per_channel_on_the_training_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(90, 2, 4, 4)) * np.array([1.0, 50.0])[None, :, None, None] + 7
    y = np.arange(90) % 3
    np.savez(tmp_path / "img.npz", x=x.astype(np.float32), y=y)
    data = load_dataset(
        FileSource(str(tmp_path / "img.npz")).to_config(), seed=0, dtype=torch.float64
    )
    assert data.input_shape == (2, 4, 4) and data.n_features == 32 and data.n_classes == 3
    images = data.x_train.view(-1, *data.input_shape)
    for channel in range(2):
        values = images[:, channel]
        assert abs(values.mean().item()) < 1e-9
        assert abs(values.std(unbiased=False).item() - 1.0) < 1e-9
    # one statistic per channel, not per pixel: pixels keep their spread relative to each other
    assert images[:, 1].mean(dim=0).abs().max().item() > 1e-3


def test_a_validation_file_replaces_the_split(tmp_path: Path) -> None:
    train, val = _table(60, seed=0), _table(30, seed=1)
    source = FileSource(
        _parquet(tmp_path, train), target="species", val_path=_parquet(tmp_path, val, "v.parquet")
    )
    data = load_dataset(source.to_config(), seed=0, dtype=torch.float64)
    assert len(data.y_train) == 60 and len(data.y_val) == 30
    features = train[["width", "height", "count"]].to_numpy(float)
    mean, std = features.mean(axis=0), features.std(axis=0)  # training statistics only
    expected = (val[["width", "height", "count"]].to_numpy(float) - mean) / std
    np.testing.assert_allclose(data.x_val.numpy(), expected, atol=1e-12)


def test_the_digest_follows_the_bytes_and_a_new_version_rereads_the_file(tmp_path: Path) -> None:
    df = _table()
    source = FileSource(_parquet(tmp_path, df), target="species")
    before = file_digest(source)
    assert file_digest(source) == before
    first = load_dataset(source.to_config(), seed=0, data_version=before)
    _parquet(tmp_path, df.assign(height=df["height"] ** 2))  # not undone by standardising
    after = file_digest(source)
    assert after != before
    again = load_dataset(source.to_config(), seed=0, data_version=after)
    assert not torch.equal(first.x_train, again.x_train)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"target": "label"}, "dataset.target", "no such column"),
        ({"target": None}, "dataset.target", "needs its label column"),
        ({"features": ("width", "nope")}, "dataset.features", "no such column(s) ['nope']"),
        ({"features": ("species",), "target": "count"}, "dataset.features", "must be numeric"),
        ({"path": "missing.parquet"}, "dataset.path", "no such file"),
        ({"path": "notes.txt"}, "dataset.path", "must end in one of"),
    ],
)
def test_unusable_tables_name_the_field_and_the_value(
    tmp_path: Path, change: dict[str, object], field: str, message: str
) -> None:
    path = _parquet(tmp_path, _table())
    fields: dict[str, object] = {"path": path, "target": "species", **change}
    if fields["path"] != path:
        fields["path"] = str(tmp_path / str(fields["path"]))
    with pytest.raises(HyperParameterError) as error:
        read_file_arrays(FileSource(**fields))  # type: ignore[arg-type]
    assert error.value.field == field
    assert message in error.value.message


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.linspace(0, 1, 60), "labels must be classes"),
        (np.zeros(60, dtype=int), "needs at least 2 classes"),
    ],
)
def test_labels_that_are_not_classes_are_refused(
    tmp_path: Path, labels: np.ndarray, message: str
) -> None:
    path = _parquet(tmp_path, _table().assign(species=labels))
    with pytest.raises(HyperParameterError, match=message) as error:
        read_file_arrays(FileSource(path, target="species"))
    assert error.value.field == "dataset.target" and error.value.value == "species"


def test_missing_values_and_bad_npz_arrays_are_refused(tmp_path: Path) -> None:
    df = _table()
    df.loc[3, "width"] = None
    with pytest.raises(HyperParameterError, match=r"missing values in column\(s\) \['width'\]"):
        read_file_arrays(FileSource(_parquet(tmp_path, df), target="species"))
    np.savez(tmp_path / "a.npz", features=np.zeros((4, 2)), y=np.arange(4))
    with pytest.raises(HyperParameterError, match="needs arrays 'x' and 'y'"):
        read_file_arrays(FileSource(str(tmp_path / "a.npz")))
    np.savez(tmp_path / "b.npz", x=np.zeros((4, 2)), y=np.arange(3))
    with pytest.raises(HyperParameterError, match=r"y of shape \(N,\)"):
        read_file_arrays(FileSource(str(tmp_path / "b.npz")))
