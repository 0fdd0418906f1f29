"""The frame of every run: results checked, run chosen or resumed, the Ray session, resources, the
lock, the manifest, SIGTERM, and the outcome. The package's public names are exported
by `sweeps`; these modules are private."""

__all__: list[str] = []
