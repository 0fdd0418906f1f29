"""SIGTERM handled as Ctrl-C is: what cron's `timeout`, systemd and Kubernetes send to stop a
run. It becomes `Terminated` (a KeyboardInterrupt) in the main thread, so the same unwinding
runs: the manifest says the run did not finish, Ray is shut down, the lock is released, and
the CLI prints how to resume and exits 143 (128 + SIGTERM).

Ray installs its own SIGTERM handlers in `ray.init` (exit at once, after a C++ stack dump), so
`ray_session` installs this one again once Ray is up.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

__all__ = ["Terminated", "install_sigterm_handler"]


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by SIGTERM."""

    exit_code = 128 + signal.SIGTERM


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def install_sigterm_handler() -> object:
    """Make SIGTERM raise `Terminated`; returns the handler it replaced (None off the main
    thread, where Python cannot set handlers and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)
