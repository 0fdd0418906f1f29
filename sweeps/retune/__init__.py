"""Periodic re-tuning: the plan (incumbent, good region, exploration) and the run. The package's
public names are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
