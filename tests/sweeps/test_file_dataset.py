"""A user's own data file in the spec: paths relative to the spec, a version that follows the
file's bytes, bad files refused up front, and a re-tune that sees a rewritten file."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from _procs import assert_refused

from analysis import load_trials
from sweeps import SpecError, load_spec, run_sweep
from sweeps._cli import main
from trainables import FileSource, file_digest

SPEC = textwrap.dedent(
    """
    name: wine
    objective: {metric: val_accuracy, mode: max}
    trainable:
      dataset: {path: data/wine.parquet, target: cultivar}
      epochs: 4
      fixed: {depth: 1, hidden: 32}
    search_space:
      lr: {type: float, low: 1.0e-2, high: 0.5, scale: log}
    strategy: {kind: random, samples: 4}
    retune: {budget: 3}
    seed: 1
    """
)


def _wine(seed: int = 0, shuffle_labels: bool = False) -> pd.DataFrame:
    """scikit-learn's bundled wine table with its classes as strings, as a user's file is."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map(dict(enumerate(wine.target_names)))
    if shuffle_labels:  # the world changed: the features no longer say the class
        frame["cultivar"] = np.random.default_rng(seed).permutation(frame["cultivar"].to_numpy())
    return frame


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    _wine().to_parquet(tmp_path / "data" / "wine.parquet", index=False)
    (tmp_path / "wine.yaml").write_text(SPEC)
    return tmp_path


def test_paths_are_relative_to_the_spec_and_the_version_is_the_files_digest(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "data")  # not the spec's directory
    sweep = load_spec(project / "wine.yaml")
    assert sweep.data_file is not None
    assert sweep.data_file.path == str(project / "data" / "wine.parquet")
    assert sweep.spec.trainable.data_version == file_digest(sweep.data_file)
    config = sweep.trial_config({"lr": 0.1}, seed=3)
    assert FileSource.from_config(str(config["dataset"])) == sweep.data_file
    assert config["data_version"] == sweep.spec.trainable.data_version
    # new bytes, new version, new spec digest: a run on the old data cannot be resumed on these
    _wine(shuffle_labels=True).to_parquet(project / "data" / "wine.parquet", index=False)
    again = load_spec(project / "wine.yaml")
    assert again.spec.trainable.data_version != sweep.spec.trainable.data_version
    assert again.digest != sweep.digest
    labelled = (
        (project / "wine.yaml").read_text().replace("epochs: 4", "epochs: 4\n  data_version: v7")
    )
    (project / "v7.yaml").write_text(labelled)
    assert load_spec(project / "v7.yaml").spec.trainable.data_version == "v7"


BAD_DATASETS = [
    ("{path: data/nope.parquet, target: cultivar}", "trainable.dataset.path", "no such file"),
    ("{path: data/wine.parquet, target: label}", "trainable.dataset.target", "no such column"),
    ("{path: data/wine.parquet}", "trainable.dataset.target", "a table needs its label column"),
    ("{path: data/wine.parquet, target: cultivar, features: [alcohol, nope]}",
     "trainable.dataset.features", "no such column(s) ['nope']"),
    ("{path: data/text.csv, target: c}", "trainable.dataset.features", "must be numeric"),
    ("{path: data/real.csv, target: c}", "trainable.dataset.target", "labels must be classes"),
    ("{path: data/wine.parquet, target: cultivar, colour: 1}", "trainable.dataset.colour",
     "unknown key"),
    ("{path: data/noxy.npz}", "trainable.dataset.path", "needs arrays 'x' and 'y'"),
    ("{path: data/wine.xlsx, target: cultivar}", "trainable.dataset.path", "must end in one of"),
    ("mnist", "trainable.dataset", "must be one of"),
]  # fmt: skip


