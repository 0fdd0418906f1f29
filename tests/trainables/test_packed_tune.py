"""The packed Ray Tune trainable: lazy export, validation before Ray, reports through a Tuner."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import trainables
from trainables import (
    EpochResult,
    FileSource,
    HyperParameterError,
    PackMember,
    load_dataset,
    run_packed_training,
    run_training,
)
from trainables.packing import (
    MEMBER_METRICS,
    PackConfig,
    member_metrics,
)

BASE = {"dataset": "digits", "epochs": 3}


MEMBERS = [
    {**BASE, "member_id": "m0", "seed": 1, "lr": 0.1, "hidden": 32},
    {**BASE, "member_id": "m1", "seed": 0, "lr": 10.0, "optimizer": "sgd", "batchnorm": False},
    {**BASE, "member_id": "m2", "seed": 2, "lr": 0.05, "hidden": 16},
    {**BASE, "member_id": "m3", "seed": 3, "lr": 0.01, "optimizer": "adam", "hidden": 24},
]
# Rungs at epochs 1 and 2: after m1 diverges in epoch 1, the worse of the three others stops
# there, and one of the two left stops after epoch 2.
PACK = {"members": MEMBERS, "early_stopping": {"reduction_factor": 2}}


def test_the_packed_trainable_is_exported_lazily() -> None:
    from trainables import _tune

    assert trainables.train_bn_mlp_packed is _tune.train_bn_mlp_packed
    assert "train_bn_mlp_packed" in trainables.__all__
    assert "train_bn_mlp_packed" in dir(trainables)


def test_members_that_disagree_are_rejected_before_any_ray_call() -> None:
    from trainables import train_bn_mlp_packed

    members = [MEMBERS[0], {**MEMBERS[2], "epochs": 4}]
    with pytest.raises(HyperParameterError, match=r"^members\[1\]\.epochs: must equal"):
        train_bn_mlp_packed({"members": members})


def _expected_reports(config: dict[str, Any]) -> list[dict[str, Any]]:
    """What the trainable should report, computed in-process with the plain functions."""
    pack = PackConfig.from_config(config)
    members = [
        PackMember(
            m.trial.hparams,
            m.trial.seed,
            load_dataset(m.trial.dataset, seed=m.trial.seed),
            m.trial.network,
            m.trial.network_key,
        )
        for m in pack.members
    ]
    reports: list[dict[str, Any]] = []

    def report(epoch: int, results: dict[int, EpochResult]) -> set[int]:
        assert pack.early_stopping is not None
        stop = pack.early_stopping.stops(epoch, results, pack.epochs)
        entries = [
            member_metrics(pack.members[i].member_id, r, stopped=i in stop)
            for i, r in sorted(results.items())
        ]
        reports.append({"epoch": epoch, "members": entries})
        return stop

    run_packed_training(members, epochs=pack.epochs, on_epoch=report)
    return reports


@pytest.fixture(scope="module")
def reports(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The per-epoch results one packed trial reported, collected on the driver."""
    from ray import tune

    from trainables import train_bn_mlp_packed

    class Collect(tune.Callback):
        def __init__(self) -> None:
            self.results: list[dict[str, Any]] = []

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            assert isinstance(result["node_id"], str)  # where the pack ran, once per report
            assert result["device"] == "cpu"  # no GPU granted (the test Ray declares none)
            self.results.append({"epoch": result["epoch"], "members": result["members"]})

    collect = Collect()
    tuner = tune.Tuner(
        train_bn_mlp_packed,
        param_space=PACK,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path_factory.mktemp("packed")),
            name="packed",
            verbose=0,
            callbacks=[collect],
        ),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0
    return collect.results


@pytest.mark.ray
def test_each_epoch_reports_the_members_trained_in_it(reports: list[dict[str, Any]]) -> None:
    assert [r["epoch"] for r in reports] == [1, 2, 3]
    assert [len(r["members"]) for r in reports] == [4, 2, 1]
    first = {entry["member_id"]: entry for entry in reports[0]["members"]}
    assert first["m1"]["diverged"] and not first["m1"]["stopped"]
    assert sum(entry["stopped"] for entry in first.values()) == 1
    assert sum(entry["stopped"] for entry in reports[1]["members"]) == 1
    assert not reports[2]["members"][0]["stopped"]
    for report in reports:
        for entry in report["members"]:
            assert tuple(entry) == MEMBER_METRICS
            assert entry["epoch"] == report["epoch"]


