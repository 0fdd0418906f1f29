"""Trials on Ray Tune: the Tuner every caviar run uses, and a plan or a proposer run through it.

Shared by the sweep, panda and retune runs; each opens its Ray session, takes its lock and
writes its manifest first (see `sweeps.run._lifecycle`), then hands its trials here.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from analysis import ResultsPath, ResultsStore, arrow_filesystem, arrow_path
from sweeps.plan import (
    DRIVER_KEYS,
    INDEX_KEY,
    ORIGIN_KEY,
    ROUND_KEY,
    TRIAL_KEY,
    PlannedPoint,
    Point,
    Progress,
    Proposer,
    trial_seed,
)
from sweeps.run import SweepOutcome, outcome_of, trial_actors_on_prestarted_workers
from sweeps.spec import SpecModel, Sweep
from trainables.packing import GpuPlan, plan_gpu_packs

if TYPE_CHECKING:
    from sweeps.tune._tune_adapter import Packing

__all__ = ["build_tuner", "run_trials"]

log = logging.getLogger(__name__)


def run_trials(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    todo: Sequence[Point] | Proposer,
    *,
    show: Callable[[Progress], None] | None,
    parallel_trials: int,
    gpus: float = 0.0,
    cpus: float = 0.0,
) -> SweepOutcome:
    """`todo` is a fixed plan (random, sobol, grid) or an adaptive strategy's proposer;
    `parallel_trials` (`trial_slots(sweep, session)`) sizes `pack: auto`'s packs on CPUs, and
    the cluster's `gpus` and `cpus` lay them over its GPUs (`plan_gpu_packs`)."""
    # Ray is imported only once a session is up, so `caviar validate` and spec errors stay fast.
    from ray import tune

    from sweeps.tune._tune_adapter import (
        PointsSearcher,
        ProgressCallback,
        ProposerSearcher,
        ResultsCallback,
        run_pack,
        run_point,
    )

    spec = sweep.spec

    def make_config(point: Point | PlannedPoint) -> dict[str, object]:
        # A re-tune re-runs its incumbent with the seed it was chosen with
        # (sweeps/retune/_retune.py).
        seed = getattr(point, "seed", None)
        seed = trial_seed(spec.seed, point.index) if seed is None else seed
        config = sweep.trial_config(point.params, seed)
        config.update({TRIAL_KEY: point.trial_id, INDEX_KEY: point.index, ORIGIN_KEY: point.origin})
        config[ROUND_KEY] = getattr(point, "round", 0)
        return config

    metric, mode = spec.objective.metric, spec.objective.resolved_mode
    gpu_share: float | None = None  # the GPU each pack asks for, when auto lays out GPUs
    searcher: PointsSearcher | ProposerSearcher
    trainable: Callable[[dict[str, object]], None] = run_point
    packed = isinstance(todo, Sequence) and spec.pack != 1
    if isinstance(todo, Sequence):
        progress = Progress(total=len(todo), metric=metric, mode=mode)
        configs = [make_config(p) for p in todo]
        if packed:
            configs, gpu_share = _packed_configs(sweep, configs, parallel_trials, gpus, cpus)
            trainable = run_pack
        searcher, samples = PointsSearcher(configs), len(configs)
    else:
        progress = Progress(total=todo.total, metric=metric, mode=mode, label=todo.label)
        packing = None
        if spec.pack != 1:
            packing, gpu_share = _round_packing(sweep, todo.batch, parallel_trials, gpus, cpus)
            trainable, packed = run_pack, True
        searcher = ProposerSearcher(_Labelled(todo, progress), make_config, metric, packing)
        samples = -1  # until the searcher says FINISHED
    if progress.total == 0:
        return outcome_of(run_id, store, progress)
    recorder = ResultsCallback(store, run_id, model_columns=sweep.model_columns)
    callbacks: list[tune.Callback] = [recorder, ProgressCallback(progress, show or _quiet)]
    scheduler = None if packed else _scheduler(spec)  # packs halve inside
    tuner = build_tuner(
        spec, store, run_id, trainable, searcher, samples, callbacks, scheduler, gpu_share
    )
    # With a custom searcher Ray keeps one trial pending at a time, so a cluster (and its
    # autoscaler) would see trials one by one; let it queue a full wave.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(16, 2 * parallel_trials)))
    tuner.fit()
    recorder.flush()
    return outcome_of(run_id, store, progress)


