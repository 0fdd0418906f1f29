"""Throughput for a user's network: the worked example's CNN (or the wine-table MLP) trained
three ways, each timed whole, in one run on this machine.

    .venv/bin/python bench/throughput_network.py                      # CNN, 256 x 10 (~6 min)
    .venv/bin/python bench/throughput_network.py --model mlp
    .venv/bin/python bench/throughput_network.py --model cnn-dropout   # dropout searched too
    .venv/bin/python bench/throughput_network.py --configs 16 --epochs 1   # smoke

Paths, each in a fresh process, started one after another:
  ray-reuse   plain Ray Tune, one configuration per trial, worker reuse on: the script a user
              would write (the factory, torch.optim.SGD with momentum, tune.report per epoch)
  pack-1      `caviar run` of the same sweep with `pack: 1`
  pack-auto   `caviar run` with `pack: auto` (the network vectorized with torch.func)
  noray       diagnostic: caviar's packed trainer in this process, no Ray, all threads; it
              isolates what vectorizing buys from what Ray costs
Every Ray path starts a Ray of 2 CPUs with one CPU per trial, as caviar's embedded one does on
this VM. Times run from the process's start to its end (Ray's start and stop included).

FLOPs are counted by torch.utils.flop_counter on one real training step and one evaluation of
the network (forward + backward per training sample, forward per validation sample, per
epoch), against the fp32 torch.mm peak measured in the same run with all cores. Prints a table
and writes it, with the raw figures, to --out (JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "sweeps" / "examples"
PATHS = ("ray-reuse", "pack-1", "pack-auto", "noray")
CPUS = 2

# The sweep every path runs: log-uniform lr, 1 - beta log-uniform, the network fixed.
CNN_SPEC = """
name: bench-cnn
trainable:
  model: digits_cnn:make
  dataset: {path: data/digits_images.npz}
  epochs: EPOCHS
  fixed: {optimizer: momentum, batch_size: 64, channels: 8}
search_space:
  lr:   {type: float, low: 1.0e-3, high: 0.3, scale: log}
  beta: {type: float, low: 0.8, high: 0.99, scale: reverse_log}
strategy: {kind: random, samples: CONFIGS}
pack: PACK
seed: 0
"""
# The same CNN with its `dropout` keyword searched: the most common hyperparameter of a user's
# network. Dropout rates are held per member in a pack (trainables/_lifted.py), so the
# configurations still share packs.
CNN_DROPOUT_SPEC = CNN_SPEC.replace(
    "strategy:", "  dropout: {type: float, low: 0.0, high: 0.5}\nstrategy:"
)
MLP_SPEC = """
name: bench-mlp
trainable:
  dataset: {path: data/wine.parquet, target: cultivar}
  epochs: EPOCHS
  fixed: {depth: 2, hidden: 32, optimizer: momentum, batch_size: 32}
search_space:
  lr:   {type: float, low: 1.0e-3, high: 0.3, scale: log}
  beta: {type: float, low: 0.8, high: 0.99, scale: reverse_log}
