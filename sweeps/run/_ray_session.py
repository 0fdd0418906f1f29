"""Which Ray the sweep runs on: an embedded local instance it owns, or a cluster it only joins."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps._errors import Problem, RunError
from sweeps.run._embedded_ray import TUNE_TRIAL_ENV, stop_monitor, workers_started_with
from sweeps.run._stop import install_sigterm_handler, sigterm_held

__all__ = ["RaySession", "prepare_ray_environment", "ray_session"]

log = logging.getLogger(__name__)
_CONNECT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RaySession:
    address: str  # "embedded" for the instance this process started
    cpus: float
    gpus: float
    nodes: int
    node_resources: tuple[tuple[float, float], ...]  # (CPU, GPU) of each alive node
    embedded: bool  # started here: no autoscaler will ever add a node
    node_custom: tuple[dict[str, float], ...] = ()  # every resource of each alive node

    def fits(self, cpu: float, gpu: float) -> bool:
        """Whether one node can hold one trial (a trial never spans nodes)."""
        return any(c >= cpu and g >= gpu for c, g in self.node_resources)

    def fits_custom(self, custom: dict[str, float]) -> bool:
        """Whether one node has every custom resource a trial asks for, in that amount."""
        if not custom:
            return True
        return any(
            all(node.get(name, 0.0) >= amount for name, amount in custom.items())
            for node in self.node_custom
        )


def prepare_ray_environment(address: str | None) -> None:
    """Settings Ray reads from the environment, so they must be in place before it is imported.

    An embedded instance uses token auth (secure by default, as Ray's own default for new local
    clusters). Without a token of the user's, it gets one made for this run and passed through
    the environment, so nothing is written to the home directory.
    """
    # Ray's result loggers write JSON/CSV/TensorBoard per trial; our Parquet is the record.
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # Tune turns Ctrl-C into a quiet early end of `fit`, which would look like a finished
    # sweep; caviar stops on it instead and says how to resume (sweeps/run/_stop.py).
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    if address or os.environ.get("RAY_ADDRESS"):
        return
    # Ray starts workers at nice 15 to keep its own daemons responsive. Next to anything at
    # normal priority that starves the trials: the demo took 368 s beside two busy loops on 2
    # cores, against 32 s with workers at 0 (18 s alone; docs/performance.md). An embedded Ray
    # is the user's own job, so its trials compete as equals; the user's setting wins.
    os.environ.setdefault("RAY_worker_niceness", "0")
    # What Tune gives each trial actor, given to every worker instead, so that the actors can
    # take the workers Ray prestarts (`sweeps.run.trial_actors_on_prestarted_workers`).
    for key, value in TUNE_TRIAL_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("RAY_AUTH_MODE", "token")
    has_token = (
        os.environ.get("RAY_AUTH_TOKEN")
        or os.environ.get("RAY_AUTH_TOKEN_PATH")
        or (Path.home() / ".ray" / "auth_token").exists()
    )
    if os.environ["RAY_AUTH_MODE"].lower() == "token" and not has_token:
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


@contextmanager
def ray_session(address: str | None = None) -> Iterator[RaySession]:
    """Start (and later stop) an embedded Ray, or connect to ``address`` / ``RAY_ADDRESS``.

    ``address="local"`` makes Ray start a fresh instance even when another cluster, live or
    dead, left its address file on this machine; only the processes started here are stopped.
    If this process is already connected (a notebook, a test fixture), that connection is used
    and left open.
    """
    prepare_ray_environment(address)
    with _failure_handler_off():
        import ray

    owned = False
    workers_environment: dict[str, str] = {}  # what an embedded Ray's workers inherit
    before = signal.getsignal(signal.SIGTERM)
    try:
        if not ray.is_initialized():
            target = address or os.environ.get("RAY_ADDRESS") or None
            if target:
                _check_reachable(target)
            else:
                workers_environment = dict(os.environ)
            # Held: a SIGTERM while Ray starts is raised once it is up, so that the
            # `ray.shutdown` below stops every process it started.
            with sigterm_held():
                _init(ray, target)
                owned = True
            install_sigterm_handler()  # ours while Ray is up, whatever was there before
        resources = ray.cluster_resources()
        alive = [n for n in ray.nodes() if n.get("Alive")]
        target = address or os.environ.get("RAY_ADDRESS")
        with workers_started_with(workers_environment) if workers_environment else nullcontext():
            yield RaySession(
                address=target or "embedded",
                cpus=float(resources.get("CPU", 0.0)),
                gpus=float(resources.get("GPU", 0.0)),
                nodes=len(alive),
                node_resources=tuple(
                    (float(n["Resources"].get("CPU", 0.0)), float(n["Resources"].get("GPU", 0.0)))
                    for n in alive
                ),
                embedded=owned and not target,
                node_custom=tuple({k: float(v) for k, v in n["Resources"].items()} for n in alive),
            )
    finally:
        if owned:
            try:
                with sigterm_held():  # stopped halfway, Ray's daemons would outlive caviar
                    if workers_environment:  # started here, not joined
                        stop_monitor()
                    ray.shutdown()
            finally:
                if before is not None and threading.current_thread() is threading.main_thread():
                    signal.signal(signal.SIGTERM, before)


def _init(ray: Any, target: str | None) -> None:
    common: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING}
    try:
        if target:
            ray.init(address=target, **common)
        else:
            ray.init(
                address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **common
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = target or "embedded"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunError([Problem("address", where, f"cannot start Ray: {message}")]) from None


@contextmanager
def _failure_handler_off() -> Iterator[None]:
    """Ray imported so that this process, the driver, keeps SIGTERM's handler at the OS level.

    Ray's core worker puts a C++ failure-signal handler on SIGTERM too (a stack dump on
    stderr), and `ray.shutdown` then leaves SIGTERM at its default action: for the second or
    so a shutdown takes, a SIGTERM killed caviar with no word. `RAY_DISABLE_FAILURE_SIGNAL_HANDLER`
    (Ray's own switch, read once, when Ray is first imported) turns that off; it is taken out
    of the environment again at once, so that Ray's own processes, started later, keep their
    crash stacks. The driver loses its C++ stack on a crash; Python's traceback remains.
    """
    key = "RAY_DISABLE_FAILURE_SIGNAL_HANDLER"
    if "ray" in sys.modules or key in os.environ:  # too late, or the user's to decide
        yield
        return
    os.environ[key] = "1"
    try:
        yield
    finally:
        del os.environ[key]


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes; a plain TCP connect fails in seconds."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise RunError([Problem("address", address, "expected HOST:PORT or ray://HOST:PORT")])
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(
            [Problem("address", address, f"no Ray cluster reachable: {reason}")]
        ) from None