def build_tuner(
    spec: SpecModel,
    store: ResultsStore,
    run_id: str,
    trainable: Callable[[dict[str, Any]], None],
    searcher: Any,
    samples: int,
    callbacks: list[Any],
    scheduler: Any = None,
    gpu_share: float | None = None,
) -> Any:
    """The Tuner every caviar run uses: the spec's resources (`gpu_share` in place of its GPU
    when auto's packs share GPUs), worker reuse, trial directories named by trial id, Ray's
    state under `<sweep>/_ray` (in the bucket for s3:// results, through the same pyarrow
    filesystem), retries from `max_failures`; without Ray's usage tag of its callbacks, which
    would import mlflow where it is installed (`skip_callback_usage_tag`); with trial actors
    that fit an embedded Ray's prestarted workers (`trial_actors_on_prestarted_workers`)."""
    from ray import tune

    from sweeps.tune._tune_adapter import skip_callback_usage_tag, trial_dirname

    skip_callback_usage_tag()
    trial_actors_on_prestarted_workers()

    gpu = spec.resources.gpu if gpu_share is None else gpu_share
    resources = {"cpu": spec.resources.cpu, "gpu": gpu, **spec.resources.custom}
    storage = store.layout.ray.resolve()
    # Ray's ResultGrid looks for the per-trial JSON/CSV files we turned off; its warning
    # about them is noise here.
    logging.getLogger("ray.tune.analysis.experiment_analysis").setLevel(logging.ERROR)
    return tune.Tuner(
        tune.with_resources(trainable, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=samples,
            scheduler=scheduler,
            reuse_actors=True,
            max_concurrent_trials=spec.max_concurrent,
            trial_dirname_creator=trial_dirname,
            trial_name_creator=trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=_ray_experiment_name(storage, run_id),
            storage_path=arrow_path(storage),
            storage_filesystem=arrow_filesystem(storage),
            verbose=0,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures),
        ),
    )


def _round_packing(
    sweep: Sweep, batch: int, parallel_trials: int, gpus: float, cpus: float
) -> tuple[Packing, float | None]:
    """An adaptive strategy's batches in packs (coarse-to-fine's rounds): a batch's points of
    one shape share a Ray trial; and the GPU share each pack asks for (None: the spec's)."""
    from sweeps.tune._packing import Pack, group_key, pack_trial_config
    from sweeps.tune._tune_adapter import Packing
    from trainables import pack_size_auto

    spec = sweep.spec
    device = "cuda" if spec.resources.gpu > 0 else "cpu"
    plan = gpu_plan(sweep, batch, gpus, cpus)
    if plan is not None:
        size = plan.members
        log.info("each batch of %d on the GPUs: %s", batch, plan.describe())
    elif spec.pack == "auto":
        size = pack_size_auto(device, batch, parallel_trials=parallel_trials)
    else:
        size = int(spec.pack)
    describe = {"trial_id": TRIAL_KEY, "index": INDEX_KEY, "origin": ORIGIN_KEY, "round": ROUND_KEY}
    halving = _halving(spec)

    def trial_config(configs: list[dict[str, Any]]) -> dict[str, Any]:
        pack = Pack(f"p{configs[0][INDEX_KEY]:05d}", configs)
        return pack_trial_config(pack, strip=DRIVER_KEYS, describe=describe, early_stopping=halving)

    log.info("batches of %d proposed points run in packs of up to %d", batch, size)
    packing = Packing(size, lambda config: group_key(config, DRIVER_KEYS), trial_config)
    return packing, None if plan is None else plan.gpu_share


def _halving(spec: SpecModel) -> dict[str, object] | None:
    if spec.early_stopping is None:
        return None
    return {
        "metric": spec.objective.metric,
        "mode": spec.objective.resolved_mode,
        "grace_period": spec.early_stopping.grace_period,
        "reduction_factor": spec.early_stopping.reduction_factor,
    }


