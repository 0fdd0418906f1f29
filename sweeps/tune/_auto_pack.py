"""`pack: auto` is never slower than `pack: 1`: when most configurations would sit in packs of
one or two, the sweep runs them as plain trials instead.

A pack of one member pays what a plain trial pays (a Ray trial, the data, the network) and
runs its network under `vmap`, which costs more than the plain loop; two members barely repay
it. Configurations fall into such packs when a searched keyword changes the network's
structure (a width drawn from a range gives nearly every configuration its own network), so
whether they do is known from the plan before anything runs: the fixed points and the first
batch an adaptive strategy proposes. The decision is the sweep's, once: a resumed run plans
the same points and decides the same.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from sweeps.spec import Sweep, preview_points, strategy_row
from sweeps.tune._packing import group_key

__all__ = ["SMALL_PACK", "settle_auto_packing"]

# Packs of at most this many members train no faster than as many plain trials.
SMALL_PACK = 2


def settle_auto_packing(sweep: Sweep) -> Sweep:
    """`sweep`, with `pack: auto` turned into `pack: 1` (and a note saying why) when at least
    half of its planned configurations would fall into groups of at most `SMALL_PACK`."""
    spec = sweep.spec
    if spec.pack != "auto" or not strategy_row(spec.strategy).packs:
        return sweep
    planned = preview_points(sweep)
    if not planned:
        return sweep
    groups = Counter(
        group_key(sweep.trial_config(point.params, seed=spec.seed), ()) for point in planned
    )
    alone = sum(size for size in groups.values() if size <= SMALL_PACK)
    if 2 * alone < len(planned):
        return sweep
    note = (
        f"pack: auto runs one configuration per trial, with worker reuse: {alone} of the "
        f"{len(planned)} planned configurations would train in packs of {SMALL_PACK} or fewer "
        f"({len(groups)} groups{_because(sweep)}), which are no faster than plain trials"
    )
    return replace(sweep, spec=spec.model_copy(update={"pack": 1}), notes=(*sweep.notes, note))


def _because(sweep: Sweep) -> str:
    """Which searched keywords split the configurations, for the note."""
    searched = set(sweep.space.names)
    splitting: list[str] = [name for name in ("batch_size", "optimizer") if name in searched]
    if sweep.factory is not None:
        structural = sweep.factory.params if sweep.structural is None else sweep.structural
        splitting += [name for name in sweep.space.names if name in structural]
    else:
        splitting += [name for name in ("depth", "batchnorm") if name in searched]
    return f": {', '.join(splitting)} split them" if splitting else ""
