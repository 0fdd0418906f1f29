"""Benchmark: `analysis.load_trials` against a bare pyarrow.dataset read of the same files.

    .venv/bin/python bench/load_results.py                # 1,000,000 rows in 200 files
    .venv/bin/python bench/load_results.py --rows 200000 --files 50 --repeat 3

Writes a synthetic `trials` table with the real column set (docs/results.md) into a temporary
results directory: the store's partitions run-<id>/round-<r>, a stored schema, and a column
(`node`) that only the later half of the files has, so the loader's schema unification is
exercised (the bare read takes its schema from the first file; no `columns.parquet` is written
here, so it may not return that column at all).
Then times, interleaved in the same process, `load_trials` and
``pyarrow.dataset.dataset(dir, partitioning="hive").to_table().to_pandas()``; then the same
without the stored schema (the loader then unifies the Parquet footers), and after `compact`
merged each partition into one file. Prints the figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

import analysis
from analysis._store import schema_to_json

SWEEP = "bench"


def _schema(with_node: bool) -> pa.Schema:
    fields = [("sweep", pa.string()), ("run_id", pa.string()), ("round", pa.int32()),
              ("trial_id", pa.string()), ("config_index", pa.int64()), ("origin", pa.string()),
              ("status", pa.string())]  # fmt: skip
    fields += [(n, pa.float64()) for n in ("lr", "beta", "beta1", "beta2", "eps", "weight_decay")]
    fields += [("lr_decay", pa.string()), ("decay_rate", pa.float64())]
    fields += [(n, pa.int64()) for n in ("hidden", "depth", "batch_size")]
    fields += [("batchnorm", pa.bool_()), ("bn_momentum", pa.float64()), ("optimizer", pa.string())]
    fields += [("dataset", pa.string()), ("epochs", pa.int64())]
    fields += [(n, pa.float64()) for n in ("train_loss", "val_loss", "val_accuracy",
                                           "best_val_accuracy", "best_val_loss")]  # fmt: skip
    utc = pa.timestamp("us", tz="UTC")
    fields += [("epochs_done", pa.int64()), ("seed", pa.int64()), ("started_at", utc),
               ("ended_at", utc), ("duration_s", pa.float64())]  # fmt: skip
    if with_node:
        fields.append(("node", pa.string()))
    fields.append(("error", pa.string()))
    return pa.schema(fields)


def _file_table(rng: np.random.Generator, start: int, n: int, run: str, rnd: int,
                with_node: bool) -> pa.Table:  # fmt: skip
    index = np.arange(start, start + n)
    now = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1e6)
    columns: dict[str, object] = {
        "sweep": [SWEEP] * n, "run_id": [run] * n, "round": np.full(n, rnd, np.int32),
        "trial_id": [f"t{i:07d}" for i in index], "config_index": index,
        "origin": ["random"] * n, "status": rng.choice(["ok", "ok", "ok", "diverged"], n),
        "lr": 10 ** rng.uniform(-4, 0, n), "beta": 1 - 10 ** rng.uniform(-3, -1, n),
        "beta1": np.full(n, 0.9), "beta2": np.full(n, 0.999), "eps": np.full(n, 1e-8),
        "weight_decay": np.zeros(n), "lr_decay": ["none"] * n, "decay_rate": np.zeros(n),
        "hidden": rng.integers(16, 257, n), "depth": np.full(n, 2),
        "batch_size": rng.choice([32, 64, 128, 256], n), "batchnorm": rng.random(n) < 0.5,
        "bn_momentum": np.full(n, 0.1), "optimizer": ["momentum"] * n,
        "dataset": ["digits"] * n, "epochs": np.full(n, 20),
        "train_loss": rng.random(n), "val_loss": rng.random(n), "val_accuracy": rng.random(n),
        "best_val_accuracy": rng.random(n), "best_val_loss": rng.random(n),
        "epochs_done": np.full(n, 20), "seed": index,
        "started_at": now + index * 1_000_000, "ended_at": now + index * 1_000_000 + 5_000_000,
        "duration_s": rng.uniform(1, 10, n), "node": ["127.0.0.1"] * n, "error": [None] * n,
    }  # fmt: skip
    schema = _schema(with_node)
    return pa.table({f.name: pa.array(columns[f.name], f.type) for f in schema}, schema=schema)


def write_dataset(root: Path, rows: int, files: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    per_file = rows // files
    for i in range(files):
        run, rnd = f"run{i * 4 // files}", (i % 10)  # 4 runs x 10 rounds
        directory = Path(str(analysis.SweepLayout(root / SWEEP).partition("trials", run, rnd)))
        directory.mkdir(parents=True, exist_ok=True)
        n = per_file if i < files - 1 else rows - per_file * (files - 1)
        table = _file_table(rng, i * per_file, n, run, rnd, with_node=i >= files // 2)
        pq.write_table(table, directory / f"part-{i:05d}.parquet")
    (root / SWEEP / "_schema").mkdir(parents=True, exist_ok=True)
    (root / SWEEP / "_schema" / "trials.json").write_text(schema_to_json(_schema(True)))


def bare(root: Path) -> int:
    table_dir = root / SWEEP / "trials"
    return len(ds.dataset(table_dir, format="parquet", partitioning="hive").to_table().to_pandas())


def ours(root: Path) -> int:
    return len(analysis.load_trials(root, SWEEP))


def _timed(fn: object, root: Path) -> float:
    start = time.perf_counter()
    fn(root)  # type: ignore[operator]
    return time.perf_counter() - start


def compare(root: Path, repeat: int, label: str) -> dict[str, float]:
    assert bare(root) == ours(root)  # same rows, and warms the page cache for both
    # The bare read takes its schema from one file: it may miss a column added later.
    bare_names = set(ds.dataset(root / SWEEP / "trials", partitioning="hive").schema.names)
    missing = sorted(set(analysis.load_trials(root, SWEEP).columns) - bare_names)
    print(f"{label}: columns the bare read does not return: {missing or 'none'}")
    times: dict[str, list[float]] = {"bare": [], "load_trials": []}
    for _ in range(repeat):  # interleaved so that noise hits both alike
        times["bare"].append(_timed(bare, root))
        times["load_trials"].append(_timed(ours, root))
    medians = {k: statistics.median(v) for k, v in times.items()}
    ratio = medians["load_trials"] / medians["bare"]
    print(f"{label}: bare pyarrow median {medians['bare']:.3f} s (min {min(times['bare']):.3f}),"
          f" load_trials median {medians['load_trials']:.3f} s "
          f"(min {min(times['load_trials']):.3f}); ratio {ratio:.2f}x")  # fmt: skip
    return medians | {"ratio": ratio}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="caviar-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        write_dataset(root, args.rows, args.files)
        files = len(list((root / SWEEP / "trials").rglob("*.parquet")))
        print(f"wrote {args.rows:,} rows in {files} files ({len(_schema(True))} columns) "
              f"in {time.perf_counter() - start:.1f} s")  # fmt: skip
        before = compare(root, args.repeat, f"{files} files")
        stored = root / SWEEP / "_schema" / "trials.json"
        kept = stored.read_text()
        stored.unlink()
        footers = compare(root, args.repeat, f"{files} files, no stored schema (footers)")
        stored.write_text(kept)
        start = time.perf_counter()
        merged = analysis.compact(root, SWEEP, "trials")
        left = len(list((root / SWEEP / "trials").rglob("*.parquet")))
        print(f"compact: {files} files -> {left} in {time.perf_counter() - start:.1f} s "
              f"({len(merged)} partitions merged)")  # fmt: skip
        after = compare(root, args.repeat, f"{left} files after compact")
        figures = {"stored_schema": before, "no_stored_schema": footers, "after_compact": after}
        print(json.dumps({"rows": args.rows, "files": files, **figures}, indent=1))


if __name__ == "__main__":
    main()
