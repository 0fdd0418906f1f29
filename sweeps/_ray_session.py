"""Which Ray the sweep runs on: an embedded local instance it owns, or a cluster it only joins."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sweeps._errors import Problem, RunError

__all__ = ["RaySession", "ray_session"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RaySession:
    address: str  # "embedded" for the instance this process started
    cpus: float
    gpus: float
    nodes: int


@contextmanager
def ray_session(address: str | None = None) -> Iterator[RaySession]:
    """Start (and later stop) an embedded Ray, or connect to ``address`` / ``RAY_ADDRESS``.

    ``address="local"`` makes Ray start a fresh instance even when another cluster, live or
    dead, left its address file on this machine; only the processes started here are stopped.
    If this process is already connected (a notebook, a test fixture), that connection is used
    and left open.
    """
    import ray

    # Ray's result loggers write JSON/CSV/TensorBoard per trial; our Parquet is the record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    owned = False
    if not ray.is_initialized():
        target = address or os.environ.get("RAY_ADDRESS") or None
        common = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if target:
                ray.init(address=target, **common)
            else:
                # Secure by default (Ray's own default for new local clusters), said explicitly
                # so Ray does not warn about it on every run.
                os.environ.setdefault("RAY_AUTH_MODE", "token")
                ray.init(
                    address="local",
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    **common,
                )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = target or "embedded"
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise RunError([Problem("address", where, f"cannot start Ray: {message}")]) from None
        owned = True
    try:
        resources = ray.cluster_resources()
        alive = [n for n in ray.nodes() if n.get("Alive")]
        yield RaySession(
            address=address or os.environ.get("RAY_ADDRESS") or "embedded",
            cpus=float(resources.get("CPU", 0.0)),
            gpus=float(resources.get("GPU", 0.0)),
            nodes=len(alive),
        )
    finally:
        if owned:
            ray.shutdown()
