"""Where rows are written: trial and epoch rows, panda's decisions, the current best. The package's
public names are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
