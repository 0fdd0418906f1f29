"""Results in an object store (moto's local S3): the same rows, files and errors as a directory."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from _readers import READERS, check_reads_everything

from analysis import (
    ObjectPath,
    ResultsError,
    ResultsStore,
    compact,
    load_epochs,
    load_space,
    load_table,
    load_trials,
    results_path,
    sweeps_in,
    upgrade_layout,
    write_report,
)

SCHEMA = pa.schema([("sweep", pa.string()), ("run_id", pa.string()), ("round", pa.int32()),
                    ("trial_id", pa.string()), ("lr", pa.float64())])  # fmt: skip
WIDER = SCHEMA.append(pa.field("node", pa.string()))


def _rows(run_id: str, n: int, start: int = 0, **extra: object) -> list[dict[str, object]]:
    return [
        {"sweep": "s", "run_id": run_id, "round": 0, "trial_id": f"t{i}", "lr": 10.0**-i, **extra}
        for i in range(start, start + n)
    ]


def _write_two_runs(root: str | Path) -> None:
    store = ResultsStore(root, "s")
    store.write("trials", _rows("r1", 3), SCHEMA, run_id="r1", round_index=0)
    store.write("trials", _rows("r2", 2, start=3, node="n1"), WIDER, run_id="r2", round_index=1)


def _objects(uri: str) -> dict[str, int]:
    """Every object in the bucket (key -> size), directory markers included."""
    root = results_path(uri)
    assert isinstance(root, ObjectPath)
    bucket = root.path.split("/")[0]
    infos = root.fs.get_file_info(pafs.FileSelector(bucket, recursive=True))
    return {i.path: i.size for i in infos if i.type == pafs.FileType.File}


# A sweep an older caviar wrote (hive `run=/round=` folders), and its legacy partition folders.
FIXTURE = Path(__file__).parents[1] / "fixtures" / "old_layout" / "store"
OLD_SWEEP, LEGACY_PARTITIONS = "old-layout", 9


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("trial_id").reset_index(drop=True)


def test_rows_and_schema_on_s3_equal_those_of_a_local_directory(
    tmp_path: Path, s3_bucket: str
) -> None:
    uri = f"{s3_bucket}/results"
    _write_two_runs(tmp_path)
    _write_two_runs(uri)
    local, remote = load_trials(tmp_path, "s"), load_trials(uri, "s")
    pd.testing.assert_frame_equal(_sorted(remote), _sorted(local))
    # the second run's new column promoted the stored schema; older rows read it as null
    assert list(_sorted(remote)["node"].isna()) == [True, True, True, False, False]
    assert sweeps_in(uri) == sweeps_in(tmp_path) == ["s"]
    stored = results_path(uri) / "s" / "_schema" / "trials.json"
    assert json.loads(stored.read_text()) == json.loads(
        (tmp_path / "s" / "_schema" / "trials.json").read_text()
    )
    assert sorted(load_table(uri, "trials")["trial_id"]) == [f"t{i}" for i in range(5)]


def test_every_object_is_a_whole_parquet_part_or_the_table_schema(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/results"
    _write_two_runs(uri)
    bucket = s3_bucket.removeprefix("s3://")
    name = r"part-[0-9a-f]{32}\.parquet"
    part = re.compile(rf"{bucket}/results/s/trials/run-r[12]/round-[01]/{name}")
    objects = _objects(uri)
    parts = [key for key in objects if part.fullmatch(key)]
    assert len(parts) == 2
    assert set(objects) - set(parts) == {
        f"{bucket}/results/s/_schema/trials.json",
        f"{bucket}/results/s/trials/columns.parquet",  # no rows: every column, for other readers
    }
    root = results_path(uri)
    assert isinstance(root, ObjectPath)
    for key in parts:  # no temporaries, nothing partial: each object is a complete file
        assert pq.read_metadata(key, filesystem=root.fs).num_rows in (2, 3)


def test_readers_skip_dot_and_underscore_objects(s3_bucket: str) -> None:
    uri = f"{s3_bucket}/results"
    _write_two_runs(uri)
    partition = results_path(uri) / "s" / "trials" / "run-r1" / "round-0"
    assert isinstance(partition, ObjectPath)
    (partition / ".part-crashed.parquet.tmp").write_bytes(b"PAR1 half a file")
    (partition / "_junk.parquet").write_bytes(b"not parquet")
    assert len(load_trials(uri, "s")) == 5


def test_epochs_space_and_report_read_from_s3(s3_bucket: str, synth) -> None:
    uri = f"{s3_bucket}/results"
    synth.write_sweep(results_path(uri), n=30, per_file=10)
    assert len(load_trials(uri, "s")) == 30 and len(load_epochs(uri, "s")) == 90
    assert load_space(uri, "s") == synth.SPACE
    assert load_trials(uri, "s").attrs["space"] == synth.SPACE
    path = write_report(uri, sweep="s")  # default: beside the results, in the bucket
    assert str(path) == f"{uri}/s/report.html"
    assert "data:image/png;base64," in path.read_text()


def test_the_endpoint_may_be_given_in_the_uri_query(
    s3_bucket: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    host = moto_endpoint.removeprefix("http://")
    uri = f"{s3_bucket}/q?endpoint_override={host}&scheme=http"
    _write_two_runs(uri)
    assert len(load_trials(uri, "s")) == 5
    root = results_path(uri)
    assert isinstance(root, ObjectPath) and results_path(root.uri) == root


def test_missing_prefix_other_schemes_and_compaction_are_one_line_errors(s3_bucket: str) -> None:
    with pytest.raises(ResultsError, match="no such directory"):
        load_trials(f"{s3_bucket}/absent")
    with pytest.raises(ResultsError, match=r"results_dir: only a local path or s3://"):
        load_trials("gs://bucket/results")
    uri = f"{s3_bucket}/results"
    _write_two_runs(uri)
    with pytest.raises(ResultsError, match="compaction needs a local results directory"):
        compact(uri, "s")


def _upload_old_sweep(uri: str) -> ObjectPath:
    root = results_path(uri)
    assert isinstance(root, ObjectPath)
    pafs.copy_files(str(FIXTURE), root.path, destination_filesystem=root.fs)
    return root / OLD_SWEEP


@pytest.mark.parametrize("reader", READERS)
def test_each_reader_reads_a_real_sweep_moved_to_todays_layout_in_a_bucket(
    s3_bucket: str, reader: str
) -> None:
    uri = f"{s3_bucket}/results"
    sweep = _upload_old_sweep(uri)
    before = {t: _by_key(load_table(uri, t, OLD_SWEEP)) for t in ("trials", "epochs", "rounds")}
    assert upgrade_layout(sweep) == LEGACY_PARTITIONS
    # copied and deleted, with no empty-folder marker left where the old folders were
    assert not [key for key in _objects(uri) if "=" in key]
    infos = sweep.fs.get_file_info(pafs.FileSelector(sweep.path, recursive=True))
    assert not [i.path for i in infos if "=" in i.path]
    for table, expected in before.items():
        pd.testing.assert_frame_equal(_by_key(load_table(uri, table, OLD_SWEEP)), expected)
        check_reads_everything(reader, f"{sweep}/{table}", expected)


def test_a_part_seen_twice_while_it_moves_is_read_once(s3_bucket: str) -> None:
    """Moving to today's layout in a bucket copies each part, then deletes the old key."""
    uri = f"{s3_bucket}/results"
    sweep = _upload_old_sweep(uri)
    old = sorted(k for k in _objects(uri) if "/trials/run=" in k)[0]
    copy = old.replace("run=", "run-").replace("round=", "round-")
    sweep.fs.copy_file(old, copy)
    assert len(load_trials(uri, OLD_SWEEP)) == 6


def _by_key(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in ("run_id", "round", "trial_id", "epoch", "parameter") if c in df]
    return df.sort_values(keys).reset_index(drop=True)
