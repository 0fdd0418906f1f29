"""`caviar export mlflow` and a spec's `export:` at the end of `caviar run` / `caviar retune`, as
lines for the CLI to print: the checks of its flags, the summary, and what a failed export at the
end of a run says (the run's results are kept; how to export them later)."""

from __future__ import annotations

from analysis import ResultsError, ResultsLike, ResultsPath
from sweeps._errors import CaviarError, Problem
from sweeps.export._mlflow import ExportSummary, export_mlflow, mlflow_missing
from sweeps.spec import Sweep, experiment_problem, tracking_uri_problem

__all__ = ["export_at_end", "export_command", "require_export"]


def export_command(
    results_dir: ResultsLike, *, sweep: str | None, tracking_uri: str | None, experiment: str | None
) -> list[str]:
    """Checks the flags (exit 2, one line each), exports, and says where to look."""
    problems = [
        Problem(flag, value, problem)
        for flag, value, check in (
            ("--tracking-uri", tracking_uri, tracking_uri_problem),
            ("--experiment", experiment, experiment_problem),
        )
        if value is not None and (problem := check(value)) is not None
    ]
    if problems:
        raise CaviarError(problems)
    summaries = export_mlflow(
        results_dir, sweep=sweep, tracking_uri=tracking_uri, experiment=experiment
    )
    if not summaries:
        return [f"mlflow: no trials in {results_dir}; nothing exported"]
    return [summary.line() for summary in summaries] + [_where(summaries[0])]


def _where(summary: ExportSummary) -> str:
    uri = summary.tracking_uri
    if uri.startswith(("http://", "https://")):
        return f"see it: {uri.rstrip('/')}/#/experiments/{summary.experiment_id}"
    return f"see it: mlflow ui --backend-store-uri {uri}"


def require_export(sweep: Sweep) -> None:
    """A spec that exports needs MLflow: refused before the run (exit 2), not after hours of it."""
    if sweep.spec.export is None or sweep.spec.export.mlflow is None:
        return
    missing = mlflow_missing()
    if missing is not None:
        raise CaviarError([Problem("export.mlflow", "mlflow not installed", missing)], sweep.source)


def export_at_end(sweep: Sweep, results: ResultsPath) -> tuple[int, str | None]:
    """The spec's `export:`, once the run's results are written: (0, the summary), or (1, the
    one line saying what failed and how to export later); a failure never touches the results."""
    target = sweep.spec.export.mlflow if sweep.spec.export is not None else None
    if target is None:
        return 0, None
    objective = sweep.spec.objective
    try:
        [summary] = export_mlflow(
            results, sweep=sweep.name, tracking_uri=target.tracking_uri,
            experiment=target.experiment, objective=objective.metric,
            mode=objective.resolved_mode,
        )  # fmt: skip
    except (CaviarError, ResultsError) as exc:
        given = {"--tracking-uri": target.tracking_uri, "--experiment": target.experiment}
        flags = [f"{flag} {value}" for flag, value in given.items() if value is not None]
        later = " ".join(["caviar export mlflow", str(results), "--sweep", sweep.name, *flags])
        return 1, f"error: {exc}; export them later: {later}"
    return 0, summary.line()
