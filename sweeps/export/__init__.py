"""Where results go besides Parquet: `caviar export mlflow` and a spec's `export:`. MLflow is
imported only while an export runs. The package's public names are exported by `sweeps`' CLI;
these modules are private."""

__all__: list[str] = []
