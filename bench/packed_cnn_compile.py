"""Would torch.compile make a packed CNN fast on a CPU? One training step, four ways.

    .venv/bin/python bench/packed_cnn_compile.py [--members 32] [--threads 1] [--steps 30]

The step is the packed path's: K members of the worked example's BatchNorm CNN (convolutions
of 8 and 16 channels on 1x8x8 images, max-pool, linear), batch 64 each, forward and backward,
float32. Timed four ways, in one process:

  vmap              `functional_call` under `vmap`, as `FuncStack` runs any user network
  vmap+compile      the same function under `torch.compile` (inductor, C++ kernels)
  grouped           written by hand for this one network: the members folded into the
                    channels of one grouped convolution, BatchNorm over the folded channels
                    (batch statistics only: no running-statistics update); what a packing
                    specialised per layer type could do without a compiler. Checked to give
                    the vmap step's loss before anything is timed
  grouped+compile   the hand-written step under `torch.compile`

Prints ms per step, GFLOP/s (FLOPs counted by torch.utils.flop_counter on the plain step) and
their share of the fp32 matmul peak measured here on the same threads, and the first call's
compile time with an empty inductor cache (a trial worker pays it per stack shape). Issue
"Pack any network" asks for 40 % of that peak; docs/performance.md has the figures.
"""

from __future__ import annotations

import argparse
import atexit
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# An empty cache, removed at exit: the compile time printed is what a fresh trial worker pays.
_CACHE = tempfile.mkdtemp(prefix="caviar-inductor-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", _CACHE)

import torch  # noqa: E402
from torch.func import functional_call, stack_module_state, vmap  # noqa: E402
from torch.nn import functional  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sweeps" / "examples"))
from digits_cnn import make  # noqa: E402
from throughput_network import cpu_matmul_peak  # noqa: E402

BATCH = 64
Step = Callable[[dict[str, torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]


def _steps(members: int) -> tuple[dict[str, Step], dict[str, torch.Tensor]]:
    """The two formulations of one step's loss, and the stacked parameters they train."""
    models = [make((1, 8, 8), 10, channels=8) for _ in range(members)]
    stacked, buffers = stack_module_state(models)
    params = {n: p.detach().clone().requires_grad_(True) for n, p in stacked.items()}
    template = models[0]

    def loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        per_sample = functional.cross_entropy(
            logits.reshape(members * BATCH, -1), y, reduction="none"
        )
        return per_sample.view(members, BATCH).mean(1).sum()

    def vmapped(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        def one(pm: dict[str, torch.Tensor], bm: dict[str, torch.Tensor], xm: torch.Tensor):
            return functional_call(template, (pm, bm), (xm,))

        return loss(vmap(one, randomness="different")(p, buffers, x), y)

    def grouped(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = members
        h = x.permute(1, 0, 2, 3, 4).reshape(BATCH, k, 8, 8)  # members as channels
        h = functional.conv2d(h, p["0.weight"].reshape(k * 8, 1, 3, 3), padding=1, groups=k)
        h = functional.batch_norm(
            h, None, None, p["1.weight"].reshape(-1), p["1.bias"].reshape(-1), True
        )
        h = functional.conv2d(
            functional.relu(h), p["3.weight"].reshape(k * 16, 8, 3, 3), padding=1, groups=k
        )
        h = functional.batch_norm(
            h, None, None, p["4.weight"].reshape(-1), p["4.bias"].reshape(-1), True
        )
        h = (
            functional.max_pool2d(functional.relu(h), 2)
            .reshape(BATCH, k, 16 * 4 * 4)
            .permute(1, 0, 2)
        )
        logits = torch.baddbmm(p["9.bias"].unsqueeze(1), h, p["9.weight"].transpose(1, 2))
        return loss(logits, y)

    return {"vmap": vmapped, "grouped": grouped}, params


def _time(step: Step, params: dict[str, torch.Tensor], x, y, steps: int) -> float:
    for _ in range(3):
        step(params, x, y).backward()
    start = time.perf_counter()
    for _ in range(steps):
        for p in params.values():
            p.grad = None
        step(params, x, y).backward()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    steps, params = _steps(args.members)
    x = torch.randn(args.members, BATCH, 1, 8, 8)
    y = torch.randint(0, 10, (args.members * BATCH,))
    # Counted on one member's plain module and multiplied: the counter does not see through
    # vmap's batching rules (it counts a batched convolution as K ungrouped ones).
    single = make((1, 8, 8), 10, channels=8)
    with FlopCounterMode(display=False) as counter:
        functional.cross_entropy(single(x[0]), y[:BATCH]).backward()
    flops = counter.get_total_flops() * args.members
    with torch.no_grad():  # the two formulations are one computation
        torch.testing.assert_close(steps["grouped"](params, x, y), steps["vmap"](params, x, y))
    peak = cpu_matmul_peak(args.threads)
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), {args.members} members x batch "
        f"{BATCH}: {flops / 1e9:.2f} GFLOP per step; fp32 matmul peak {peak:.1f} GFLOP/s"
    )
    print("| step | ms per step | GFLOP/s | of peak | first call (compile) |")
    print("|---|---|---|---|---|")
    vmap_s = math.nan
    for name in ("vmap", "vmap+compile", "grouped", "grouped+compile"):
        base = name.split("+")[0]
        step, compile_s = steps[base], ""
        if name.endswith("+compile"):
            step = torch.compile(steps[base])
            start = time.perf_counter()
            try:
                step(params, x, y).backward()
            except Exception as exc:  # no C++ toolchain, an unsupported op: report, go on
                print(f"| {name} | failed: {type(exc).__name__}: {str(exc).splitlines()[0]} |")
                continue
            compile_s = f"{time.perf_counter() - start:.1f} s"
        seconds = _time(step, params, x, y, args.steps)
        vmap_s = seconds if name == "vmap" else vmap_s
        rate = flops / seconds / 1e9
        print(f"| {name} | {seconds * 1e3:.1f} ({vmap_s / seconds:.2f}x) | {rate:.1f} | "
              f"{rate / peak:.1%} | {compile_s} |")  # fmt: skip


if __name__ == "__main__":
    main()
