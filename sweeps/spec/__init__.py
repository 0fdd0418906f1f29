"""What a spec may say and every refusal of a bad one: the YAML, its models (strategies, model
factory, data file, training function) and the checks of an edited spec. The package's public
names are exported by `sweeps`; these modules are private."""

__all__: list[str] = []
