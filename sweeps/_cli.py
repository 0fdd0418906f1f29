"""`caviar`: the command line. It owns the terminal; everything below it only logs."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sweeps._errors import CaviarError
from sweeps.plan import Progress
from sweeps.run import (
    Terminated,
    forget_sigterm,
    install_sigterm_handler,
    prepare_ray_environment,
    stopped_by_sigterm,
)

if TYPE_CHECKING:
    from analysis import ResultsPath
    from sweeps.plan import Point
    from sweeps.spec import Sweep

# Everything else is imported by the command that uses it: `--version` imports nothing heavy,
# `best`, `report`, `export` and `validate` of a built-in MLP's spec import neither torch nor
# Ray (tests/sweeps/test_cli_imports.py; bench/cli_startup.py times them).

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caviar", description="Hyperparameter sweeps on Ray Tune, results in Parquet."
    )
    parser.add_argument("--version", action="version", version=f"caviar {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run a sweep (embedded local Ray unless --address)")
    run.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    run.add_argument(
        "--results", help="results directory or s3://bucket/prefix (overrides the spec's `results`)"
    )
    run.add_argument("--resume", action="store_true", help="continue the sweep's latest run")
    validate = commands.add_parser("validate", help="check a spec and print the resolved space")
    validate.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    validate.add_argument("--explain", action="store_true", help="also print the plan")
    submit = commands.add_parser("submit", help="submit a sweep as a Ray Job to a cluster")
    submit.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    submit.add_argument(
        "--address",
        help="the cluster's Jobs API, http://HOST:8265 (default: $RAY_API_SERVER_ADDRESS)",
    )
    submit.add_argument(
        "--results", help="results directory on the cluster's head (relative: under its home)"
    )
    submit.add_argument("--wait", action="store_true", help="stream the logs until the job ends")
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="list what would travel and its size; contacts no cluster, needs no address",
    )
    retune = commands.add_parser(
        "retune", help="periodic re-tune for cron, warm-started from history (docs/retune.md)"
    )
    retune.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    retune.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    retune.add_argument("--results", help="results directory (overrides the spec's `results`)")
    best = commands.add_parser("best", help="print the sweep's current best configuration (JSON)")
    best.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    best.add_argument(
        "--results", help="results directory or s3://bucket/prefix (overrides the spec's `results`)"
    )
    init = commands.add_parser(
        "init", help="write a starter project: a spec, a model factory and a small data file"
    )
    init.add_argument("directory", metavar="DIR", help="a new (or empty) directory")
    report = commands.add_parser("report", help="write a self-contained HTML report")
    report.add_argument(
        "results_dir", metavar="RESULTS_DIR", help="results directory or s3://bucket/prefix"
    )
    report.add_argument("--sweep", help="which sweep (default: the only one in RESULTS_DIR)")
    report.add_argument("--out", help="output file (default: RESULTS_DIR/report.html)")
    export = commands.add_parser("export", help="send results to another tool (MLflow)")
    targets = export.add_subparsers(dest="target", required=True, metavar="TARGET")
    mlflow = targets.add_parser(
        "mlflow", help="one MLflow run per trial, per-epoch metrics; exporting again adds only new"
    )
    mlflow.add_argument(
        "results_dir", metavar="RESULTS_DIR", help="results directory or s3://bucket/prefix"
    )
    mlflow.add_argument("--sweep", help="which sweep (default: every sweep in RESULTS_DIR)")
    mlflow.add_argument(
        "--tracking-uri", help="default: $MLFLOW_TRACKING_URI, else MLflow's ./mlflow.db"
    )
    mlflow.add_argument("--experiment", help="MLflow experiment (default: the sweep's name)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("caviar")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


# What a shell reports for a process killed by SIGPIPE (128 + 13).
EXIT_BROKEN_PIPE = 141


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Line by line even into a pipe or a cron job's log, so that stdout's lines and stderr's
    # (a refusal, "stopped by SIGTERM") land in the order they were written.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    install_sigterm_handler()
    forget_sigterm()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        code = _dispatch(args)
        sys.stdout.flush()  # here, so that a reader gone early is caught below
        return code
    except BrokenPipeError:
        # `caviar best SPEC | head`: the reader left, nothing went wrong here. Point stdout at
        # /dev/null so that the interpreter's own final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except CaviarError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if not _is_results_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        hint = {
            "run": f"; continue with `caviar run {args.spec} --resume`",
            "retune": "; the current best is unchanged",
        }.get(args.command, "")
        return _interrupted(exc, hint)


def _is_results_error(exc: Exception) -> bool:
    """Whether `exc` is `analysis.ResultsError` (a results location that cannot be read), looked
    up without importing `analysis` (pandas): only a command that imported it can raise one."""
    analysis = sys.modules.get("analysis")
    return analysis is not None and isinstance(exc, analysis.ResultsError)


def _interrupted(exc: KeyboardInterrupt, hint: str) -> int:
    """One line saying whether SIGTERM or Ctrl-C stopped the command, then its exit code: one
    place, so that every command tells the two apart alike (143 and 130)."""
    stopped = stopped_by_sigterm(exc)
    print(f"{'stopped by SIGTERM' if stopped else 'interrupted'}{hint}", file=sys.stderr)
    return Terminated.exit_code if stopped else 130


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "report":
        return _report(args)
    if args.command == "export":
        return _export(args)
    if args.command == "init":
        return _init(args)
    if args.command in ("run", "retune"):
        # Ray reads its auth settings when it is first imported, by whichever module that is.
        prepare_ray_environment(args.address)
    from sweeps.spec import load_spec

    sweep = load_spec(args.spec)
    if args.command in ("validate", "run"):
        from sweeps.tune import settle_auto_packing

        sweep = settle_auto_packing(sweep)  # auto's packs of one or two run as plain trials
    if args.command in ("validate", "run", "retune", "submit"):
        for note in sweep.notes:
            print(f"note: {note}", file=sys.stderr)
    if args.command == "validate":
        return _validate(sweep, explain=args.explain)
    if args.command == "submit":
        return _submit(sweep, args)
    if args.command == "retune":
        return _retune(sweep, args)
    if args.command == "best":
        return _best(sweep, args)
    return _run(sweep, args)


def _init(args: argparse.Namespace) -> int:
    from sweeps._init import SPEC_FILE, init_project

    directory = Path(args.directory)
    for path in init_project(directory):
        print(f"wrote {path}")
    spec = directory / SPEC_FILE
    print(f"next: caviar validate {spec} --explain; then caviar run {spec}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from analysis import write_report

    path = write_report(args.results_dir, out=args.out, sweep=args.sweep)
    print(f"report: {path}")
    return 0


def _export(args: argparse.Namespace) -> int:
    from sweeps.export import export_command

    lines = export_command(
        args.results_dir,
        sweep=args.sweep,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
    )
    for line in lines:
        print(line)
    return 0


def _export_at_end(sweep: Sweep, results: ResultsPath, say: Callable[[str], None]) -> int:
    """The spec's `export:`, after the run's last line: a failure is one line on stderr, exit 1."""
    from sweeps.export import export_at_end

    code, line = export_at_end(sweep, results)
    if line is not None and code == 0:
        say(line)
    elif line is not None:
        print(line, file=sys.stderr)
    return code


def _validate(sweep: Sweep, *, explain: bool) -> int:
    from sweeps.spec import preview_points, strategy_row

    spec = sweep.spec
    out = sys.stdout
    print(f"sweep {spec.name}: ok (spec digest {sweep.digest})", file=out)
    print(f"objective: {spec.objective.resolved_mode} {spec.objective.metric}", file=out)
    t = spec.trainable
    data = sweep.data_file.path if sweep.data_file is not None else t.dataset
    version = "" if t.data_version is None else f" (data version {t.data_version})"
    what = f"training function {t.function}" if t.function else f"{t.model} on {data}{version}"
    print(f"trainable: {what}, {t.epochs} epochs", file=out)
    for name, value in t.fixed.items():
        print(f"  fixed  {name} = {value!r}", file=out)
    for name, domain in sweep.space.domains.items():
        print(f"  search {name}: {_describe(domain.to_dict())}", file=out)
    print(f"strategy: {_strategy_line(sweep)}", file=out)
    if spec.early_stopping is not None:
        asha = spec.early_stopping
        print(
            f"early stopping: ASHA, first rung at epoch {asha.grace_period}, "
            f"keeps 1/{asha.reduction_factor:g} at each rung",
            file=out,
        )
    if explain:
        print(
            f"resources per trial: {spec.resources.cpu:g} CPU, {spec.resources.gpu:g} GPU", file=out
        )
        planned = preview_points(sweep)
        for line in _pack_lines(sweep, planned):
            print(line, file=out)
        print(f"results: {_sweep_location(spec.results, spec.name)}", file=out)
        shown = planned[:5]
        if strategy_row(spec.strategy).adaptive:
            print(
                "later configurations are chosen from the results as they come; the rounds' "
                "bounds are recorded in `rounds/` and drawn by `caviar report`",
                file=out,
            )
        if shown:
            print(f"first {len(shown)} configurations:", file=out)
        for point in shown:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in point.params.items())
            print(f"  {point.trial_id} [{point.origin}] {params}", file=out)
    return 0


def _submit(sweep: Sweep, args: argparse.Namespace) -> int:
    from sweeps.cluster import dry_run, jobs_api_address, submit_sweep, wait_for_job

    if args.dry_run:
        for line in dry_run(sweep, results=args.results):
            print(line)
        return 0
    address = jobs_api_address(args.address)
    text = Path(sweep.source).read_text(encoding="utf-8")
    job = submit_sweep(sweep, text, address=address, results=args.results)
    print(f"submitted job {job.job_id} to {job.address}; results on the head: {job.results}")
    if not args.wait:
        print(f"follow it: ray job logs --follow --address {job.address} {job.job_id}")
        return 0
    try:
        succeeded = wait_for_job(
            address, job.job_id, lambda chunk: print(chunk, end="", flush=True)
        )
    except KeyboardInterrupt as exc:
        # A cron `timeout` stopping the follow is SIGTERM (143), not Ctrl-C; the job goes on.
        hint = f"; stopped following, the job goes on (ray job stop {job.job_id})"
        return _interrupted(exc, hint)
    print(f"job {job.job_id} {'succeeded' if succeeded else 'failed'}")
    return 0 if succeeded else 1


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _pack_lines(sweep: Sweep, planned: list[Point]) -> list[str]:
    """How configurations are grouped into packs, and the groups of the planned ones: a
    searched keyword that changes the network splits packs, so the user sees it before a run."""
    pack = sweep.spec.pack
    if pack == 1:
        return ["pack: 1 (one configuration per Ray trial)"]
    size = "sized from the device and the cluster's trial slots" if pack == "auto" else "each"
    lines = [f"pack: {pack} configurations per Ray trial, {size}"]
    factory = sweep.factory
    if factory is None:
        lines.append(
            "  configurations share a pack when they agree on batch_size, depth, batchnorm and "
            "optimizer (hidden widths are padded)"
        )
    else:
        searched = [n for n in sweep.space.names if n in factory.params]
        structural = list(factory.params) if sweep.structural is None else sweep.structural
        keys = _and(["batch_size", "optimizer", *[n for n in structural if n in searched]])
        lines.append(f"  configurations share a pack when they agree on {keys}")
        if searched:
            changes = [n for n in searched if n in structural]
            lifted = [n for n in searched if n in sweep.attribute_keywords]
            initial = [n for n in searched if n not in structural and n not in lifted]
            verb = "changes" if len(changes) == 1 else "change"
            found = ", ".join(
                part
                for part in (
                    changes and f"{_and(changes)} {verb} its structure",
                    lifted
                    and f"{_and(lifted)} only attributes a pack holds per member "
                    "(dropout rates, LeakyReLU slopes, BatchNorm momentum and eps), so they do "
                    "not split packs",
                    initial and f"{_and(initial)} only its initial values",
                )
                if part
            )
            lines.append(
                f"  ({factory.reference} was built at the ends of each searched keyword's range: "
                f"{found})"
            )
    if planned:
        from sweeps.tune import group_key
        from trainables.packing import plan_gpu_packs

        groups: dict[object, int] = {}
        for point in planned:
            key = group_key(sweep.trial_config(point.params, seed=sweep.spec.seed), ())
            groups[key] = groups.get(key, 0) + 1
        sizes = sorted(groups.values(), reverse=True)
        shown = ", ".join(map(str, sizes[:8])) + (", ..." if len(sizes) > 8 else "")
        lines.append(
            f"  the first {len(planned)} configurations fall into {len(sizes)} "
            f"group{'s' if len(sizes) != 1 else ''} of {shown}"
        )
        if pack == "auto" and sweep.spec.resources.gpu > 0:
            # The cluster is not known here: one GPU on a node with this machine's CPUs.
            cpus = os.cpu_count() or 1
            plan = plan_gpu_packs(
                sizes[0], gpus=1, cpus=cpus, cpu_per_trial=sweep.spec.resources.cpu
            )
            lines.append(
                f"  on one GPU of a node with {cpus} CPUs, the largest group: {plan.describe()}; "
                "with more GPUs each takes its share"
            )
    return lines


def _retune(sweep: Sweep, args: argparse.Namespace) -> int:
    """A few plain, timestamped lines: what cron mails when something needs a look."""
    from sweeps.export import require_export
    from sweeps.retune import check_retune_results, run_retune

    require_export(sweep)
    results = _results(args, sweep)
    check_retune_results(results)
    printer = _ProgressPrinter()
    _log_line(f"caviar retune {sweep.name}: warm-started from {results / sweep.name}")
    outcome = run_retune(sweep, results, address=args.address, show=printer)
    printer.close()
    e, metric = outcome.event, sweep.spec.objective.metric
    now = e["incumbent_score_now"]
    _log_line(
        f"run {outcome.run_id}: {e['trials']} trials, {e['errors']} failed; data "
        f"{e['data_version'] or '-'} ({e['data_fingerprint'][:12]})"
    )
    _log_line(
        f"incumbent {e['incumbent_trial_id']} of {e['incumbent_run_id']}: {metric} "
        f"{e['incumbent_score_then']:.4f} then, "
        + ("failed now" if now is None else f"{now:.4f} now")
        + f"; drift: {'YES' if e['drift'] else 'no'} (threshold {e['drift_threshold']:g})"
    )
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in outcome.record["params"].items())
    _log_line(f"{e['action']}: best {metric} = {e['best_score']:.4f}: {params}")
    _log_line(f"current best: {outcome.best_path}")
    return _export_at_end(sweep, results, _log_line)


def _best(sweep: Sweep, args: argparse.Namespace) -> int:
    import json

    from sweeps.record import current_best

    results = _results(args, sweep)
    print(json.dumps(current_best(sweep, results), indent=1))
    return 0


def _results(args: argparse.Namespace, sweep: Sweep) -> ResultsPath:
    """`--results`, else the spec's `results`: a local path, or s3://bucket/prefix."""
    from analysis import results_path

    return results_path(args.results or sweep.spec.results, "results")


