"""`caviar submit`: a sweep as a Ray Job on a running cluster, through the cluster's Jobs API.

The job carries its own copy of the project and of the spec's directory (the spec, the user's
modules, local data: Ray uploads the job's working directory to the cluster and unpacks it on
every node), so what runs there is what was validated here, wherever the spec lives here.
On the cluster the job runs `python -m sweeps run` (the same as `caviar run`), which joins the
cluster through the `RAY_ADDRESS` that Ray gives every job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from analysis import results_uri_problem
from sweeps._errors import MISSING, CaviarError, Problem, RunError, SpecError
from sweeps.cluster._ship import (
    ALWAYS_EXCLUDED,
    CREDENTIALS,
    IGNORE_FILES,
    ShippedDir,
    plan_spec_dir,
    ship_spec_dir,
)
from sweeps.spec import Sweep, parse_spec
from trainables import SHIPPED_ENV

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

__all__ = [
    "JOB_SPEC_DIR",
    "Submission",
    "dry_run",
    "jobs_api_address",
    "submit_sweep",
    "wait_for_job",
]

log = logging.getLogger(__name__)

# Inside the job's working directory: where the spec travels.
JOB_SPEC_DIR = ".caviar_job"
_CONNECT_TIMEOUT_S = 10.0
_ADDRESS_ENV = "RAY_API_SERVER_ADDRESS"  # what `ray job submit` reads too
_CHATTY_LOGGERS = (
    "ray.dashboard.modules.dashboard_sdk",
    "ray.dashboard.modules.job.sdk",
    "ray._private.runtime_env.packaging",
)


@dataclass(frozen=True)
class Submission:
    job_id: str
    address: str
    entrypoint: str
    results: str  # as the job sees it on the cluster's head node


def jobs_api_address(address: str | None) -> str:
    """The Jobs API URL from `--address` or `$RAY_API_SERVER_ADDRESS`; HOST:PORT means http.

    A `ray://` address is Ray Client's, not the Jobs API; saying so here beats the error the
    client would give.
    """
    given = address or os.environ.get(_ADDRESS_ENV)
    if not given:
        message = (
            f"give the cluster's Jobs API (dashboard) address, or set ${_ADDRESS_ENV}; "
            "e.g. http://127.0.0.1:8265 through `ray dashboard cluster.yaml`"
        )
        raise CaviarError([Problem("--address", MISSING, message)])
    url = given if "://" in given else f"http://{given}"
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        message = "expected the Jobs API as http://HOST:PORT (the dashboard, 8265 by default)"
        raise CaviarError([Problem("--address", given, message)])
    return url.rstrip("/")


def submit_sweep(
    sweep: Sweep,
    spec_text: str,
    *,
    address: str,
    results: str | None = None,
    progress: Callable[[str], None] = print,
) -> Submission:
    """Check the cluster is there, stage the job's files and submit; returns once Ray has it.

    ``spec_text`` is validated again and must be the spec ``sweep`` came from: the text, not
    the parsed object, is what travels, so the job sees exactly the file the user wrote. The
    spec's directory travels with it (see `sweeps.cluster._ship`); `progress` hears what is shipped.
    """
    shipped = parse_spec(spec_text, source=sweep.source)
    if shipped.digest != sweep.digest:
        raise CaviarError([Problem("SPEC", sweep.source, "changed while being submitted")])
    on_cluster, shown = _cluster_results(results or sweep.spec.results)
    spec_path = f"{JOB_SPEC_DIR}/{Path(sweep.source).name}"
    entrypoint = f"python -m sweeps run {shlex.quote(spec_path)} --results {on_cluster}"
    job_id = f"caviar-{sweep.name}-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="caviar-submit-") as tmp:
        # Staged first: what cannot travel is refused before the cluster is contacted.
        working_dir, shipped_dir = _stage_working_dir(
            Path(tmp), shipped, spec_text, sweep.spec.results
        )
        _check_reachable(address)
        client = _client(address)
        for line in (
            shipped_dir.summary,
            *shipped_dir.left_out,
            *(f"note: {n}" for n in shipped_dir.notes),
        ):
            progress(line)
        runtime_env = {
            "working_dir": str(working_dir),
            # Paths inside the working directory are then written relative to it (see
            # trainables' job paths), so each node finds its own copy.
            "env_vars": {SHIPPED_ENV: "1"},
        }
        metadata = {"caviar_sweep": sweep.name, "caviar_spec_digest": sweep.digest}
        try:
            submitted = client.submit_job(
                entrypoint=entrypoint,
                submission_id=job_id,
                runtime_env=runtime_env,
                metadata=metadata,
            )
        except Exception as exc:  # the SDK raises bare RuntimeError / ConnectionError
            raise _refused(address, exc) from None
    return Submission(submitted, address, entrypoint, shown)


def dry_run(sweep: Sweep, *, results: str | None = None) -> list[str]:
    """What `submit_sweep` would send, as lines for the user: each file of the spec's directory
    with its size, what was left out and why, the project's size. Nothing is staged or sent,
    and no address is needed; what `submit_sweep` refuses before contacting the cluster is
    refused here alike."""
    _, shown = _cluster_results(results or sweep.spec.results)
    local = _local_results(sweep.spec.results)
    plan = plan_spec_dir(sweep, keep_out=[] if local is None else [local])
    names = [path.relative_to(plan.source).as_posix() for path in plan.paths]
    width = max(len(name) for name in names)
    lines = [f"would ship {plan.source} (as {JOB_SPEC_DIR}/ in the job's working directory):"]
    lines += [
        f"  {name:<{width}}  {_size(path.stat().st_size):>10}"
        for name, path in zip(names, plan.paths, strict=True)
    ]
    lines.append(f"total: {plan.files} file{'s' * (plan.files != 1)}, {_size(plan.size)}")
    lines += plan.left_out
    project = _project_payload(sweep.spec.results)
    if project is None:
        lines.append("no project travels: the cluster's installed caviar runs the job")
    else:
        root, files, size = project
        lines.append(f"with the caviar project {root}: {files} files, {_size(size)}")
    lines += [f"note: {note}" for note in plan.notes]
    lines.append(f"results on the head: {shown}")
    lines.append("dry run: nothing was sent, the cluster was not contacted")
    return lines


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    return f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def wait_for_job(address: str, job_id: str, write: Callable[[str], None]) -> bool:
    """Stream the job's logs until it ends; True when it succeeded (not failed or stopped)."""
    from ray.job_submission import JobStatus

    client = _client(address)

    async def tail() -> None:
        async for chunk in client.tail_job_logs(job_id):
            write(chunk)

    try:
        asyncio.run(tail())
    except Exception as exc:  # a dropped tunnel ends the stream early; the status still tells
        log.warning("log stream ended early: %s", _first_line(exc))
    while True:
        try:
            status = client.get_job_status(job_id)
        except Exception as exc:
            raise _refused(address, exc) from None
        if status.is_terminal():
            return status == JobStatus.SUCCEEDED
        time.sleep(1.0)


