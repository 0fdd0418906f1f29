"""`caviar submit`: the Ray Jobs submission and what travels with it. The package's public names
are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
