"""Trials on Ray Tune: the Tuner, the trial configs and packs, and how a trial ended. The package's
public names are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
