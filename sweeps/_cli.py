"""`caviar`: the command line. It owns the terminal; everything below it only logs."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from analysis import ResultsError
from sweeps._errors import CaviarError
from sweeps._progress import Progress
from sweeps._spec import Sweep, load_spec

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="caviar", description="Hyperparameter sweeps on Ray Tune, results in Parquet."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="run a sweep (embedded local Ray unless --address)")
    run.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    run.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else local)")
    run.add_argument("--results", help="results directory (overrides the spec's `results`)")
    run.add_argument("--resume", action="store_true", help="continue the sweep's latest run")
    validate = commands.add_parser("validate", help="check a spec and print the resolved space")
    validate.add_argument("spec", metavar="SPEC", help="sweep spec (YAML)")
    validate.add_argument("--explain", action="store_true", help="also print the plan")
    report = commands.add_parser("report", help="write a self-contained HTML report")
    report.add_argument("results_dir", metavar="RESULTS_DIR", help="results directory")
    report.add_argument("--sweep", help="which sweep (default: the only one in RESULTS_DIR)")
    report.add_argument("--out", help="output file (default: RESULTS_DIR/report.html)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "report":
            return _report(args)
        sweep = load_spec(args.spec)
        if args.command == "validate":
            return _validate(sweep, explain=args.explain)
        return _run(sweep, args)
    except CaviarError as exc:
        for line in exc.lines():
            print(line, file=sys.stderr)
        return exc.exit_code
    except ResultsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; continue with `caviar run SPEC --resume`", file=sys.stderr)
        return 130


def _report(args: argparse.Namespace) -> int:
    from analysis import write_report

    path = write_report(args.results_dir, out=args.out, sweep=args.sweep)
    print(f"report: {path}")
    return 0


def _validate(sweep: Sweep, *, explain: bool) -> int:
    from sweeps._points import plan_points

    spec = sweep.spec
    out = sys.stdout
    print(f"sweep {spec.name}: ok (spec digest {sweep.digest})", file=out)
    print(f"objective: {spec.objective.resolved_mode} {spec.objective.metric}", file=out)
    t = spec.trainable
    print(f"trainable: {t.model} on {t.dataset}, {t.epochs} epochs", file=out)
    for name, value in t.fixed.items():
        print(f"  fixed  {name} = {value!r}", file=out)
    for name, domain in sweep.space.domains.items():
        print(f"  search {name}: {_describe(domain.to_dict())}", file=out)
    points = plan_points(sweep)
    print(
        f"strategy: {spec.strategy.kind}, {len(points)} configurations "
        f"({len(spec.initial)} from `initial`)",
        file=out,
    )
    if explain:
        print(
            f"resources per trial: {spec.resources.cpu:g} CPU, {spec.resources.gpu:g} GPU", file=out
        )
        print(f"pack: {spec.pack} (one configuration per Ray trial in this version)", file=out)
        print(f"results: {Path(spec.results) / spec.name}", file=out)
        shown = points[:5]
        print(f"first {len(shown)} configurations:", file=out)
        for point in shown:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in point.params.items())
            print(f"  {point.trial_id} [{point.origin}] {params}", file=out)
    return 0


def _describe(d: dict[str, object]) -> str:
    if d.get("type") == "choice":
        return f"choice {d['values']}"
    return f"{d['type']} [{_fmt(d['low'])}, {_fmt(d['high'])}] scale={d.get('scale', 'linear')}"


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _run(sweep: Sweep, args: argparse.Namespace) -> int:
    from sweeps._runner import run_sweep

    results = Path(args.results or sweep.spec.results)
    printer = _ProgressPrinter(sys.stderr)
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
    return 0


class _ProgressPrinter:
    """A live status line on a terminal; on a pipe or in cron, a plain line now and then."""

    def __init__(self, stream: TextIO, every_s: float = 15.0) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._every_s = every_s
        self._last = 0.0
        self._last_done = -1

    def __call__(self, p: Progress) -> None:
        best = "-" if p.best_value is None else f"{p.best_value:.4f} ({p.best_trial})"
        line = (
            (f"{p.label} " if p.label else "")
            + f"[{p.done}/{p.total} done, {p.running} running, {p.errors} failed, "
            f"{p.diverged} diverged] best {p.metric}: {best}"
        )
        if self._tty:
            self._stream.write("\r\033[K" + line)
            self._stream.flush()
            return
        now = time.monotonic()
        step = max(1, math.ceil(p.total / 10))
        milestone = p.done != self._last_done and (p.done % step == 0 or p.done == p.total)
        if milestone or now - self._last >= self._every_s:
            print(line, file=self._stream, flush=True)
            self._last, self._last_done = now, p.done

    def close(self) -> None:
        if self._tty:
            self._stream.write("\n")
            self._stream.flush()
