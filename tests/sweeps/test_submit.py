"""`caviar submit`: a sweep travels to a token-protected cluster as a Ray Job and lands in
Parquet; bad input is refused before anything is sent, an unreachable cluster in one line."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from _procs import free_port, kill_session

from analysis import load_trials
from sweeps._cli import main
from sweeps._submit import JOB_SPEC_DIR, _stage_working_dir

VENV_BIN = Path(sys.executable).parent
SPEC = textwrap.dedent(
    """
    name: submitted
    trainable: {dataset: digits, epochs: 1, fixed: {depth: 1, hidden: 16, batch_size: 64}}
    search_space:
      lr: {type: float, low: 1.0e-3, high: 0.3, scale: log}
    strategy: {kind: random, samples: 4}
    """
)


def _caviar(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sweeps", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip


def _client_env(tmp_path: Path, token: str | None) -> dict[str, str]:
    """A laptop holding only the token: no auth mode set, no token file in its home."""
    env = {**os.environ, "HOME": str(tmp_path / "home"), "RAY_AUTH_MODE": "disabled"}
    for name in ("RAY_ADDRESS", "RAY_API_SERVER_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(name, None)
    if token is not None:
        env["RAY_AUTH_TOKEN"] = token
    return env


@pytest.fixture(scope="module")
def token_cluster() -> Iterator[tuple[str, str]]:
    """A one-node Ray head with token auth, its dashboard (Jobs API) on 127.0.0.1; yields
    (Jobs API address, token)."""
    token = secrets.token_hex(32)
    dashboard = free_port()
    temp = tempfile.mkdtemp(prefix="cvsub")  # short: Ray's socket paths must fit 107 bytes
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": token,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # jobs run this python
    }
    env.pop("RAY_ADDRESS", None)
    log = open(Path(temp) / "head.log", "wb")  # noqa: SIM115 (closed in the finalizer)
    head = subprocess.Popen(
        [
            str(VENV_BIN / "ray"), "start", "--head", "--block", "--disable-usage-stats",
            "--node-ip-address=127.0.0.1", f"--port={free_port()}",
            "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
            f"--ray-client-server-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            "--num-cpus=2", "--num-gpus=0", f"--temp-dir={temp}",
        ],
        stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{dashboard}"
    try:
        _wait_for_jobs_api(address, token, head)
        yield address, token
    finally:
        kill_session(head)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def _wait_for_jobs_api(address: str, token: str, head: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert head.poll() is None, "ray start --head exited early"
        if _get(f"{address}/api/jobs/", token)[0] == 200:
            return
        time.sleep(0.5)
    raise AssertionError("the Jobs API did not come up")


def _get(url: str, token: str | None) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except OSError:
        return 0, ""


@pytest.mark.ray
def test_submit_wait_runs_the_sweep_on_a_token_cluster(token_cluster, tmp_path):
    address, token = token_cluster
    spec = tmp_path / "elsewhere" / "sweep.yaml"  # outside the project: it must travel
    spec.parent.mkdir()
    spec.write_text(SPEC)
    out = tmp_path / "out"

    result = _caviar(
        ["submit", str(spec), "--address", address, "--wait", "--results", str(out)],
        _client_env(tmp_path, token),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    trials = load_trials(out, sweep="submitted")
    assert len(trials) == 4
    assert trials["trial_id"].is_unique
    assert set(trials["status"]) == {"ok"}
    job_id = result.stdout.split("submitted job ", 1)[1].split()[0]
    status, body = _get(f"{address}/api/jobs/{job_id}", token)
    assert status == 200
    entrypoint = json.loads(body)["entrypoint"]
    assert f"{JOB_SPEC_DIR}/submitted.yaml" in entrypoint
    assert str(spec) not in entrypoint


@pytest.mark.ray
def test_the_jobs_api_refuses_requests_without_the_right_token(token_cluster, tmp_path):
    address, _ = token_cluster
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SPEC)

    jobs_before = _get(f"{address}/api/jobs/", token_cluster[1])[1]
    assert _get(f"{address}/api/jobs/", None)[0] == 401
    assert _get(f"{address}/api/jobs/", "not-the-token")[0] == 403
    for token in (None, "not-the-token"):
        result = _caviar(["submit", str(spec), "--address", address], _client_env(tmp_path, token))
        assert result.returncode == 1, result.stdout + result.stderr
        assert result.stderr.startswith("error: --address: the cluster refused: Authentication")
        assert len(result.stderr.splitlines()) == 1
    assert _get(f"{address}/api/jobs/", token_cluster[1])[1] == jobs_before  # nothing submitted


def test_a_bad_spec_is_refused_before_the_cluster_is_contacted(tmp_path, capsys):
    spec = tmp_path / "bad.yaml"
    spec.write_text(SPEC.replace("samples: 4", "samples: 0"))
    # Nothing listens on this port: reaching it would give exit 1, not 2.
    unreachable = f"http://127.0.0.1:{free_port()}"

    code = main(["submit", str(spec), "--address", unreachable])

    assert code == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {spec}: strategy.samples: Input should be greater than or equal to 1 (got 0)"
    ]


def test_a_local_data_file_is_refused_before_the_cluster_is_contacted(tmp_path, capsys):
    import pandas as pd

    pd.DataFrame({"a": [0.1, 0.4, 0.2, 0.9] * 5, "y": ["p", "q"] * 10}).to_csv(
        tmp_path / "t.csv", index=False
    )
    spec = tmp_path / "file.yaml"
    spec.write_text(SPEC.replace("dataset: digits", "dataset: {path: t.csv, target: y}"))
    unreachable = f"http://127.0.0.1:{free_port()}"

    assert main(["submit", str(spec), "--address", unreachable]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {spec}: trainable.dataset.path: a local data file does not")
    assert line.endswith("(got 't.csv')")


def test_a_user_model_module_is_refused_before_the_cluster_is_contacted(tmp_path, capsys):
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n"
        "def make(input_shape, n_classes):\n"
        "    return nn.Linear(input_shape[0], n_classes)\n"
    )
    spec = tmp_path / "model.yaml"
    model = "trainable: {model: 'net:make', dataset: digits, epochs: 1, fixed: {batch_size: 64}}"
    spec.write_text(SPEC.replace(SPEC.splitlines()[2], model))
    unreachable = f"http://127.0.0.1:{free_port()}"

    assert main(["submit", str(spec), "--address", unreachable]) == 2, capsys.readouterr().err
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {spec}: trainable.model: a user's model module does not")


@pytest.mark.parametrize(
    ("address", "code", "message"),
    [
        ("ray://127.0.0.1:10001", 2, "expected the Jobs API as http://HOST:PORT"),
        ("http://127.0.0.1:PORT", 1, "no Ray Jobs API reachable: Connection refused"),
    ],
)
def test_an_unusable_address_is_one_line_with_its_exit_code(
    tmp_path, capsys, address, code, message
):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(SPEC)
    address = address.replace("PORT", str(free_port()))

    assert main(["submit", str(spec), "--address", address]) == code
    err = capsys.readouterr().err
    assert err.startswith(f"error: --address: {message}")
    assert len(err.splitlines()) == 1


def test_the_job_carries_the_project_and_the_spec_but_no_environment_or_results(tmp_path):
    stage = _stage_working_dir(tmp_path, f"{JOB_SPEC_DIR}/s.yaml", SPEC, "results")

    assert (stage / JOB_SPEC_DIR / "s.yaml").read_text() == SPEC
    assert (stage / "sweeps" / "_submit.py").is_file()
    assert (stage / "pyproject.toml").is_file()
    for skipped in (".venv", ".git", "results"):
        assert not (stage / skipped).exists()
    assert not list(stage.rglob("__pycache__"))
