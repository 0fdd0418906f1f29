"""Where results go besides Parquet: `caviar export mlflow` and a spec's `export:`. MLflow is
imported only while an export runs."""

from sweeps.export._command import export_at_end, export_command, require_export

__all__ = [
    "export_at_end",
    "export_command",
    "require_export",
]
