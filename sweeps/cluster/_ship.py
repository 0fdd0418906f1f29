"""What `caviar submit` ships besides the project: the spec's directory, as the user keeps it.

A user's sweep is a directory: the spec, the model or training-function module, local data.
The job carries a copy of that directory (under JOB_SPEC_DIR in its working directory), so a
trial on any node imports the module and reads the data from its own node's copy, and what
runs there is what was validated here.

What stays home: environments, caches and results (`ALWAYS_EXCLUDED`), plus whatever the
directory's `.gitignore`, `.rayignore` and `.caviarignore` name (gitignore syntax; the
files at the top of the directory only).
Files the spec itself names (its data files and its module) travel even when ignored: a data
file is often kept out of git, and the sweep cannot run without it. A file the spec names
outside the directory cannot travel and is refused before the cluster is contacted.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pathspec import GitIgnoreSpec

from sweeps._errors import Problem, SpecError
from sweeps.spec._spec import Sweep

__all__ = ["ALWAYS_EXCLUDED", "IGNORE_FILES", "MAX_SHIPPED_BYTES", "ShippedDir", "ship_spec_dir"]

ALWAYS_EXCLUDED = (
    ".venv", "venv", ".git", "results", "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache",
    ".mypy_cache", ".hypothesis", ".ipynb_checkpoints", "*.egg-info", "build", "dist",
)  # fmt: skip
# Read here and never shipped: Ray would apply a shipped .gitignore again, and drop the data
# files that travel although ignored.
IGNORE_FILES = (".gitignore", ".rayignore", ".caviarignore")
# Ray refuses a working directory over 512 MiB (its GCS package limit); the project and the
# zip's overhead need some of that.
MAX_SHIPPED_BYTES = 480 * 1024 * 1024


@dataclass(frozen=True)
class ShippedDir:
    """The copy made for the job: where it is, and what it holds."""

    source: Path
    files: int
    size: int
    notes: tuple[str, ...]  # what the user should know: a module the cluster must have

    @property
    def summary(self) -> str:
        return f"shipping {self.source}: {self.files} files, {self.size / 2**20:.1f} MiB"


def ship_spec_dir(sweep: Sweep, target: Path, *, keep_out: Iterable[Path] = ()) -> ShippedDir:
    """Copy the spec's directory to `target` under the ignore rules. What `keep_out` names
    (the local results, the job's staging folder) stays home wherever it is. Raises SpecError,
    before anything is copied, for a data file outside the directory or one too big to ship."""
    root = Path(sweep.source).resolve().parent
    needed, notes = _named_files(sweep, root)
    ignored = _ignore_spec(root)
    named = set(needed)
    chosen = list(dict.fromkeys(needed))  # named files first: they travel whatever the rules
    size = sum(p.stat().st_size for p in chosen)
    walked = _walk(root, ignored, {p.resolve() for p in (*keep_out, target)})
    while size <= MAX_SHIPPED_BYTES:  # stop early on a home directory given by mistake
        path = next(walked, None)
        if path is None:
            break
        if path not in named:
            chosen.append(path)
            size += path.stat().st_size
    if size > MAX_SHIPPED_BYTES:
        message = (
            f"holds over {MAX_SHIPPED_BYTES / 2**20:.0f} MiB to ship, the most a job takes "
            f"(the largest file: {max(chosen, key=lambda p: p.stat().st_size).name}): list what "
            "the sweep does not need in .caviarignore, or put the data on s3://"
        )
        raise SpecError([Problem("SPEC", str(root), message)], source=sweep.source)
    for path in chosen:
        copy = target / path.relative_to(root)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    return ShippedDir(root, len(chosen), size, tuple(notes))


def _ignore_spec(root: Path) -> GitIgnoreSpec:
    lines = [*ALWAYS_EXCLUDED, *(f"/{name}" for name in IGNORE_FILES)]
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return GitIgnoreSpec.from_lines(lines)


def _walk(root: Path, ignored: GitIgnoreSpec, keep_out: set[Path]) -> Iterator[Path]:
    for directory, dirs, files in os.walk(root):
        here = Path(directory)
        kept = []
        for name in sorted(dirs):
            path = here / name
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if ignored.match_file(f"{relative}/") or path.resolve() in keep_out:
                continue
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = here / name
            if path.is_file() and not ignored.match_file(path.relative_to(root).as_posix()):
                yield path


def _named_files(sweep: Sweep, root: Path) -> tuple[list[Path], list[str]]:
    """The files the spec names that must travel, and notes on modules that do not."""
    needed: list[Path] = []
    data = sweep.data_file
    if data is not None:
        written = sweep.spec.trainable.dataset
        for field, path in (("path", data.path), ("val_path", data.val_path)):
            if path is None or "://" in path:
                continue
            resolved = Path(path).resolve()
            if not resolved.is_relative_to(root):
                shown = written.get(field, path) if isinstance(written, dict) else path
                message = (
                    f"is outside the spec's directory {root}, so it cannot travel with "
                    "`caviar submit`: move it there, or use an s3:// path"
                )
                problem = Problem(f"trainable.dataset.{field}", shown, message)
                raise SpecError([problem], source=sweep.source)
            needed.append(resolved)
    notes: list[str] = []
    module_file, field, reference = _module_file(sweep)
    if module_file is not None:
        if module_file.is_relative_to(root):
            needed += _with_package_inits(module_file, root)
        else:
            notes.append(
                f"{field} {reference!r} is imported from {module_file}, outside the spec's "
                "directory: the cluster must have it installed"
            )
    return needed, notes


def _module_file(sweep: Sweep) -> tuple[Path | None, str, str]:
    """Where the spec's module is imported from: the spec's directory first, as trials import
    it, else wherever sys.path has it. Found by path, not through `sys.modules`, which may hold
    a module of the same name from another directory."""
    t = sweep.spec.trainable
    if t.function is not None:
        field, reference = "trainable.function", t.function
    elif sweep.factory is not None:
        field, reference = "trainable.model", str(t.model)
    else:
        return None, "", ""
    module = reference.partition(":")[0]
    root = Path(sweep.source).resolve().parent
    parts = module.split(".")
    for candidate in (
        root.joinpath(*parts).with_suffix(".py"),
        root.joinpath(*parts, "__init__.py"),
    ):
        if candidate.is_file():
            return candidate, field, reference
    found = importlib.util.find_spec(module)
    origin = None if found is None else found.origin
    return (Path(origin).resolve() if origin and Path(origin).is_file() else None), field, reference


def _with_package_inits(module_file: Path, root: Path) -> list[Path]:
    """The module, and the `__init__.py` of each package between it and the spec's directory."""
    files = [module_file]
    for parent in module_file.parents:
        if parent == root or not parent.is_relative_to(root):
            break
        init = parent / "__init__.py"
        if init.is_file():
            files.append(init)
    return files
