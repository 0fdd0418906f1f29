"""The frame every run shares, in one place: where a run is chosen, Ray started, the
resources checked, the lock taken and the manifest written.

`open_run` is the whole frame of a sweep or a panda run; `cluster` its Ray part alone, which
a re-tune uses under its own lock. The order matters and is the contract of `caviar run`:

1. the results location is checked, and a bad `--resume` or a sweep another run holds
   refused, before Ray starts;
2. Ray starts (or is joined), and the trials are checked to fit before anything is written;
3. under the sweep's lock the run is chosen again (another resume may have recorded since),
   its manifest says `running` and the space is recorded;
4. the strategy runs; the manifest ends `complete`, or `failed` if anything escaped (Ctrl-C,
   SIGTERM, an error), which `--resume` continues.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from analysis import ResultsPath, ResultsStore
from sweeps.run._lock import refuse_if_locked, sweep_lock
from sweeps.run._manifests import RunManifest, write_manifest
from sweeps.run._outcome import record_space
from sweeps.run._preflight import check_results_dir
from sweeps.run._ray_session import RaySession, ray_session
from sweeps.run._resources import check_resources
from sweeps.run._resume import RunChoice, choose_run
from sweeps.spec import Sweep

__all__ = ["OpenRun", "cluster", "open_run"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OpenRun:
    """A run inside its frame: where it records, the Ray it runs on, which run it is."""

    store: ResultsStore
    session: RaySession
    choice: RunChoice
    manifest: RunManifest

    @property
    def run_id(self) -> str:
        return self.choice.run_id


@contextmanager
def cluster(sweep: Sweep, address: str | None) -> Iterator[RaySession]:
    """Ray started or joined, with the sweep's trials known to fit (else a one-line error)."""
    with ray_session(address) as session:
        check_resources(sweep.spec, session)
        log.info("Ray: %s, %g CPUs, %g GPUs, %d node(s)", session.address, session.cpus,
                 session.gpus, session.nodes)  # fmt: skip
        yield session


@contextmanager
def open_run(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None,
    resume: bool,
    run_id: str | None,
    planned: int,
) -> Iterator[OpenRun]:
    """The frame of one run of `planned` configurations (steps 1-4 above)."""
    check_results_dir(results_dir)
    store = ResultsStore(results_dir, sweep.name)
    choice = choose_run(sweep, store, resume, run_id=run_id)  # a bad --resume fails before Ray
    refuse_if_locked(store.sweep_dir)  # and so does a sweep another run is writing
    with cluster(sweep, address) as session, sweep_lock(store.sweep_dir):
        choice = choose_run(sweep, store, resume, run_id=choice.run_id)
        now = _now()
        manifest = RunManifest(choice.run_id, sweep.digest, "running", planned, now, now)
        write_manifest(store.sweep_dir, manifest)
        record_space(store, sweep)
        try:
            yield OpenRun(store, session, choice, manifest)
        except BaseException:
            write_manifest(store.sweep_dir, replace(manifest, status="failed", updated_at=_now()))
            raise
        write_manifest(store.sweep_dir, replace(manifest, status="complete", updated_at=_now()))


def _now() -> str:
    return datetime.now(UTC).isoformat()
