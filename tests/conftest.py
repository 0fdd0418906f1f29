"""Shared fixtures: one local Ray instance for every test marked `ray`."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# Test modules import shared helpers (tests/helpers/_procs.py) as top-level modules. Only that
# folder goes on the path: tests/ itself would shadow the packages with its same-named folders.
sys.path.append(str(Path(__file__).parent / "helpers"))

# Tests start their own clusters, so the auth mode is set explicitly rather than inherited. The
# instance listens on 127.0.0.1 only; token auth is exercised by the cluster tests that need it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A 2-CPU Ray started by this test session and shut down at its end (only what it started)."""
    import ray

    ray.init(
        address="local",
        num_cpus=2,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    try:
        yield
    finally:
        ray.shutdown()
