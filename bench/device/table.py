"""One table for a lent GPU: the example CNN through caviar, through plain Ray Tune with
fractional GPUs, and through caviar's packed engine alone, plus the built-in MLP benchmark,
each against plain Ray Tune and against the GPU's measured matmul peak, with issue #27's goals.

    python3 bench/device/table.py --budget 280                 # on the GPU (check.sh runs it)
    .venv/bin/python bench/device/table.py --device cpu --smoke  # every path, tiny, on a CPU

Paths, each timed whole in a fresh process (Ray's start and stop included), except the engine:
  plain Ray Tune  the script a user writes without caviar: the CNN factory, torch.optim.SGD with
                  momentum, tune.report per epoch; one configuration per trial, one CPU and
                  1/16 GPU each (--gpu-share), worker reuse on; a Ray of every core and GPU
  caviar          `caviar run` (python -m sweeps run) of the same sweep, `resources: {cpu: 1,
                  gpu: 1}` and `pack: auto`, so that its GPU plan shares the GPU between packs
  engine alone    caviar's packed trainer in this process, no Ray: every configuration in one
                  pack on the device, timed after a two-member warm-up (CUDA's start excluded)
  mlp ...         bench/throughput.py's built-in MLP (packed, packed-noray, ray-reuse)

A plain Ray Tune size that would not fit the budget is projected instead, linearly through the
two largest sizes it measured (the table says so). FLOPs per config-epoch are counted by
torch.utils.flop_counter (bench/throughput_network.py `_flops`); the peak is an 8192^2 torch.mm
in true fp32 on a GPU (TF32 off; the TF32 figure is printed beside it), 2048^2 on a CPU.
The engine row's check trains a few CNN members two one-batch steps packed and one at a time
(the eager step) on the device; float32 must agree within the packed tests' 1e-5 on losses.
Writes the figures as JSON to --out.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

import throughput_network as network_bench  # noqa: E402  (bench/, put on the path above)

MLP_NOTES = {  # what bench/throughput.py's paths are, per device
    "cuda": {"packed": "packs as Ray trials sharing the GPU", "packed-noray": "in-process",
             "ray-reuse": "1/16 GPU per trial, reuse"},
    "cpu": {"packed": "packs as Ray trials", "packed-noray": "in-process, 1 thread",
            "ray-reuse": "1 CPU per trial, reuse"},
}  # fmt: skip
EPOCH_TOLERANCE = 1e-5  # tests/trainables/test_packed.py: two float32 steps, packed vs eager

# Plain Ray Tune on a GPU: what a user writes without caviar (their factory, their loop).
PLAIN_SCRIPT = textwrap.dedent(
    """
    import os, sys, tempfile
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import numpy as np, ray, torch
    from ray import tune
    from torch import nn

    project, configs, epochs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    cpus, gpus, share = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])

    def load(device):
        data = np.load(os.path.join(project, "data", "digits_images.npz"))
        x, y = data["x"].astype("float32"), data["y"].astype("int64")
        order = np.random.default_rng(0).permutation(len(y))
        cut = int(0.8 * len(y))
        tr, va = order[:cut], order[cut:]
        x = (x - x[tr].mean(0)) / (x[tr].std(0) + 1e-8)
        return [torch.from_numpy(a).to(device) for a in (x[tr], y[tr], x[va], y[va])]

    def train(config):
        torch.set_num_threads(1)
        device = "cuda" if gpus else "cpu"
        if project not in sys.path:  # workers do not inherit the driver's sys.path
            sys.path.insert(0, project)
        from digits_cnn import make
        xt, yt, xv, yv = load(device)
        net = make((1, 8, 8), int(yt.max()) + 1, channels=8).to(device)
        opt = torch.optim.SGD(net.parameters(), lr=config["lr"], momentum=config["beta"])
        for epoch in range(epochs):
            net.train()
            for idx in torch.randperm(len(yt), device=device).split(64):
                if len(idx) < 2:
                    continue
                loss = nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                logits = net(xv)
                val_loss = nn.functional.cross_entropy(logits, yv).item()
                acc = (logits.argmax(1) == yv).float().mean().item()
            tune.report({"val_loss": val_loss, "val_accuracy": acc})

    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    request = {"cpu": 1, "gpu": share} if gpus else {"cpu": 1}
    tuner = tune.Tuner(
        tune.with_resources(train, request),
        param_space={"lr": tune.loguniform(1e-3, 0.3), "beta": tune.uniform(0.8, 0.99)},
        tune_config=tune.TuneConfig(num_samples=configs, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == configs and not results.errors, results.errors
    ray.shutdown()
    """
)


@dataclass
class Row:
    """One line of the table: a path at one size, measured, projected or not run."""

    path: str
    configs: int
    epochs: int
    wall_s: float | None = None
    note: str = ""
    goal: str = ""
    flops: float = 0.0  # the whole run's FLOPs
    baseline: str = ""  # the path this row's ratio is taken against
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        return None if not self.wall_s else self.configs * self.epochs / self.wall_s


class Budget:
    """Seconds left of the whole run; each step asks for a timeout that leaves a reserve."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def allows(self, seconds: float, reserve: float = 0.0) -> bool:
        return self.left() - reserve >= seconds


def timed(command: Sequence[str], timeout: float, env: dict[str, str]) -> tuple[float | None, str]:
    """Wall seconds of `command`, or None and why (a failure's tail, or the timeout)."""
    if timeout < 5:
        return None, "not run: no budget left"
    start = time.perf_counter()
    # Its own process group, so that a timeout stops the Ray it started too, not just its driver.
    proc = subprocess.Popen(
        list(command),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, f"stopped at its {timeout:.0f} s timeout"
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = (stdout[-1500:] + stderr[-2500:]).strip()
        print(f"--- {' '.join(command[:4])} failed (exit {proc.returncode}):\n{tail}\n---")
        return None, f"failed (exit {proc.returncode})"
    return wall, ""


def matmul_peaks(device: str) -> tuple[float, float]:
    """(fp32, TF32) best torch.mm GFLOP/s: 8192^2 on a GPU, 2048^2 on every CPU core."""
    if device == "cpu":
        peak = network_bench.cpu_matmul_peak(os.cpu_count() or 1)
        return peak, peak
    size = 8192
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    saved = torch.backends.cuda.matmul.allow_tf32
    peaks = []
    try:
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.mm(a, b)
            torch.cuda.synchronize()
            best = math.inf
            for _ in range(5):
                start = time.perf_counter()
                torch.mm(a, b)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - start)
            peaks.append(2 * size**3 / best / 1e9)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    del a, b
    torch.cuda.empty_cache()
    return peaks[0], peaks[1]


def _cnn_members(configs: int, epochs: int, device: str, where: Path) -> list[Any]:
    """The sweep's configurations as pack members on `device` (lr log-uniform, beta 0.9)."""
    from sweeps import load_spec
    from trainables import PackMember, TrialConfig, load_dataset

    sweep = load_spec(network_bench._project("cnn", where, configs, epochs, "auto"))
    rng = np.random.default_rng(0)
    trials = [
        TrialConfig.from_flat(
            sweep.trial_config(
                {"lr": float(10 ** rng.uniform(-3, math.log10(0.3))), "beta": 0.9}, seed=0
            )
        )
        for _ in range(configs)
    ]
    first = trials[0]
    data = load_dataset(first.dataset, seed=0, device=device, data_version=first.data_version)
    return [PackMember(t.hparams, 0, data, t.network, t.network_key) for t in trials]


def engine_alone(configs: int, epochs: int, device: str) -> float:
    """Seconds caviar's packed trainer takes for every configuration in one pack, no Ray. Each
    stack's choice between its recorded (CUDA graph) and eager step is logged."""
    capture = logging.getLogger("trainables.packing._capture")
    if not capture.handlers:
        capture.addHandler(logging.StreamHandler(sys.stdout))
        capture.setLevel(logging.INFO)
    from trainables import run_packed_training

    with tempfile.TemporaryDirectory() as tmp:
        members = _cnn_members(configs, epochs, device, Path(tmp))
        run_packed_training(members[:2], epochs=1)  # CUDA's context and kernels, once
        start = time.perf_counter()
        run_packed_training(members, epochs=epochs)  # returns floats: the device is synced
        return time.perf_counter() - start


def eager_difference(device: str, *, tf32: bool) -> float:
    """Largest loss difference, packed against one at a time (the eager step), of four CNN
    configurations trained two one-batch steps in float32 on `device`."""
    import dataclasses

    from trainables import build_state, run_packed_training, run_training

    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = tf32
    try:
        with tempfile.TemporaryDirectory() as tmp:
            members = _cnn_members(4, 2, device, Path(tmp))
            cut = dataclasses.replace(
                members[0].data,
                x_train=members[0].data.x_train[:64],
                y_train=members[0].data.y_train[:64],
            )
            members = [dataclasses.replace(m, data=cut) for m in members]
            packed = run_packed_training(members, epochs=2)
            worst = 0.0
            for member, results in zip(members, packed, strict=True):
                state = build_state(member.hparams, cut, seed=member.seed, network=member.network)
                alone = run_training(member.hparams, cut, epochs=2, seed=member.seed, state=state)
                for x, y in zip(results, alone, strict=True):
                    worst = max(
                        worst, abs(x.train_loss - y.train_loss), abs(x.val_loss - y.val_loss)
                    )
            return worst
    finally:
        torch.backends.cudnn.allow_tf32 = saved


def cnn_command(path: str, project: Path, configs: int, epochs: int, args: Any) -> list[str]:
    if path == "plain":
        gpus = 1 if args.device == "cuda" else 0
        return [sys.executable, "-c", PLAIN_SCRIPT, str(project), str(configs), str(epochs),
                str(os.cpu_count() or 1), str(gpus), str(args.gpu_share)]  # fmt: skip
    return [sys.executable, "-m", "sweeps", "run", str(project / "sweep.yaml"),
            "--results", str(project.parent / "results")]  # fmt: skip


def run_cnn(path: str, configs: int, epochs: int, args: Any, budget: Budget, reserve: float,
            env: dict[str, str]) -> tuple[float | None, str]:  # fmt: skip
    """One whole-process run of the CNN sweep through `path` ('plain' or 'caviar')."""
    with tempfile.TemporaryDirectory(prefix="caviar-device-") as tmp:
        project = network_bench._project("cnn", Path(tmp) / "project", configs, epochs, "auto")
        if args.device == "cuda":
            spec = project.read_text().replace("pack:", "resources: {cpu: 1, gpu: 1}\npack:")
            project.write_text(spec)
        command = cnn_command(path, project.parent, configs, epochs, args)
        print(f"[{path} {configs}x{epochs}] running ({budget.left():.0f} s left)...", flush=True)
        wall, why = timed(command, budget.left() - reserve, {**env, "HOME": tmp})
        print(f"[{path} {configs}x{epochs}] {f'{wall:.1f} s' if wall else why}", flush=True)
        return wall, why


def plain_rows(sizes: list[int], large: int, epochs: int, args: Any, budget: Budget,
               reserve: float, env: dict[str, str]) -> dict[int, Row]:  # fmt: skip
    """Plain Ray Tune at each of `sizes` that its projection lets fit, and at `large`,
    measured if listed and fitting, else projected through the two largest measured."""
    measured: dict[int, float] = {}
    rows: dict[int, Row] = {}
    for wanted in sorted(sizes):
        n = wanted  # halved until its projection fits, but kept above the sizes measured
        while (guess := project_wall(measured, n)) is not None and not budget.allows(
            guess, reserve
        ):
            n //= 2
        if measured and n <= max(measured):
            continue
        wall, why = run_cnn("plain", n, epochs, args, budget, reserve, env)
        rows[n] = Row("plain Ray Tune", n, epochs, wall, why)
        if wall is not None:
            measured[n] = wall
    if large not in measured:
        guess = project_wall(measured, large)
        if guess is not None:
            basis = " and ".join(str(n) for n in sorted(measured)[-2:])
            how = "linearly" if len(measured) > 1 else "in proportion (an upper bound)"
            rows[large] = Row("plain Ray Tune", large, epochs, guess,
                              f"projected {how} from {basis}: not run, budget")  # fmt: skip
    return rows


def project_wall(measured: dict[int, float], n: int) -> float | None:
    """Wall time at `n` configurations: a line through the two largest sizes measured; from
    one size, proportional (an upper bound: Ray's start is paid once)."""
    if not measured:
        return None
    sizes = sorted(measured)
    if len(sizes) == 1:
        return measured[sizes[0]] * n / sizes[0]
    a, b = sizes[-2], sizes[-1]
    slope = (measured[b] - measured[a]) / (b - a)
    return measured[b] + slope * (n - b)


def mlp_rows(args: Any, budget: Budget, env: dict[str, str], peak: float) -> list[Row]:
    """bench/throughput.py's built-in MLP: packed and packed-noray, then ray-reuse."""
    rows: list[Row] = []
    for paths in ("packed,packed-noray", "ray-reuse"):
        with tempfile.TemporaryDirectory(prefix="caviar-mlp-") as tmp:
            out = Path(tmp) / "mlp.json"
            command = [
                sys.executable,
                str(ROOT / "bench" / "throughput.py"),
                "--device",
                args.device,
                "--configs",
                str(args.mlp_configs),
                "--epochs",
                str(args.mlp_epochs),
                "--paths",
                paths,
                "--out",
                str(out),
            ]
            print(f"[mlp {paths}] running ({budget.left():.0f} s left)...", flush=True)
            wall, why = timed(command, budget.left() - 3, {**env, "HOME": tmp})
            if wall is None:
                rows += [Row(f"mlp {p}", args.mlp_configs, args.mlp_epochs, None, why)
                         for p in paths.split(",")]  # fmt: skip
                continue
            figures = json.loads(out.read_text())
            for name, f in figures["paths"].items():
                rows.append(Row(f"mlp {name}", args.mlp_configs, args.mlp_epochs,
                                f.get("extrapolated_wall_s", f["wall_s"]),
                                note=MLP_NOTES[args.device].get(name, ""),
                                flops=figures["flops"], baseline="mlp ray-reuse"))  # fmt: skip
    return rows


def print_table(rows: list[Row], peak: float, smoke: bool) -> None:
    walls = {(r.path, r.configs): r.wall_s for r in rows if r.wall_s}
    header = (f"{'path':<20} {'configs':>7} {'wall s':>8} {'vs plain':>9} {'cfg-ep/s':>9} "
              f"{'% peak':>7}  {'goal':<28} {'met':<5} note")  # fmt: skip
    print()
    print("vs plain: plain Ray Tune's wall time at the same size over the row's (MLP rows: over "
          "bench/throughput.py's ray-reuse); % peak: of the fp32 torch.mm peak")  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in rows:
        base = walls.get((r.baseline, r.configs)) if r.baseline else None
        ratio = f"{base / r.wall_s:.2f}x" if base and r.wall_s else "-"
        share = f"{100 * r.flops / r.wall_s / 1e9 / peak:.3f}" if r.wall_s and r.flops else "-"
        met = "-" if not r.goal else ("n/a" if smoke else r.extra.get("met", "-"))
        wall = f"{r.wall_s:.1f}" if r.wall_s else "-"
        rate = f"{r.rate:.0f}" if r.rate else "-"
        print(f"{r.path:<20} {r.configs:>7} {wall:>8} {ratio:>9} {rate:>9} {share:>7}  "
              f"{r.goal:<28} {met:<5} {r.note}")  # fmt: skip


def judge(rows: list[Row], large: int) -> None:
    """Mark each goal met or missed (the goals are set for one H200 at full size)."""
    walls = {(r.path, r.configs): r.wall_s for r in rows if r.wall_s}
    bounds = {r.configs for r in rows if r.path == "plain Ray Tune" and "upper bound" in r.note}
    for r in rows:
        if not r.goal or not r.wall_s:
            continue
        if r.path == "caviar" and r.configs == large:
            plain = walls.get(("plain Ray Tune", large))
            ok = r.wall_s <= 20 and plain is not None and plain / r.wall_s >= 8
            if ok and large in bounds:  # plain's projection from one size overstates it
                r.extra["met"] = "?"
                continue
        elif r.path == "caviar":
            ok = r.wall_s <= 12
        elif r.path == "engine alone":
            ok = (r.rate or 0) >= 4000 and r.extra.get("eager_diff", math.inf) < EPOCH_TOLERANCE
        else:
            continue
        r.extra["met"] = "yes" if ok else "NO"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to try the script")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for everything")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--small", type=int, default=256, help="configurations, smaller sweep")
    parser.add_argument("--large", type=int, default=2048, help="configurations, larger sweep")
    parser.add_argument(
        "--plain-sizes",
        default="256,1024",
        help="plain Ray Tune sizes to measure; --large is projected if absent",
    )
    parser.add_argument("--gpu-share", type=float, default=1 / 16, help="GPU per plain trial")
    parser.add_argument("--mlp-configs", type=int, default=128)
    parser.add_argument("--mlp-epochs", type=int, default=10)
    parser.add_argument(
        "--mlp-reserve",
        type=float,
        default=45.0,
        help="seconds kept for the MLP benchmark while the CNN paths run",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.smoke:
        args.epochs, args.small, args.large, args.plain_sizes = 1, 16, 32, "16,24"
        args.mlp_configs, args.mlp_epochs, args.mlp_reserve = 8, 1, 30.0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device: 'cuda', but torch sees no CUDA device here", file=sys.stderr)
        raise SystemExit(2)
    plain_sizes = [int(s) for s in args.plain_sizes.split(",") if s]
    budget = Budget(args.budget)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.setdefault("PYTHONPATH", str(ROOT))

    peak, peak_tf32 = matmul_peaks(args.device)
    flops, n_train, n_val = network_bench._flops("cnn")
    where = torch.cuda.get_device_name(0) if args.device == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"{where}, {os.cpu_count()} cores, torch {torch.__version__}; torch.mm peak "
          f"{peak:.0f} GFLOP/s fp32, {peak_tf32:.0f} TF32; CNN {flops / 1e6:.1f} MFLOP per "
          f"config-epoch ({n_train} train / {n_val} validation samples)", flush=True)  # fmt: skip

    rows: list[Row] = []
    for n in (args.small, args.large):
        print(f"[engine alone {n}x{args.epochs}] running...", flush=True)
        wall = engine_alone(n, args.epochs, args.device)
        print(f"[engine alone {n}x{args.epochs}] {wall:.2f} s", flush=True)
        rows.append(Row("engine alone", n, args.epochs, wall, "in-process, no Ray"))
    if args.device == "cuda":  # what recording the step as a CUDA graph buys, at one size
        os.environ["CAVIAR_CUDA_GRAPHS"] = "0"
        try:
            wall = engine_alone(args.small, args.epochs, args.device)
        finally:
            del os.environ["CAVIAR_CUDA_GRAPHS"]
        print(f"[engine alone {args.small}x{args.epochs}, eager steps] {wall:.2f} s", flush=True)
        rows.append(Row("engine, eager steps", args.small, args.epochs, wall, "no CUDA graphs"))
    diff = eager_difference(args.device, tf32=torch.backends.cudnn.allow_tf32)
    diff_strict = eager_difference(args.device, tf32=False) if args.device == "cuda" else diff
    if args.device == "cuda":
        torch.cuda.empty_cache()  # the GPU's memory to the Ray paths that follow
    engine = next(r for r in rows if r.path == "engine alone" and r.configs == args.large)
    engine.goal, engine.extra["eager_diff"] = ">= 4000 cfg-ep/s, f32 ok", diff
    engine.note += f"; vs eager: {diff:.1e} (cuDNN TF32 off: {diff_strict:.1e}; tol 1e-5)"

    for n, goal in ((args.small, "<= 12 s"), (args.large, "<= 20 s and >= 8x plain")):
        took, why = run_cnn("caviar", n, args.epochs, args, budget, args.mlp_reserve, env)
        how = "pack: auto" + (", gpu: 1" if args.device == "cuda" else "")
        rows.append(Row("caviar", n, args.epochs, took, why or how, goal))
    plain = plain_rows(plain_sizes, args.large, args.epochs, args, budget, args.mlp_reserve, env)
    share = f"1/{round(1 / args.gpu_share)} GPU" if args.device == "cuda" else "1 CPU"
    for r in plain.values():
        r.note = r.note or f"{share} per trial, reuse"
    rows += sorted(plain.values(), key=lambda r: r.configs)
    for r in rows:
        r.flops, r.baseline = flops * r.configs * r.epochs, "plain Ray Tune"
    rows += mlp_rows(args, budget, env, peak)

    judge(rows, args.large)
    print_table(rows, peak, args.smoke)
    if args.smoke:
        print("(smoke: tiny sizes; the goals are for one H200 at full size)")
    if args.out is not None:
        figures = {
            "device": where,
            "peak_gflops": peak,
            "peak_tf32_gflops": peak_tf32,
            "flops_per_config_epoch": flops,
            "args": {k: str(v) for k, v in vars(args).items()},
            "rows": [asdict(r) for r in rows],
        }
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
