"""How strategies propose and run: the points of a plan, the adaptive drivers (coarse-to-fine,
TPE) and auto's decision. Which strategies there are is the strategy table's
(`sweeps/spec/_strategy_table.py`); panda's babysitting is `sweeps.panda`. The package's public
names are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