def _nan_as_text(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # NaN != NaN, but a diverged member's NaN losses are part of what must match.
    def text(value: object) -> object:
        return "nan" if isinstance(value, float) and math.isnan(value) else value

    return [
        {**r, "members": [{k: text(v) for k, v in e.items()} for e in r["members"]]}
        for r in reports
    ]


@pytest.mark.ray
def test_reports_are_what_the_plain_functions_compute(reports: list[dict[str, Any]]) -> None:
    assert _nan_as_text(reports) == _nan_as_text(_expected_reports(PACK))


@pytest.mark.ray
def test_non_adam_members_match_their_unpacked_runs(reports: list[dict[str, Any]]) -> None:
    """float32, so within rounding noise (as in test_packed). Adam (m3) is left out: in float32
    it turns rounding noise in near-zero gradients into full-size steps, so even its own
    unpacked run moves by ~1e-3 between one and two threads."""
    for member in MEMBERS[:3]:
        entries = [
            e for r in reports for e in r["members"] if e["member_id"] == member["member_id"]
        ]
        flat = {k: v for k, v in member.items() if k != "member_id"}
        trial = trainables.TrialConfig.from_flat(flat)
        alone = run_training(
            trial.hparams, load_dataset("digits", seed=trial.seed), epochs=3, seed=trial.seed
        )
        for entry, result in zip(entries, alone, strict=False):
            assert entry["diverged"] == result.diverged
            if not result.diverged:
                assert entry["val_loss"] == pytest.approx(result.val_loss, abs=1e-4)
                assert entry["train_loss"] == pytest.approx(result.train_loss, abs=1e-4)


def _crash_once(log: Path) -> Callable[[dict], None]:
    """`train_bn_mlp_packed` whose first attempt raises right after reporting epoch 2."""

    def crash_once_after_epoch_2(config: dict) -> None:
        # Defined in a function so that Ray pickles it by value for the worker.
        import ray.tune as worker_tune

        from trainables import train_bn_mlp_packed

        with log.open("a") as out:
            out.write(f"start restored={worker_tune.get_checkpoint() is not None}\n")
        original_report = worker_tune.report

        def report(metrics: dict, *, checkpoint: object = None) -> None:
            original_report(metrics, checkpoint=checkpoint)
            with log.open("a") as out:
                out.write(f"epoch {metrics['epoch']} checkpoint={checkpoint is not None}\n")
            if metrics["epoch"] == 2 and "restored=True" not in log.read_text():
                raise RuntimeError("injected failure after a checkpoint")

        worker_tune.report = report
        try:
            train_bn_mlp_packed(config)
        finally:
            worker_tune.report = original_report

    return crash_once_after_epoch_2


# A user's network (the worked example's CNN): two widths, so two stacks in the pack; u2 is the
# narrow members' width with another initialisation seed and optimizer.
EXAMPLES = Path(__file__).parents[2] / "sweeps" / "examples"
USER = {
    "model": "digits_cnn:make",
    "model_dir": str(EXAMPLES),
    "pack_by": "channels",
    "dataset": FileSource(str(EXAMPLES / "data" / "digits_images.npz")).to_config(),
    "epochs": 3,
    "channels": 4,
    "batch_size": 64,
}
USER_MEMBERS = [
    {**USER, "member_id": "u0", "seed": 1, "lr": 0.1},
    {**USER, "member_id": "u1", "seed": 0, "lr": 0.05, "channels": 6},
    {**USER, "member_id": "u2", "seed": 2, "lr": 0.02},
    {**USER, "member_id": "u3", "seed": 3, "lr": 0.3, "beta": 0.5, "channels": 6},
]


@pytest.mark.ray
@pytest.mark.parametrize("network", ["built-in MLP", "user CNN"])
def test_a_restarted_pack_continues_from_its_checkpoint_bit_identically(
    ray_local: None, tmp_path: Path, network: str
) -> None:
    """Ray restarts the failed pack (FailureConfig) with its epoch-2 checkpoint: it goes on
    from epoch 3, the member that diverged and the one stopped before the checkpoint stay out,
    and every epoch's report is the uninterrupted run's."""
    from ray import tune

    chosen = MEMBERS if network == "built-in MLP" else USER_MEMBERS
    members = [{**m, "epochs": 4, "checkpoint_every": 1} for m in chosen]
    pack = {"members": members, "early_stopping": {"reduction_factor": 2}}
    collected: list[dict[str, Any]] = []

    class Collect(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            collected.append({"epoch": result["epoch"], "members": result["members"]})

    log = tmp_path / "attempts.log"
    tuner = tune.Tuner(
        _crash_once(log),
        param_space=pack,
        run_config=tune.RunConfig(
            storage_path=str(tmp_path / "storage"),
            name="restart",
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=1),
            callbacks=[Collect()],
        ),
    )
    grid = tuner.fit()
    assert grid.num_errors == 0
    assert log.read_text().split("\n") == [
        "start restored=False", "epoch 1 checkpoint=True", "epoch 2 checkpoint=True",
        "start restored=True", "epoch 3 checkpoint=True", "epoch 4 checkpoint=True", "",
    ]  # fmt: skip
    assert [r["epoch"] for r in collected] == [1, 2, 3, 4]
    assert _nan_as_text(collected) == _nan_as_text(_expected_reports(pack))
