"""`caviar submit`: a sweep travels to a token-protected cluster as a Ray Job and lands in
Parquet; bad input is refused before anything is sent, an unreachable cluster in one line."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
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
from _procs import free_port, kill_session, run_caviar, user_env
from _ray_nodes import ray_cluster

from analysis import load_trials
from sweeps import load_spec
from sweeps._cli import main
from sweeps._errors import SpecError
from sweeps.cluster._ship import _refuse_home_or_root
from sweeps.cluster._submit import (
    JOB_SPEC_DIR,
    _project_ignore,
    _project_payload,
    _stage_working_dir,
)
from trainables import SHIPPED_ENV

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
# A user's network: flattened 1x8x8 images through one BatchNorm layer.
NET = textwrap.dedent(
    """
    from torch import nn


    def make(input_shape, n_classes, width=16):
        return nn.Sequential(
            nn.Flatten(), nn.Linear(64, width, bias=False), nn.BatchNorm1d(width), nn.ReLU(),
            nn.Linear(width, n_classes),
        )
    """
)
USER_SPEC = textwrap.dedent(
    """
    name: shipped
    trainable:
      model: MODEL
      dataset: {path: data/images.npz}
      epochs: 1
      fixed: {batch_size: 64}
    search_space:
      lr: {type: float, low: 1.0e-2, high: 0.3, scale: log}
      width: {type: int, low: 8, high: 32, scale: log}
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


@pytest.mark.cli
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
    assert f"{JOB_SPEC_DIR}/sweep.yaml" in entrypoint  # the spec keeps its name
    assert str(spec) not in entrypoint


@pytest.mark.cli
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


@pytest.mark.parametrize("field", ["path", "val_path"])
def test_a_data_file_outside_the_spec_dir_is_refused_before_the_cluster_is_contacted(
    tmp_path, capsys, field
):
    import pandas as pd

    table = pd.DataFrame({"a": [0.1, 0.4, 0.2, 0.9] * 5, "y": ["p", "q"] * 10})
    table.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "project").mkdir()
    table.to_csv(tmp_path / "project" / "t.csv", index=False)
    paths = {"path": "t.csv", "val_path": "t.csv", field: "../t.csv"}
    dataset = f"{{path: {paths['path']}, val_path: {paths['val_path']}, target: y}}"
    spec = tmp_path / "project" / "file.yaml"
    spec.write_text(SPEC.replace("dataset: digits", f"dataset: {dataset}"))
    unreachable = f"http://127.0.0.1:{free_port()}"

    assert main(["submit", str(spec), "--address", unreachable]) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: {spec}: trainable.dataset.{field}: is outside the spec's")
    assert line.endswith("(got '../t.csv')")


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
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    stage, shipped = _stage_working_dir(tmp_path / "t", load_spec(spec), SPEC, "results")

    assert (stage / JOB_SPEC_DIR / "s.yaml").read_text() == SPEC
    assert (stage / "sweeps" / "cluster" / "_submit.py").is_file()
    assert (stage / "pyproject.toml").is_file()
    for skipped in (".venv", ".git", "results", ".gitignore"):
        assert not (stage / skipped).exists()
    assert not list(stage.rglob("__pycache__"))
    assert shipped.files == 1  # the spec itself: nothing else lies beside it


