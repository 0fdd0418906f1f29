"""Other readers read a sweep's table folders as they are: pandas, pyarrow, polars and DuckDB.

The sweep is a real one: the folder an older caviar wrote (tests/fixtures/old_layout, hive
`run=/round=` folders), moved to today's layout by `upgrade_layout`, then grown by a later run
whose trials report a metric of their own (a column the earlier files lack).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _readers import READERS, check_reads_everything

from analysis import TABLES, ResultsStore, load_table, upgrade_layout

FIXTURE = Path(__file__).parents[1] / "fixtures" / "old_layout" / "store"
SWEEP = "old-layout"
LEGACY_PARTITIONS = 9  # trials 3, epochs 3, rounds 2, events 1


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("run_id", "round", "trial_id", "epoch", "parameter") if c in df]
    return df.sort_values(keys).reset_index(drop=True)


@pytest.fixture(scope="module")
def upgraded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("readers") / "store"
    shutil.copytree(FIXTURE, root)
    assert upgrade_layout(root / SWEEP) == LEGACY_PARTITIONS
    store = ResultsStore(root, SWEEP)
    first = sorted((root / SWEEP / "trials").rglob("part-*.parquet"))[0]
    row = {**pq.read_table(first).to_pylist()[0], "run_id": "later", "trial_id": "t9", "f1": 0.5}
    schema = store.stored_schema("trials")
    assert schema is not None
    store.write("trials", [row], schema.append(pa.field("f1", pa.float64())), run_id="later",
                round_index=0)  # fmt: skip
    return root


@pytest.mark.parametrize("table", ["trials", "epochs", "rounds", "events"])
@pytest.mark.parametrize("reader", READERS)
def test_each_reader_reads_every_row_and_column_of_a_real_sweep(
    upgraded: Path, reader: str, table: str
) -> None:
    expected = load_table(upgraded, table, SWEEP)
    df = check_reads_everything(reader, str(upgraded / SWEEP / table), expected)
    if table == "trials":  # the later run's column: there in its row, null in the others
        assert df["f1"].notna().sum() == 1 and len(df) == 7
        assert str(df["round"].dtype) == "int32" and df["round"].max() == 1


def test_an_old_sweep_is_moved_once_to_todays_layout_with_the_same_rows(tmp_path: Path) -> None:
    root = tmp_path / "store"
    shutil.copytree(FIXTURE, root)
    with pytest.raises(pa.ArrowTypeError, match="round"):  # why the layout changed
        pd.read_parquet(root / SWEEP / "trials")
    before = {table: _sorted(load_table(root, table, SWEEP)) for table in TABLES}
    # a move a crash left half done: one file already in its new folder
    old = next((root / SWEEP / "epochs").glob("run=*/round=0"))
    new = old.parent.parent / old.parent.name.replace("=", "-") / "round-0"
    new.mkdir(parents=True)
    moved = sorted(old.iterdir())[0]
    moved.rename(new / moved.name)

    assert upgrade_layout(root / SWEEP) == LEGACY_PARTITIONS
    assert not [p for p in root.rglob("*") if "=" in p.name]
    for table in TABLES:
        pd.testing.assert_frame_equal(_sorted(load_table(root, table, SWEEP)), before[table])
        assert (root / SWEEP / table / "columns.parquet").is_file()
        assert len(pd.read_parquet(root / SWEEP / table)) == len(before[table])
    assert upgrade_layout(root / SWEEP) == 0


def test_the_loaders_read_an_old_sweep_as_it_is(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "store")
    trials = load_table(tmp_path / "store", "trials", SWEEP)
    assert len(trials) == 6 and str(trials["round"].dtype) == "int32"
    assert sorted(trials["round"]) == [0, 0, 0, 0, 1, 1]
    assert len(load_table(tmp_path / "store", "rounds", SWEEP)) == 2
    assert list(load_table(tmp_path / "store", "events", SWEEP)["kind"]) == ["retune"]
    assert not list((tmp_path / "store").rglob("run-*"))  # reading moves nothing
