"""Why coarse-to-fine can trail random search at 32 evaluations: its second round, looked at.

    .venv/bin/python bench/search_quality_round_two.py [--seeds 10] [--tasks ...]

At a budget of 32 (two rounds of 16) the methods differ only in their second 16 points:
random search draws them from the whole space, coarse-to-fine (`sampler: model`) from the box
narrowed around round one's best, chosen by its Gaussian process. For each training task of
`search_quality_tasks.py` and each paired seed this prints, for those second 16 points, the
median score and the best score of both methods, and how often each is ahead. A method whose
points are better on the median but whose best is worse is not choosing badly: on a noisy
objective the best of 16 scattered points is a lottery that many different tickets win more
often.

A second table sets both against Optuna's TPE: the best of each method's first 16 points, and
how much its second 16 improve on that (the median gain, and on how many seeds it improved).
TPE asks all of its first 16 before any result, so they are random points.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_quality_methods import run_coarse_to_fine, run_random, run_tpe  # noqa: E402
from search_quality_tasks import TASKS  # noqa: E402

from search_spaces import SearchSpace  # noqa: E402

METHODS = ("random", "model", "TPE")


def _two_rounds(args: tuple[int, int]) -> tuple[int, int, list[np.ndarray]]:
    """Losses (minimised, a diverged run as +inf) of the 32 points of random search,
    coarse-to-fine and TPE, in the order asked."""
    index, seed = args
    task = TASKS[index]
    space = SearchSpace.from_dict(dict(task.space))
    objective = task.objective(seed)
    runs = [
        run_random(space, objective, 32, seed, 16),
        run_coarse_to_fine(space, objective, 32, seed, 16, sampler="model"),
        run_tpe(space, objective, 32, seed, 16),
    ]
    return index, seed, [np.where(np.isfinite(r), r, np.inf) for r in runs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", default=[t.name for t in TASKS])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    indices = [i for i, t in enumerate(TASKS) if t.name in args.tasks]
    jobs = [(i, s) for i in indices for s in range(args.seeds)]
    found: dict[int, list[list[np.ndarray]]] = {i: [] for i in indices}
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for index, _seed, runs in pool.imap_unordered(_two_rounds, jobs):
            found[index].append(runs)
    print(f"second round of 16 points, {args.seeds} paired seeds; scores as the task reports them")
    print("| task | median of the 16: random / model (model ahead) | best of the 16: random / "
          "model (model ahead) |")  # fmt: skip
    print("|---|---|---|")
    for index in indices:
        task = TASKS[index]
        sign = -1.0 if task.metric == "val_accuracy" else 1.0  # losses back to the task's scale
        medians = np.array([[np.median(r[16:]), np.median(m[16:])] for r, m, _ in found[index]])
        bests = np.array([[np.min(r[16:]), np.min(m[16:])] for r, m, _ in found[index]])
        cells = []
        for values in (medians, bests):
            ahead = int(np.sum(values[:, 1] < values[:, 0]))
            shown = sign * np.median(values, axis=0)
            cells.append(f"{shown[0]:.4f} / {shown[1]:.4f} ({ahead} of {len(values)})")
        print(f"| {task.name} ({task.metric}) | {cells[0]} | {cells[1]} |")
    print(f"\nagainst TPE: best of the first 16, and what the second 16 add to it ({args.seeds} "
          "seeds; gains in the task's units, positive is better)")  # fmt: skip
    print(f"| task | best of the first 16: {' / '.join(METHODS)} | median gain of the second 16 "
          "(seeds improved) |")  # fmt: skip
    print("|---|---|---|")
    for index in indices:
        task = TASKS[index]
        sign = -1.0 if task.metric == "val_accuracy" else 1.0
        first = np.array([[np.min(run[:16]) for run in runs] for runs in found[index]])
        both = np.array([[np.min(run) for run in runs] for runs in found[index]])
        gains = first - both  # losses fall as the best improves: a gain is >= 0
        shown = " / ".join(f"{sign * v:.4f}" for v in np.median(first, axis=0))
        added = " / ".join(
            f"{g:.4f} ({int(np.sum(col > 0))})"
            for g, col in zip(np.median(gains, axis=0), gains.T, strict=True)
        )
        print(f"| {task.name} ({task.metric}) | {shown} | {added} |")


if __name__ == "__main__":
    main()
