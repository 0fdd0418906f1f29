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
from search_quality_methods import run_coarse_to_fine, run_random  # noqa: E402
from search_quality_tasks import TASKS  # noqa: E402

from search_spaces import SearchSpace  # noqa: E402


def _second_rounds(args: tuple[int, int]) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Losses (minimised) of the second 16 points of random search and of coarse-to-fine."""
    index, seed = args
    task = TASKS[index]
    space = SearchSpace.from_dict(dict(task.space))
    objective = task.objective(seed)
    random = run_random(space, objective, 32, seed, 16)[16:]
    model = run_coarse_to_fine(space, objective, 32, seed, 16, sampler="model")[16:]
    return index, seed, random, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tasks", nargs="+", default=[t.name for t in TASKS])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    indices = [i for i, t in enumerate(TASKS) if t.name in args.tasks]
    jobs = [(i, s) for i in indices for s in range(args.seeds)]
    found: dict[int, list[tuple[np.ndarray, np.ndarray]]] = {i: [] for i in indices}
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for index, _seed, random, model in pool.imap_unordered(_second_rounds, jobs):
            found[index].append((random, model))
    print(f"second round of 16 points, {args.seeds} paired seeds; scores as the task reports them")
    print("| task | median of the 16: random / model (model ahead) | best of the 16: random / "
          "model (model ahead) |")  # fmt: skip
    print("|---|---|---|")
    for index in indices:
        task = TASKS[index]
        sign = -1.0 if task.metric == "val_accuracy" else 1.0  # losses back to the task's scale

        def clean(x: np.ndarray) -> np.ndarray:
            return np.where(np.isfinite(x), x, np.inf)  # a diverged run counts as worst

        medians = np.array([[np.median(clean(r)), np.median(clean(m))] for r, m in found[index]])
        bests = np.array([[np.min(clean(r)), np.min(clean(m))] for r, m in found[index]])
        cells = []
        for values in (medians, bests):
            ahead = int(np.sum(values[:, 1] < values[:, 0]))
            shown = sign * np.median(values, axis=0)
            cells.append(f"{shown[0]:.4f} / {shown[1]:.4f} ({ahead} of {len(values)})")
        print(f"| {task.name} ({task.metric}) | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main()
