"""A packing process on a CPU keeps the memory it frees (`_malloc`): a second round of the same
large allocations page-faults nothing, where glibc's defaults fault every page in again."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)

# Faults of each round of 20 tensors of 6 MB (what a packed step's activations look like to
# malloc), after `keep_freed_memory()` when the argument says so.
ROUNDS = textwrap.dedent(
    """
    import resource, sys, torch
    from trainables.packing._malloc import keep_freed_memory
    print(keep_freed_memory() if sys.argv[1] == "keep" else None)
    for _ in range(4):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        tensors = [torch.ones(1536 * 1024) for _ in range(20)]
        del tensors
        print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    """
)


def _rounds(mode: str, env: dict[str, str] | None = None) -> tuple[str, list[int]]:
    proc = subprocess.run(
        [sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, timeout=120, env=env
    )
    assert proc.returncode == 0, proc.stderr
    first, *faults = proc.stdout.split()
    return first, [int(f) for f in faults]


def test_freed_memory_is_reused_without_faults() -> None:
    kept, faults = _rounds("keep")
    assert kept == "True"
    pages = 20 * 6 * 2**20 // 4096
    assert faults[0] > pages // 2  # the first round faults its pages in
    # later rounds reuse them (a round may still fault one 6 MB block in; the defaults fault
    # all twenty, every round)
    assert max(faults[1:]) <= pages // 10


def test_the_switch_leaves_malloc_alone() -> None:
    import os

    env = {**os.environ, "CAVIAR_KEEP_FREED_MEMORY": "0"}
    kept, _ = _rounds("keep", env)
    assert kept == "False"
