"""Loading: schema unification with and without a stored schema, user errors, space and rounds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from analysis import (
    ResultsError,
    ResultsStore,
    load_epochs,
    load_rounds,
    load_space,
    load_trials,
)

BASE = pa.schema([("sweep", pa.string()), ("run_id", pa.string()), ("round", pa.int32()),
                  ("trial_id", pa.string()), ("lr", pa.float64())])  # fmt: skip


def _hand_written(root: Path, run: str, name: str, table: pa.Table) -> Path:
    """A part file as another tool would leave it: no stored schema next to it."""
    directory = root / "s" / "trials" / f"run={run}" / "round=0"
    directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, directory / name)
    return directory / name


def test_fixture_round_trips_every_row_and_epoch(results_dir: Path) -> None:
    trials = load_trials(results_dir, "s")
    assert len(trials) == 120
    assert trials["trial_id"].is_unique
    assert len(load_epochs(results_dir, "s")) == 360


def test_a_column_added_by_a_later_run_reads_as_null_before(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    old = [{"sweep": "s", "run_id": "r1", "round": 0, "trial_id": "a", "lr": 0.1}]
    store.write("trials", old, BASE, run_id="r1", round_index=0)
    wider = BASE.append(pa.field("weight_decay", pa.float64()))
    new = [dict(old[0], run_id="r2", trial_id="b", weight_decay=1e-4)]
    store.write("trials", new, wider, run_id="r2", round_index=0)
    df = load_trials(tmp_path, "s").set_index("trial_id")
    assert str(df["weight_decay"].dtype) == "float64"
    assert df["weight_decay"].isna().to_dict() == {"a": True, "b": False}


def test_without_a_stored_schema_the_file_footers_are_unified(tmp_path: Path) -> None:
    _hand_written(tmp_path, "r1", "a.parquet", pa.table({"trial_id": ["a"], "hidden": [64]}))
    _hand_written(
        tmp_path, "r2", "b.parquet",
        pa.table({"trial_id": ["b"], "hidden": [0.5], "node": ["n1"]}),
    )  # fmt: skip
    df = load_trials(tmp_path, "s").set_index("trial_id")
    assert str(df["hidden"].dtype) == "float64"  # int64 and double promote to double
    assert df.loc["a", "hidden"] == 64.0
    assert df["node"].isna().to_dict() == {"a": True, "b": False}


def test_a_corrupt_parquet_file_is_named_by_its_path(results_dir: Path) -> None:
    victim = sorted((results_dir / "s" / "trials").rglob("part-*.parquet"))[3]
    victim.write_bytes(b"PAR1 not really a parquet file")
    with pytest.raises(ResultsError) as error:
        load_trials(results_dir, "s")
    assert error.value.value == str(victim)
    assert "corrupt Parquet file" in str(error.value)


def test_a_corrupt_file_is_named_also_without_a_stored_schema(results_dir: Path) -> None:
    shutil.rmtree(results_dir / "s" / "_schema")
    victim = sorted((results_dir / "s" / "trials").rglob("part-*.parquet"))[0]
    victim.write_bytes(b"")
    with pytest.raises(ResultsError, match="corrupt Parquet file") as error:
        load_trials(results_dir, "s")
    assert error.value.value == str(victim)


def test_an_unknown_sweep_lists_the_known_ones(results_dir: Path) -> None:
    with pytest.raises(ResultsError, match=r"sweeps: s\)") as error:
        load_trials(results_dir, "nope")
    assert error.value.field == "sweep" and error.value.value == "nope"


def test_the_stored_space_is_read_and_attached(results_dir: Path, synth) -> None:
    assert load_space(results_dir, "s") == synth.SPACE
    assert load_trials(results_dir, "s").attrs["space"] == synth.SPACE


def test_a_broken_space_file_is_a_user_error(results_dir: Path) -> None:
    (results_dir / "s" / "_space.json").write_text("{not json")
    with pytest.raises(ResultsError, match=r"_space\.json"):
        load_space(results_dir, "s")
    (results_dir / "s" / "_space.json").write_text(json.dumps(["lr"]))
    with pytest.raises(ResultsError, match="mapping"):
        load_space(results_dir, "s")


def test_no_space_file_means_no_attribute(tmp_path: Path, synth) -> None:
    synth.write_sweep(tmp_path, space=None)
    assert load_space(tmp_path, "s") is None
    assert "space" not in load_trials(tmp_path, "s").attrs


def test_rounds_table_is_empty_until_written(results_dir: Path) -> None:
    assert load_rounds(results_dir, "s").empty
    schema = pa.schema([("round", pa.int32()), ("parameter", pa.string()),
                        ("low", pa.float64()), ("high", pa.float64())])  # fmt: skip
    rows = [{"round": 0, "parameter": "lr", "low": 1e-4, "high": 1.0},
            {"round": 1, "parameter": "lr", "low": 1e-3, "high": 0.1}]  # fmt: skip
    ResultsStore(results_dir, "s").write("rounds", rows, schema, run_id="r1", round_index=0)
    rounds = load_rounds(results_dir, "s")
    # Both rounds sit in the round=0 partition: the files' own `round` column wins.
    assert rounds[["round", "low"]].values.tolist() == [[0, 1e-4], [1, 1e-3]]


def test_files_without_a_round_column_take_it_from_the_path(tmp_path: Path) -> None:
    _hand_written(tmp_path, "r1", "a.parquet", pa.table({"trial_id": ["a"]}))
    df = load_trials(tmp_path, "s")
    assert df["round"].tolist() == [0] and str(df["round"].dtype) == "int32"


def test_a_file_whose_column_changed_type_is_named(results_dir: Path) -> None:
    victim = sorted((results_dir / "s" / "trials").rglob("part-*.parquet"))[1]
    table = pq.read_table(victim)
    index = table.schema.get_field_index("lr")
    pq.write_table(table.set_column(index, "lr", pa.array(["fast"] * len(table))), victim)
    with pytest.raises(ResultsError, match="column 'lr' is string here but double") as error:
        load_trials(results_dir, "s")
    assert error.value.value == str(victim)
