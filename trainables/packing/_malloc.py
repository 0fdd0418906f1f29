"""On a CPU, a packing process keeps the memory it frees, so that a step does not page-fault
its tensors in afresh every step.

Autograd allocates each step's activations and gradients anew: megabytes each for a stack of a
small CNN (8 MB for one of the example's layers at 32 members). glibc serves such blocks with
`mmap`, or from the top of its heap, and hands them back to the kernel when they are freed, so
the next step's first write to each page faults again: about 30,000 faults a round for 120 MB,
measured. One pack trial is one process at its peak for its whole life, so it keeps what it
frees instead: blocks up to glibc's largest threshold (32 MB) come from the heap, and freed
memory is trimmed only beyond 1 GB. The example CNN's packed step runs 10-15 % faster for it
(docs/performance.md). The hand-written MLP stack reuses its own buffers and gains nothing.

Linux with glibc only: elsewhere (or with `CAVIAR_KEEP_FREED_MEMORY=0`) nothing changes.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

__all__ = ["KEEP_FREED_ENV", "keep_freed_memory"]

logger = logging.getLogger(__name__)

KEEP_FREED_ENV = "CAVIAR_KEEP_FREED_MEMORY"

# mallopt's parameters (glibc's malloc.h) and the values set.
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_SETTINGS = (
    (_M_MMAP_THRESHOLD, 32 << 20),  # glibc's largest: blocks below it come from the heap
    (_M_TRIM_THRESHOLD, 1 << 30),  # give the heap's top back only beyond 1 GB free
    (_M_TOP_PAD, 64 << 20),  # and grow it in 64 MB steps
)

_kept = False


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed memory in this process (once); whether it is set."""
    global _kept
    if _kept:
        return True
    if not sys.platform.startswith("linux") or os.environ.get(KEEP_FREED_ENV, "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # glibc's mallopt returns 1 on success; musl's is a stub that returns 0.
    _kept = all(mallopt(parameter, value) == 1 for parameter, value in _SETTINGS)
    if _kept:
        logger.debug("malloc keeps freed memory in this process (packed training on a CPU)")
    return _kept
