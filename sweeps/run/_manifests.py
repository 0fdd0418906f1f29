"""Run manifests: which runs a sweep has had, with what spec, and whether they finished.

One small JSON per run under ``<results>/<sweep>/_runs/``; `--resume` reads them to find the run
to continue and to refuse a spec that changed underneath it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Literal

from analysis import ResultsPath, SweepLayout, write_text_atomically

__all__ = ["RunManifest", "RunStatus", "latest_run", "new_run_id", "write_manifest"]

RunStatus = Literal["running", "complete", "failed"]


@dataclass(frozen=True)
class RunManifest:
    run_id: str
    digest: str
    status: RunStatus
    planned: int
    started_at: str
    updated_at: str


def new_run_id() -> str:
    """Sortable by start time, unique without coordination."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def _runs_dir(sweep_dir: ResultsPath) -> ResultsPath:
    return SweepLayout(sweep_dir).runs


def write_manifest(sweep_dir: ResultsPath, manifest: RunManifest) -> None:
    directory = _runs_dir(sweep_dir)
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps(asdict(manifest), indent=1)
    write_text_atomically(directory / f"{manifest.run_id}.json", text)


def latest_run(sweep_dir: ResultsPath) -> RunManifest | None:
    directory = _runs_dir(sweep_dir)
    if not directory.is_dir():
        return None
    found: Iterable[ResultsPath] = directory.glob("*.json")
    manifests = sorted(found, key=str)
    if not manifests:
        return None
    return RunManifest(**json.loads(manifests[-1].read_text()))
