"""The built-in BatchNorm MLP trained three ways in this process, no Ray: one configuration at
a time, packed by its hand-written stack (`packing/_mlp_stack.py`), and packed by the generic
torch.func stack that every user network uses (`packing/_func_stack.py`). The measurement behind
keeping or retiring the hand-written stack (docs/performance.md, "The built-in MLP's path").

    .venv/bin/python bench/builtin_mlp_paths.py                    # digits, 1 and 2 threads
    .venv/bin/python bench/builtin_mlp_paths.py --dataset mnist1d --hidden 128

The configurations share one width and depth (the generic stack needs one structure per
stack; the hand-written one pads widths), batch size and optimizer, and differ in learning rate
and momentum. Prints config-epochs per second per path and thread count, the speed-ups, and
the largest final validation-loss difference of each packed path from the unpacked runs.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from trainables import (
    BNMLP,
    Dataset,
    EpochResult,
    HParams,
    PackMember,
    build_state,
    load_dataset,
    run_packed_training,
    run_training,
)


def _builder(hp: HParams) -> Callable[[Dataset], nn.Module]:
    def build(d: Dataset) -> nn.Module:
        return BNMLP(
            d.n_features,
            d.n_classes,
            hidden=hp.hidden,
            depth=hp.depth,
            batchnorm=hp.batchnorm,
            bn_momentum=hp.bn_momentum,
        )

    return build


def _timed(run: Callable[[], list[EpochResult]]) -> tuple[float, list[EpochResult]]:
    start = time.perf_counter()
    finals = run()
    return time.perf_counter() - start, finals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--configs", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--skip-alone", action="store_true", help="only the two packed paths")
    args = parser.parse_args()

    data = load_dataset(args.dataset, seed=0)
    rng = np.random.default_rng(0)
    configs = [
        HParams(
            lr=float(10 ** rng.uniform(-3, -0.5)),
            beta=float(1 - 10 ** rng.uniform(-2, -0.5)),
            hidden=args.hidden,
            depth=args.depth,
            batch_size=args.batch_size,
        )
        for _ in range(args.configs)
    ]
    work = args.configs * args.epochs
    print(
        f"torch {torch.__version__}; {args.dataset}: {data.x_train.shape[0]} training samples, "
        f"{args.configs} configs x {args.epochs} epochs, hidden {args.hidden}, depth "
        f"{args.depth}, batch {args.batch_size}"
    )

    def alone() -> list[EpochResult]:
        out = []
        for seed, hp in enumerate(configs):
            state = build_state(hp, data, seed=seed)
            out.append(run_training(hp, data, epochs=args.epochs, seed=seed, state=state)[-1])
        return out

    def hand() -> list[EpochResult]:
        members = [PackMember(hp, seed, data) for seed, hp in enumerate(configs)]
        return [r[-1] for r in run_packed_training(members, epochs=args.epochs)]

    def generic() -> list[EpochResult]:
        members = [
            PackMember(hp, seed, data, _builder(hp), "bn_mlp") for seed, hp in enumerate(configs)
        ]
        return [r[-1] for r in run_packed_training(members, epochs=args.epochs)]

    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        hand()  # warm-up: first-use costs (allocator, kernels) stay out of the figures
        paths = {"hand-stack": hand, "func-stack": generic}
        if not args.skip_alone:
            paths = {"one-at-a-time": alone, **paths}
        walls, finals = {}, {}
        for name, run in paths.items():
            walls[name], finals[name] = _timed(run)
            print(
                f"  {threads} thread(s)  {name:14s} {walls[name]:7.2f} s  "
                f"{work / walls[name]:8.1f} config-epochs/s",
                flush=True,
            )
        ratio = walls["func-stack"] / walls["hand-stack"]
        print(f"  {threads} thread(s)  hand-stack is {ratio:.2f}x faster than func-stack")
        if "one-at-a-time" in walls:
            for name in ("hand-stack", "func-stack"):
                diff = max(
                    abs(a.val_loss - b.val_loss)
                    for a, b in zip(finals[name], finals["one-at-a-time"], strict=True)
                    if not (a.diverged or b.diverged)
                )
                speed = walls["one-at-a-time"] / walls[name]
                print(
                    f"  {threads} thread(s)  {name}: {speed:.2f}x one at a time; largest "
                    f"val_loss difference {diff:.2e}"
                )


if __name__ == "__main__":
    main()
