"""`export:` in a spec: where the results go after `caviar run` and `caviar retune` finish.

Not part of the spec's digest: exporting never changes what a run does, so adding or editing
it leaves an interrupted run resumable.
"""

from __future__ import annotations

from pydantic import BaseModel, field_validator

from sweeps.spec._mlflow_uri import experiment_problem, tracking_uri_problem
from sweeps.spec._strategy_specs import STRICT

__all__ = ["ExportSpec", "MlflowExportSpec"]


class MlflowExportSpec(BaseModel):
    """`tracking_uri` None: MLflow's own default ($MLFLOW_TRACKING_URI, else ./mlflow.db), so
    `mlflow ui` run in the same directory shows it. `experiment` None: the sweep's name."""

    model_config = STRICT
    tracking_uri: str | None = None
    experiment: str | None = None

    @field_validator("tracking_uri")
    @classmethod
    def _uri(cls, value: str | None) -> str | None:
        problem = None if value is None else tracking_uri_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("experiment")
    @classmethod
    def _experiment(cls, value: str | None) -> str | None:
        problem = None if value is None else experiment_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class ExportSpec(BaseModel):
    model_config = STRICT
    mlflow: MlflowExportSpec | None = None
