"""A user's network trained packed (torch.func, `FuncStack`) against one configuration at a
time, in one process without Ray: the training-loop part of issue "Pack any network".

    python bench/packed_network.py [--configs 32] [--epochs 2] [--stack 32] [--dropout 0.25]
                                   [--bn-momentum 0.01 0.5] [--one-per-pack] [--packed-only]

`--bn-momentum LOW HIGH` gives each configuration its own BatchNorm momentum (log-uniform), so
the pack holds it per member (`trainables._lifted.MemberBatchNorm`); `--one-per-pack` times the
grouping that would give every configuration a pack of its own instead.

`CAVIAR_CPU_OPS=0` in the environment times the packed path with vmap's own rules for
convolution, BatchNorm and pooling (`trainables/packing/_cpu_ops.py`), for an A/B.

The network is the worked example's BatchNorm CNN (`sweeps/examples/digits_cnn.py`, channels
8: convolutions of 8 and 16 channels) on digits as 1x8x8 images, batch 64, float32, momentum
SGD over log-uniform learning rates. Prints wall time per path, the speed-up, and the largest
difference of the final validation loss between the paths (rounding noise in float32).
"""

from __future__ import annotations

import argparse
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch

from trainables import (
    FileSource,
    HParams,
    PackMember,
    build_state,
    load_dataset,
    load_factory,
    run_packed_training,
    run_training,
)

EXAMPLES = Path(__file__).parents[1] / "sweeps" / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stack", type=int, default=32)
    parser.add_argument("--dropout", type=float, default=0.0, help="the network's dropout rate")
    parser.add_argument("--bn-momentum", type=float, nargs=2, metavar=("LOW", "HIGH"))
    parser.add_argument("--one-per-pack", action="store_true", help="a pack per configuration")
    parser.add_argument("--packed-only", action="store_true", help="skip one-at-a-time")
    args = parser.parse_args()

    factory = load_factory("digits_cnn:make", EXAMPLES)
    images = FileSource(str(EXAMPLES / "data" / "digits_images.npz")).to_config()
    data = load_dataset(images, seed=0)

    def network(d, momentum=None):
        net = factory.build(d.input_shape, d.n_classes, {"channels": 8, "dropout": args.dropout})
        for module in net.modules():
            if momentum is not None and isinstance(module, torch.nn.BatchNorm2d):
                module.momentum = momentum
        return net

    rng = np.random.default_rng(0)
    lrs = 10 ** rng.uniform(-3, -1, args.configs)
    configs = [HParams(lr=float(lr), beta=0.9, batch_size=64) for lr in lrs]
    networks = [network] * args.configs
    if args.bn_momentum is not None:
        low, high = np.log10(args.bn_momentum)
        momenta = 10 ** rng.uniform(low, high, args.configs)
        networks = [partial(network, momentum=float(m)) for m in momenta]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.configs} configs "
          f"x {args.epochs} epochs, {data.x_train.shape[0]} training samples")  # fmt: skip

    start = time.perf_counter()
    alone = []
    for seed, hp in enumerate([] if args.packed_only else configs):
        state = build_state(hp, data, seed=seed, network=networks[seed])
        alone.append(run_training(hp, data, epochs=args.epochs, seed=seed, state=state)[-1])
    t_alone = time.perf_counter() - start

    members = [
        PackMember(hp, seed, data, networks[seed], seed if args.one_per_pack else "cnn8")
        for seed, hp in enumerate(configs)
    ]
    start = time.perf_counter()
    packed = run_packed_training(members, epochs=args.epochs, stack_size=args.stack)
    t_packed = time.perf_counter() - start

    work = args.configs * args.epochs
    rate = work / t_packed
    per = 1e3 * t_packed / work
    print(f"packed ({args.stack:3d}/stack): {t_packed:7.2f} s  ({rate:6.1f} config-epochs/s, "
          f"{per:.1f} ms each)")  # fmt: skip
    if args.packed_only:
        return
    # With dropout the members draw other masks than their unpacked runs: not rounding noise.
    diff = max(
        abs(a.val_loss - p[-1].val_loss)
        for a, p in zip(alone, packed, strict=True)
        if math.isfinite(a.val_loss)
    )
    print(f"one at a time:     {t_alone:7.2f} s  ({work / t_alone:6.1f} config-epochs/s)")
    print(f"speed-up: {t_alone / t_packed:.2f}x; max |val_loss difference|: {diff:.2e}")


if __name__ == "__main__":
    main()
