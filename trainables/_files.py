"""A user's own data: a Parquet or CSV table, or an `.npz` of arrays, local or on S3.

The data file is the user's, so every way it can be unusable (a missing column, text where
numbers belong, labels that are not classes) is a `HyperParameterError` naming the spec field
(`dataset.path`, `dataset.target`, ...) and the value, found when the spec is validated, before
anything runs. Labels, strings or integers, become classes 0..K-1 in sorted order; the sorted
labels travel with the arrays so the mapping can be recorded.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from pathlib import PurePosixPath
from typing import TypeGuard

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from trainables._hparams import HyperParameterError
from trainables._job_paths import local_path, portable_path

__all__ = [
    "FILE_FORMATS",
    "FileArrays",
    "FileSource",
    "file_digest",
    "read_file_arrays",
]

FILE_FORMATS = (".parquet", ".csv", ".npz")
_CONFIG_PREFIX = "file:"
# Past this many distinct labels a "class" column is almost surely a continuous target.
MAX_CLASSES = 1000


@dataclass(frozen=True)
class FileSource:
    """Where a user's data is and how to read it: `path` (absolute, or an s3:// URI), and for
    tables the `target` column and the `features` (None: every other column)."""

    path: str
    target: str | None = None
    features: tuple[str, ...] | None = None
    val_path: str | None = None

    @property
    def format(self) -> str:
        return PurePosixPath(self.path.split("?", 1)[0]).suffix.lower()

    def to_config(self) -> str:
        """The `dataset` value of a flat trial config: one string, so it hashes and caches."""
        fields: dict[str, object] = {
            "path": self.path, "target": self.target, "val_path": self.val_path,
        }  # fmt: skip
        fields["features"] = None if self.features is None else list(self.features)
        return _CONFIG_PREFIX + json.dumps(fields, sort_keys=True)

    @classmethod
    def from_config(cls, value: str) -> FileSource:
        fields = json.loads(value.removeprefix(_CONFIG_PREFIX))
        features = fields.get("features")
        return cls(
            path=fields["path"],
            target=fields.get("target"),
            features=None if features is None else tuple(features),
            val_path=fields.get("val_path"),
        )

    def portable(self) -> FileSource:
        """The same files, named so that every node of a submitted job finds its copy."""
        val_path = None if self.val_path is None else portable_path(self.val_path)
        return replace(self, path=portable_path(self.path), val_path=val_path)

    @staticmethod
    def is_config(value: object) -> TypeGuard[str]:
        return isinstance(value, str) and value.startswith(_CONFIG_PREFIX)

    @property
    def label(self) -> str:
        """What the `dataset` column of `trials` shows."""
        return self.path


@dataclass(frozen=True)
class FileArrays:
    """Unsplit float64 features (N, ...) and int64 classes, read-only; `classes` are the
    labels in class order."""

    x: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]


def _open(path: str, field: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in path:
        return pafs.LocalFileSystem(), local_path(path)
    try:  # credentials, region and endpoint from the AWS chain (AWS_ENDPOINT_URL), as results
        return pafs.FileSystem.from_uri(path)
    except (OSError, ValueError, TypeError) as exc:
        raise HyperParameterError(field, path, f"cannot open: {_first_line(exc)}") from None


def _check_is_file(fs: pafs.FileSystem, where: str, path: str, field: str) -> None:
    try:
        kind = fs.get_file_info(where).type
    except OSError as exc:
        raise HyperParameterError(field, path, f"cannot read: {_first_line(exc)}") from None
    if kind == pafs.FileType.NotFound:
        raise HyperParameterError(field, path, "no such file")
    if kind != pafs.FileType.File:
        raise HyperParameterError(field, path, "cannot read: is a directory, not a data file")


def _read_bytes(path: str, field: str) -> bytes:
    fs, where = _open(path, field)
    _check_is_file(fs, where, path, field)
    try:  # a missing file or a directory was refused above
        with fs.open_input_file(where) as handle:
            return bytes(handle.read())
    except OSError as exc:
        raise HyperParameterError(field, path, f"cannot read: {_first_line(exc)}") from None


def file_digest(source: FileSource) -> str:
    """A digest of the data files' bytes (and the validation file's): the `data_version` a
    file dataset gets by default, so a rewritten file is a new version."""
    digest = hashlib.sha256()
    for path, field in ((source.path, "dataset.path"), (source.val_path, "dataset.val_path")):
        if path is not None:
            digest.update(_read_bytes(path, field))
    return digest.hexdigest()[:16]


def read_file_arrays(source: FileSource) -> tuple[FileArrays, FileArrays | None]:
    """The training file's arrays and, with `val_path`, the validation file's, sharing one
    label-to-class mapping (the sorted labels of both)."""
    train = _read_raw(source, source.path, "dataset.path")
    val = (
        None if source.val_path is None else _read_raw(source, source.val_path, "dataset.val_path")
    )
    labels = train[1] if val is None else np.concatenate([train[1], val[1]])
    classes = _classes(labels, source)
    lookup = {label: index for index, label in enumerate(classes)}
    train_arrays = _as_arrays(train, classes, lookup)
    if val is None:
        return train_arrays, None
    if val[0].shape[1:] != train[0].shape[1:]:
        shapes = f"{val[0].shape[1:]}, the training file's {train[0].shape[1:]}"
        message = f"a sample's shape must match the training file's: got {shapes}"
        raise HyperParameterError("dataset.val_path", source.val_path, message)
    return train_arrays, _as_arrays(val, classes, lookup)


def _as_arrays(
    raw: tuple[np.ndarray, np.ndarray], classes: tuple[object, ...], lookup: dict[object, int]
) -> FileArrays:
    x, labels = raw
    y = np.fromiter((lookup[label] for label in labels.tolist()), dtype=np.int64, count=len(labels))
    x = np.ascontiguousarray(x, dtype=np.float64)
    x.setflags(write=False)
    y.setflags(write=False)
    return FileArrays(x, y, tuple(str(c) for c in classes))


def _classes(labels: np.ndarray, source: FileSource) -> tuple[object, ...]:
    field = "dataset.target" if source.format != ".npz" else "dataset.path"
    value = source.target if source.format != ".npz" else source.path
    if labels.dtype.kind == "f":
        if not np.all(np.isfinite(labels)) or not np.all(labels == np.round(labels)):
            raise HyperParameterError(
                field, value, "labels must be classes (integers or strings), not real numbers"
            )
        labels = labels.astype(np.int64)  # 1.0 and 1 are one key in the lookup
    classes = tuple(sorted(set(labels.tolist())))
    if len(classes) < 2:
        raise HyperParameterError(field, value, f"needs at least 2 classes, found {len(classes)}")
    if len(classes) > MAX_CLASSES:
        message = f"{len(classes)} distinct labels: a class label, not a continuous value?"
        raise HyperParameterError(field, value, message)
    return classes


def _read_raw(source: FileSource, path: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    kind = PurePosixPath(path.split("?", 1)[0]).suffix.lower()
    if kind not in FILE_FORMATS:
        raise HyperParameterError(field, path, f"must end in one of {', '.join(FILE_FORMATS)}")
    if kind == ".npz":
        return _read_npz(_read_bytes(path, field), path, field)
    return _read_table(source, kind, path, field)


def _read_npz(data: bytes, path: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
            missing = [name for name in ("x", "y") if name not in arrays.files]
            if missing:
                message = f"an .npz needs arrays 'x' and 'y'; it has {sorted(arrays.files)}"
                raise HyperParameterError(field, path, message)
            x, y = arrays["x"], arrays["y"]
    except (ValueError, OSError) as exc:
        raise HyperParameterError(field, path, f"not a readable .npz: {exc}") from None
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y):
        message = f"needs x of shape (N, ...) and y of shape (N,), got {x.shape} and {y.shape}"
        raise HyperParameterError(field, path, message)
    if x.dtype.kind not in "fiub":
        raise HyperParameterError(field, path, f"x must be numeric, not {x.dtype}")
    if y.dtype.kind not in "iuU" and not (y.dtype.kind == "f"):
        raise HyperParameterError(field, path, f"y must hold class labels, not {y.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise HyperParameterError(field, path, "x holds NaN or infinite values")
    return x, y


def _read_table(
    source: FileSource, kind: str, path: str, field: str
) -> tuple[np.ndarray, np.ndarray]:
    # Read from the file itself, not from a BufferReader over its bytes: with torch loaded,
    # a table parsed from a Python-owned buffer made the process abort at exit (status 134)
    # about half the time (pyarrow 26, torch 2.13).
    fs, where = _open(path, field)
    _check_is_file(fs, where, path, field)
    try:  # a missing file or a directory was refused above
        if kind == ".parquet":
            table = pq.read_table(where, filesystem=fs)
        else:
            with fs.open_input_stream(where) as stream:
                table = pacsv.read_csv(stream)
    except (pa.ArrowInvalid, OSError) as exc:
        message = f"not a readable {kind} table: {_first_line(exc)}"
        raise HyperParameterError(field, path, message) from None
    columns = table.column_names
    if source.target is None:
        raise HyperParameterError("dataset.target", None, "a table needs its label column")
    if source.target not in columns:
        message = f"no such column; the table has {columns}"
        raise HyperParameterError("dataset.target", source.target, message)
    features = (
        [c for c in columns if c != source.target]
        if source.features is None
        else list(source.features)
    )
    absent = [c for c in features if c not in columns]
    if absent:
        message = f"no such column(s) {absent}; the table has {columns}"
        raise HyperParameterError("dataset.features", list(features), message)
    if not features:
        raise HyperParameterError("dataset.features", [], "needs at least one feature column")
    text = [c for c in features if not _numeric(table.schema.field(c).type)]
    if text:
        message = f"feature columns must be numeric; not numeric: {text}"
        raise HyperParameterError("dataset.features", text, message)
    with_nulls = [c for c in [*features, source.target] if table.column(c).null_count]
    if with_nulls:
        raise HyperParameterError(field, path, f"missing values in column(s) {with_nulls}")
    x = np.column_stack([table.column(c).to_numpy().astype(np.float64) for c in features])
    if not np.all(np.isfinite(x)):
        raise HyperParameterError(field, path, "NaN or infinite feature values")
    target = table.column(source.target)
    if pa.types.is_dictionary(target.type):
        target = pc.cast(target, pa.string())
    return x, target.to_numpy(zero_copy_only=False)


def _numeric(kind: pa.DataType) -> bool:
    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
