"""The Ray Tune adapter: import boundary, metrics through a real Tuner, checkpoint restarts."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import trainables
from trainables import HyperParameterError, TrialConfig, load_dataset, run_training

PACKAGE = Path(trainables.__file__).parent
METRICS = ["epoch", "train_loss", "val_loss", "val_accuracy", "lr", "diverged"]


def _imported_top_level_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.add(node.module.split(".")[0])
    return modules


def test_only_the_adapter_imports_ray_and_no_sibling_package_is_imported() -> None:
    for path in PACKAGE.glob("*.py"):
        imported = _imported_top_level_modules(path)
        assert not imported & {"sweeps", "search_spaces", "analysis"}, path.name
        assert ("ray" in imported) == (path.name == "_tune.py"), path.name


def test_importing_trainables_does_not_import_ray() -> None:
    # A fresh interpreter: this one has imported Ray already for the other tests.
    done = subprocess.run(
        [sys.executable, "-c", "import sys, trainables; print('ray' in sys.modules)"],
        cwd=PACKAGE.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_ray_trainable_is_exported_lazily() -> None:
    from trainables import _tune

    assert trainables.train_bn_mlp is _tune.train_bn_mlp
    assert "train_bn_mlp" in trainables.__all__ and "train_bn_mlp" in dir(trainables)
    # where trials (and auto's cost probe) train, decided in one place
    assert trainables.trial_device is _tune.trial_device and "trial_device" in trainables.__all__
    assert trainables.trial_data is _tune.trial_data and "trial_data" in trainables.__all__


def test_unknown_config_key_is_rejected_before_any_ray_call() -> None:
    from trainables import train_bn_mlp

    with pytest.raises(HyperParameterError, match=r"^lrr: unknown trial setting"):
        train_bn_mlp({"lrr": 0.1})


def _expected_metrics(config: dict[str, object]) -> list[dict[str, object]]:
    """What the trainable should report, computed in-process with the plain functions."""
    trial = TrialConfig.from_flat(config)
    data = load_dataset(trial.dataset, seed=trial.seed, val_fraction=trial.val_fraction)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the 1-CPU trial, so float reductions match bit for bit
    try:
        results = run_training(trial.hparams, data, epochs=trial.epochs, seed=trial.seed)
    finally:
        torch.set_num_threads(threads)
    return [{name: getattr(r, name) for name in METRICS} for r in results]


# One Tuner run serves all the Ray tests below: starting trial actors dominates their cost.
HEALTHY = {"dataset": "digits", "epochs": 4, "seed": 2, "lr": 0.05, "optimizer": "adam",
           "lr_decay": "exponential", "decay_rate": 0.3, "checkpoint_every": 1}  # fmt: skip
DIVERGING = {"dataset": "digits", "epochs": 4, "seed": 0, "lr": 10.0, "optimizer": "sgd",
             "batchnorm": False}  # fmt: skip


def _crash_once_wrapper(log_dir: Path) -> Callable[[dict], None]:
    """`train_bn_mlp` behind a pass-through that can inject one failure after a given epoch.

    Config key `crash_after` (popped before `train_bn_mlp` sees the config) names the epoch
    after whose report the trial's first attempt raises; 0 never raises. Each attempt logs
    whether Tune handed it a checkpoint and which epochs it reported.
    """

    def crash_once_after(config: dict) -> None:
        # Defined in a function so that Ray pickles it by value for the worker.
        import ray.tune as worker_tune

        from trainables import train_bn_mlp

        config = dict(config["run"])
        crash_after = config.pop("crash_after")
        log = log_dir / f"{config['seed']}-{crash_after}.log"
        with log.open("a") as out:
            out.write(f"start restored={worker_tune.get_checkpoint() is not None}\n")
        original_report = worker_tune.report

        def report(metrics: dict, *, checkpoint: object = None) -> None:
            original_report(metrics, checkpoint=checkpoint)
            with log.open("a") as out:
                out.write(f"epoch {metrics['epoch']}\n")
            if metrics["epoch"] == crash_after and "restored=True" not in log.read_text():
                raise RuntimeError("injected failure after a checkpoint")

        worker_tune.report = report
        try:
            train_bn_mlp(config)
        finally:
            worker_tune.report = original_report

    return crash_once_after


@pytest.fixture(scope="module")
def tuned(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """Three trials: healthy, healthy twin crashing once after epoch 2, and diverging."""
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback  # per-epoch rows for metrics_dataframe

    root = tmp_path_factory.mktemp("tune")
    log_dir = root / "attempts"
    log_dir.mkdir()
    configs = [{**HEALTHY, "crash_after": 0}, {**HEALTHY, "crash_after": 2},
               {**DIVERGING, "crash_after": 0}]  # fmt: skip
    tuner = tune.Tuner(
        _crash_once_wrapper(log_dir),
        param_space={"run": tune.grid_search(configs)},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(
            storage_path=str(root),
            name="trainables",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),  # restarts the crashed trial
            callbacks=[JsonLoggerCallback()],
        ),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0
    results = {(r.config["run"]["seed"], r.config["run"]["crash_after"]): r for r in grid}
    return results, log_dir


@pytest.mark.ray
def test_every_epoch_is_reported_as_the_plain_functions_compute_it(tuned) -> None:
    results, _ = tuned
    healthy = results[(2, 0)]
    rows = healthy.metrics_dataframe
    assert rows["epoch"].tolist() == [1, 2, 3, 4]
    assert not rows["diverged"].any()
    assert rows["lr"].tolist() == pytest.approx([0.05 * math.exp(-0.3 * t) for t in range(4)])
    assert rows[METRICS].to_dict("records") == _expected_metrics(HEALTHY)
    assert healthy.checkpoint is not None


@pytest.mark.ray
def test_divergence_ends_the_trial_normally(tuned) -> None:
    results, log_dir = tuned
    diverged = results[(0, 0)]
    assert diverged.error is None
    assert diverged.metrics_dataframe["epoch"].tolist() == [1]
    assert diverged.metrics_dataframe["diverged"].tolist() == [True]
    assert diverged.metrics["diverged"] is True
    assert diverged.checkpoint is None  # checkpoint_every defaults to 0
    assert (log_dir / "0-0.log").read_text().split() == ["start", "restored=False", "epoch", "1"]


@pytest.mark.ray
def test_restarted_trial_resumes_from_its_checkpoint_bit_identically(tuned) -> None:
    """The trial that crashed after epoch 2 was restarted by Ray (FailureConfig) from its
    epoch-2 checkpoint, and ends exactly where its uninterrupted twin ends."""
    results, log_dir = tuned
    uninterrupted, restarted = results[(2, 0)], results[(2, 2)]
    assert restarted.error is None
    # Restarted with the checkpoint and went on from epoch 3 instead of starting over.
    assert (log_dir / "2-2.log").read_text().split("\n") == [
        "start restored=False", "epoch 1", "epoch 2",
        "start restored=True", "epoch 3", "epoch 4", "",
    ]  # fmt: skip
    assert (log_dir / "2-0.log").read_text().split("\n") == [
        "start restored=False", "epoch 1", "epoch 2", "epoch 3", "epoch 4", "",
    ]  # fmt: skip
    # Not metrics_dataframe: after a restart Ray's JsonLoggerCallback may re-copy a stale
    # result.json from storage, losing pre-crash rows. The last result is reliable.
    for name in METRICS:
        assert restarted.metrics[name] == uninterrupted.metrics[name], name

    def final_state(result) -> dict:
        with result.checkpoint.as_directory() as directory:
            return torch.load(Path(directory) / "train_state.pt", weights_only=True)

    left, right = final_state(restarted), final_state(uninterrupted)
    assert left["epoch"] == right["epoch"] == 4
    assert left["model"].keys() == right["model"].keys()
    assert all(torch.equal(left["model"][k], right["model"][k]) for k in left["model"])
