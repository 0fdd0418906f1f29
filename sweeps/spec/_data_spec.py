"""`trainable.dataset` as a user's file: `{path, target, features, val_path}`, checked up front.

The file is read when the spec is validated (its columns, shapes and labels), so a missing file,
a missing target column or labels that are not classes are spec errors, named by field, before
anything is written. Local paths are relative to the spec file's directory; `s3://` paths go
through pyarrow's filesystems, as results do. Unless the spec gives one, the data's version is a
digest of the file's bytes (`data_version: auto`): a rewritten file is a new version, which
`caviar retune` reports and `caviar best` shows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sweeps._errors import MISSING, Problem
from trainables import FILE_FORMATS, FileSource, HyperParameterError, file_digest

__all__ = ["AUTO_VERSION", "FileDatasetSpec", "resolve_file_dataset"]

AUTO_VERSION = "auto"
_FIELD = "trainable.dataset"


class FileDatasetSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    path: Annotated[str, Field(min_length=1)]
    target: Annotated[str, Field(min_length=1)] | None = None  # required for tables
    features: list[Annotated[str, Field(min_length=1)]] | None = None
    val_path: Annotated[str, Field(min_length=1)] | None = None


def resolve_file_dataset(
    value: dict[str, Any],
    base: Path,
    data_version: str | int | None,
    *,
    seed: int,
    val_fraction: float,
) -> tuple[FileSource | None, str | None, list[Problem]]:
    """The file source (paths made absolute), its data version, and every problem found.

    The data is loaded once as a trial would load it (split and standardised), so a class too
    small to split is found here too."""
    try:
        spec = FileDatasetSpec.model_validate(value)
    except ValidationError as exc:
        return None, None, [_problem(err) for err in exc.errors()]
    source = FileSource(
        path=_absolute(spec.path, base),
        target=spec.target,
        features=None if spec.features is None else tuple(spec.features),
        val_path=None if spec.val_path is None else _absolute(spec.val_path, base),
    )
    problems = []
    if source.format not in FILE_FORMATS:
        message = f"must end in one of {', '.join(FILE_FORMATS)}"
        problems.append(Problem(f"{_FIELD}.path", spec.path, message))
    elif source.format == ".npz" and (spec.target is not None or spec.features is not None):
        field = f"{_FIELD}.{'target' if spec.target is not None else 'features'}"
        value_given = spec.target if spec.target is not None else spec.features
        problems.append(Problem(field, value_given, "an .npz holds its own 'x' and 'y' arrays"))
    elif source.format != ".npz" and spec.target is None:
        problems.append(Problem(f"{_FIELD}.target", MISSING, "a table needs its label column"))
    if problems:
        return None, None, problems
    from trainables import load_dataset  # torch: only a spec with a data file pays for it

    try:
        version = (
            file_digest(source)
            if data_version is None or data_version == AUTO_VERSION
            else str(data_version)
        )
        load_dataset(source.to_config(), seed=seed, val_fraction=val_fraction, data_version=version)
    except HyperParameterError as exc:
        given = {"dataset.path": spec.path, "dataset.val_path": spec.val_path}
        shown = (
            given.get(exc.field, exc.value)
            if exc.value in (source.path, source.val_path)
            else exc.value
        )
        return None, None, [Problem(f"trainable.{exc.field}", shown, exc.message)]
    return source, version, []


def _absolute(path: str, base: Path) -> str:
    if "://" in path:
        return path
    return str((base / Path(path).expanduser()).resolve())


def _problem(err: Any) -> Problem:
    loc = [_FIELD, *(str(p) for p in err["loc"])]
    message = err["msg"].removeprefix("Value error, ")
    value = err.get("input")
    if err["type"] == "missing":
        value, message = MISSING, "required field is missing"
    elif err["type"] == "extra_forbidden":
        message = f"unknown key; valid keys: {sorted(FileDatasetSpec.model_fields)}"
    return Problem(".".join(loc), value, message)
