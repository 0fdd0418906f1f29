"""`caviar export mlflow`: a sweep's results as MLflow runs, sent in batches, never twice.

MLflow is an optional extra, imported here and only when an export runs, so no other command
pays for it. The Parquet results are only read: whatever happens to the tracking server, they are
unchanged, and a failed export is finished by exporting again (what is there is kept, a trial
run left half-sent is replaced).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import analysis
from analysis import Mode, ResultsLike, results_path
from sweeps._errors import CaviarError
from sweeps.export._mlflow_runs import (
    PARENT_KEY,
    SWEEP_TAG,
    TRIAL_KEY,
    ParentRun,
    TrialRun,
    sweep_runs,
)

__all__ = ["ExportError", "ExportSummary", "export_mlflow", "mlflow_missing"]

_log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'caviar[mlflow]'"
# MLflow's limits on one log_batch call.
_BATCH_METRICS = 1000
_BATCH_PARAMS = 100
# A plain HTTP request answers "is anyone there" in seconds; MLflow's own client would retry a
# refused connection with backoff for minutes before saying so.
_PROBE_TIMEOUT_S = 10.0
_T = TypeVar("_T")


class ExportError(CaviarError):
    """The results were fine, the export could not finish (exit 1; 2 when MLflow is missing)."""

    exit_code = 1

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__([])
        self.message = message
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

    def lines(self) -> list[str]:
        return [f"error: {self.message}"]


@dataclass(frozen=True)
class ExportSummary:
    sweep: str
    experiment: str
    experiment_id: str
    tracking_uri: str
    created: int  # trial runs created by this export
    existing: int  # trial runs already there, left as they were
    replaced: int  # trial runs a broken export left half-sent, sent again
    parents_created: int
    parents_updated: int

    def line(self) -> str:
        return (
            f"mlflow: sweep {self.sweep} -> experiment {self.experiment!r} "
            f"(id {self.experiment_id}): {self.created} trial runs created, "
            f"{self.existing} already there"
            + (f", {self.replaced} half-sent ones sent again" if self.replaced else "")
            + f"; parent runs: {self.parents_created} created, {self.parents_updated} updated"
        )


def mlflow_missing() -> str | None:
    """The one line to print when MLflow is not installed, found without importing it."""
    if importlib.util.find_spec("mlflow") is None:
        return f"the MLflow export needs MLflow: {INSTALL_HINT}"
    return None


def export_mlflow(
    results_dir: ResultsLike,
    *,
    sweep: str | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    objective: str | None = None,
    mode: Mode | None = None,
) -> list[ExportSummary]:
    """Export every sweep in `results_dir` (or `sweep`), one summary each.

    `tracking_uri` None is MLflow's default ($MLFLOW_TRACKING_URI, else ./mlflow.db).
    `experiment` None: one experiment per sweep, named after it. `objective`/`mode` rank each
    run's best trial; None: `analysis.default_objective` (the spec is not stored with results).
    Raises ExportError (unreachable, refused, MLflow missing) and ResultsError (no results).
    """
    missing = mlflow_missing()
    if missing is not None:
        raise ExportError(missing, exit_code=2)
    root = results_path(results_dir)
    names = [sweep] if sweep is not None else analysis.sweeps_in(root)
    loaded = [(name, *_read(root, name, objective, mode)) for name in names]
    with _no_run_links():
        client = _client(tracking_uri)
        return [
            _export_sweep(client, name, parents, experiment or name)
            for name, parents, has_trials in loaded
            if has_trials
        ]


@contextlib.contextmanager
def _no_run_links() -> Iterator[None]:
    """MLflow's client prints two lines (and fetches the run again) for every run it ends on a
    server; its own switch turns that off, for this export only."""
    name = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
    before = os.environ.get(name)
    os.environ[name] = "true"
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def _read(
    root: analysis.ResultsPath, sweep: str, objective: str | None, mode: Mode | None
) -> tuple[list[ParentRun], bool]:
    trials = analysis.load_trials(root, sweep)
    if trials.empty:
        return [], False
    if objective is None or mode is None:
        try:
            objective, mode = analysis.default_objective(trials)
        except analysis.ResultsError:  # no trial scored anything: every run has no best
            objective, mode = "val_accuracy", "max"
    epochs = analysis.load_epochs(root, sweep)
    rounds = analysis.load_rounds(root, sweep)
    space = analysis.load_space(root, sweep)
    bounds = analysis.round_bounds(trials, rounds, space)
    events = analysis.load_table(root, "events", sweep)
    searched = list(space) if space else []
    parents = sweep_runs(
        trials, epochs, bounds, events, searched=searched, objective=objective, mode=mode
    )
    return parents, True


class _Client:
    """MlflowClient, with every failure turned into one line naming the tracking URI."""

    def __init__(self, client: Any, uri: str) -> None:
        self.raw = client
        self.uri = uri

    def call(self, what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
        from mlflow.exceptions import MlflowException

        try:
            return fn(*args, **kwargs)
        except (MlflowException, OSError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(
                f"mlflow: {what} failed at {self.uri}: {first[:300]}; the results are unchanged "
                "and exporting again continues where this stopped"
            ) from None


def _client(tracking_uri: str | None) -> _Client:
    from mlflow import MlflowClient

    # MLflow sets up its own handler at import and logs a new store's schema migrations at INFO;
    # the CLI owns the terminal.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    raw = MlflowClient(tracking_uri=tracking_uri)
    uri = str(raw.tracking_uri)
    _probe(uri)
    return _Client(raw, uri)


def _probe(uri: str) -> None:
    """Any HTTP answer (even 401 or 404) means a server is there; no answer is one line."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri, timeout=_PROBE_TIMEOUT_S, allow_redirects=False)
    except requests.RequestException as exc:
        reason = type(exc).__name__
        if isinstance(exc, requests.ConnectionError):
            reason = "connection refused or host unknown"
        elif isinstance(exc, requests.Timeout):
            reason = f"no answer in {_PROBE_TIMEOUT_S:g} s"
        raise ExportError(
            f"mlflow: tracking server unreachable at {uri} ({reason}); nothing was exported, "
            "the results are unchanged"
        ) from None


