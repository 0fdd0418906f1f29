"""Benchmark: where a trial worker's start goes, from `Tuner.fit()` to its first line of training.

    .venv/bin/python bench/worker_start.py                # 2 one-CPU trials, 3 runs
    .venv/bin/python bench/worker_start.py --trials 8 --runs 1
    RAY_preload_python_modules=ray.tune,torch .venv/bin/python bench/worker_start.py

Each run starts an embedded Ray the way `caviar run` does (`sweeps.run.ray_session`, so the
trial actors may take the workers Ray prestarted) and fits one Tune grid of `--trials`
one-CPU trials whose trainable only times itself: when its worker process was created (before
`fit()`: a worker Ray prestarted; after: a new one), when the trainable was entered (Tune's
actor made, `ray.tune` imported in the worker, the function unpickled), and how long `import
torch` and `import trainables` then take there. It prints one row per trial, the run's Ray
start, `fit()` and Ray stop, and the floor those imports put under any worker's start: Ray
Tune and torch, timed in a fresh interpreter here (each trial has a CPU of its own at best).
It asserts nothing about time. Issue #27's goal "time outside training <= Ray start + 3 s"
(`bench/throughput.py`) is read against these figures in docs/performance.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))


def trainable(config: dict[str, Any]) -> None:
    """A trial that reports when and how its worker came to run it, and trains nothing."""
    entered = time.time()
    from ray import tune

    try:
        import psutil

        created: float | None = psutil.Process().create_time()
    except ImportError:
        created = None
    had_torch = "torch" in sys.modules
    start = time.perf_counter()
    import torch  # noqa: F401

    torch_s = time.perf_counter() - start
    start = time.perf_counter()
    import trainables  # noqa: F401

    trainables_s = time.perf_counter() - start
    tune.report(
        {"entered": entered, "created": created, "had_torch": had_torch, "torch_s": torch_s,
         "trainables_s": trainables_s, "pid": os.getpid()}
    )  # fmt: skip


def one_run(trials: int) -> dict[str, Any]:
    """One embedded Ray, one `fit()` of `trials` one-CPU trials; the timings."""
    from sweeps.run import ray_session, trial_actors_on_prestarted_workers

    # Tune looks for result.json files that caviar's settings turn off; the metrics are in memory.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    start = time.perf_counter()
    with ray_session() as session:
        up = time.perf_counter()
        from ray import tune

        trial_actors_on_prestarted_workers()  # as build_tuner does
        with tempfile.TemporaryDirectory(prefix="caviar-worker-start-") as storage:
            fit = time.time()
            fit_perf = time.perf_counter()
            grid = tune.Tuner(
                tune.with_resources(trainable, {"cpu": 1}),
                param_space={"trial": tune.grid_search(list(range(trials)))},
                run_config=tune.RunConfig(storage_path=storage, name="start", verbose=0),
            ).fit()
            fit_s = time.perf_counter() - fit_perf
        # Times relative to fit() from here on: "created" < 0 is a worker Ray prestarted.
        rows = [
            {**r.metrics, "entered": r.metrics["entered"] - fit,
             "created": None if r.metrics["created"] is None else r.metrics["created"] - fit}
            for r in grid
            if r.metrics
        ]  # fmt: skip
        stop = time.perf_counter()
    return {"ray_start_s": up - start, "fit_s": fit_s, "ray_stop_s": time.perf_counter() - stop,
            "cpus": session.cpus, "rows": rows, "errors": grid.num_errors}  # fmt: skip


def import_cost(module: str) -> float:
    """Seconds a fresh interpreter here takes to import `module` (after `import ray`)."""
    code = (
        f"import time, ray; t = time.perf_counter(); import {module}; "
        "print(time.perf_counter() - t)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(proc.stdout.split()[-1])


def report(run: dict[str, Any]) -> None:
    print(f"  Ray start {run['ray_start_s']:.1f} s, fit() {run['fit_s']:.1f} s, "
          f"Ray stop {run['ray_stop_s']:.1f} s, errors {run['errors']}")  # fmt: skip
    for row in sorted(run["rows"], key=lambda r: r["entered"]):
        created = "?" if row["created"] is None else f"{row['created']:+.2f} s"
        kind = "" if row["created"] is None else (
            " (prestarted)" if row["created"] < 0 else " (new process)")  # fmt: skip
        print(f"  pid {row['pid']}: created {created}{kind}, entered {row['entered']:+.2f} s, "
              f"import torch {row['torch_s']:.2f} s{' (already in)' if row['had_torch'] else ''}, "
              f"import trainables {row['trainables_s']:.2f} s")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2, help="one-CPU trials per run")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.trials < 1 or args.runs < 1:
        parser.error(f"--trials and --runs must be at least 1 (got {args.trials}, {args.runs})")
    preload = os.environ.get("RAY_preload_python_modules", "")  # noqa: SIM112 (Ray's own spelling)
    print(f"{args.trials} one-CPU trials, {args.runs} runs, {os.cpu_count()} CPUs here, "
          f"preload: {preload or 'none'}", flush=True)  # fmt: skip
    runs = []
    for index in range(args.runs):
        print(f"run {index + 1}:", flush=True)
        runs.append(one_run(args.trials))
        report(runs[-1])
    tune_s, torch_s = import_cost("ray.tune"), import_cost("torch")
    entered = [r["entered"] for run in runs for r in run["rows"]]
    trained = [max(r["entered"] + r["torch_s"] for r in run["rows"]) for run in runs]
    # One CPU a trial: at best each worker imports on a core of its own, so no worker is ready
    # sooner than both imports after its trainable is asked for (the driver's share aside).
    floor = tune_s + torch_s
    print(f"median: trainable entered {statistics.median(entered):+.2f} s after fit(), last "
          f"worker ready to train {statistics.median(trained):+.2f} s")  # fmt: skip
    print(f"imports in a quiet interpreter: ray.tune {tune_s:.2f} s, torch {torch_s:.2f} s; "
          f"per worker (one CPU each, {runs[-1]['cpus']:g} here): at least {floor:.2f} s of "
          "its start is these imports")  # fmt: skip


if __name__ == "__main__":
    main()
