"""The results store: atomic files, a stored schema that only grows, readable by other readers."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from analysis import ResultsError, ResultsStore, load_table, load_trials, sweeps_in

SCHEMA = pa.schema([("sweep", pa.string()), ("run_id", pa.string()), ("round", pa.int32()),
                    ("trial_id", pa.string()), ("lr", pa.float64())])  # fmt: skip


def _rows(run_id: str, n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {"sweep": "s", "run_id": run_id, "round": 0, "trial_id": f"t{i}", "lr": 10.0**-i}
        for i in range(start, start + n)
    ]


def test_write_places_one_partitioned_file_and_no_temporaries(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    path = store.write("trials", _rows("r1", 3), SCHEMA, run_id="r1", round_index=0)
    assert path is not None
    # not hive keys (run=/round=): `run_id` and `round` are columns, docs/results.md says why
    assert path.parent == tmp_path / "s" / "trials" / "run-r1" / "round-0"
    assert path.name.startswith("part-") and path.suffix == ".parquet"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert sorted(p.name for p in (tmp_path / "s" / "trials").iterdir()) == [
        "columns.parquet",
        "run-r1",
    ]


def test_no_rows_writes_nothing(tmp_path: Path) -> None:
    assert (
        ResultsStore(tmp_path, "s").write("trials", [], SCHEMA, run_id="r", round_index=0) is None
    )
    assert not (tmp_path / "s").exists()


def test_load_trials_reads_all_runs_with_fixed_dtypes(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    store.write("trials", _rows("r1", 3), SCHEMA, run_id="r1", round_index=0)
    store.write("trials", _rows("r2", 2, start=3), SCHEMA, run_id="r2", round_index=0)
    df = load_trials(tmp_path, "s")
    assert len(df) == 5
    assert sorted(df["trial_id"]) == [f"t{i}" for i in range(5)]
    assert "run" not in df.columns  # folder names add no column; run_id is the files' own
    assert str(df["lr"].dtype) == "float64"
    assert str(df["round"].dtype) == "int32"
    assert set(df["run_id"]) == {"r1", "r2"}


def test_new_columns_promote_and_read_as_null_in_older_files(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    store.write("trials", _rows("r1", 2), SCHEMA, run_id="r1", round_index=0)
    wider = SCHEMA.append(pa.field("node", pa.string()))
    rows = [dict(r, node="n1") for r in _rows("r2", 1, start=2)]
    store.write("trials", rows, wider, run_id="r2", round_index=0)
    df = load_trials(tmp_path, "s").sort_values("trial_id")
    assert list(df["node"].isna()) == [True, True, False]


def test_changing_a_column_type_is_refused(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    store.write("trials", _rows("r1", 1), SCHEMA, run_id="r1", round_index=0)
    bad = pa.schema([f if f.name != "lr" else pa.field("lr", pa.string()) for f in SCHEMA])
    with pytest.raises(ResultsError, match=r"trials\.lr"):
        store.write("trials", [{"lr": "x"}], bad, run_id="r1", round_index=0)


def test_duckdb_reads_the_same_rows(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    store.write("trials", _rows("r1", 3), SCHEMA, run_id="r1", round_index=0)
    second = [{**row, "round": 1} for row in _rows("r2", 2, start=3)]
    store.write("trials", second, SCHEMA, run_id="r2", round_index=1)
    glob = str(tmp_path / "s" / "trials" / "**" / "*.parquet")
    rows = duckdb.sql(
        f"select run_id, round, count(*) from read_parquet('{glob}', hive_partitioning=true) "
        "group by all order by run_id"
    ).fetchall()
    assert rows == [("r1", 0, 3), ("r2", 1, 2)]


def test_readers_ignore_a_leftover_temporary_file(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    path = store.write("trials", _rows("r1", 2), SCHEMA, run_id="r1", round_index=0)
    assert path is not None
    (path.parent / ".part-crashed.parquet.tmp").write_bytes(b"PAR1 half a file")
    assert len(load_trials(tmp_path, "s")) == 2


def test_missing_directory_and_sweep_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(ResultsError, match="no such directory"):
        load_trials(tmp_path / "absent")
    with pytest.raises(ResultsError, match="no such sweep"):
        load_trials(tmp_path, "nothing")


def test_sweep_none_concatenates_every_sweep(tmp_path: Path) -> None:
    for name in ("a", "b"):
        rows = [dict(r, sweep=name) for r in _rows("r", 2)]
        ResultsStore(tmp_path, name).write("trials", rows, SCHEMA, run_id="r", round_index=0)
    assert sweeps_in(tmp_path) == ["a", "b"]
    assert sorted(load_table(tmp_path, "trials")["sweep"]) == ["a", "a", "b", "b"]


def test_parts_lists_one_runs_files_of_one_round_or_all(tmp_path: Path) -> None:
    store = ResultsStore(tmp_path, "s")
    a = store.write("trials", _rows("r1", 1), SCHEMA, run_id="r1", round_index=0)
    b = store.write("trials", _rows("r1", 1, start=1), SCHEMA, run_id="r1", round_index=1)
    store.write("trials", _rows("r2", 1, start=2), SCHEMA, run_id="r2", round_index=0)
    assert store.parts("trials", "r1") == sorted([a, b], key=str)
    assert store.parts("trials", "r1", 1) == [b]
    assert store.parts("trials", "r3") == [] and store.parts("epochs", "r1") == []
