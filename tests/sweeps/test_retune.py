"""`caviar retune` end to end on Ray: drift moves the best lr and is flagged, unchanged data
keeps the incumbent, overlapping runs exit 75, a killed holder leaves no stale lock, a failed
re-tune leaves best.json byte-identical; and `caviar best`."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from analysis import ResultsStore, load_table, load_trials
from analysis._report_retunes import retune_section
from sweeps import parse_spec, run_sweep
from sweeps._cli import main
from sweeps._errors import RunError
from sweeps.retune._retune import retune_lock, run_retune
from sweeps.run import sweep_lock

SPEC = textwrap.dedent(
    """
    name: drift
    objective: {{metric: val_accuracy, mode: max}}
    trainable:
      dataset: synthetic
      epochs: 4
      data_version: {version}
      fixed: {{batchnorm: false, depth: 1, hidden: 32, batch_size: 64}}
    search_space:
      lr: {{type: float, low: 1.0e-4, high: 1.0, scale: log}}
    strategy: {{kind: random, samples: 8}}
    retune: {{budget: 5, explore: 0.5}}
    max_concurrent: 2
    seed: 3
    """
)


def _spec(tmp_path: Path, version: int = 1, text: str = SPEC) -> Path:
    path = tmp_path / f"v{version}.yaml"
    path.write_text(text.format(version=version))
    return path


def _best(tmp_path: Path, spec: Path) -> dict[str, object]:
    return json.loads((tmp_path / "out" / "drift" / "best.json").read_text())


def _retune(spec: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """The CLI in-process; its stdout, with stderr (the progress lines) captured apart."""
    capsys.readouterr()
    code = main(["retune", str(spec), "--results", str(tmp_path / "out")])
    return code, capsys.readouterr().out


@pytest.fixture
def swept(ray_local: None, tmp_path: Path) -> Path:
    """A first full sweep on version 1 of the data: the history re-tunes start from."""
    run_sweep(parse_spec(SPEC.format(version=1)), tmp_path / "out")
    return tmp_path


@pytest.mark.ray
def test_retune_keeps_the_incumbent_on_unchanged_data_and_moves_lr_after_drift(
    swept: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tmp_path = swept
    v1, v2 = _spec(tmp_path, 1), _spec(tmp_path, 2)
    history = load_trials(tmp_path / "out", "drift")
    ok = history[history["status"] == "ok"]
    first = ok.loc[ok["val_accuracy"].idxmax()]

    code, out = _retune(v1, tmp_path, capsys)
    assert code == 0
    same = _best(tmp_path, v1)
    assert "drift: no" in out and len(out.strip().splitlines()) <= 6
    # re-run with its own seed on the same data, the incumbent reproduces its score
    events = load_table(tmp_path / "out", "events", "drift")
    assert events["kind"].tolist() == ["retune"]
    assert events["incumbent_score_now"].iloc[0] == pytest.approx(first["val_accuracy"])
    assert not events["drift"].iloc[0]
    assert same["data_version"] == "1" and same["last_retune"]["drift"] is False
    assert abs(math.log10(same["params"]["lr"] / first["lr"])) < 0.5  # kept, or as good nearby

    code, out = _retune(v2, tmp_path, capsys)
    assert code == 0
    moved = _best(tmp_path, v2)
    assert "drift: YES" in out
    events = load_table(tmp_path / "out", "events", "drift").sort_values("recorded_at")
    last = events.iloc[-1]
    assert bool(last["drift"]) and last["action"] == "replaced"
    assert last["data_fingerprint"] != events.iloc[0]["data_fingerprint"]
    # 10x larger inputs without BatchNorm: the best lr falls by at least half a decade
    assert moved["params"]["lr"] < same["params"]["lr"] / math.sqrt(10)
    assert moved["score"] > last["incumbent_score_now"]
    assert moved["data_version"] == "2" and moved["run_id"] == last["run_id"]
    origins = set(load_trials(tmp_path / "out", "drift")["origin"])
    assert {"random", "incumbent", "retune", "explore"} <= origins
    # the report's history of re-tunes
    section = retune_section(tmp_path / "out", "drift")
    assert "2 re-tune(s), 1 with drift" in section and section.count("<tr") == 3
    print(out, f"lr {same['params']['lr']:.4g} -> {moved['params']['lr']:.4g}; ", dict(last))


def _fake_history(results: Path, lrs: list[float], scores: list[float]) -> None:
    """A recorded sweep without running one: enough `trials` rows for a re-tune to start."""
    rows = [
        {"run_id": "20260101T000000Z-000000", "trial_id": f"t{i:05d}", "status": "ok",
         "origin": "random", "lr": lr, "val_accuracy": score, "seed": i}
        for i, (lr, score) in enumerate(zip(lrs, scores, strict=True))
    ]  # fmt: skip
    schema = pa.schema(
        [("run_id", pa.string()), ("trial_id", pa.string()), ("status", pa.string()),
         ("origin", pa.string()), ("lr", pa.float64()), ("val_accuracy", pa.float64()),
         ("seed", pa.int64())]
    )  # fmt: skip
    ResultsStore(results, "drift").write("trials", rows, schema, run_id=rows[0]["run_id"],
                                         round_index=0)  # fmt: skip


def _kill_holder(sweep_dir: Path) -> None:
    """A process that takes the re-tune lock, then dies by SIGKILL while holding it."""
    code = (
        "import sys, time; from pathlib import Path\n"
        "from sweeps.retune._retune import retune_lock\n"
        "with retune_lock(Path(sys.argv[1])):\n    print('locked', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(sweep_dir)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (sweep_dir / ".retune.lock").read_text() == str(proc.pid)  # the file stays behind


def test_an_overlapping_retune_exits_75_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = _spec(tmp_path)
    for lock in (retune_lock, sweep_lock):  # another re-tune, or a `caviar run` of the sweep
        with lock(tmp_path / "out" / "drift"):
            code = main(["retune", str(spec), "--results", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 75
        assert len(err.strip().splitlines()) == 1
        assert f"another {'re-tune' if lock is retune_lock else '`caviar run`'} of" in err
        assert f"pid {os.getpid()}" in err and "drift" in err
    assert not (tmp_path / "out" / "drift" / "best.json").exists()


def test_a_lock_left_by_a_killed_retune_is_not_stale(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _kill_holder(tmp_path / "out" / "drift")
    code = main(["retune", str(_spec(tmp_path)), "--results", str(tmp_path / "out")])
    err = capsys.readouterr().err
    # it got past the lock: what stops it now is the empty history, not another re-tune
    assert code == 2 and "no recorded `ok` trial to warm-start from" in err
    assert "another re-tune" not in err


@pytest.mark.ray
def test_a_failed_retune_leaves_best_json_byte_identical(
    ray_local: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    results = tmp_path / "out"
    _fake_history(results, [0.01, 0.1], [0.6, 0.7])
    best = results / "drift" / "best.json"
    best.write_text('{"metric": "val_accuracy", "mode": "max", "score": 0.7,\n "params": ' +
                    '{"lr": 0.1}, "run_id": "r", "trial_id": "t00001", "seed": 1}\n')  # fmt: skip
    before = best.read_bytes()
    # a bad spec: exit 2, nothing written
    bad = _spec(tmp_path, 0)
    assert main(["retune", str(bad), "--results", str(results)]) == 2

    # every trial fails (a planted failure: a learning rate the trainable refuses)
    def failing(*args: object, **kwargs: object) -> list[tuple[dict[str, object], str]]:
        return [({"lr": -1.0}, "incumbent"), ({"lr": -2.0}, "retune")]

    monkeypatch.setattr("sweeps.retune._retune.plan_retune", failing)
    with pytest.raises(RunError, match="no re-tune trial succeeded"):
        run_retune(parse_spec(SPEC.format(version=1)), results)
    assert best.read_bytes() == before
    events = load_table(results, "events", "drift")
    assert events["action"].tolist() == ["failed"]
    failed = load_trials(results, "drift").query("status == 'error'")
    assert sorted(failed["origin"]) == ["incumbent", "retune"]


def test_caviar_best_prints_the_current_best_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    results = tmp_path / "out"
    spec = _spec(tmp_path)
    args = ["best", str(spec), "--results", str(results)]
    assert main(args) == 1
    assert "no results yet" in capsys.readouterr().err
    assert main(["best", str(tmp_path / "missing.yaml")]) == 2
    _fake_history(results, [0.01, 0.1, 0.5], [0.6, 0.7, 0.3])
    capsys.readouterr()
    assert main(args) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["params"] == {"lr": 0.1} and shown["score"] == 0.7
    assert (shown["trial_id"], shown["seed"], shown["metric"]) == ("t00001", 1, "val_accuracy")
    assert shown["last_retune"] is None
    record = {**shown, "params": {"lr": 0.02}, "score": 0.75}
    (results / "drift" / "best.json").write_text(json.dumps(record))
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == record


@pytest.mark.parametrize(
    ("retune", "field"),
    [
        ("{budget: 0}", "retune.budget"),
        ("{budget: 1.5}", "retune.budget"),
        ("{budget: true}", "retune.budget"),
        ("{explore: 2}", "retune.explore"),
        ("{margin: -0.1}", "retune.margin"),
        ("{top: 0}", "retune.top"),
        ("{drift_threshold: .nan}", "retune.drift_threshold"),
        ("{every: 1d}", "retune.every"),
    ],
)
def test_bad_retune_settings_are_one_line_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], retune: str, field: str
) -> None:
    text = SPEC.format(version=1).replace("retune: {budget: 5, explore: 0.5}", f"retune: {retune}")
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    assert main(["retune", str(spec), "--results", str(tmp_path / "out")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f": {field}: " in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.ray
def test_a_packed_retune_spreads_its_trials_over_the_clusters_slots(
    ray_local: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`pack: auto` sizes packs from the trial slots (2 CPUs here): a re-tune's 5 trials go
    into 2 packs that run side by side, not into one pack on one CPU."""
    text = SPEC.replace("max_concurrent: 2", "max_concurrent: 2\npack: auto")
    run_sweep(parse_spec(text.format(version=1)), tmp_path / "out")
    code, _ = _retune(_spec(tmp_path, 1, text), tmp_path, capsys)
    assert code == 0
    trials = load_trials(tmp_path / "out", "drift")
    retune_run = trials[trials["run_id"] != trials["run_id"].min()]
    assert len(retune_run) == 5
    assert retune_run["pack_id"].nunique() == 2