def gpu_plan(sweep: Sweep, group_size: int, gpus: float, cpus: float) -> GpuPlan | None:
    """How `pack: auto` lays a group over the cluster's GPUs; None when it does not (CPU
    trials, an explicit pack size, or no GPU in the cluster yet)."""
    resources = sweep.spec.resources
    if sweep.spec.pack != "auto" or resources.gpu <= 0 or gpus < 1:
        return None
    return plan_gpu_packs(group_size, gpus=gpus, cpus=cpus, cpu_per_trial=resources.cpu)


def _packed_configs(
    sweep: Sweep, configs: list[dict[str, object]], parallel_trials: int, gpus: float, cpus: float
) -> tuple[list[dict[str, object]], float | None]:
    """One Ray trial config per pack, and the GPU share each asks for (None: the spec's); ASHA
    becomes successive halving inside each pack."""
    from sweeps.tune._packing import pack_trial_config, plan_packs
    from trainables import pack_size_auto

    spec = sweep.spec
    device = "cuda" if spec.resources.gpu > 0 else "cpu"
    plans: list[GpuPlan] = []

    def on_gpus(group_size: int) -> int:
        plan = gpu_plan(sweep, group_size, gpus, cpus)
        if plan is None:  # no GPU to lay out: the device's default
            return pack_size_auto(device, group_size, parallel_trials=parallel_trials)
        log.info("a group of %d on the GPUs: %s", group_size, plan.describe())
        plans.append(plan)
        return plan.members

    packs = plan_packs(
        configs, spec.pack, strip=DRIVER_KEYS, device=device, parallel_trials=parallel_trials,
        auto_size=on_gpus,
    )  # fmt: skip
    halving = _halving(spec)
    describe = {"trial_id": TRIAL_KEY, "index": INDEX_KEY, "origin": ORIGIN_KEY, "round": ROUND_KEY}
    sizes = sorted({len(p.configs) for p in packs})
    log.info("packing %d configurations into %d Ray trials (sizes %s)", len(configs), len(packs),
             sizes)  # fmt: skip
    trial_configs = [
        pack_trial_config(pack, strip=DRIVER_KEYS, describe=describe, early_stopping=halving)
        for pack in packs
    ]
    # One share for every pack trial: the largest group's, whose packs matter most.
    largest = max(plans, key=lambda p: p.packs * p.members, default=None)
    return trial_configs, None if largest is None else largest.gpu_share


class _Labelled:
    """Passes a proposer through, keeping the progress line's round label current."""

    def __init__(self, proposer: Proposer, progress: Progress) -> None:
        self._proposer, self._progress = proposer, progress

    @property
    def total(self) -> int:
        return self._proposer.total

    @property
    def finished(self) -> bool:
        return self._proposer.finished

    @property
    def batch(self) -> int:
        return self._proposer.batch

    @property
    def label(self) -> str:
        return self._proposer.label

    def propose(self) -> PlannedPoint | None:
        point = self._proposer.propose()
        self._progress.label = self._proposer.label
        return point

    def record(self, point: PlannedPoint, score: float | None) -> None:
        self._proposer.record(point, score)

    def take_queued(self, match: Callable[[PlannedPoint], bool]) -> PlannedPoint | None:
        return self._proposer.take_queued(match)


def _scheduler(spec: SpecModel) -> object:
    """ASHA when asked for: stop a trial whose curve trails its peers at a rung."""
    if spec.early_stopping is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    asha = spec.early_stopping
    return ASHAScheduler(
        time_attr="epoch",
        metric=spec.objective.metric,
        mode=spec.objective.resolved_mode,
        max_t=spec.trainable.epochs,
        grace_period=min(asha.grace_period, spec.trainable.epochs),
        reduction_factor=asha.reduction_factor,
    )


def _ray_experiment_name(storage: ResultsPath, run_id: str) -> str:
    """A resumed run gets a fresh Ray experiment directory beside the interrupted one."""
    name, attempt = run_id, 1
    while (storage / name).exists():
        attempt += 1
        name = f"{run_id}-attempt{attempt}"
    return name


def _quiet(progress: Progress) -> None:
    pass
