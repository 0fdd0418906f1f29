"""Where rows are written: trial and epoch rows, the events table's schema, the current best
(panda's own rows are `sweeps.panda`'s), and what an adaptive strategy has decided so far
(`_search_state`, read back by `--resume`). The package's public names are exported by `sweeps`;
these modules are private."""

__all__: list[str] = []