def test_the_spec_dir_travels_under_its_ignore_rules_but_named_files_always_do(tmp_path):
    """A data file kept out of git still travels (the sweep needs it); what .gitignore and
    .caviarignore name, environments and local results stay home."""
    project = tmp_path / "proj"
    (project / "data").mkdir(parents=True)
    (project / "nets").mkdir()
    (project / "nets" / "__init__.py").write_text("")
    (project / "nets" / "small.py").write_text(NET)
    (project / "data" / "images.npz").write_bytes(
        (Path(__file__).parents[2] / "sweeps/examples/data/digits_images.npz").read_bytes()
    )
    (project / "data" / "scratch.npz").write_bytes(b"not needed")
    (project / "notes.md").write_text("kept")
    (project / "big.ckpt").write_bytes(b"0" * 1000)
    (project / ".gitignore").write_text("data/\n")
    (project / ".caviarignore").write_text("*.ckpt\n")
    (project / ".venv" / "lib").mkdir(parents=True)
    (project / ".venv" / "lib" / "x.py").write_text("")
    (project / "out" / "s").mkdir(parents=True)
    (project / "out" / "s" / "trials.parquet").write_bytes(b"")
    text = USER_SPEC.replace("MODEL", "nets.small:make")
    (project / "s.yaml").write_text(text)

    stage, shipped = _stage_working_dir(
        tmp_path / "t", load_spec(project / "s.yaml"), text, str(project / "out")
    )

    shipped_files = {
        p.relative_to(stage / JOB_SPEC_DIR).as_posix()
        for p in (stage / JOB_SPEC_DIR).rglob("*")
        if p.is_file()
    }
    expected = {"s.yaml", "notes.md", "nets/__init__.py", "nets/small.py", "data/images.npz"}
    assert shipped_files == expected
    assert shipped.files == len(expected)
    assert shipped.notes == ()


CREDENTIAL_FILES = (
    ".env", ".env.local", ".envrc", ".netrc", ".git-credentials", "tls.key", "certs/server.pem",
    "sub/.env", ".ssh/id_rsa", ".aws/credentials", ".gnupg/pubring.kbx",
    ".config/gcloud/application_default_credentials.json", ".ray/auth_token", "keys/id_ed25519",
)  # fmt: skip


def _user_project(project: Path) -> str:
    """A spec beside a model module and its data, as `caviar submit` is given it; the spec text."""
    (project / "data").mkdir(parents=True)
    (project / "nets").mkdir()
    (project / "nets" / "__init__.py").write_text("")
    (project / "nets" / "small.py").write_text(NET)
    shutil.copy(
        Path(__file__).parents[2] / "sweeps/examples/data/digits_images.npz",
        project / "data" / "images.npz",
    )
    (project / "notes.md").write_text("kept")
    text = USER_SPEC.replace("MODEL", "nets.small:make")
    (project / "s.yaml").write_text(text)
    return text


def _shipped_files(stage: Path) -> set[str]:
    spec_dir = stage / JOB_SPEC_DIR
    return {p.relative_to(spec_dir).as_posix() for p in spec_dir.rglob("*") if p.is_file()}


def test_credentials_never_travel_not_even_when_an_ignore_file_names_them_back(tmp_path):
    """A spec kept beside keys and tokens (a home-like folder) ships none of them; the user is
    told their names, never their contents."""
    project = tmp_path / "proj"
    text = _user_project(project)
    for name in CREDENTIAL_FILES:
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text("SECRET")
    (project / ".caviarignore").write_text("!.env\n!.ssh/\n!*.pem\n")

    stage, shipped = _stage_working_dir(tmp_path / "t", load_spec(project / "s.yaml"), text, "r")

    expected = {"s.yaml", "notes.md", "nets/__init__.py", "nets/small.py", "data/images.npz"}
    assert _shipped_files(stage) == expected
    assert shipped.files == len(expected)
    assert shipped.withheld == (
        ".aws/", ".config/", ".gnupg/", ".ray/", ".ssh/", ".env", ".env.local", ".envrc",
        ".git-credentials", ".netrc", "tls.key", "certs/server.pem", "keys/id_ed25519", "sub/.env",
    )  # fmt: skip
    [line] = shipped.left_out
    assert line.startswith("left out as credentials (never shipped): .aws/, .config/")
    assert "SECRET" not in line


