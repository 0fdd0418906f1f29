"""Throughput: the same configurations of the digits BN-MLP trained four ways, each timed whole.

    .venv/bin/python bench/throughput.py                       # 256 configs, 20 epochs (~8 min)
    .venv/bin/python bench/throughput.py --configs 8 --epochs 1 --ray-default-configs 4  # smoke
    python bench/throughput.py --device cuda --loop-configs 32   # on a GPU host (see bench/device)

Paths (all in one run, on this machine, one after another):
  ray-default  Ray Tune, one configuration per trial, Tune's defaults (reuse_actors=False)
  ray-reuse    the same with worker reuse (reuse_actors=True)
  loop         one plain PyTorch process training the configurations one after another (no Ray)
  packed       Ray Tune with packs of configurations as trials (trainables.train_bn_mlp_packed)
  packed-noray diagnostic: the packed trainer in this process, no Ray, one thread; against
               `loop` it isolates what packing buys from what Ray costs
With --device cuda every path trains on the GPU: single-configuration Ray trials take one CPU and
1/--trials-per-gpu of a GPU (fractional GPUs, one trial per core by default), pack trials share
the GPUs equally, and the peak is torch.mm's in true fp32 (TF32 off, as the trainables run).
Each path is timed from its start (Ray started, when it uses Ray) to every configuration's
final results being on the driver. ray-default is slow (~5 s of wall time per configuration
here), so by default it runs on a subset (--ray-default-configs; 0 runs all, ~35 min in all)
and its trials' time is extrapolated, Ray's start and stop counted once; the output says so.

The packed path's GFLOP/s count training FLOPs from the layer shapes (forward + backward = 3x
the forward matmul FLOPs, per training sample, per epoch; evaluation = 1x per validation
sample), against the fp32 matmul peak of torch.mm measured in the same run with all cores.
Prints a table and writes it, with the raw figures, to --out (JSON).
"""

from __future__ import annotations

import os

# Explicit, for every Ray path alike: no token auth for this local, loopback-only instance,
# and none of Tune's per-trial JSON/CSV/TensorBoard loggers (caviar turns them off too).
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import argparse
import contextlib
import json
import logging
import math
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainables import (
    PackMember,
    TrialConfig,
    load_dataset,
    pack_size_auto,
    run_packed_training,
    run_training,
    trial_data,
)

PATHS = ("ray-default", "ray-reuse", "loop", "packed", "packed-noray")
CPUS = 2  # on a CPU, the Ray instance every Ray path starts: num_cpus=2, one CPU per trial


