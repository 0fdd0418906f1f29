"""SIGTERM handled as Ctrl-C is: what cron's `timeout`, systemd and Kubernetes send to stop a
run. It becomes `Terminated` (a KeyboardInterrupt) in the main thread, so the same unwinding
runs: the manifest says the run did not finish, Ray is shut down, the lock is released, and
the CLI prints how to resume and exits 143 (128 + SIGTERM).

Ray installs its own SIGTERM handlers in `ray.init`: `sys.exit(15)` at its start, then its
node's (stop the processes started so far, exit 1). A SIGTERM while Ray started ended caviar
with status 15, no word, and Ray's agents left running. So `ray_session` starts and stops Ray
with SIGTERM held (`sigterm_held`): recorded, kept from Ray's handlers, and raised once Ray is
wholly up or wholly down. And when the signal lands while the driver waits inside Ray
(`ray.wait`, `ray.get`: where a Tune run spends most of its time), Ray's core worker catches the
handler's exception and raises a plain KeyboardInterrupt in its place. So the handler also
records that SIGTERM came, and `stopped_by_sigterm` asks that record, not the exception's type.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

__all__ = [
    "Terminated",
    "forget_sigterm",
    "install_sigterm_handler",
    "sigterm_held",
    "stopped_by_sigterm",
]


class Terminated(KeyboardInterrupt):
    """The process was asked to stop by SIGTERM."""

    exit_code = 128 + signal.SIGTERM


_received = threading.Event()

# Long enough for the finalizer that swallowed `Terminated` to have returned.
_SEND_AGAIN_AFTER_S = 0.05
_next_unraisablehook = sys.unraisablehook


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    _received.set()
    raise Terminated


def install_sigterm_handler() -> object:
    """Make SIGTERM raise `Terminated`; returns the handler it replaced (None off the main
    thread, where Python cannot set handlers and nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    if sys.unraisablehook is not _send_again_if_swallowed:
        global _next_unraisablehook
        _next_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _send_again_if_swallowed
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _send_again_if_swallowed(unraisable: Any) -> None:
    """Python runs a signal handler wherever the main thread is, a finalizer included (a
    `__del__` of Ray Tune's, say), and there an exception is printed and dropped: the run went
    on to its end and exited 0. So a `Terminated` dropped there is sent again, as SIGTERM, a
    moment later, when the main thread is back in code that unwinds."""
    if not isinstance(unraisable.exc_value, Terminated):
        _next_unraisablehook(unraisable)
        return
    if not sys.is_finalizing():
        again = threading.Timer(_SEND_AGAIN_AFTER_S, os.kill, (os.getpid(), signal.SIGTERM))
        again.daemon = True
        again.start()


def stopped_by_sigterm(exc: KeyboardInterrupt) -> bool:
    """Whether `exc` unwound the run because of SIGTERM (as `Terminated`, or as the plain
    KeyboardInterrupt Ray turns it into), rather than because of Ctrl-C."""
    return isinstance(exc, Terminated) or _received.is_set()


def forget_sigterm() -> None:
    """Start a command with no SIGTERM on record (the CLI's `main` may run more than once in a
    process: tests, notebooks)."""
    _received.clear()


@contextmanager
def sigterm_held() -> Iterator[None]:
    """Run the body without SIGTERM cutting it in half: a SIGTERM that comes meanwhile is
    recorded, and raised as `Terminated` when the body has finished (if it raises, its own
    exception goes on, and the record still says SIGTERM came).

    For Ray starting and stopping: stopped halfway, `ray.init` leaves processes that no
    `ray.shutdown` knows of, and `ray.shutdown` leaves them running. Inside the body,
    `signal.signal` leaves SIGTERM's handler alone (`ray.init` would set its own), and the
    handler that was there is set again after it. Off the main thread, nothing is held: Python
    delivers signals to the main thread only.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came = threading.Event()

    def hold(signum: int, frame: FrameType | None) -> None:
        _received.set()
        came.set()

    previous = signal.signal(signal.SIGTERM, hold)
    real_signal = signal.signal

    def keep_sigterm(signalnum: int, handler: Any) -> Any:
        if signalnum == signal.SIGTERM:
            return hold  # what that call would have replaced, and kept in place
        return real_signal(signalnum, handler)

    signal.signal = keep_sigterm
    try:
        yield
    finally:
        signal.signal = real_signal
        # Set again also at the OS level, where a library's C code may have put its own.
        real_signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    if came.is_set():
        raise Terminated