def test_a_file_the_spec_names_travels_even_under_a_credential_like_name(tmp_path):
    project = tmp_path / "proj"
    text = _user_project(project)
    (project / ".config").mkdir()
    (project / "data" / "images.npz").rename(project / ".config" / "images.npz")
    (project / ".config" / "token.json").write_text("SECRET")
    text = text.replace("data/images.npz", ".config/images.npz")
    (project / "s.yaml").write_text(text)

    stage, shipped = _stage_working_dir(tmp_path / "t", load_spec(project / "s.yaml"), text, "r")

    assert ".config/images.npz" in _shipped_files(stage)
    assert ".config/token.json" not in _shipped_files(stage)
    assert shipped.withheld == (".config/",)


def test_links_leading_out_of_the_spec_dir_stay_home(tmp_path):
    """A link is followed only inside the directory: what lies outside is not the project."""
    project = tmp_path / "proj"
    text = _user_project(project)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("SECRET")
    (project / "readme.txt").symlink_to(outside / "secret.txt")
    (project / "shared").symlink_to(outside, target_is_directory=True)
    (project / "alias.md").symlink_to("notes.md")  # inside: its content travels
    (project / ".env").write_text("SECRET")
    (project / "settings.txt").symlink_to(".env")  # an innocent name for a credential

    stage, shipped = _stage_working_dir(tmp_path / "t", load_spec(project / "s.yaml"), text, "r")

    files = _shipped_files(stage)
    assert (stage / JOB_SPEC_DIR / "alias.md").read_text() == "kept"
    assert not {"readme.txt", "settings.txt", "shared/secret.txt"} & files
    assert shipped.links_out == ("shared/", "readme.txt")
    assert shipped.withheld == (".env", "settings.txt")
    assert shipped.left_out[1] == f"left out, links leading outside {project}: shared/, readme.txt"


def test_the_project_copy_leaves_credentials_home_too(tmp_path):
    ignore = _project_ignore(tmp_path, None)
    names = [".env", ".ssh", "deploy.pem", "id_rsa", "module.py", "README.md"]

    assert ignore(str(tmp_path), names) == {".env", ".ssh", "deploy.pem", "id_rsa"}


