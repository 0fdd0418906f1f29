"""What each strategy does and how it proposes configurations: the registry, the fixed plans, the
adaptive drivers (coarse-to-fine, TPE) and auto's decision (panda's babysitting is
`sweeps.panda`). The package's public names are exported by `sweeps`; these modules are
private."""

__all__: list[str] = []