@pytest.mark.cli
@pytest.mark.parametrize(("dataset", "field", "message"), BAD_DATASETS)
def test_a_bad_data_file_is_one_line_naming_the_field_and_nothing_is_written(
    project: Path, dataset: str, field: str, message: str
) -> None:
    data = project / "data"
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": list("wxyz"), "c": [0, 1, 0, 1]}).to_csv(
        data / "text.csv", index=False
    )
    pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "c": [0.5, 1.5, 0.5, 1.5]}).to_csv(
        data / "real.csv", index=False
    )
    np.savez(data / "noxy.npz", features=np.zeros((4, 2)), labels=np.arange(4))
    spec = SPEC.replace("{path: data/wine.parquet, target: cultivar}", dataset)
    (project / "bad.yaml").write_text(spec)
    assert_refused(project, "bad.yaml", field, message)


def test_validate_names_the_file_and_its_version(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(project / "wine.yaml")]) == 0
    out = capsys.readouterr().out
    digest = load_spec(project / "wine.yaml").spec.trainable.data_version
    assert f"bn_mlp on {project / 'data' / 'wine.parquet'} (data version {digest})" in out


def test_load_spec_outside_its_directory_with_parse_spec_text_uses_the_cwd(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sweeps import parse_spec

    monkeypatch.chdir(project / "data")
    with pytest.raises(SpecError, match=r"trainable\.dataset\.path: no such file"):
        parse_spec(SPEC)  # text without a file: relative to the working directory
    monkeypatch.chdir(project)
    assert parse_spec(SPEC).data_file is not None


@pytest.mark.ray
def test_a_table_with_string_labels_trains_and_a_rewritten_file_is_drift(
    ray_local: None, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = project / "out"
    sweep = load_spec(project / "wine.yaml")
    outcome = run_sweep(sweep, out)
    trials = load_trials(out, "wine")
    assert len(trials) == 4 and set(trials["status"]) == {"ok"}
    assert set(trials["dataset"]) == {str(project / "data" / "wine.parquet")}
    assert set(trials["data_version"]) == {sweep.spec.trainable.data_version}
    assert outcome.best is not None and outcome.best["val_accuracy"] > 0.8  # 3 classes

    # The same table written another way: a new version of the same data, kept without drift,
    # and best.json says which version it was last checked on.
    _wine().to_parquet(project / "data" / "wine.parquet", index=False, compression="gzip")
    capsys.readouterr()
    assert main(["retune", str(project / "wine.yaml"), "--results", str(out)]) == 0
    assert "drift: no" in capsys.readouterr().out
    same_data = load_spec(project / "wine.yaml").spec.trainable.data_version
    assert same_data != sweep.spec.trainable.data_version
    assert json.loads((out / "wine" / "best.json").read_text())["data_version"] == same_data

    _wine(shuffle_labels=True).to_parquet(project / "data" / "wine.parquet", index=False)
    capsys.readouterr()
    code = main(["retune", str(project / "wine.yaml"), "--results", str(out)])
    report = capsys.readouterr().out
    assert code == 0
    assert "drift: YES" in report
    new_version = load_spec(project / "wine.yaml").spec.trainable.data_version
    assert main(["best", str(project / "wine.yaml"), "--results", str(out)]) == 0
    best = json.loads(capsys.readouterr().out)
    assert best["data_version"] == new_version != same_data
    assert os.path.exists(out / "wine" / "best.json")


def test_a_table_on_s3_is_read_through_pyarrow_and_versioned(
    s3_bucket: str, tmp_path: Path
) -> None:
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from sweeps import parse_spec
    from trainables import load_dataset

    fs, key = pafs.FileSystem.from_uri(f"{s3_bucket}/tables/wine.parquet")
    pq.write_table(pa.Table.from_pandas(_wine(), preserve_index=False), key, filesystem=fs)
    spec = SPEC.replace("data/wine.parquet", f"{s3_bucket}/tables/wine.parquet")
    sweep = parse_spec(spec)
    assert sweep.data_file is not None and sweep.data_file.path.startswith("s3://")
    assert sweep.spec.trainable.data_version == file_digest(sweep.data_file)
    data = load_dataset(sweep.dataset, seed=0, data_version="x")
    assert data.n_classes == 3 and data.n_features == 13
    with pytest.raises(SpecError, match=r"trainable\.dataset\.path: no such file"):
        parse_spec(SPEC.replace("data/wine.parquet", f"{s3_bucket}/tables/gone.parquet"))