@pytest.mark.cli
def test_a_spec_in_the_home_directory_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    """`caviar submit ~/sweep.yaml` would ship the whole home directory: refused, exit 2,
    before any cluster is contacted (nothing listens at the address: reaching it is exit 1);
    `--dry-run` refuses it alike."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("SECRET")
    (home / "sweep.yaml").write_text(SPEC)
    expected = (
        "error: sweep.yaml: SPEC: the spec's directory is the home directory, and all of it "
        "would travel with the job: move the spec (and the files it uses) into a project "
        f"folder (got {str(home.resolve())!r})"
    )
    address = f"http://127.0.0.1:{free_port()}"

    result = run_caviar("submit", "sweep.yaml", "--address", address, cwd=home, env=user_env(home))

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.splitlines() == [expected]
    assert result.stdout == ""
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    assert main(["submit", "sweep.yaml", "--dry-run"]) == 2
    assert capsys.readouterr() == ("", expected + "\n")


def test_a_spec_at_the_filesystem_root_is_refused():
    with pytest.raises(SpecError) as refused:
        _refuse_home_or_root(Path("/"), "/sweep.yaml")

    [line] = refused.value.lines()
    assert line.startswith("error: /sweep.yaml: SPEC: the spec's directory is the filesystem root")
    assert line.endswith("(got '/')")


@pytest.mark.cli
def test_dry_run_lists_what_would_travel_and_needs_no_cluster(tmp_path):
    project = tmp_path / "proj"
    _user_project(project)
    (project / ".env").write_text("SECRET=1")
    (project / "big.ckpt").write_bytes(b"0" * 3000)
    (project / ".caviarignore").write_text("*.ckpt\n")
    env = user_env(tmp_path / "home")
    env.pop("RAY_API_SERVER_ADDRESS", None)  # no address anywhere

    result = run_caviar("submit", "s.yaml", "--dry-run", cwd=project, env=env)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"would ship {project} (as {JOB_SPEC_DIR}/ in the job's working directory):"
    listed = {line.split()[0]: " ".join(line.split()[1:]) for line in lines[1:6]}
    npz = (project / "data" / "images.npz").stat().st_size
    assert listed == {
        "s.yaml": f"{(project / 's.yaml').stat().st_size} B",
        "data/images.npz": f"{npz / 1024:.1f} KiB",
        "nets/small.py": f"{len(NET)} B",
        "nets/__init__.py": "0 B",
        "notes.md": "4 B",
    }
    size = sum(
        p.stat().st_size for p in project.rglob("*") if p.suffix in {".yaml", ".npz", ".py", ".md"}
    )
    assert lines[6] == f"total: 5 files, {size / 1024:.1f} KiB"
    assert lines[7] == "left out as credentials (never shipped): .env"
    assert lines[8].startswith("with the caviar project ")
    assert lines[-1] == "dry run: nothing was sent, the cluster was not contacted"
    assert "SECRET" not in result.stdout + result.stderr


def test_dry_run_contacts_no_cluster_at_the_address_given(tmp_path, capsys):
    spec = tmp_path / "proj" / "s.yaml"
    spec.parent.mkdir()
    spec.write_text(SPEC)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"http://127.0.0.1:{listener.getsockname()[1]}"

        assert main(["submit", str(spec), "--address", address, "--dry-run"]) == 0

        listener.setblocking(False)
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected
    assert "  s.yaml" in capsys.readouterr().out


def test_dry_runs_project_count_is_what_staging_copies(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text(SPEC)
    stage, _ = _stage_working_dir(tmp_path / "t", load_spec(spec), SPEC, "results")

    copied = [p for p in stage.rglob("*") if p.is_file() and JOB_SPEC_DIR not in p.parts]
    payload = _project_payload("results")

    assert payload is not None
    assert payload[1:] == (len(copied), sum(p.stat().st_size for p in copied))


def test_a_module_from_outside_the_spec_dir_is_noted_not_shipped(tmp_path, monkeypatch):
    elsewhere = tmp_path / "site"
    elsewhere.mkdir()
    (elsewhere / "installed_net.py").write_text(NET)
    monkeypatch.syspath_prepend(str(elsewhere))
    project = tmp_path / "proj"
    project.mkdir()
    shutil.copytree(Path(__file__).parents[2] / "sweeps/examples/data", project / "data")
    text = USER_SPEC.replace("MODEL", "installed_net:make").replace("images", "digits_images")
    (project / "s.yaml").write_text(text)

    stage, shipped = _stage_working_dir(tmp_path / "t", load_spec(project / "s.yaml"), text, "r")

    assert not (stage / JOB_SPEC_DIR / "installed_net.py").exists()
    [note] = shipped.notes
    assert "'installed_net:make' is imported from" in note
    assert "the cluster must have it installed" in note


@pytest.fixture
def two_nodes_with_jobs_api() -> Iterator[tuple[str, dict[str, str]]]:
    """A head serving the Jobs API and a worker, each with its own temp dir (where Ray unpacks
    a job's working directory) and room for one trial; yields (Jobs API address, the nodes)."""
    per_node = ["--num-cpus=1", "--num-gpus=0", '--resources={"accel": 1}']
    dashboard = free_port()
    with ray_cluster(per_node, per_node, dashboard_port=dashboard) as (_, alive):
        address = f"http://127.0.0.1:{dashboard}"
        deadline = time.monotonic() + 120
        while _get(f"{address}/api/jobs/", None)[0] != 200:
            assert time.monotonic() < deadline, "the Jobs API did not come up"
            time.sleep(0.5)
        yield address, alive


@pytest.mark.cli
@pytest.mark.ray
def test_a_user_module_and_data_travel_to_every_node(two_nodes_with_jobs_api, tmp_path):
    """The model module and its data exist only in the submitted directory (deleted here once
    the job is sent); trials on both nodes import the module from their own node's copy."""
    address, alive = two_nodes_with_jobs_api
    imports = tmp_path / "imports.log"  # each import of the module says where it came from
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "travelling_net.py").write_text(
        f"import os\nwith open({str(imports)!r}, 'a') as log:\n"
        "    log.write(f'{os.getpid()} {__file__}\\n')\n" + NET
    )
    shutil.copy(
        Path(__file__).parents[2] / "sweeps/examples/data/digits_images.npz",
        project / "data" / "images.npz",
    )
    (project / ".gitignore").write_text("data/\n")  # kept out of git, still needed: it travels
    spec = USER_SPEC.replace("MODEL", "travelling_net:make")
    spec += "resources: {cpu: 1, custom: {accel: 1}}\nmax_concurrent: 2\n"
    (project / "s.yaml").write_text(spec)
    out = tmp_path / "out"
    env = user_env(tmp_path / "home")

    sent = run_caviar("submit", str(project / "s.yaml"), "--address", address,
                      "--results", str(out), env=env)  # fmt: skip

    assert sent.returncode == 0, sent.stdout + sent.stderr
    assert f"shipping {project}: 3 files" in sent.stdout
    job_id = sent.stdout.split("submitted job ", 1)[1].split()[0]
    shutil.rmtree(project)  # from here on, only the job's copies exist
    assert _wait_for_job(address, job_id) == "SUCCEEDED", _job_logs(address, job_id)
    trials = load_trials(out, sweep="shipped")
    assert len(trials) == 4
    assert set(trials["status"]) == {"ok"}
    assert set(trials["node_id"]) == set(alive)
    assert trials["width"].between(8, 32).all()
    assert trials["dataset"].str.endswith(f"{JOB_SPEC_DIR}/data/images.npz").all()
    assert trials["data_version"].nunique() == 1
    imported_from = {line.split(" ", 1)[1] for line in imports.read_text().splitlines()}
    # `caviar submit` validated it here; on the cluster, one copy per node (the job's driver
    # and the head's trials share the head's).
    imported_from.remove(str(project / "travelling_net.py"))
    assert len(imported_from) == 2, imported_from
    for path in imported_from:
        assert path.endswith(f"{JOB_SPEC_DIR}/travelling_net.py")
        assert "working_dir_files" in path and not path.startswith(str(project))


