"""Where results live: a local directory, or a prefix in an S3 bucket.

A local results directory stays a `pathlib.Path`, so local behaviour is exactly pathlib's. An
object-store location is an `ObjectPath`: the small part of pathlib the results code uses (join,
name, parent, exists, read, list, delete) on a `pyarrow.fs.FileSystem`, so one code path writes
and reads both.

Atomicity differs underneath, not in what readers see. Locally a file is written under a name
starting with "." (readers skip those), fsynced and renamed into place. An object store has no
rename and needs none: an object becomes visible only when its upload completes, whole. Every
file is therefore written with one upload of its complete bytes (one PUT for small files; the
filesystem is opened with ``allow_delayed_open`` so that pyarrow sends a single PutObject rather
than a multipart upload, which would still appear whole but costs three requests). Object stores
have no directories: `mkdir` does nothing, and a "directory" exists while objects lie under it.
"""

from __future__ import annotations

import fnmatch
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qsl, urlencode

import pyarrow.fs as pafs

from analysis._errors import ResultsError

__all__ = [
    "OBJECT_STORE_SCHEMES",
    "ObjectPath",
    "ResultsLike",
    "ResultsPath",
    "arrow_filesystem",
    "arrow_path",
    "fsync_file",
    "interrupted_writes",
    "list_files",
    "results_path",
    "results_uri_problem",
    "write_bytes_atomically",
    "write_text_atomically",
]

OBJECT_STORE_SCHEMES = ("s3",)
_SKIPPED = (".", "_")  # the prefixes pyarrow.dataset, DuckDB and Spark ignore


@dataclass(frozen=True, order=True)
class ObjectPath:
    """A key (or key prefix) in a bucket: ``path`` is ``bucket/key`` as pyarrow spells it.

    ``query`` keeps the URI's options (``endpoint_override=...``), so `uri` rebuilds the same
    filesystem in another process (a Ray worker writing a checkpoint).
    """

    path: str
    fs: pafs.FileSystem = field(compare=False, repr=False)
    query: str = ""
    scheme: str = "s3"
    # Known from the listing that produced this path, so `is_dir` costs no request.
    kind: pafs.FileType | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_uri(cls, uri: str) -> ObjectPath:
        """Credentials, region and endpoint come from pyarrow (the AWS chain, AWS_ENDPOINT_URL)
        unless the URI's query sets them."""
        base, _, query = uri.partition("?")
        options = dict(parse_qsl(query))
        options.setdefault("allow_delayed_open", "true")
        try:
            fs, path = pafs.FileSystem.from_uri(f"{base}?{urlencode(options)}")
        except (OSError, ValueError, TypeError) as exc:
            raise ResultsError("results", uri, f"cannot open: {_first_line(exc)}") from None
        return cls(path.rstrip("/"), fs, query, base.split("://", 1)[0])

    def __truediv__(self, name: str) -> ObjectPath:
        return replace(self, path=f"{self.path}/{name.strip('/')}", kind=None)

    def __str__(self) -> str:
        return f"{self.scheme}://{self.path}"

    @property
    def uri(self) -> str:
        """`str(self)` plus the options it was opened with: what `results_path` reopens."""
        return f"{self}?{self.query}" if self.query else str(self)

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        if "/" not in self.path:
            return self
        return replace(self, path=self.path.rsplit("/", 1)[0], kind=None)

    def resolve(self) -> ObjectPath:
        return self

    def _kind(self) -> pafs.FileType:
        if self.kind is not None:
            return self.kind
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._kind() != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self._kind() == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self._kind() == pafs.FileType.File

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to do: a prefix exists once an object is written under it."""

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return bytes(stream.read())

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes | memoryview) -> None:
        """One upload of the whole object: readers see the old object or the new, never half."""
        with self.fs.open_output_stream(self.path) as stream:
            stream.write(data)

    def write_text(self, data: str, encoding: str = "utf-8") -> None:
        self.write_bytes(data.encode(encoding))

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.delete_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def iterdir(self) -> Iterator[ObjectPath]:
        for info in self.fs.get_file_info(pafs.FileSelector(self.path)):
            yield replace(self, path=info.path, kind=info.type)

    def glob(self, pattern: str) -> Iterator[ObjectPath]:
        """pathlib's glob without ``**``: each ``/``-separated part matches one level."""
        parts = pattern.split("/")
        if "**" in parts:
            raise ValueError("recursive '**' patterns are not supported on object stores")
        selector = pafs.FileSelector(self.path, recursive=len(parts) > 1, allow_not_found=True)
        for info in sorted(self.fs.get_file_info(selector), key=lambda i: i.path):
            relative = info.path[len(self.path) + 1 :].split("/")
            if len(relative) == len(parts) and all(
                fnmatch.fnmatchcase(name, part) for name, part in zip(relative, parts, strict=True)
            ):
                yield replace(self, path=info.path, kind=info.type)


