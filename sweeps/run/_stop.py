"""SIGTERM handled as Ctrl-C is: what cron's `timeout`, systemd and Kubernetes send to stop a
run. It becomes `Terminated` (a KeyboardInterrupt) in the main thread, so the same unwinding
runs: the manifest says the run did not finish, Ray is shut down, the lock is released, and
the CLI prints how to resume and exits 143 (128 + SIGTERM).

Ray installs its own SIGTERM handlers in `ray.init` (exit at once, after a C++ stack dump), so
`ray_session` installs this one again once Ray is up. And when the signal lands while the driver
waits inside Ray (`ray.wait`, `ray.get`: where a Tune run spends most of its time), Ray's core
worker catches the handler's exception and raises a plain KeyboardInterrupt in its place. So the
handler also records that SIGTERM came, and `stopped_by_sigterm` asks that record, not the
exception's type.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["Terminated", "forget_sigterm", "install_sigterm_handler", "stopped_by_sigterm"]


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by SIGTERM."""

    exit_code = 128 + signal.SIGTERM


_received = threading.Event()


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise Terminated


def install_sigterm_handler() -> object:
    """Make SIGTERM raise `Terminated`; returns the handler it replaced (None off the main
    thread, where Python cannot set handlers and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def stopped_by_sigterm(exc: KeyboardInterrupt) -> bool:
    """Whether `exc` unwound the run because of SIGTERM (as `Terminated`, or as the plain
    KeyboardInterrupt Ray turns it into), rather than because of Ctrl-C."""
    return isinstance(exc, Terminated) or _received.is_set()


def forget_sigterm() -> None:
    """Start a command with no SIGTERM on record (the CLI's `main` may run more than once in a
    process: tests, notebooks)."""
    _received.clear()