def _client(address: str) -> JobSubmissionClient:
    from ray.job_submission import JobSubmissionClient

    # The SDK logs each upload step at INFO; the CLI prints what matters.
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(address, headers=_auth_headers())
    except Exception as exc:  # version check: ConnectionError, AuthenticationError, RuntimeError
        raise _refused(address, exc) from None


def _auth_headers() -> dict[str, str]:
    """The cluster's token, found where Ray itself looks: $RAY_AUTH_TOKEN, then the file named
    by $RAY_AUTH_TOKEN_PATH, then ~/.ray/auth_token.

    Ray's SDK sends it only when this process has RAY_AUTH_MODE=token; a laptop that just
    holds the token should not need that setting to reach its own cluster. A cluster without
    token auth ignores the header.
    """
    # Ray's private API, kept to this one function: the token loader is the only way to find
    # the token exactly where Ray's own clients do (a Cython class, hence no type stubs).
    from ray._raylet import AuthenticationTokenLoader  # type: ignore[attr-defined]

    loader = AuthenticationTokenLoader.instance()
    if not loader.has_token(ignore_auth_mode=True):
        return {}
    return {"Authorization": f"Bearer {loader.get_raw_token(ignore_auth_mode=True)}"}


def _check_reachable(address: str) -> None:
    """The SDK's HTTP call has no timeout; a TCP connect to a dead tunnel fails in seconds."""
    parts = urlsplit(address)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise RunError(
            [Problem("--address", address, f"no Ray Jobs API reachable: {reason}")]
        ) from None


