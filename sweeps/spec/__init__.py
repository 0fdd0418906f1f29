"""What a spec may say and every refusal of a bad one: the YAML, its models (strategies, model
factory, data file, training function), the checks of an edited spec, the strategy table (every
kind, its model, its behaviour, what it can do and who runs it), and the points a spec plans.
The package's public names are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
