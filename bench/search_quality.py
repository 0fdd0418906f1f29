"""Search quality: random, Sobol, coarse-to-fine and Optuna's TPE at equal budgets and parallelism.

    .venv/bin/python bench/search_quality.py                  # BBOB function suite, 20 seeds
    .venv/bin/python bench/search_quality.py --suite digits   # BatchNorm MLP on digits, 10 seeds
    .venv/bin/python bench/search_quality.py --suite tasks    # three real tuning tasks, 10 seeds

Every method evaluates batches of `--batch` (16) configurations chosen before any of them is
scored, and seed s of every method runs on the same problem instance (BBOB instance s + 1, or
the split and initialisation s of a training task): paired seeds. Prints the tables and writes
them, with the raw per-seed results, to bench/search_quality_<suite>.{md,json};
docs/search-quality.md quotes them.
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
from search_quality_methods import BUDGET_DEPENDENT, METHODS, VARIANTS  # noqa: E402
from search_quality_problems import (  # noqa: E402
    DIGITS_SPACE,
    FUNCTION_SUITE,
    digits_objective,
)
from search_quality_tasks import TASKS  # noqa: E402

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
    elif suite == "tasks":
        task = TASKS[problem_index]
        space, objective = SearchSpace.from_dict(dict(task.space)), task.objective(seed)
    else:
        space, objective = SearchSpace.from_dict(DIGITS_SPACE), digits_objective(seed, epochs)
    run = METHODS[method]
    if method in BUDGET_DEPENDENT:
        best = {b: _best_so_far(run(space, objective, b, seed, batch), [b])[b] for b in budgets}
    else:
        best = _best_so_far(run(space, objective, max(budgets), seed, batch), budgets)
    return problem_index, seed, method, best, time.perf_counter() - started


def _seed_ranks(results: dict, problem: str, methods: list[str], budget: int) -> np.ndarray:
    """Rank of each method (columns) on each paired seed (rows) of one problem; 1 = best, ties
    share."""
    table = np.array([results[problem][m][str(budget)] for m in methods], dtype=np.float64)
    return np.array([rankdata(column) for column in table.T])


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
            by_method = _seed_ranks(results, p, methods, b).T
            for m, method_ranks in zip(methods, by_method, strict=True):
                ranks[m, b].extend(method_ranks.tolist())
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


def _sign_test(ours: list[float], theirs: list[float]) -> str:
    """Paired sign test (losses, lower is better): wins/losses/ties and the two-sided p-value."""
    from scipy.stats import binomtest

    diff = np.asarray(ours) - np.asarray(theirs)
    wins, losses = int(np.sum(diff < 0)), int(np.sum(diff > 0))
    ties = len(diff) - wins - losses
    p = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
    return f"{wins}/{losses}/{ties} (p={p:.2f})"


def _median_gap(ours: np.ndarray, theirs: np.ndarray, resamples: int = 10_000) -> str:
    """Difference of the medians (ours - theirs) with a 95 % paired bootstrap interval.

    Seeds are resampled with replacement, the same seeds for both methods, so the interval
    shows how far a gap between two medians moves when other seeds of the same kind are drawn.
    The generator is fixed: the same results always give the same interval.
    """
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(ours), size=(resamples, len(ours)))
    gaps = np.median(ours[picks], axis=1) - np.median(theirs[picks], axis=1)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return f"{np.median(ours) - np.median(theirs):+.4f} [{low:+.4f}, {high:+.4f}]"


def _task_tables(results: dict, names: list[str], methods: list[str], budgets: list[int]):
    """Per task: median best score, ratio to random, mean rank and a sign test against TPE."""
    tables = []
    header = ["method"] + [f"{b} evals" for b in budgets]
    overall_ranks = {(m, b): [] for m in methods for b in budgets}
    overall_ratio = {(m, b): [] for m in methods for b in budgets}
    for name in names:
        task = next(t for t in TASKS if t.name == name)
        accuracy = task.metric == "val_accuracy"
        offset = 1.0 if accuracy else 0.0  # error = 1 - accuracy = 1 + loss

        def best(m: str, b: int, name: str = name) -> np.ndarray:
            return np.asarray(results[name][m][str(b)], dtype=np.float64)

        seed_ranks = {b: _seed_ranks(results, name, methods, b) for b in budgets}
        rows = []
        for m in methods:
            row = [m]
            for b in budgets:
                median = float(np.median(best(m, b)))
                ratio = (offset + median) / (offset + float(np.median(best("random", b))))
                overall_ratio[m, b].append(ratio)
                rank = seed_ranks[b][:, methods.index(m)]
                overall_ranks[m, b].extend(rank.tolist())
                shown = -median if accuracy else median
                row.append(f"{shown:.4f} / {ratio:.3f} / {np.mean(rank):.2f}")
            rows.append(row)
        what = "validation accuracy (higher is better)" if accuracy else "validation loss"
        tables.append(
            f"**{name}**: {task.note}; {task.epochs} epochs. Median best {what} / its "
            f"{'error' if accuracy else 'loss'} over random search's / mean rank\n\n"
            + _markdown(header, rows)
        )
        if "tpe" in methods:
            rows = [
                [m] + [_sign_test(list(best(m, b)), list(best("tpe", b))) for b in budgets]
                for m in methods
                if m != "tpe"
            ]
            tables.append(
                f"Sign test against TPE on {name} (wins/losses/ties over the paired seeds)\n\n"
                + _markdown(header, rows)
            )
            sign = -1.0 if accuracy else 1.0  # gaps in the score shown above
            rows = [
                [m] + [_median_gap(sign * best(m, b), sign * best("tpe", b)) for b in budgets]
                for m in methods
                if m != "tpe"
            ]
            better = "higher" if accuracy else "lower"
            tables.append(
                f"Median best minus TPE's on {name} ({better} is better), with a 95 % paired "
                "bootstrap interval over the seeds\n\n" + _markdown(header, rows)
            )
    rows = [
        [m]
        + [
            f"{np.mean(overall_ranks[m, b]):.2f} / {np.median(overall_ratio[m, b]):.3f}"
            for b in budgets
        ]
        for m in methods
    ]
    tables.append(
        "**All tasks**: mean rank over tasks and seeds / median over tasks of the ratio to "
        "random search\n\n" + _markdown(header, rows)
    )
    return tables


def _tables(results: dict, names: list[str], methods: list[str], budgets: list[int], suite: str):
    if suite == "tasks":
        return _task_tables(results, names, methods, budgets)
    return _summaries(results, names, methods, budgets, suite)


def _retabulate(paths: list[Path], out: Path | None) -> None:
    """Tables of earlier runs; several runs of one suite merge into the first: a run of other
    methods adds them, a run of later seeds (`--first-seed`) appends its seeds to every method."""
    saved = json.loads(paths[0].read_text())
    results, budgets = saved["results"], saved["budgets"]
    for extra in paths[1:]:
        other = json.loads(extra.read_text())
        more = other["results"]
        later_seeds = other.get("first_seed", 0) > 0
        for name in results:
            for method, by_budget in more.get(name, {}).items():
                if later_seeds:
                    for budget, values in by_budget.items():
                        results[name][method][budget] = results[name][method][budget] + values
                else:
                    results[name][method] = by_budget
        if later_seeds:
            saved["seeds"] += other["seeds"]
            saved["setup"] = saved["setup"].replace(
                f"{saved['seeds'] - other['seeds']} paired seeds", f"{saved['seeds']} paired seeds"
            )
        saved["timing"] += "; then " + other["timing"]
    names = list(results)
    methods = list(results[names[0]])
    suite = saved["setup"].split(":")[0]
    tables = _tables(results, names, methods, budgets, suite)
    text = "\n\n".join([saved["setup"], *tables, saved["timing"]]) + "\n"
    print(text)
    if len(paths) > 1:  # a merged run is written to --out, never over one of its inputs
        if out is None:
            raise SystemExit("error: --out: required to merge several runs of --tables-from")
        out.with_suffix(".json").write_text(json.dumps(saved, indent=1))
    (out or paths[0]).with_suffix(".md").write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", choices=["functions", "digits", "tasks"], default="functions")
    parser.add_argument("--seeds", type=int, default=None, help="default 20 (digits, tasks: 10)")
    parser.add_argument(
        "--budgets",
        type=int,
        nargs="+",
        default=None,
        help="default 32 64 128 256 (digits, tasks: 32 64 128)",
    )
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="run seeds first-seed, first-seed + 1, ... (to add seeds to an earlier run)",
    )
    parser.add_argument("--batch", type=int, default=16, help="concurrent evaluations per round")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=[m for m in METHODS if m not in VARIANTS],
        help="default: every method but the candidate variants (name those to try them)",
    )
    parser.add_argument("--epochs", type=int, default=4, help="digits: epochs per training")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--problems",
        type=int,
        nargs="+",
        default=None,
        help="indices into the function suite (default: all)",
    )
    parser.add_argument(
        "--tasks",
        nargs="+",
        choices=[t.name for t in TASKS],
        default=None,
        help="which training tasks (default: all)",
    )
    parser.add_argument(
        "--no-random",
        action="store_true",
        help="do not add random search (for a run merged into an earlier one by --tables-from)",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--tables-from",
        type=Path,
        nargs="+",
        default=None,
        help="recompute the tables of earlier runs from their JSON (runs of other methods on "
        "the same suite and seeds merge into the first), without running anything",
    )
    args = parser.parse_args()
    if args.tables_from is not None:
        _retabulate(args.tables_from, args.out)
        return
    trained = args.suite in ("digits", "tasks")
    seeds = args.seeds or (10 if trained else 20)
    budgets = sorted(args.budgets or ([32, 64, 128] if trained else [32, 64, 128, 256]))
    if args.suite == "digits":
        indices, names = [0], ["digits"]
    elif args.suite == "tasks":
        chosen = args.tasks or [t.name for t in TASKS]
        indices = [i for i, t in enumerate(TASKS) if t.name in chosen]
        names = [TASKS[i].name for i in indices]
    else:
        indices = args.problems or list(range(len(FUNCTION_SUITE)))
        names = [FUNCTION_SUITE[i].name for i in indices]
    methods = list(args.methods)
    if "random" not in methods and not args.no_random:
        methods.insert(0, "random")  # every table is relative to random search
    tasks = [
        (args.suite, i, s, m, budgets, args.batch, args.epochs)
        for i in indices
        for s in range(args.first_seed, args.first_seed + seeds)
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
                results[name][m][str(b)][s - args.first_seed] = value
            seconds[m] += took
            if k % max(1, len(tasks) // 20) == 0:
                print(f"  {k}/{len(tasks)} tasks, {time.perf_counter() - started:.0f}s", flush=True)
    wall = time.perf_counter() - started
    tables = _tables(results, names, methods, budgets, args.suite) if "random" in methods else []
    setup = (
        f"{args.suite}: {len(names)} problem(s) x {seeds} paired seeds"
        + (f" (from seed {args.first_seed})" if args.first_seed else "")
        + ", batches of "
        f"{args.batch}, budgets {budgets}"
        + (f", {args.epochs} epochs" if args.suite == "digits" else "")
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
                "first_seed": args.first_seed,
                "batch": args.batch,
                "results": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
