"""The Parquet results store: the one source of truth for a sweep.

Layout (`SweepLayout`), which pandas, pyarrow, polars and DuckDB each read as one table::

    <results>/<sweep>/<table>/run-<run_id>/round-<r>/part-<uuid>.parquet
    <results>/<sweep>/<table>/columns.parquet     no rows; every column the table has had

``run_id`` and ``round`` are columns of every file; the folder names are not hive keys, so no
reader adds (or clashes with) a column of its own. ``<results>`` is a local directory or an
``s3://bucket/prefix`` (`analysis._fs`), with the same layout. Every file appears atomically:
locally it is written under a name starting with "." (which dataset readers skip) and renamed
into place; on an object store it is one upload of the whole file. Either way a reader never
sees a partial file. Each table keeps a stored schema in
``<results>/<sweep>/_schema/<table>.json``; a later write may add columns (they read as nulls in
older files) but may not change a column's type. ``columns.parquet`` follows the stored schema
and sorts before every part: readers that take the first file's schema see every column.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from analysis._errors import ResultsError
from analysis._fs import (
    ResultsLike,
    ResultsPath,
    results_path,
    write_bytes_atomically,
    write_text_atomically,
)
from analysis._layout import SweepLayout

__all__ = ["TABLES", "ResultsStore"]

TABLES = ("trials", "epochs", "rounds", "events")


class ResultsStore:
    """Writes one sweep's tables; every call produces whole files or nothing."""

    def __init__(self, results_dir: ResultsLike, sweep: str) -> None:
        self.root = results_path(results_dir)
        self.sweep = sweep
        self.sweep_dir = self.root / sweep
        self.layout = SweepLayout(self.sweep_dir)

    def table_dir(self, table: str) -> ResultsPath:
        if table not in TABLES:
            raise ValueError(f"unknown table {table!r}; valid tables: {', '.join(TABLES)}")
        return self.layout.table(table)

    def write(
        self,
        table: str,
        rows: Sequence[Mapping[str, object]],
        schema: pa.Schema,
        *,
        run_id: str,
        round_index: int,
    ) -> ResultsPath | None:
        """Write ``rows`` as one new Parquet file; returns its path (None for no rows)."""
        if not rows:
            return None
        self.table_dir(table)  # a known table
        schema = self._merge_schema(table, schema)
        columns = {field.name: [row.get(field.name) for row in rows] for field in schema}
        arrow_table = pa.table(columns, schema=schema)
        directory = self.layout.partition(table, run_id, round_index)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / self.layout.part_name(uuid.uuid4().hex)
        _write_parquet(path, arrow_table)
        return path

    def parts(self, table: str, run_id: str, round_index: int | None = None) -> list[ResultsPath]:
        """The part files `run_id` wrote to `table` (in round `round_index`), sorted."""
        pattern = self.layout.parts_pattern(run_id, round_index)
        found: list[ResultsPath] = list(self.table_dir(table).glob(pattern))
        return sorted(found, key=str)

    def write_columns(self, table: str, schema: pa.Schema) -> None:
        """Rewrite ``<table>/columns.parquet``: no rows, the columns of `schema`."""
        path = self.layout.columns(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_parquet(path, schema.empty_table())

    def stored_schema(self, table: str) -> pa.Schema | None:
        path = self.layout.schema(table)
        if not path.exists():
            return None
        return schema_from_json(path.read_text())

    def _merge_schema(self, table: str, schema: pa.Schema) -> pa.Schema:
        """Promote the stored schema with new columns; a changed column type is refused."""
        stored = self.stored_schema(table)
        if stored is None:
            merged = schema
        else:
            for field in schema:
                index = stored.get_field_index(field.name)
                if index >= 0 and not stored.field(index).type.equals(field.type):
                    raise ResultsError(
                        f"{table}.{field.name}",
                        str(field.type),
                        f"column type differs from the stored schema ({stored.field(index).type})",
                    )
            extra = [field for field in schema if stored.get_field_index(field.name) < 0]
            merged = pa.schema([*stored, *extra])
            if not extra:
                return merged
        # The columns file first: a crash between the two leaves it a superset of the stored
        # schema, which every file's columns are a subset of, never the other way round.
        self.write_columns(table, merged)
        path = self.layout.schema(table)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, schema_to_json(merged))
        return merged


def _write_parquet(path: ResultsPath, table: pa.Table) -> None:
    """Serialised first, then written in one go: one upload on an object store."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    write_bytes_atomically(path, memoryview(sink.getvalue()))


def schema_to_json(schema: pa.Schema) -> str:
    return json.dumps(
        [{"name": f.name, "type": str(f.type)} for f in schema], indent=1, sort_keys=False
    )


_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "large_string": pa.large_string(),
    "double": pa.float64(),
    "float": pa.float32(),
    "int64": pa.int64(),
    "int32": pa.int32(),
    "bool": pa.bool_(),
    "timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"),
}


def schema_from_json(text: str) -> pa.Schema:
    return pa.schema([pa.field(item["name"], _TYPES[item["type"]]) for item in json.loads(text)])
