"""Shared fixtures: one local Ray instance for every test marked `ray`; and the `cli` marker
kept honest: a test without it that starts `caviar` in a subprocess fails."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

# Test modules import shared helpers (tests/helpers/_procs.py) as top-level modules. Only that
# folder goes on the path: tests/ itself would shadow the packages with its same-named folders.
sys.path.append(str(Path(__file__).parent / "helpers"))

# Tests start their own clusters, so the auth mode is set explicitly rather than inherited. The
# instance listens on 127.0.0.1 only; token auth is exercised by the cluster tests that need it.
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

# Property tests draw the same examples on every run, so a CI run never fails on an example no
# earlier run met (and writes no .hypothesis/ folder into the checkout). `HYPOTHESIS_PROFILE=
# explore` draws fresh ones, for a search at a desk; a failure it finds prints its reproducer.
settings.register_profile("ci", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Refuse, in a test not marked `cli`, to start caviar's command line in a subprocess (its
    fixtures included): `pytest -m "not slow and not cli"` leaves out exactly those tests."""
    if item.get_closest_marker("cli") is not None:
        return (yield)
    from _procs import starts_caviar

    popen_init = subprocess.Popen.__init__

    def refuse_caviar(self: subprocess.Popen[bytes], *args: object, **kwargs: object) -> None:
        argv = args[0] if args else kwargs.get("args", ())
        if starts_caviar(argv):
            pytest.fail(f"{item.nodeid} starts caviar ({argv!r}): mark it @pytest.mark.cli")
        popen_init(self, *args, **kwargs)

    subprocess.Popen.__init__ = refuse_caviar
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = popen_init


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """A 2-CPU Ray head started by this test session, joined in-process, and stopped at the
    session's end by its session id (only what it started).

    Not `ray.init(address="local")`: that instance's dashboard agent takes Ray's fixed default
    port (52365), and every embedded Ray a `caviar` subprocess starts while it lives then
    retries that port for ~3.5 s before going on without it. This head's agent listens on a
    free port (`_ray_nodes.start_node`).
    """
    import ray
    from _ray_nodes import ray_cluster

    with ray_cluster(["--num-cpus=2", "--num-gpus=0"]) as (address, _):
        ray.init(
            address=address,
            log_to_driver=False,
            configure_logging=False,
            _node_ip_address="127.0.0.1",
        )
        try:
            yield
        finally:
            ray.shutdown()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A local S3 (moto's server, in a thread of this process) for the session's s3 tests."""
    from _procs import free_port
    from moto.server import ThreadedMotoServer

    # werkzeug logs every request at INFO, to stderr when nothing else handles it
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the local S3, as ``s3://<bucket>``.

    The environment points pyarrow at it the way a user points caviar at MinIO
    (``AWS_ENDPOINT_URL``), with fake credentials; `caviar` subprocesses, and the Ray workers
    they start, inherit it. Nothing of the user's AWS configuration is read.
    """
    import pyarrow.fs as pafs

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    bucket = f"caviar-{uuid.uuid4().hex[:12]}"
    pafs.S3FileSystem(
        access_key="testing",
        secret_key="testing",
        region="us-east-1",
        endpoint_override=moto_endpoint.removeprefix("http://"),
        scheme="http",
        allow_bucket_creation=True,
    ).create_dir(bucket)
    return f"s3://{bucket}"
