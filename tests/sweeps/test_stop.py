"""SIGTERM is told apart from Ctrl-C however it reaches the CLI: as `Terminated`, or as the plain
KeyboardInterrupt Ray raises in its place when the signal lands in `ray.wait`/`ray.get`."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sweeps import _cli
from sweeps.run._stop import (
    Terminated,
    forget_sigterm,
    install_sigterm_handler,
    sigterm_held,
    stopped_by_sigterm,
)


def _sigterm_inside_ray(args: argparse.Namespace) -> int:
    """A run stopped by SIGTERM while it waits in Ray: the handler's `Terminated` is replaced
    by a new KeyboardInterrupt, as Ray's core worker does."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # the handler raises here
    except KeyboardInterrupt:
        raise KeyboardInterrupt from None
    raise AssertionError("SIGTERM was not handled")


def _ctrl_c(args: argparse.Namespace) -> int:
    raise KeyboardInterrupt


def test_sigterm_turned_into_a_plain_interrupt_still_exits_143_and_ctrl_c_stays_130(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    previous = signal.getsignal(signal.SIGTERM)
    try:
        monkeypatch.setattr(_cli, "_dispatch", _sigterm_inside_ray)
        assert _cli.main(["run", "spec.yaml"]) == 143
        assert capsys.readouterr().err == (
            "stopped by SIGTERM; continue with `caviar run spec.yaml --resume`\n"
        )
        monkeypatch.setattr(_cli, "_dispatch", _ctrl_c)  # the next command starts afresh
        assert _cli.main(["run", "spec.yaml"]) == 130
        assert capsys.readouterr().err == (
            "interrupted; continue with `caviar run spec.yaml --resume`\n"
        )
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.ray
def test_sigterm_while_the_driver_waits_in_ray_is_recognised(ray_local: None) -> None:
    import ray

    @ray.remote(num_cpus=1)
    def slow() -> None:
        time.sleep(30)

    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm_handler()
    forget_sigterm()
    ref = slow.remote()
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            ray.wait([ref], timeout=20)
        assert stopped_by_sigterm(caught.value)
    finally:
        signal.signal(signal.SIGTERM, previous)
        timer.cancel()
        ray.cancel(ref, force=True)
        forget_sigterm()


def _sigterm_while_following(address: str, job_id: str, write: Callable[[str], None]) -> bool:
    write("epoch 1\n")
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(10)  # the handler raises here
    raise AssertionError("SIGTERM was not handled")


def _ctrl_c_while_following(address: str, job_id: str, write: Callable[[str], None]) -> bool:
    raise KeyboardInterrupt


def test_submit_wait_stopped_by_sigterm_exits_143_and_by_ctrl_c_130(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import sweeps.cluster as cluster  # the CLI takes its names from the package
    from sweeps.cluster import _submit

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: s\n")
    job = _submit.Submission("raysubmit_1", "http://head:8265", "caviar run spec.yaml", "/r")
    monkeypatch.setattr(cluster, "submit_sweep", lambda *a, **k: job)
    args = argparse.Namespace(address="http://head:8265", results=None, wait=True, dry_run=False)
    sweep: Any = SimpleNamespace(source=str(spec))  # `_submit` reads only the spec's text
    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm_handler()
    forget_sigterm()
    try:
        monkeypatch.setattr(cluster, "wait_for_job", _sigterm_while_following)
        assert _cli._submit(sweep, args) == 143
        err = capsys.readouterr().err
        assert err.startswith("stopped by SIGTERM; stopped following, the job goes on")
        assert "ray job stop raysubmit_1" in err
        forget_sigterm()
        monkeypatch.setattr(cluster, "wait_for_job", _ctrl_c_while_following)
        assert _cli._submit(sweep, args) == 130
        assert capsys.readouterr().err.startswith("interrupted; stopped following")
    finally:
        signal.signal(signal.SIGTERM, previous)
        forget_sigterm()


class _StopsInItsFinalizer:
    """Sends SIGTERM from its `__del__`: the handler runs inside the finalizer, where Python
    prints and drops whatever it raises."""

    def __init__(self, reached: list[str]) -> None:
        self.reached = reached

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises here
        self.reached.append("the finalizer's end")


def test_sigterm_dropped_in_a_finalizer_is_sent_again_and_stops_the_command() -> None:
    """Seen in a run: SIGTERM landed in a `__del__` of Ray Tune's, `Terminated` was dropped
    there, and the run went on to exit 0."""
    previous = signal.getsignal(signal.SIGTERM)
    hook = sys.unraisablehook
    install_sigterm_handler()
    forget_sigterm()
    reached: list[str] = []
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            _StopsInItsFinalizer(reached)  # dropped at once: its finalizer runs here
            time.sleep(20)  # sent again: raised here
        assert stopped_by_sigterm(caught.value)
        assert reached == []  # the first `Terminated` was raised inside the finalizer
    finally:
        signal.signal(signal.SIGTERM, previous)
        sys.unraisablehook = hook
        forget_sigterm()


def test_sigterm_held_is_recorded_kept_from_other_handlers_and_raised_after() -> None:
    """What `ray_session` wraps `ray.init` and `ray.shutdown` in: the body finishes, a handler
    it sets for SIGTERM (as `ray.init` does) is not set, and `Terminated` comes after."""
    previous = signal.getsignal(signal.SIGTERM)
    install_sigterm_handler()
    ours = signal.getsignal(signal.SIGTERM)
    forget_sigterm()
    done: list[str] = []
    try:
        with pytest.raises(Terminated), sigterm_held():
            signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(signum))
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # a raising handler would raise here
            done.append("body")
        assert done == ["body"]
        assert signal.getsignal(signal.SIGTERM) is ours
        with sigterm_held():  # no SIGTERM: nothing raised
            done.append("again")
        assert done == ["body", "again"]
    finally:
        signal.signal(signal.SIGTERM, previous)
        forget_sigterm()