def _refused(address: str, exc: BaseException) -> RunError:
    return RunError([Problem("--address", address, f"the cluster refused: {_first_line(exc)}")])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _cluster_results(results: str) -> tuple[str, str]:
    """The job's `--results` as shell text, and as shown to the user.

    A relative path goes under the home directory of the head node's Ray user: the job's own
    directory belongs to Ray, which deletes it later. An s3:// location is the same everywhere.
    """
    if "://" in results:
        problem = results_uri_problem(results)
        if problem is not None:
            raise SpecError([Problem("results", results, problem)])
        return shlex.quote(results), results
    path = PurePosixPath(results)
    if path.is_absolute():
        return shlex.quote(str(path)), str(path)
    return '"$HOME"/' + shlex.quote(str(path)), f"~/{path}"


def _stage_working_dir(
    tmp: Path, sweep: Sweep, spec_text: str, local_results: str
) -> tuple[Path, ShippedDir]:
    """The project (when this is a source checkout), and the spec's directory under
    JOB_SPEC_DIR with the spec written as validated.

    Installed from a wheel there is no project to send: the job then uses the `caviar`
    installed on the cluster, and only the spec's directory travels.
    """
    stage = tmp / "job"
    root = _project_root()
    results = _local_results(local_results)
    if root is None:
        stage.mkdir()
    else:
        shutil.copytree(root, stage, ignore=_project_ignore(root, results))
        shutil.rmtree(stage / JOB_SPEC_DIR, ignore_errors=True)  # a stale one is not this spec
    keep_out = [stage] if results is None else [stage, results]
    shipped = ship_spec_dir(sweep, stage / JOB_SPEC_DIR, keep_out=keep_out)
    (stage / JOB_SPEC_DIR / Path(sweep.source).name).write_text(spec_text, encoding="utf-8")
    return stage, shipped


def _project_payload(local_results: str) -> tuple[Path, int, int] | None:
    """The checkout that `_stage_working_dir` would copy, counted without copying: its root,
    files and bytes; None when caviar is installed from a wheel and no project travels."""
    root = _project_root()
    if root is None:
        return None
    ignore = _project_ignore(root, _local_results(local_results))
    files = size = 0
    for directory, dirs, names in os.walk(root, followlinks=True):  # as copytree copies
        ignored = ignore(directory, [*dirs, *names])
        dirs[:] = [d for d in dirs if d not in ignored and d != JOB_SPEC_DIR]
        for name in names:
            path = Path(directory, name)
            if name not in ignored and path.is_file():
                files += 1
                size += path.stat().st_size
    return root, files, size


def _local_results(results: str) -> Path | None:
    return None if "://" in results else Path(results).resolve()


def _project_ignore(root: Path, results: Path | None) -> Callable[[str, list[str]], set[str]]:
    """What of the checkout stays home: as for the spec's directory, credentials included,
    and local results kept in the project under another name than `results`."""
    skip = _inside(root, results) if results is not None else None
    patterns = shutil.ignore_patterns(*ALWAYS_EXCLUDED, *IGNORE_FILES, *CREDENTIALS)

    def ignore(directory: str, names: list[str]) -> set[str]:
        ignored = set(patterns(directory, names))
        if skip is not None:
            ignored |= {n for n in names if Path(directory, n).resolve() == skip}
        return ignored

    return ignore


def _project_root() -> Path | None:
    root = Path(__file__).resolve().parents[2]  # sweeps/cluster/_submit.py -> the checkout
    return root if (root / "pyproject.toml").is_file() else None


def _inside(root: Path, path: Path) -> Path | None:
    """Local results kept in the project under another name than `results` stay home too."""
    return path if path.is_relative_to(root) and path != root else None
