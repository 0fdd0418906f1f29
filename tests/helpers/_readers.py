"""The five readers docs/results.md promises, each called on a table's folder as that page shows.

`read` returns what the reader returns, as pandas; `check_reads_everything` compares it with
`analysis.load_table`'s rows. On ``s3://`` DuckDB reads through a registered fsspec filesystem
(pyarrow's, the one caviar uses) rather than its `httpfs` extension, which is a download the
tests cannot make; the query is the same.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from fsspec.implementations.arrow import ArrowFSWrapper

READERS = ("pandas", "pyarrow.parquet", "pyarrow.dataset", "polars", "duckdb")


class _S3(ArrowFSWrapper):
    protocol = "s3"


def read(reader: str, folder: str) -> pd.DataFrame:
    """`folder` is ``<results>/<sweep>/<table>``, a local path or an ``s3://`` URI."""
    files = f"{folder}/**/*.parquet"
    if reader == "pandas":
        return pd.read_parquet(folder)
    if reader == "pyarrow.parquet":
        return pq.read_table(folder).to_pandas()
    if reader == "pyarrow.dataset":
        return ds.dataset(folder, partitioning="hive").to_table().to_pandas()
    if reader == "polars":
        frame = pl.scan_parquet(files, hive_partitioning=True, missing_columns="insert")
        return frame.collect().to_pandas()
    if reader == "duckdb":
        con = duckdb.connect()
        if folder.startswith("s3://"):
            con.register_filesystem(_S3(pafs.FileSystem.from_uri(folder)[0]))
        query = f"select * from read_parquet('{files}', hive_partitioning=true, union_by_name=true)"
        return con.sql(query).df()
    raise ValueError(reader)


def check_reads_everything(reader: str, folder: str, expected: pd.DataFrame) -> pd.DataFrame:
    """Every row and column `expected` has, the same nulls, `round` an integer (not a category)
    whose max is a number, and each run's rows under its own `run_id`."""
    df = read(reader, folder)
    assert len(df) == len(expected) > 0, (reader, len(df), len(expected))
    assert sorted(df.columns) == sorted(expected.columns), reader
    assert pd.api.types.is_integer_dtype(df["round"]), (reader, df["round"].dtype)
    assert df["round"].max() == expected["round"].max()
    assert df["run_id"].value_counts().to_dict() == expected["run_id"].value_counts().to_dict()
    assert df.isna().sum().to_dict() == expected.isna().sum().to_dict(), reader
    return df