strategy: {kind: random, samples: CONFIGS}
pack: PACK
seed: 0
"""

# Plain Ray Tune: what a user writes without caviar (their factory, their loop).
RAY_SCRIPT = textwrap.dedent(
    """
    import os, sys, tempfile
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    import numpy as np, pandas as pd, ray, torch
    from ray import tune
    from torch import nn

    project, model, configs, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sys.path.insert(0, project)

    def load():
        if model.startswith("cnn"):
            data = np.load(os.path.join(project, "data", "digits_images.npz"))
            x, y = data["x"].astype("float32"), data["y"].astype("int64")
        else:
            table = pd.read_parquet(os.path.join(project, "data", "wine.parquet"))
            y = table.pop("cultivar").astype("category").cat.codes.to_numpy("int64")
            x = table.to_numpy("float32")
        order = np.random.default_rng(0).permutation(len(y))
        cut = int(0.8 * len(y))
        tr, va = order[:cut], order[cut:]
        mean, std = x[tr].mean(0), x[tr].std(0) + 1e-8
        x = (x - mean) / std
        return (torch.from_numpy(x[tr]), torch.from_numpy(y[tr]),
                torch.from_numpy(x[va]), torch.from_numpy(y[va]))

    def build(n_in, n_classes, dropout):
        if model.startswith("cnn"):
            # Workers do not inherit the driver's sys.path; the trial puts the project on it.
            if project not in sys.path:
                sys.path.insert(0, project)
            from digits_cnn import make
            return make((1, 8, 8), n_classes, channels=8, dropout=dropout)
        return nn.Sequential(nn.Linear(n_in, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
                             nn.Linear(32, 32, bias=False), nn.BatchNorm1d(32), nn.ReLU(),
                             nn.Linear(32, n_classes))

    def train(config):
        torch.set_num_threads(1)
        xt, yt, xv, yv = load()
        n_classes = int(yt.max()) + 1
        net = build(xt.shape[1], n_classes, config.get("dropout", 0.0))
        opt = torch.optim.SGD(net.parameters(), lr=config["lr"], momentum=config["beta"])
        batch = 64 if model.startswith("cnn") else 32
        for epoch in range(epochs):
            net.train()
            for idx in torch.randperm(len(yt)).split(batch):
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

    ray.init(num_cpus=2, num_gpus=0, include_dashboard=False, log_to_driver=False,
             logging_level="ERROR")
    space = {"lr": tune.loguniform(1e-3, 0.3), "beta": tune.uniform(0.8, 0.99)}
    if model == "cnn-dropout":
        space["dropout"] = tune.uniform(0.0, 0.5)
    tuner = tune.Tuner(
        tune.with_resources(train, {"cpu": 1}), param_space=space,
        tune_config=tune.TuneConfig(num_samples=configs, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0),
    )
    results = tuner.fit()
    assert len(results) == configs and not results.errors, results.errors
    ray.shutdown()
    """
)


def _project(model: str, where: Path, configs: int, epochs: int, pack: str) -> Path:
    """A user's project: the spec, the factory module and the data, as `caviar init` lays out."""
    (where / "data").mkdir(parents=True, exist_ok=True)
    if model.startswith("cnn"):
        shutil.copy(EXAMPLES / "digits_cnn.py", where)
        shutil.copy(EXAMPLES / "data" / "digits_images.npz", where / "data")
    else:
        shutil.copy(EXAMPLES / "data" / "wine.parquet", where / "data")
    template = {"cnn": CNN_SPEC, "cnn-dropout": CNN_DROPOUT_SPEC, "mlp": MLP_SPEC}[model]
    spec = template.replace("EPOCHS", str(epochs)).replace("CONFIGS", str(configs))
    (where / "sweep.yaml").write_text(spec.replace("PACK", pack))
    return where / "sweep.yaml"


def _timed(command: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(
            f"{' '.join(command[:4])} failed:\n{proc.stdout[-2000:]}{proc.stderr[-3000:]}"
        )
    return wall


def _noray(model: str, configs: int, epochs: int) -> float:
    """caviar's packed trainer alone: the sweep's configurations, vectorized, no Ray."""
    from sweeps import load_spec
    from trainables import PackMember, TrialConfig, load_dataset, run_packed_training

    with tempfile.TemporaryDirectory() as tmp:
        sweep = load_spec(_project(model, Path(tmp), configs, epochs, "auto"))
        rng = np.random.default_rng(0)
        trials = []
        for _ in range(configs):
            params = {"lr": float(10 ** rng.uniform(-3, math.log10(0.3))), "beta": 0.9}
            if model == "cnn-dropout":
                params["dropout"] = float(rng.uniform(0.0, 0.5))
            trials.append(TrialConfig.from_flat(sweep.trial_config(params, seed=0)))
        first = trials[0]
        data = load_dataset(first.dataset, seed=0, data_version=first.data_version)
        members = [PackMember(t.hparams, 0, data, t.network, t.network_key) for t in trials]
        start = time.perf_counter()
        run_packed_training(members, epochs=epochs)
        return time.perf_counter() - start


def _flops(model: str) -> tuple[float, int, int]:
    """(training FLOPs per config per epoch, training samples, validation samples)."""
    from torch.utils.flop_counter import FlopCounterMode

    from sweeps import load_spec
    from trainables import TrialConfig, build_state, load_dataset

    with tempfile.TemporaryDirectory() as tmp:
        sweep = load_spec(_project(model, Path(tmp), 1, 1, "1"))
        trial = TrialConfig.from_flat(sweep.trial_config({"lr": 0.01, "beta": 0.9}, seed=0))
        data = load_dataset(trial.dataset, seed=0, data_version=trial.data_version)
        state = build_state(trial.hparams, data, seed=0, network=trial.network)
        x, y = data.x_train[:64], data.y_train[:64]
        with FlopCounterMode(display=False) as train_counter:
            torch.nn.functional.cross_entropy(state.model(x), y).backward()
        state.model.eval()
        with FlopCounterMode(display=False) as eval_counter, torch.no_grad():
            state.model(x)
        n_train, n_val = data.x_train.shape[0], data.x_val.shape[0]
        per_train = train_counter.get_total_flops() / 64
        per_val = eval_counter.get_total_flops() / 64
        return per_train * n_train + per_val * n_val, n_train, n_val


def cpu_matmul_peak(threads: int, repeats: int = 5) -> float:
    """Best fp32 torch.mm GFLOP/s of 2048^2 on `threads` threads (left set to that)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * 2048**3 / best / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("cnn", "cnn-dropout", "mlp"), default="cnn")
    parser.add_argument("--configs", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    paths = [p for p in args.paths.split(",") if p]
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    caviar = str(Path(sys.executable).parent / "caviar")

    peak = cpu_matmul_peak(os.cpu_count() or 1)
    flops, n_train, n_val = _flops(args.model)
    total = flops * args.configs * args.epochs
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}; fp32 torch.mm peak {peak:.1f} GFLOP/s")  # fmt: skip
    print(f"{args.model}: {args.configs} configs x {args.epochs} epochs, {n_train} training / "
          f"{n_val} validation samples; {flops / 1e9:.3f} GFLOP per config-epoch, "
          f"{total / 1e12:.2f} TFLOP in all")  # fmt: skip
    walls: dict[str, float] = {}
    for path in paths:
        with tempfile.TemporaryDirectory(prefix="caviar-bench-") as tmp:
            pack = {"pack-1": "1", "pack-auto": "auto"}.get(path, "1")
            spec = _project(args.model, Path(tmp) / "project", args.configs, args.epochs, pack)
            if path == "ray-reuse":
                command = [sys.executable, "-c", RAY_SCRIPT, str(spec.parent), args.model,
                           str(args.configs), str(args.epochs)]  # fmt: skip
                walls[path] = _timed(command, {**env, "HOME": tmp})
            elif path in ("pack-1", "pack-auto"):
                command = [caviar, "run", str(spec), "--results", str(Path(tmp) / "out")]
                walls[path] = _timed(command, {**env, "HOME": tmp})
            else:
                walls[path] = _noray(args.model, args.configs, args.epochs)
        rate = total / walls[path] / 1e9
        print(f"  {path:10s} {walls[path]:8.1f} s  {rate:6.1f} GFLOP/s  "
              f"({100 * rate / peak:4.1f} % of peak)", flush=True)  # fmt: skip
    if "ray-reuse" in walls:
        for path in ("pack-1", "pack-auto"):
            if path in walls:
                print(
                    f"  ray-reuse / {path}: {walls['ray-reuse'] / walls[path]:.2f}x less wall time"
                )
    if args.out is not None:
        figures: dict[str, Any] = {
            "model": args.model, "configs": args.configs, "epochs": args.epochs,
            "peak_gflops": peak, "flops_per_config_epoch": flops, "wall_s": walls,
        }  # fmt: skip
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
