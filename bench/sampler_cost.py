"""What one round of coarse-to-fine costs the driver, next to the trials it schedules.

    .venv/bin/python bench/sampler_cost.py [--results 1000] [--params 8] [--per-round 16]

Builds a `CoarseToFine` over `--params` parameters (log, reverse-log, linear, int and choice
scales, cycled), tells it `--results` scored configurations as a long sweep's history would
(told outside any round), then times `ask()` and `tell()` for the next `--rounds` rounds with
each sampler: the first covers the whole space, the later ones narrowed boxes. Prints the
median and the slowest of those timings per sampler, in milliseconds. A trial of the demo
takes about a second; a round's decision should be a small fraction of one.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from search_spaces import CoarseToFine, SearchSpace  # noqa: E402

_SCALES = (
    {"type": "float", "low": 1e-4, "high": 1.0, "scale": "log"},
    {"type": "float", "low": 0.9, "high": 0.999, "scale": "reverse_log"},
    {"type": "int", "low": 16, "high": 512, "scale": "log"},
    {"type": "choice", "values": [32, 64, 128, 256]},
    {"type": "float", "low": 0.0, "high": 0.5},
)


def _space(params: int) -> SearchSpace:
    return SearchSpace.from_dict({f"p{i}": _SCALES[i % len(_SCALES)] for i in range(params)})


def _score(space: SearchSpace, configs: list[dict]) -> list[float]:
    """A smooth bowl in the unit coordinates with its minimum off-centre."""
    unit = np.array([space.to_unit(c) for c in configs])
    return np.sum((unit - 0.3) ** 2, axis=1).tolist()


def _search(space: SearchSpace, results: int, per_round: int, sampler: str) -> CoarseToFine:
    rounds = results // per_round + 100  # never finished while timed
    search = CoarseToFine(space, rounds=rounds, per_round=per_round, seed=0, sampler=sampler)
    history = space.sample(np.random.default_rng(1), results)
    search.tell(history, _score(space, history))  # earlier results, told outside any round
    return search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=1000)
    parser.add_argument("--params", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()
    space = _space(args.params)
    print(
        f"{args.results} recorded results, {args.params} parameters, rounds of "
        f"{args.per_round}; {args.rounds} rounds timed, median and slowest (ms)"
    )
    for sampler in ("random", "sobol", "model"):
        asks, tells = [], []
        search = _search(space, args.results, args.per_round, sampler)
        for _ in range(args.rounds):
            started = time.perf_counter()
            configs = search.ask()
            asks.append(time.perf_counter() - started)
            scores = _score(space, configs)
            started = time.perf_counter()
            search.tell(configs, scores)
            tells.append(time.perf_counter() - started)
        ask, tell = 1e3 * np.asarray(asks), 1e3 * np.asarray(tells)
        print(
            f"  {sampler:6s}  ask {np.median(ask):7.1f} (max {ask.max():7.1f})   "
            f"tell {np.median(tell):5.1f} (max {tell.max():5.1f})"
        )


if __name__ == "__main__":
    main()
