"""Search quality: random, Sobol, coarse-to-fine and Optuna's TPE at equal budgets and parallelism.

    .venv/bin/python bench/search_quality.py                  # BBOB function suite, 20 seeds
    .venv/bin/python bench/search_quality.py --suite digits   # BatchNorm MLP on digits, 10 seeds

Every method evaluates batches of `--batch` (16) configurations chosen before any of them is
scored, and seed s of every method runs on the same problem instance (BBOB instance s + 1, or
digits split/initialisation s): paired seeds. Prints the tables and writes them, with the raw
per-seed results, to bench/search_quality_<suite>.{md,json}; docs/search-quality.md quotes them.
"""

from __future__ import annotations

import os

# One BLAS thread per worker: the workers are the parallelism, and oversubscribed BLAS threads
# make the Gaussian-process sampler several times slower on a 2-core machine.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import multiprocessing  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import rankdata  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality_methods import BUDGET_DEPENDENT, METHODS  # noqa: E402
from search_quality_problems import (  # noqa: E402
    DIGITS_SPACE,
    FUNCTION_SUITE,
    digits_objective,
)

from search_spaces import SearchSpace  # noqa: E402

HERE = Path(__file__).resolve().parent


def _best_so_far(losses: np.ndarray, budgets: list[int]) -> dict[int, float]:
    clean = np.where(np.isfinite(losses), losses, np.inf)  # failed runs count as worst
    return {b: float(np.min(clean[:b])) for b in budgets if b <= len(clean)}


def _task(args: tuple) -> tuple:
    suite, problem_index, seed, method, budgets, batch, epochs = args
    started = time.perf_counter()
    if suite == "functions":
        problem = FUNCTION_SUITE[problem_index]
        space, objective = problem.space(), problem.objective(instance=seed + 1)
    else:
        space, objective = SearchSpace.from_dict(DIGITS_SPACE), digits_objective(seed, epochs)
    run = METHODS[method]
    if method in BUDGET_DEPENDENT:
        best = {b: _best_so_far(run(space, objective, b, seed, batch), [b])[b] for b in budgets}
    else:
        best = _best_so_far(run(space, objective, max(budgets), seed, batch), budgets)
    return problem_index, seed, method, best, time.perf_counter() - started


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _summaries(results: dict, names: list[str], methods: list[str], budgets: list[int], suite: str):
    """Markdown tables: normalised median regret (or best accuracy), mean rank, per problem."""
    tables = []
    # Regret: f - f_opt for the functions; 1 - accuracy on digits (whose losses are -accuracy).
    offset = 0.0 if suite == "functions" else 1.0
    per_problem = {}  # (problem, method, budget) -> median regret / median random regret
    for p in names:
        for b in budgets:
            reference = np.median(offset + np.asarray(results[p]["random"][str(b)]))
            for m in methods:
                regret = np.median(offset + np.asarray(results[p][m][str(b)]))
                per_problem[p, m, b] = float(regret / reference)
    ranks = {(m, b): [] for m in methods for b in budgets}
    for p in names:
        for b in budgets:
            table = np.array([results[p][m][str(b)] for m in methods])  # methods x seeds
            for column in table.T:
                for m, r in zip(methods, rankdata(column), strict=True):
                    ranks[m, b].append(r)
    if suite == "functions":
        rows = [
            [m] + [f"{np.median([per_problem[p, m, b] for p in names]):.3f}" for b in budgets]
            for m in methods
        ]
        title = "Median over problems of (median regret / median regret of random search)"
        tables.append(
            f"**{title}** (lower is better; random = 1)\n\n"
            + _markdown(["method"] + [f"{b} evals" for b in budgets], rows)
        )
        rows = [
            [m]
            + [
                f"{np.exp(np.mean(np.log([per_problem[p, m, b] for p in names]))):.3f}"
                for b in budgets
            ]
            for m in methods
        ]
        tables.append(
            "**Geometric mean over problems of the same ratio**\n\n"
            + _markdown(["method"] + [f"{b} evals" for b in budgets], rows)
        )
    else:
        rows = [
            [m] + [f"{-np.median(results[names[0]][m][str(b)]):.4f}" for b in budgets]
            for m in methods
        ]
        tables.append(
            "**Median best validation accuracy** (higher is better)\n\n"
            + _markdown(["method"] + [f"{b} evals" for b in budgets], rows)
        )
        rows = [[m] + [f"{per_problem[names[0], m, b]:.3f}" for b in budgets] for m in methods]
        tables.append(
            "**Median error (1 - accuracy) / that of random search**\n\n"
            + _markdown(["method"] + [f"{b} evals" for b in budgets], rows)
        )
    rows = [[m] + [f"{np.mean(ranks[m, b]):.2f}" for b in budgets] for m in methods]
    tables.append(
        "**Mean rank** (1 = best of the methods on a problem and seed; ties share)\n\n"
        + _markdown(["method"] + [f"{b} evals" for b in budgets], rows)
    )
    if suite == "functions":
        b = 128 if 128 in budgets else budgets[-1]
        rows = [[p] + [f"{per_problem[p, m, b]:.3f}" for m in methods] for p in names]
        tables.append(
            f"**Per problem at {b} evaluations** (median regret / random's)\n\n"
            + _markdown(["problem", *methods], rows)
        )
    return tables


