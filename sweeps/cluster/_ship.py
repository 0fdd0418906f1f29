"""What `caviar submit` ships besides the project: the spec's directory, as the user keeps it.

A user's sweep is a directory: the spec, the model or training-function module, local data.
The job carries a copy of that directory (under JOB_SPEC_DIR in its working directory), so a
trial on any node imports the module and reads the data from its own node's copy, and what
runs there is what was validated here.

What stays home: credentials (`CREDENTIALS`: keys, tokens, `.env` files; no ignore file can
bring them back, since a job's files are unpacked on every node, readable by whoever runs code
on the cluster), environments, caches and results (`ALWAYS_EXCLUDED`), plus whatever the
directory's `.gitignore`, `.rayignore` and `.caviarignore` name (gitignore syntax; the files
at the top of the directory only), and links that lead out of the directory.
Files the spec itself names (the spec, its data files and its module) travel even when ignored
or credential-like: a data file is often kept out of git, and the sweep cannot run without it.
A file the spec names outside the directory cannot travel and is refused before the cluster is
contacted, as is a spec kept in the home directory or at the filesystem root, whose directory
is everything the user has.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pathspec import GitIgnoreSpec

from sweeps._errors import Problem, SpecError
from sweeps.spec import Sweep

__all__ = [
    "ALWAYS_EXCLUDED",
    "CREDENTIALS",
    "IGNORE_FILES",
    "MAX_SHIPPED_BYTES",
    "ShippedDir",
    "plan_spec_dir",
    "ship_spec_dir",
]

# Never shipped unless the spec names the file: where keys and tokens live (ssh, cloud CLIs, Ray's
# own cluster token in ~/.ray, docker and package registries) and the files that hold them.
CREDENTIALS = (
    ".ssh", ".aws", ".gnupg", ".config", ".ray", ".docker", ".kube", ".azure", ".env*",
    ".netrc", ".git-credentials", ".pgpass", ".pypirc", ".npmrc", "*.pem", "*.key", "*.p12",
    "*.pfx", "id_rsa*", "id_dsa*", "id_ecdsa*", "id_ed25519*",
)  # fmt: skip
_CREDENTIALS = GitIgnoreSpec.from_lines(CREDENTIALS)

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
    """What travels from the spec's directory, and what was left out that the user should hear
    of: credentials by name only, never their contents."""

    source: Path
    paths: tuple[Path, ...]  # each under `source`
    size: int
    notes: tuple[str, ...]  # what the user should know: a module the cluster must have
    withheld: tuple[str, ...] = ()  # credential-like, relative to `source`; folders end in /
    links_out: tuple[str, ...] = ()  # links leading out of `source`, likewise

    @property
    def files(self) -> int:
        return len(self.paths)

    @property
    def summary(self) -> str:
        return f"shipping {self.source}: {self.files} files, {self.size / 2**20:.1f} MiB"

    @property
    def left_out(self) -> list[str]:
        """One line per kind of thing left out, for the user to check nothing needed is."""
        lines = []
        if self.withheld:
            lines.append(f"left out as credentials (never shipped): {', '.join(self.withheld)}")
        if self.links_out:
            lines.append(
                f"left out, links leading outside {self.source}: {', '.join(self.links_out)}"
            )
        return lines


def plan_spec_dir(sweep: Sweep, *, keep_out: Iterable[Path] = ()) -> ShippedDir:
    """What would travel from the spec's directory under the rules, copying nothing. What
    `keep_out` names (the local results, the job's staging folder) stays home wherever it is.
    Raises SpecError for a spec in the home directory or at the root, a data file outside the
    directory, or too much to ship."""
    root = Path(sweep.source).resolve().parent
    _refuse_home_or_root(root, sweep.source)
    needed, notes = _named_files(sweep, root)
    needed.insert(0, Path(sweep.source).resolve())
    chosen = list(dict.fromkeys(needed))  # named files first: they travel whatever the rules
    size = sum(p.stat().st_size for p in chosen)
    walk = _Walk(root, _ignore_spec(root), {p.resolve() for p in keep_out}, set(chosen))
    walked = walk.files()
    while size <= MAX_SHIPPED_BYTES:  # stop early on a huge directory given by mistake
        path = next(walked, None)
        if path is None:
            break
        chosen.append(path)
        size += path.stat().st_size
    if size > MAX_SHIPPED_BYTES:
        message = (
            f"holds over {MAX_SHIPPED_BYTES / 2**20:.0f} MiB to ship, the most a job takes "
            f"(the largest file: {max(chosen, key=lambda p: p.stat().st_size).name}): list what "
            "the sweep does not need in .caviarignore, or put the data on s3://"
        )
        raise SpecError([Problem("SPEC", str(root), message)], source=sweep.source)
    withheld, links_out = tuple(walk.withheld), tuple(walk.links_out)
    return ShippedDir(root, tuple(chosen), size, tuple(notes), withheld, links_out)


def ship_spec_dir(sweep: Sweep, target: Path, *, keep_out: Iterable[Path] = ()) -> ShippedDir:
    """Copy what `plan_spec_dir` chose to `target`; it raises before anything is copied."""
    shipped = plan_spec_dir(sweep, keep_out=(*keep_out, target))
    for path in shipped.paths:
        copy = target / path.relative_to(shipped.source)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, copy)
    return shipped


def _refuse_home_or_root(root: Path, source: str) -> None:
    """A spec saved in the home directory would ship all of it: keys, mail, every project."""
    try:
        home: Path | None = Path.home().resolve()
    except RuntimeError:  # no $HOME and no password entry
        home = None
    if root == home:
        what = "the home directory"
    elif root.parent == root:
        what = "the filesystem root"
    else:
        return
    message = (
        f"the spec's directory is {what}, and all of it would travel with the job: "
        "move the spec (and the files it uses) into a project folder"
    )
    raise SpecError([Problem("SPEC", str(root), message)], source=source)


def _ignore_spec(root: Path) -> GitIgnoreSpec:
    lines = [*ALWAYS_EXCLUDED, *(f"/{name}" for name in IGNORE_FILES)]
    for name in IGNORE_FILES:
        path = root / name
        if path.is_file():
            lines += path.read_text(encoding="utf-8", errors="replace").splitlines()
    return GitIgnoreSpec.from_lines(lines)


class _Walk:
    """The directory's files under the rules, noting what it leaves out that a user may miss.

    Credentials are matched before the ignore files, so that none can bring one back (`!.env`),
    and by the name a link has as well as the name of what it points at. A link that leads out
    of the directory is left out: what it points at is not the user's project (os.walk does not
    follow links to folders; this leaves out links to files too)."""

    def __init__(
        self, root: Path, ignored: GitIgnoreSpec, keep_out: set[Path], named: set[Path]
    ) -> None:
        self.root, self.ignored, self.keep_out, self.named = root, ignored, keep_out, named
        self.withheld: list[str] = []
        self.links_out: list[str] = []

    def files(self) -> Iterator[Path]:
        for directory, dirs, files in os.walk(self.root):
            here = Path(directory)
            dirs[:] = [name for name in sorted(dirs) if self._enter(here / name)]
            for name in sorted(files):
                path = here / name
                if path not in self.named and self._take(path):
                    yield path

    def _enter(self, path: Path) -> bool:
        relative = f"{path.relative_to(self.root).as_posix()}/"
        if self._stays_home(path, relative):
            return False
        return not self.ignored.match_file(relative) and path.resolve() not in self.keep_out

    def _take(self, path: Path) -> bool:
        relative = path.relative_to(self.root).as_posix()
        if self._stays_home(path, relative):
            return False
        return path.is_file() and not self.ignored.match_file(relative)

    def _stays_home(self, path: Path, relative: str) -> bool:
        """Whether `path` stays home as a credential or as a link out (and is noted as such)."""
        if _CREDENTIALS.match_file(relative):
            self.withheld.append(relative)
            return True
        if not path.is_symlink():
            return False
        target = path.resolve()
        if not target.is_relative_to(self.root):
            self.links_out.append(relative)
            return True
        pointed = target.relative_to(self.root).as_posix()
        if _CREDENTIALS.match_file(f"{pointed}/" if target.is_dir() else pointed):
            self.withheld.append(relative)
            return True
        return False


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
