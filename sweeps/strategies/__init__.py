"""How strategies propose and run: the adaptive drivers (coarse-to-fine, TPE) and auto's
decision. Which strategies there are is the strategy table's (`sweeps/spec/_strategy_table.py`);
the points of a plan are the spec's (`sweeps/spec/_plan_points.py`); panda's babysitting is
`sweeps.panda`. The package's public names are exported by `sweeps`; these modules are
private."""

__all__: list[str] = []