def _retabulate(path: Path) -> None:
    saved = json.loads(path.read_text())
    results, budgets = saved["results"], saved["budgets"]
    names = list(results)
    methods = list(results[names[0]])
    suite = saved["setup"].split(":")[0]
    tables = _summaries(results, names, methods, budgets, suite)
    text = "\n\n".join([saved["setup"], *tables, saved["timing"]]) + "\n"
    print(text)
    path.with_suffix(".md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["functions", "digits"], default="functions")
    parser.add_argument("--seeds", type=int, default=None, help="default 20 (digits: 10)")
    parser.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        default=None,
        help="default 32 64 128 256 (digits: 32 64 128)",
    )
    parser.add_argument("--batch", type=int, default=16, help="concurrent evaluations per round")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--epochs", type=int, default=4, help="digits: epochs per training")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--problems",
        type=int,
        nargs="+",
        default=None,
        help="indices into the function suite (default: all)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--tables-from",
        type=Path,
        default=None,
        help="recompute the tables of an earlier run from its JSON, without running anything",
    )
    args = parser.parse_args()
    if args.tables_from is not None:
        _retabulate(args.tables_from)
        return
    digits = args.suite == "digits"
    seeds = args.seeds or (10 if digits else 20)
    budgets = sorted(args.budgets or ([32, 64, 128] if digits else [32, 64, 128, 256]))
    indices = [0] if digits else (args.problems or list(range(len(FUNCTION_SUITE))))
    names = ["digits"] if digits else [FUNCTION_SUITE[i].name for i in indices]
    methods = args.methods if "random" in args.methods else ["random", *args.methods]
    tasks = [
        (args.suite, i, s, m, budgets, args.batch, args.epochs)
        for i in indices
        for s in range(seeds)
        for m in methods
    ]
    # Slow tasks first, so the pool does not end on one straggler.
    tasks.sort(key=lambda t: (t[3] not in ("c2f-model", "tpe"), -t[1]))
    results: dict = {
        n: {m: {str(b): [None] * seeds for b in budgets} for m in methods} for n in names
    }
    seconds = {m: 0.0 for m in methods}
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for k, (i, s, m, best, took) in enumerate(pool.imap_unordered(_task, tasks), 1):
            name = names[indices.index(i)]
            for b, value in best.items():
                results[name][m][str(b)][s] = value
            seconds[m] += took
            if k % max(1, len(tasks) // 20) == 0:
                print(f"  {k}/{len(tasks)} tasks, {time.perf_counter() - started:.0f}s", flush=True)
    wall = time.perf_counter() - started
    tables = _summaries(results, names, methods, budgets, args.suite)
    setup = (
        f"{args.suite}: {len(names)} problem(s) x {seeds} paired seeds, batches of "
        f"{args.batch}, budgets {budgets}" + (f", {args.epochs} epochs" if digits else "")
    )
    timing = (
        f"wall time {wall:.0f} s with {args.jobs} worker(s) on {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}); worker seconds per method: "
        + ", ".join(f"{m} {t:.0f}" for m, t in seconds.items())
    )
    text = "\n\n".join([setup, *tables, timing]) + "\n"
    print("\n" + text)
    out = args.out or HERE / f"search_quality_{args.suite}"
    out.with_suffix(".md").write_text(text)
    out.with_suffix(".json").write_text(
        json.dumps(
            {
                "setup": setup,
                "timing": timing,
                "wall_seconds": wall,
                "budgets": budgets,
                "seeds": seeds,
                "batch": args.batch,
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