def _sweep_location(results: str, name: str) -> str:
    """Where the sweep's files go, shown without opening the location (validate stays offline)."""
    if "://" in results:
        return f"{results.split('?', 1)[0].rstrip('/')}/{name}"
    return str(Path(results) / name)


def _log_line(text: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {text}", flush=True)


def _strategy_line(sweep: Sweep) -> str:
    from sweeps.spec import behaviour

    strategy = sweep.spec.strategy
    return behaviour(strategy).describe(
        strategy, sweep.space, sweep.spec.seed, len(sweep.spec.initial)
    )


def _describe(d: dict[str, object]) -> str:
    if d.get("type") == "choice":
        return f"choice {d['values']}"
    return f"{d['type']} [{_fmt(d['low'])}, {_fmt(d['high'])}] scale={d.get('scale', 'linear')}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _run(sweep: Sweep, args: argparse.Namespace) -> int:
    from sweeps._run_sweep import run_sweep
    from sweeps.export import require_export

    require_export(sweep)
    results = _results(args, sweep)
    printer = _ProgressPrinter()
    start = time.monotonic()
    print(f"caviar: sweep {sweep.name} ({sweep.spec.strategy.kind}) -> {results / sweep.name}")
    outcome = run_sweep(sweep, results, address=args.address, resume=args.resume, show=printer)
    printer.close()
    elapsed = time.monotonic() - start
    metric = sweep.spec.objective.metric
    print(
        f"done in {elapsed:.0f}s: run {outcome.run_id}, {outcome.evaluated} evaluated"
        + (f", {outcome.skipped} already recorded" if outcome.skipped else "")
        + f", {outcome.diverged} diverged, {outcome.errors} failed"
    )
    if outcome.best is None:
        print("no successful trial to report")
    else:
        best = outcome.best
        params = ", ".join(f"{name}={_fmt(best[name])}" for name in sweep.space.names)
        print(f"best {metric} = {best[metric]:.4f} ({best['trial_id']}): {params}")
    print(f"results: {outcome.sweep_dir}  (analysis.load_trials({str(results)!r}))")
    return _export_at_end(sweep, results, print)


class _ProgressPrinter:
    """A live status line on a terminal; on a pipe or in cron, a plain line now and then.

    It writes to whatever `sys.stderr` is at the time rather than holding the stream: Ray
    pickles the sweep's callbacks with the experiment state, and a held stream would travel
    with them (and a stream swapped in by a caller, such as a test's capture, cannot).
    """

    def __init__(self, every_s: float = 15.0) -> None:
        self._tty = sys.stderr.isatty()
        self._every_s = every_s
        self._last = 0.0
        self._last_done = -1
        self._last_label = ""

    def __call__(self, p: Progress) -> None:
        best = "-" if p.best_value is None else f"{p.best_value:.4f} ({p.best_trial})"
        line = (
            (f"{p.label} " if p.label else "")
            + f"[{p.done}/{p.total} done, {p.running} running, {p.errors} failed, "
            f"{p.diverged} diverged] best {p.metric}: {best}"
        )
        if self._tty:
            sys.stderr.write("\r\033[K" + line)
            sys.stderr.flush()
            return
        now = time.monotonic()
        step = max(1, math.ceil(p.total / 10))
        milestone = p.done != self._last_done and (p.done % step == 0 or p.done == p.total)
        # A new round or a babysitter's decision is news on its own, in cron mail too.
        if milestone or p.label != self._last_label or now - self._last >= self._every_s:
            print(line, file=sys.stderr, flush=True)
            self._last, self._last_done, self._last_label = now, p.done, p.label

    def close(self) -> None:
        if self._tty:
            sys.stderr.write("\n")
            sys.stderr.flush()
