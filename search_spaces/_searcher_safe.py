"""The key under which a reverse_log parameter reaches a Ray Tune searcher.

Searcher-safe mode hands a reverse_log `beta` to Ray as a log-uniform `one_minus_beta`: the Ray
adapter (`_tune.py`) writes the key, the space refuses a parameter it would shadow and maps it
back (`SearchSpace.from_tune`). The name lives here, below both, so neither imports the other.
"""

from __future__ import annotations


def searcher_safe_key(name: str) -> str:
    """The Ray Tune key under which searcher-safe mode exposes 1 - value of a reverse_log `name`."""
    return f"one_minus_{name}"