@dataclass(frozen=True)
class Machine:
    """Where the paths run, and what the Ray paths start and ask for.

    On a CPU: a Ray of 2 CPUs, one CPU per trial (the 2-core setting the goals are set for).
    On a GPU: a Ray of every core and GPU; a single-configuration trial takes one CPU and a
    `1 / trials_per_gpu` share of a GPU (fractional GPUs, so that many run side by side, as
    one would run them), and each pack trial one CPU and an equal share of the GPUs.
    """

    device: str
    ray_cpus: int
    ray_gpus: int
    trials_per_gpu: int

    @classmethod
    def detect(cls, device: str, trials_per_gpu: int | None) -> Machine:
        if device == "cpu":
            return cls("cpu", CPUS, 0, 0)
        if not torch.cuda.is_available():
            print("error: --device: 'cuda', but torch sees no CUDA device here", file=sys.stderr)
            raise SystemExit(2)
        cores = os.cpu_count() or 1
        return cls("cuda", cores, torch.cuda.device_count(), trials_per_gpu or cores)

    @property
    def name(self) -> str:
        if self.device == "cpu":
            return f"{os.cpu_count()} CPUs"
        return f"{self.ray_gpus}x {torch.cuda.get_device_name(0)}, {self.ray_cpus} CPUs"

    def trial_resources(self) -> dict[str, float]:
        """One single-configuration trial's request."""
        if self.device == "cpu":
            return {"cpu": 1}
        return {"cpu": 1, "gpu": 1 / self.trials_per_gpu}

    def pack_resources(self, packs: int) -> dict[str, float]:
        """One pack trial's request: the GPUs shared equally by the packs, at most one each."""
        if self.device == "cpu":
            return {"cpu": 1}
        return {"cpu": 1, "gpu": min(1.0, self.ray_gpus / packs)}

    def parallel_packs(self) -> int:
        """Pack trials that run at once: one per CPU on a CPU, one per GPU on a GPU."""
        return self.ray_cpus if self.device == "cpu" else self.ray_gpus

    def sync(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()


def make_configs(n: int, epochs: int, hidden: int, depth: int, batch_size: int, seed: int):
    """n flat trial configs: lr, momentum beta and weight decay vary; shapes are fixed."""
    rng = np.random.default_rng(seed)
    return [
        {
            "dataset": "digits",
            "epochs": epochs,
            "seed": index,
            "optimizer": "momentum",
            "hidden": hidden,
            "depth": depth,
            "batch_size": batch_size,
            "lr": float(10 ** rng.uniform(-3, -0.5)),
            "beta": float(1 - 10 ** rng.uniform(-2, -1)),  # 0.9 ... 0.99, 1-beta log-uniform
            "weight_decay": float(10 ** rng.uniform(-6, -3)),
        }
        for index in range(n)
    ]


def matmul_peak(machine: Machine, repeats: int = 5) -> float:
    """Best fp32 torch.mm GFLOP/s over `repeats`: on a CPU with every core (torch's default
    threads), 2048^2; on a GPU 8192^2, in true fp32 (TF32 off, as the trainables run)."""
    torch.set_num_threads(os.cpu_count() or 1)
    size = 2048 if machine.device == "cpu" else 8192
    a = torch.randn(size, size, device=machine.device)
    b = torch.randn(size, size, device=machine.device)
    with _no_tf32():
        torch.mm(a, b)
        machine.sync()
        best = math.inf
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            machine.sync()
            best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """fp32 matmuls in fp32: TF32 would measure a peak the trainables never use."""
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved


def training_flops(config: dict[str, Any], n_train: int, n_val: int, n_features: int = 64,
                   n_classes: int = 10) -> float:  # fmt: skip
    """Matmul FLOPs of one configuration's whole run: 3x forward per training sample, 1x per
    validation sample, every epoch."""
    hidden, depth = config["hidden"], config["depth"]
    inner = n_features * hidden + (depth - 1) * hidden * hidden + hidden * n_classes
    forward = 2 * inner
    return config["epochs"] * (3 * forward * n_train + forward * n_val)


@contextlib.contextmanager
def ray_session(
    machine: Machine, phases: dict[str, float], *, as_caviar: bool = False
) -> Iterator[None]:
    """A fresh local Ray for one path, stopped at the end; start/stop times go in `phases`.

    `as_caviar` (the packed path) does to it what caviar does to the Ray it embeds
    (sweeps/run/_embedded_ray.py): Tune's trial environment given to every worker, so trial
    actors can take the prestarted ones, and the autoscaler's monitor killed before the
    shutdown. The plain Ray Tune paths run without.
    """
    import ray

    from sweeps.run import trial_actors_on_prestarted_workers
    from sweeps.run._embedded_ray import TUNE_TRIAL_ENV, stop_monitor, workers_started_with

    added = {k: v for k, v in TUNE_TRIAL_ENV.items() if as_caviar and k not in os.environ}
    os.environ.update(added)
    environment = dict(os.environ)
    start = time.perf_counter()
    ray.init(
        address="local",
        num_cpus=machine.ray_cpus,
        num_gpus=machine.ray_gpus,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        _node_ip_address="127.0.0.1",
    )
    # Without Tune's file loggers, building the ResultGrid warns that it found no per-trial
    # files; the metrics this script uses come from memory and callbacks.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    phases["ray_init_s"] = time.perf_counter() - start
    try:
        if as_caviar:
            trial_actors_on_prestarted_workers()  # as caviar's build_tuner does
        with workers_started_with(environment) if as_caviar else contextlib.nullcontext():
            yield
    finally:
        stop = time.perf_counter()
        if as_caviar:
            stop_monitor()
        ray.shutdown()
        phases["ray_shutdown_s"] = time.perf_counter() - stop
        for key in added:
            del os.environ[key]


def _one_trial(config: dict[str, Any]) -> None:
    from trainables import train_bn_mlp

    train_bn_mlp(config["trial"])


def run_ray_trials(
    machine: Machine, configs: list[dict[str, Any]], *, reuse: bool
) -> dict[str, Any]:
    """One configuration per trial; returns the timing and each trial's final metrics."""
    from ray import tune

    phases: dict[str, float] = {}
    start = time.perf_counter()
    with (
        ray_session(machine, phases),
        tempfile.TemporaryDirectory(prefix="caviar-bench-") as storage,
    ):
        tuner = tune.Tuner(
            tune.with_resources(_one_trial, machine.trial_resources()),
            param_space={"trial": tune.grid_search(configs)},
            tune_config=tune.TuneConfig(reuse_actors=reuse),
            run_config=tune.RunConfig(storage_path=storage, name="bench", verbose=0),
        )
        grid = tuner.fit()
        finals = [result.metrics for result in grid]
    wall = time.perf_counter() - start
    errors = sum(1 for m in finals if "val_accuracy" not in m)
    accuracies = [m["val_accuracy"] for m in finals if "val_accuracy" in m]
    return {"wall_s": wall, "results": len(accuracies), "errors": errors, **phases,
            "mean_val_accuracy": float(np.mean(accuracies)) if accuracies else None}  # fmt: skip


def run_loop(machine: Machine, configs: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    """One process, the configurations one after another: the floor any orchestrator must beat."""
    torch.set_num_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    accuracies = []
    for config in configs:
        trial = TrialConfig.from_flat(config)
        data = trial_data(trial, torch.device(machine.device))
        results = run_training(trial.hparams, data, epochs=trial.epochs, seed=trial.seed)
        accuracies.append(results[-1].val_accuracy)
    wall = time.perf_counter() - start
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu, "results": len(accuracies),
            "errors": 0, "threads": threads,
            "mean_val_accuracy": float(np.mean(accuracies))}  # fmt: skip


def pack_members(configs: list[dict[str, Any]], device: str) -> list[PackMember]:
    """The configurations as members of one in-process pack, one data split per seed."""
    trials = [TrialConfig.from_flat(config) for config in configs]
    data = {t.seed: trial_data(t, torch.device(device)) for t in trials}
    return [PackMember(t.hparams, t.seed, data[t.seed]) for t in trials]


def run_packed_noray(machine: Machine, configs: list[dict[str, Any]]) -> dict[str, Any]:
    """All configurations packed in this process on one thread, without Ray."""
    torch.set_num_threads(1)
    start, cpu = time.perf_counter(), time.process_time()
    members = pack_members(configs, machine.device)
    results = run_packed_training(members, epochs=configs[0]["epochs"])
    wall = time.perf_counter() - start
    accuracies = [r[-1].val_accuracy for r in results if not r[-1].diverged]
    return {"wall_s": wall, "cpu_s": time.process_time() - cpu, "results": len(results),
            "errors": 0, "threads": 1,
            "mean_val_accuracy": float(np.mean(accuracies)) if accuracies else None}  # fmt: skip


def run_packed(machine: Machine, configs: list[dict[str, Any]], pack_size: int) -> dict[str, Any]:
    """Packs of `pack_size` configurations as Ray trials (one CPU each, and on a GPU an equal
    share of the GPUs)."""
    from ray import tune

    from trainables import train_bn_mlp_packed

    members = [{**config, "member_id": f"c{index:05d}"} for index, config in enumerate(configs)]
    packs = [members[i : i + pack_size] for i in range(0, len(members), pack_size)]
    final: dict[str, dict[str, Any]] = {}
    devices: set[str] = set()  # where the packs trained, as they report it

    class MemberResults(tune.Callback):
        """What the sweep driver does: keep each member's latest entry as packs report."""

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            devices.add(result["device"])
            for entry in result["members"]:
                final[entry["member_id"]] = entry

    phases: dict[str, float] = {}
    start = time.perf_counter()
    with (
        ray_session(machine, phases, as_caviar=True),
        tempfile.TemporaryDirectory(prefix="caviar-bench-") as storage,
    ):
        fit_start = time.time()  # wall clock, comparable with the workers' report timestamps
        tuner = tune.Tuner(
            tune.with_resources(train_bn_mlp_packed, machine.pack_resources(len(packs))),
            param_space={"members": tune.grid_search(packs)},
            run_config=tune.RunConfig(
                storage_path=storage, name="bench", verbose=0, callbacks=[MemberResults()]
            ),
        )
        grid = tuner.fit()
        fit_end = time.time()
        # Each pack's training window: trainable start (last report's time minus the
        # trainable's total time) to its last report.
        windows = [
            (r.metrics["timestamp"] - r.metrics["time_total_s"], r.metrics["timestamp"])
            for r in grid
            if r.metrics
        ]
        errors = grid.num_errors
    wall = time.perf_counter() - start
    first_begin, last_end = min(b for b, _ in windows), max(e for _, e in windows)
    training_s = last_end - first_begin
    accuracies = [e["val_accuracy"] for e in final.values() if not e["diverged"]]
    return {"wall_s": wall, "results": len(final), "errors": errors, "packs": len(packs), **phases,
            "pack_size": pack_size, "training_window_s": training_s,
            "trained_on": sorted(devices),
            # Tuner.fit() to the first pack's trainable starting (trial workers start and
            # import Tune, torch and trainables), and its last report to fit() returning.
            "worker_start_s": first_begin - fit_start, "wrap_up_s": fit_end - last_end,
            "diverged": sum(e["diverged"] for e in final.values()),
            "mean_val_accuracy": float(np.mean(accuracies)) if accuracies else None}  # fmt: skip


def matmul_floor(configs: list[dict[str, Any]], pack_size: int) -> dict[str, float]:
    """Seconds one pack spends in batched matmuls, measured inside real steps.

    One pack of the benchmark's configurations trains one epoch in this process on one thread
    (as each pack trial runs) under the torch profiler; its `aten::bmm` time times the epochs
    is what the packed path would take if everything but the matmuls were free. A floor for
    this implementation, not for the machine: the matmul peak gives that one.
    """
    from torch.profiler import ProfilerActivity, profile

    torch.set_num_threads(1)
    members = pack_members(configs[:pack_size], "cpu")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        run_packed_training(members, epochs=1)
        epoch_s = time.perf_counter() - start
    bmm_us = sum(e.self_cpu_time_total for e in prof.key_averages() if e.key == "aten::bmm")
    epochs = configs[0]["epochs"]
    return {"pack_epoch_s": epoch_s, "pack_epoch_bmm_s": bmm_us / 1e6,
            "pack_bmm_s": bmm_us / 1e6 * epochs}  # fmt: skip


def timed(name: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    load_before = os.getloadavg()
    print(f"[{name}] running (load average {load_before[0]:.2f})...", flush=True)
    figures = run()
    figures["load_before"] = load_before
    figures["load_after"] = os.getloadavg()
    phases = ", ".join(f"{k[:-2]} {v:.1f} s" for k, v in figures.items() if k.startswith("ray_"))
    print(f"[{name}] {figures['wall_s']:.1f} s{f' ({phases})' if phases else ''}", flush=True)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated of {PATHS}")
    parser.add_argument(
        "--ray-default-configs",
        type=int,
        default=32,
        help="configs run by ray-default, time extrapolated; 0 = all",
    )
    parser.add_argument("--pack-size", default="auto", help="'auto' or configs per pack trial")
    parser.add_argument(
        "--loop-threads",
        type=int,
        default=1,
        help="torch threads of the plain loop (1 is fastest for these sizes)",
    )
    parser.add_argument(
        "--loop-configs",
        type=int,
        default=0,
        help="configs run by the loop, time extrapolated; 0 = all (on a GPU the loop is slow)",
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--trials-per-gpu",
        type=int,
        default=None,
        help="on a GPU, single-configuration trials sharing one GPU (default: one per core)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bench/throughput.json")
    args = parser.parse_args()  # fmt: skip
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = set(paths) - set(PATHS)
    if unknown:
        parser.error(f"unknown paths {sorted(unknown)}; valid: {PATHS}")

    machine = Machine.detect(args.device, args.trials_per_gpu)
    configs = make_configs(
        args.configs, args.epochs, args.hidden, args.depth, args.batch_size, args.seed
    )
    sample = load_dataset("digits", seed=0)
    n_train, n_val = sample.x_train.shape[0], sample.x_val.shape[0]
    flops = sum(training_flops(c, n_train, n_val) for c in configs)
    pack_size = (
        pack_size_auto(machine.device, len(configs), parallel_trials=machine.parallel_packs())
        if args.pack_size == "auto"
        else int(args.pack_size)
    )
    print(f"{len(configs)} configs x {args.epochs} epochs, digits BN-MLP {args.depth}x"
          f"{args.hidden}, batch {args.batch_size}; {flops / 1e9:.0f} GFLOP of matmuls; "
          f"{machine.name}, torch {torch.__version__}", flush=True)  # fmt: skip
    if machine.device == "cuda":
        print(f"single-configuration trials: {machine.trial_resources()} each; packs share "
              f"{machine.ray_gpus} GPU(s)", flush=True)  # fmt: skip
    peak_before = matmul_peak(machine)
    print(f"fp32 matmul peak (torch.mm on {machine.device}): {peak_before:.1f} GFLOP/s",
          flush=True)  # fmt: skip

    figures: dict[str, dict[str, Any]] = {}
    for path in paths:
        if path == "ray-default":
            subset = configs[: args.ray_default_configs] if args.ray_default_configs else configs
            run = lambda s=subset: run_ray_trials(machine, s, reuse=False)  # noqa: E731
            figures[path] = extrapolated(timed(path, run), len(subset), len(configs))
        elif path == "ray-reuse":
            figures[path] = timed(path, lambda: run_ray_trials(machine, configs, reuse=True))
        elif path == "loop":
            subset = configs[: args.loop_configs] if args.loop_configs else configs
            run = lambda s=subset: run_loop(machine, s, args.loop_threads)  # noqa: E731
            figures[path] = extrapolated(timed(path, run), len(subset), len(configs))
        elif path == "packed":
            figures[path] = timed(path, lambda: run_packed(machine, configs, pack_size))
        else:
            figures[path] = timed(path, lambda: run_packed_noray(machine, configs))
    peak_after = matmul_peak(machine)
    peak = max(peak_before, peak_after)
    if "packed" in figures and machine.device == "cpu":
        print("[floor] profiling one pack's epoch on one thread...", flush=True)
        figures["packed"]["floor"] = matmul_floor(configs, pack_size)
    report(machine, figures, configs, flops, peak, (peak_before, peak_after), args)


def extrapolated(result: dict[str, Any], measured: int, total: int) -> dict[str, Any]:
    """A path run on the first `measured` of `total` configurations, its time scaled up.

    Only the trials' part scales: a Ray path's own start and stop are paid once per sweep,
    whatever its size, so they are counted once (scaling them too over-counted ray-default
    by its Ray start-up (total/measured - 1) times, about 4 % at 32 of 256).
    """
    if measured < total:
        fixed = result.get("ray_init_s", 0.0) + result.get("ray_shutdown_s", 0.0)
        result["measured_configs"] = measured
        result["extrapolated_wall_s"] = fixed + (result["wall_s"] - fixed) * total / measured
    return result


def report(machine, figures, configs, flops, peak, peaks, args) -> None:
    n = len(configs)
    print()
    print(f"{'path':<12} {'wall s':>9} {'configs/s':>10} {'load avg (1 min) before/after':>31}"
          f"  {'results':>8}  note")  # fmt: skip
    walls = {}
    for path, f in figures.items():
        wall = f.get("extrapolated_wall_s", f["wall_s"])
        walls[path] = wall
        notes = []
        if "extrapolated_wall_s" in f:
            notes.append(f"extrapolated from {f['measured_configs']} configs in "
                         f"{f['wall_s']:.1f} s")  # fmt: skip
        if path == "packed":
            notes.append(f"{f['packs']} packs of {f['pack_size']}, "
                         f"{machine.pack_resources(f['packs'])} each, "
                         f"trained on {'/'.join(f['trained_on'])}")  # fmt: skip
        if path in ("ray-default", "ray-reuse") and machine.device == "cuda":
            notes.append(f"{machine.trial_resources()} per trial")
        if path in ("loop", "packed-noray"):
            notes.append(f"{f['threads']} torch thread(s), {f['cpu_s']:.1f} s CPU")
        note = "; ".join(notes)
        print(f"{path:<12} {wall:>9.1f} {n / wall:>10.2f} "
              f"{f['load_before'][0]:>15.2f} / {f['load_after'][0]:<13.2f}  "
              f"{f['results']:>8}  {note}")  # fmt: skip
    if "packed" in walls:
        print()
        for path, wall in walls.items():
            if path not in ("packed", "packed-noray"):
                print(f"packed takes {wall / walls['packed']:.1f}x less wall time than {path}")
        packed = figures["packed"]
        whole = flops / packed["wall_s"] / 1e9
        training = flops / packed["training_window_s"] / 1e9
        print(f"packed: {whole:.1f} GFLOP/s over its whole wall time ({100 * whole / peak:.1f} % "
              f"of peak), {training:.1f} GFLOP/s while training ({100 * training / peak:.1f} %; "
              f"window {packed['training_window_s']:.1f} s)")  # fmt: skip
    if "packed" in figures:
        report_phases(figures["packed"])
    if "packed" in figures and "floor" in figures["packed"]:
        report_floor(machine, figures, walls, flops, peak)
    if "packed-noray" in figures and "loop" in figures:
        loop, noray = figures["loop"], figures["packed-noray"]
        loop_cpu = loop["cpu_s"] * walls["loop"] / loop["wall_s"]  # scaled like its wall time
        print(f"packing alone (packed-noray vs loop, both one process and one thread): "
              f"{walls['loop'] / noray['wall_s']:.1f}x less wall time, "
              f"{loop_cpu / noray['cpu_s']:.1f}x less CPU time; packed-noray "
              f"{flops / noray['cpu_s'] / 1e9:.1f} GFLOP/s per CPU-second")  # fmt: skip
    print(f"fp32 matmul peak: {peak:.1f} GFLOP/s (before {peaks[0]:.1f}, after {peaks[1]:.1f})")
    for path, f in figures.items():
        if f.get("mean_val_accuracy") is not None:
            print(f"{path}: mean final val_accuracy {f['mean_val_accuracy']:.4f}")
    out = {
        "args": vars(args), "configs": n, "flops": flops, "peak_gflops": peak,
        "peaks": peaks, "machine": platform.platform(), "cpus": os.cpu_count(),
        "device": machine.name, "torch": torch.__version__, "paths": figures,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print(f"written: {args.out}")


def report_phases(packed: dict[str, Any]) -> None:
    print(f"packed, where the time went: Ray start {packed['ray_init_s']:.1f} s, trial "
          f"workers starting {packed['worker_start_s']:.1f} s, training "
          f"{packed['training_window_s']:.1f} s, wrap-up {packed['wrap_up_s']:.1f} s, "
          f"Ray stop {packed['ray_shutdown_s']:.1f} s")  # fmt: skip


def report_floor(machine, figures, walls, flops, peak) -> None:
    """The best the packed path could do on this machine (CPU runs).

    Two floors, both keeping Ray's own start and stop and the trial workers' start as
    measured (costs of Ray that caviar does not control): the packs' matmuls at the speed
    they run inside real steps with everything else free, and all the FLOPs at the measured
    matmul peak. The ratios they allow bound what any packing could reach here.
    """
    packed, floor = figures["packed"], figures["packed"]["floor"]
    rounds = math.ceil(packed["packs"] / machine.parallel_packs())  # one thread each
    fixed = packed["ray_init_s"] + packed["worker_start_s"] + packed["ray_shutdown_s"]
    print(f"one pack alone, one epoch on one thread: {floor['pack_epoch_s']:.2f} s, of which "
          f"batched matmuls {floor['pack_epoch_bmm_s']:.2f} s "
          f"({100 * floor['pack_epoch_bmm_s'] / floor['pack_epoch_s']:.0f} %)")  # fmt: skip
    floors = {
        "matmuls at in-step speed, all else free": fixed + rounds * floor["pack_bmm_s"],
        "all FLOPs at the matmul peak": fixed + flops / (peak * 1e9),
    }
    for name, wall in floors.items():
        ratios = ", ".join(
            f"{walls[path] / wall:.1f}x {path}" for path in walls if not path.startswith("packed")
        )
        print(f"floor ({name}; Ray start/stop and worker start {fixed:.1f} s kept): "
              f"{wall:.1f} s -> at best {ratios or '(no baseline path run)'}")  # fmt: skip


if __name__ == "__main__":
    main()