ResultsPath = Path | ObjectPath
ResultsLike = str | os.PathLike[str] | ObjectPath


def results_uri_problem(value: str) -> str | None:
    """Why a results location string is unusable, or None; looks at the text only (no I/O)."""
    if "://" not in value:
        return None
    scheme, _, rest = value.partition("://")
    if scheme not in OBJECT_STORE_SCHEMES:
        return "only a local path or s3://bucket/prefix is supported"
    if not rest.split("?", 1)[0].split("/", 1)[0]:
        return "an s3:// location needs a bucket: s3://bucket/prefix"
    return None


def results_path(value: ResultsLike, field: str = "results_dir") -> ResultsPath:
    """A local path as a `Path`, ``s3://bucket/prefix`` as an `ObjectPath`; ResultsError (naming
    `field`) for any other scheme."""
    if isinstance(value, ObjectPath | Path):
        return value
    text = os.fspath(value)
    problem = results_uri_problem(text)
    if problem is not None:
        raise ResultsError(field, text, problem)
    if "://" in text:
        try:
            return ObjectPath.from_uri(text)
        except ResultsError as exc:
            raise ResultsError(field, text, exc.message) from None
    return Path(text)


def arrow_filesystem(path: ResultsPath) -> pafs.FileSystem | None:
    """The `filesystem=` argument pyarrow readers and writers take (None: a local path)."""
    return path.fs if isinstance(path, ObjectPath) else None


def arrow_path(path: ResultsPath) -> str:
    """The path pyarrow wants next to `arrow_filesystem`: ``bucket/key`` on object stores."""
    return path.path if isinstance(path, ObjectPath) else str(path)


def list_files(directory: ResultsPath) -> list[str]:
    """Every file under `directory` (pyarrow paths), skipping names that start with "." or "_"
    at any level below it, as dataset readers do; empty when `directory` does not exist."""
    if isinstance(directory, Path):
        files: list[str] = []
        for current, dirs, names in os.walk(directory):
            dirs[:] = sorted(d for d in dirs if not d.startswith(_SKIPPED))
            files.extend(os.path.join(current, n) for n in names if not n.startswith(_SKIPPED))
        return files
    selector = pafs.FileSelector(directory.path, recursive=True, allow_not_found=True)
    files = []
    for info in directory.fs.get_file_info(selector):
        relative = info.path[len(directory.path) + 1 :].split("/")
        if info.type == pafs.FileType.File and not any(p.startswith(_SKIPPED) for p in relative):
            files.append(info.path)
    return sorted(files)


def write_bytes_atomically(path: ResultsPath, data: bytes | memoryview) -> None:
    """Readers see the old file or the new one, never half of either.

    Locally: a "."-prefixed temporary, fsynced, renamed over the target. On an object store the
    single upload is already atomic, and a temporary would cost a copy (there is no rename).
    """
    if isinstance(path, ObjectPath):
        path.write_bytes(data)
        return
    tmp = path.with_name(_temporary_name(path.name, uuid.uuid4().hex))
    try:
        tmp.write_bytes(data)
        fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _temporary_name(target: str, token: str) -> str:
    return f".{target}.{token}.tmp"


_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[0-9a-f]{32}\.tmp")


def interrupted_writes(
    directory: ResultsPath, *, targets: tuple[str, ...] = (), recursive: bool = False
) -> list[Path]:
    """The temporaries `write_bytes_atomically` left in `directory` when its process died
    between write and rename (SIGKILL, OOM, power loss): nothing else ever removes them.

    Only the caller knows whether their writers are gone (it holds the lock they wrote under),
    so this finds and does not delete. `targets`, when given, keeps only temporaries of those
    file names: a directory other writers share (a report next to best.json) is not ours to
    sweep. An object store has none: its uploads need no temporary.
    """
    if isinstance(directory, ObjectPath) or not directory.is_dir():
        return []
    candidates = directory.rglob(".*.tmp") if recursive else directory.glob(".*.tmp")
    found = []
    for path in sorted(candidates):
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and (not targets or match["target"] in targets):
            found.append(path)
    return found


def write_text_atomically(path: ResultsPath, text: str) -> None:
    """`write_bytes_atomically` for UTF-8 text (manifests, schemas, best.json)."""
    write_bytes_atomically(path, text.encode("utf-8"))


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