def _export_sweep(
    client: _Client, sweep: str, parents: list[ParentRun], experiment: str
) -> ExportSummary:
    experiment_id = _experiment_id(client, experiment)
    known = _existing_runs(client, experiment_id, sweep)
    created = existing = replaced = parents_created = parents_updated = 0
    for parent in parents:
        parent_run = known.get(parent.key)
        if parent_run is None:
            parent_id = _create(client, experiment_id, parent.name, parent.tags, parent.start_ms)
            parents_created += 1
        else:
            parent_id = parent_run.info.run_id
            if _update_tags(client, parent_run, parent.tags):
                parents_updated += 1
        for trial in parent.trials:
            run = known.get(trial.key)
            if run is not None and run.info.status != "RUNNING":
                existing += 1
                continue
            if run is not None:  # created by an export that stopped before it finished
                client.call("deleting a half-sent run", client.raw.delete_run, run.info.run_id)
                replaced += 1
            else:
                created += 1
            _send_trial(client, experiment_id, parent_id, trial)
        if parent_run is None or (
            parent.end_ms is not None and parent_run.info.end_time != parent.end_ms
        ):
            client.call(
                "ending a run", client.raw.set_terminated, parent_id, "FINISHED", parent.end_ms
            )
    return ExportSummary(
        sweep=sweep,
        experiment=experiment,
        experiment_id=str(experiment_id),
        tracking_uri=client.uri,
        created=created,
        existing=existing,
        replaced=replaced,
        parents_created=parents_created,
        parents_updated=parents_updated,
    )


def _experiment_id(client: _Client, name: str) -> str:
    found = client.call("finding the experiment", client.raw.get_experiment_by_name, name)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise ExportError(
                f"mlflow: experiment {name!r} is deleted at {client.uri}; restore it "
                "(mlflow experiments restore) or choose another with --experiment"
            )
        return str(found.experiment_id)
    return str(client.call("creating the experiment", client.raw.create_experiment, name))


def _existing_runs(client: _Client, experiment_id: str, sweep: str) -> dict[str, Any]:
    """Every live run of the sweep in the experiment, by its key tag."""
    runs: dict[str, Any] = {}
    token = None
    while True:
        page = client.call(
            "searching the experiment's runs",
            client.raw.search_runs,
            [experiment_id],
            filter_string=f"tags.`{SWEEP_TAG}` = '{sweep}'",
            max_results=1000,
            page_token=token,
        )
        for run in page:
            key = run.data.tags.get(TRIAL_KEY) or run.data.tags.get(PARENT_KEY)
            if key is not None:
                runs[key] = run
        token = page.token
        if not token:
            return runs


def _create(
    client: _Client, experiment_id: str, name: str, tags: dict[str, str], start_ms: int | None
) -> str:
    run = client.call(
        "creating a run",
        client.raw.create_run,
        experiment_id,
        start_time=start_ms,
        tags=tags,
        run_name=name,
    )
    return str(run.info.run_id)


def _update_tags(client: _Client, run: Any, tags: dict[str, str]) -> bool:
    """Rewrite the tags that changed (a parent's best trial, a new round); False if none did."""
    from mlflow.entities import RunTag

    changed = [RunTag(k, v) for k, v in tags.items() if run.data.tags.get(k) != v]
    for chunk in _chunks(changed, _BATCH_PARAMS):
        client.call("updating a run's tags", client.raw.log_batch, run.info.run_id, tags=chunk)
    return bool(changed)


def _send_trial(client: _Client, experiment_id: str, parent_id: str, trial: TrialRun) -> None:
    """create_run, then log_batch in MLflow's batch sizes, then the end: the run stays RUNNING
    until everything is sent, which is how a later export tells a half-sent run."""
    from mlflow.entities import Metric, Param

    tags = {**trial.tags, "mlflow.parentRunId": parent_id}
    run_id = _create(client, experiment_id, trial.name, tags, trial.start_ms)
    params = [Param(k, v) for k, v in trial.params.items()]
    metrics = [Metric(m.key, m.value, m.timestamp_ms, m.step) for m in trial.metrics]
    # The first batch carries the params and as many metrics as fit beside them.
    first_params, params = params[:_BATCH_PARAMS], params[_BATCH_PARAMS:]
    first_metrics = metrics[: _BATCH_METRICS - len(first_params)]
    batches: list[tuple[Sequence[Any], Sequence[Any]]] = [(first_params, first_metrics)]
    batches += [(chunk, []) for chunk in _chunks(params, _BATCH_PARAMS)]
    rest = metrics[len(first_metrics) :]
    batches += [([], chunk) for chunk in _chunks(rest, _BATCH_METRICS)]
    for batch_params, batch_metrics in batches:
        if batch_params or batch_metrics:
            client.call(
                "sending a trial",
                client.raw.log_batch,
                run_id,
                metrics=list(batch_metrics),
                params=list(batch_params),
            )
    status = "FAILED" if trial.failed else "FINISHED"
    client.call("ending a run", client.raw.set_terminated, run_id, status, trial.end_ms)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