def _wait_for_job(address: str, job_id: str, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = _get(f"{address}/api/jobs/{job_id}", None)
        state = json.loads(body)["status"] if status == 200 else ""
        if state in ("SUCCEEDED", "FAILED", "STOPPED"):
            return state
        time.sleep(1.0)
    return "TIMED OUT"


def _job_logs(address: str, job_id: str) -> str:
    return _get(f"{address}/api/jobs/{job_id}/logs", None)[1][-4000:]


def test_a_training_functions_module_travels_and_trials_find_it_on_their_node(
    tmp_path, monkeypatch
):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "loops.py").write_text("def train(config, report):\n    report(val_accuracy=1.0)\n")
    text = textwrap.dedent(
        """
        name: own
        objective: {metric: val_accuracy, mode: max}
        trainable: {function: loops:train, epochs: 1}
        search_space:
          lr: {type: float, low: 1.0e-3, high: 1.0, scale: log}
        strategy: {kind: random, samples: 2}
        """
    )
    (project / "own.yaml").write_text(text)

    stage, shipped = _stage_working_dir(tmp_path / "t", load_spec(project / "own.yaml"), text, "r")

    assert (stage / JOB_SPEC_DIR / "loops.py").is_file()
    assert shipped.notes == ()
    # On the job's driver (it starts in the working directory), trials get a portable path.
    monkeypatch.setenv(SHIPPED_ENV, "1")
    monkeypatch.chdir(stage)
    config = load_spec(stage / JOB_SPEC_DIR / "own.yaml").trial_config({"lr": 0.1}, seed=1)
    assert config["function_dir"] == f"job-dir:{JOB_SPEC_DIR}"
