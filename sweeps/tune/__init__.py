"""Trials on Ray Tune: the Tuner, the trial configs and packs (how a trial ended is
`sweeps.plan`'s). The package's public names are exported by `sweeps`; these modules are
private."""

__all__: list[str] = []
