"""One sweep, start to finish: plan the points, run them on Ray Tune, record every result."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from analysis import (
    ResultsPath,
    ResultsStore,
    arrow_filesystem,
    arrow_path,
    load_trials,
    write_text_atomically,
)
from sweeps._errors import Problem, RunError, SpecError
from sweeps._lock import sweep_lock
from sweeps._points import Point, plan_points, trial_seed
from sweeps._preflight import check_results_dir
from sweeps._progress import Progress
from sweeps._proposer import Proposer
from sweeps._ray_session import RaySession
from sweeps._resume import RunChoice, choose_run, remove_orphan_epochs
from sweeps._runs import RunManifest, write_manifest
from sweeps._search_state import PlannedPoint
from sweeps._spec import (
    AutoStrategy,
    CoarseToFineStrategy,
    PandaStrategy,
    SpecModel,
    Sweep,
    TpeStrategy,
)

if TYPE_CHECKING:
    from sweeps._tune_adapter import Packing

__all__ = ["SweepOutcome", "check_resources", "run_sweep", "trial_slots"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepOutcome:
    run_id: str
    sweep_dir: ResultsPath
    evaluated: int
    skipped: int
    errors: int
    diverged: int
    best: dict[str, object] | None  # the best `trials` row of this run, all runs' attempts included


def run_sweep(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None = None,
    resume: bool = False,
    show: Callable[[Progress], None] | None = None,
    run_id: str | None = None,
) -> SweepOutcome:
    """Nothing is written until Ray is up and the resources are known to fit.

    `run_id` names a fresh run (`auto` decides before the run starts and records under it).
    """
    from sweeps._ray_session import ray_session

    if isinstance(sweep.spec.strategy, AutoStrategy):
        from sweeps._auto import run_auto  # decides panda or caviar, then comes back here

        return run_auto(sweep, results_dir, address=address, resume=resume, show=show)
    if isinstance(sweep.spec.strategy, PandaStrategy):
        from sweeps._panda import run_panda  # babysitting has its own loop; see docs/panda.md

        return run_panda(
            sweep, results_dir, address=address, resume=resume, show=show, run_id=run_id
        )

    check_results_dir(results_dir)
    store = ResultsStore(results_dir, sweep.name)
    points = plan_points(sweep)
    choice = choose_run(sweep, store, resume, run_id=run_id)  # a bad --resume fails before Ray
    with ray_session(address) as session:
        check_resources(sweep.spec, session)
        log.info("Ray: %s, %g CPUs, %g GPUs, %d node(s)", session.address, session.cpus,
                 session.gpus, session.nodes)  # fmt: skip
        with sweep_lock(store.sweep_dir):
            # Again under the lock: another resume may have recorded trials since.
            choice = choose_run(sweep, store, resume, run_id=choice.run_id)
            run_id, done = choice.run_id, choice.done
            todo = [p for p in points if p.trial_id not in done]
            if resume and remove_orphan_epochs(store, run_id, done):
                log.info("removed epochs files whose trials were never recorded")
            now = _now()
            manifest = RunManifest(run_id, sweep.digest, "running", len(points), now, now)
            write_manifest(store.sweep_dir, manifest)
            _record_space(store, sweep)
            try:
                slots = trial_slots(sweep, session)
                if isinstance(sweep.spec.strategy, CoarseToFineStrategy | TpeStrategy):
                    proposer = _proposer(sweep, store, choice, points)
                    outcome = _run_trials(
                        sweep, store, run_id, proposer, show=show, parallel_trials=slots
                    )
                else:
                    outcome = _run_trials(
                        sweep, store, run_id, todo, show=show, parallel_trials=slots
                    )
            except BaseException:
                failed = replace(manifest, status="failed", updated_at=_now())
                write_manifest(store.sweep_dir, failed)
                raise
            write_manifest(store.sweep_dir, replace(manifest, status="complete", updated_at=_now()))
    if outcome.evaluated and outcome.errors == outcome.evaluated:
        raise RunError([Problem("trials", outcome.errors, "every trial failed; see `error`")])
    return replace(outcome, skipped=len(done), best=_best_row(sweep, store, run_id))


def _proposer(
    sweep: Sweep, store: ResultsStore, choice: RunChoice, points: list[Point]
) -> Proposer:
    if isinstance(sweep.spec.strategy, TpeStrategy):
        from sweeps._tpe_driver import TpeProposer

        return TpeProposer(sweep, points, choice.recorded)
    from sweeps._coarse_driver import CoarseToFineProposer

    return CoarseToFineProposer.open(
        sweep, store, choice.run_id, points, choice.recorded, edited=choice.edited
    )


def _record_space(store: ResultsStore, sweep: Sweep) -> None:
    """The space beside the results, so analysis knows each parameter's scale (log, 1-beta)."""
    text = json.dumps(sweep.space.to_dict(), indent=1)
    write_text_atomically(store.sweep_dir / "_space.json", text)


def _best_row(sweep: Sweep, store: ResultsStore, run_id: str) -> dict[str, object] | None:
    if not (store.sweep_dir / "trials").is_dir():
        return None
    trials = load_trials(store.root, sweep.name)
    if not {"run_id", "status"} <= set(trials.columns):
        return None
    ok = trials[(trials["run_id"] == run_id) & (trials["status"] == "ok")]
    metric = sweep.spec.objective.metric
    ok = ok[ok[metric].notna()]
    if ok.empty:
        return None
    index = (
        ok[metric].idxmax() if sweep.spec.objective.resolved_mode == "max" else ok[metric].idxmin()
    )
    return ok.loc[index].to_dict()


def _run_trials(
    sweep: Sweep,
    store: ResultsStore,
    run_id: str,
    todo: list[Point] | Proposer,
    *,
    show: Callable[[Progress], None] | None,
    parallel_trials: int,
) -> SweepOutcome:
    """`todo` is a fixed plan (random, sobol, grid) or an adaptive strategy's proposer;
    `parallel_trials` (`trial_slots(sweep, session)`) sizes `pack: auto`'s packs."""
    # Ray is imported only once a session is up, so `caviar validate` and spec errors stay fast.
    from ray import tune

    from sweeps._tune_adapter import (
        INDEX_KEY,
        ORIGIN_KEY,
        ROUND_KEY,
        TRIAL_KEY,
        PointsSearcher,
        ProgressCallback,
        ProposerSearcher,
        ResultsCallback,
        run_pack,
        run_point,
    )

    spec = sweep.spec

    def make_config(point: Point | PlannedPoint) -> dict[str, object]:
        # A re-tune re-runs its incumbent with the seed it was chosen with (sweeps/_retune.py).
        seed = getattr(point, "seed", None)
        seed = trial_seed(spec.seed, point.index) if seed is None else seed
        config = sweep.trial_config(point.params, seed)
        config.update({TRIAL_KEY: point.trial_id, INDEX_KEY: point.index, ORIGIN_KEY: point.origin})
        config[ROUND_KEY] = getattr(point, "round", 0)
        return config

    metric, mode = spec.objective.metric, spec.objective.resolved_mode
    searcher: PointsSearcher | ProposerSearcher
    trainable: Callable[[dict[str, object]], None] = run_point
    packed = isinstance(todo, list) and spec.pack != 1
    if isinstance(todo, list):
        progress = Progress(total=len(todo), metric=metric, mode=mode)
        configs = [make_config(p) for p in todo]
        if packed:
            configs, trainable = _packed_configs(sweep, configs, parallel_trials), run_pack
        searcher, samples = PointsSearcher(configs), len(configs)
    else:
        progress = Progress(total=todo.total, metric=metric, mode=mode, label=todo.label)
        packing = _round_packing(sweep, parallel_trials) if spec.pack != 1 else None
        if packing is not None:
            trainable, packed = run_pack, True
        searcher = ProposerSearcher(_Labelled(todo, progress), make_config, metric, packing)
        samples = -1  # until the searcher says FINISHED
    if progress.total == 0:
        return _outcome(run_id, store, progress)
    recorder = ResultsCallback(store, run_id, model_columns=sweep.model_columns)
    callbacks: list[tune.Callback] = [recorder, ProgressCallback(progress, show or _quiet)]
    scheduler = None if packed else _scheduler(spec)  # packs halve inside
    tuner = build_tuner(spec, store, run_id, trainable, searcher, samples, callbacks, scheduler)
    # With a custom searcher Ray keeps one trial pending at a time, so a cluster (and its
    # autoscaler) would see trials one by one; let it queue a full wave.
    os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(max(16, 2 * parallel_trials)))
    tuner.fit()
    recorder.flush()
    return _outcome(run_id, store, progress)


def build_tuner(
    spec: SpecModel,
    store: ResultsStore,
    run_id: str,
    trainable: Callable[[dict[str, Any]], None],
    searcher: object,
    samples: int,
    callbacks: list[Any],
    scheduler: object = None,
) -> Any:
    """The Tuner every caviar run uses: the spec's resources, worker reuse, trial directories
    named by trial id, Ray's state under `<sweep>/_ray` (in the bucket for s3:// results, through
    the same pyarrow filesystem), retries from `max_failures`."""
    from ray import tune

    from sweeps._tune_adapter import trial_dirname

    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu, **spec.resources.custom}
    storage = (store.sweep_dir / "_ray").resolve()
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


def trial_slots(sweep: Sweep, session: RaySession) -> int:
    """How many trials the cluster can run at once, as it is now (an autoscaler may add more)."""
    resources = sweep.spec.resources
    by_cpu = int(session.cpus // resources.cpu)
    by_gpu = int(session.gpus // resources.gpu) if resources.gpu > 0 else by_cpu
    return max(1, min(by_cpu, by_gpu))


def _round_packing(sweep: Sweep, parallel_trials: int) -> Packing:
    """Coarse-to-fine rounds in packs: a round's points of one shape share a Ray trial."""
    from sweeps._packing import Pack, group_key, pack_trial_config
    from sweeps._tune_adapter import (
        DRIVER_KEYS,
        INDEX_KEY,
        ORIGIN_KEY,
        ROUND_KEY,
        TRIAL_KEY,
        Packing,
    )
    from trainables import pack_size_auto

    spec = sweep.spec
    strategy = spec.strategy
    assert isinstance(strategy, CoarseToFineStrategy)  # _check_pack allows no other
    device = "cuda" if spec.resources.gpu > 0 else "cpu"
    size = (
        pack_size_auto(device, strategy.per_round, parallel_trials=parallel_trials)
        if spec.pack == "auto"
        else int(spec.pack)
    )
    describe = {"trial_id": TRIAL_KEY, "index": INDEX_KEY, "origin": ORIGIN_KEY, "round": ROUND_KEY}
    halving = _halving(spec)

    def trial_config(configs: list[dict[str, Any]]) -> dict[str, Any]:
        pack = Pack(f"p{configs[0][INDEX_KEY]:05d}", configs)
        return pack_trial_config(pack, strip=DRIVER_KEYS, describe=describe, early_stopping=halving)

    log.info("coarse-to-fine rounds run in packs of up to %d configurations", size)
    return Packing(size, lambda config: group_key(config, DRIVER_KEYS), trial_config)


def _halving(spec: SpecModel) -> dict[str, object] | None:
    if spec.early_stopping is None:
        return None
    return {
        "metric": spec.objective.metric,
        "mode": spec.objective.resolved_mode,
        "grace_period": spec.early_stopping.grace_period,
        "reduction_factor": spec.early_stopping.reduction_factor,
    }


def _packed_configs(
    sweep: Sweep, configs: list[dict[str, object]], parallel_trials: int
) -> list[dict[str, object]]:
    """One Ray trial config per pack; ASHA becomes successive halving inside each pack."""
    from sweeps._packing import pack_trial_config, plan_packs
    from sweeps._tune_adapter import DRIVER_KEYS, INDEX_KEY, ORIGIN_KEY, ROUND_KEY, TRIAL_KEY

    spec = sweep.spec
    device = "cuda" if spec.resources.gpu > 0 else "cpu"
    packs = plan_packs(
        configs, spec.pack, strip=DRIVER_KEYS, device=device, parallel_trials=parallel_trials
    )
    halving = _halving(spec)
    describe = {"trial_id": TRIAL_KEY, "index": INDEX_KEY, "origin": ORIGIN_KEY, "round": ROUND_KEY}
    sizes = sorted({len(p.configs) for p in packs})
    log.info("packing %d configurations into %d Ray trials (sizes %s)", len(configs), len(packs),
             sizes)  # fmt: skip
    return [
        pack_trial_config(pack, strip=DRIVER_KEYS, describe=describe, early_stopping=halving)
        for pack in packs
    ]


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


def check_resources(spec: SpecModel, session: RaySession) -> None:
    """Every entry point checks the same way, once Ray is up and before anything is written:
    CPU and GPU per trial, then custom resources."""
    _check_fits(spec.resources.cpu, spec.resources.gpu, session)
    _check_custom(spec.resources.custom, session)


def _check_fits(cpu: float, gpu: float, session: RaySession) -> None:
    """A request no node can hold would leave trials pending forever; refuse it up front.

    On a cluster joined by address an autoscaler may still add a node that fits, so there it
    is only a warning.
    """
    if session.fits(cpu, gpu):
        return
    largest = max(session.node_resources, default=(0.0, 0.0))
    message = (
        f"no node has {cpu:g} CPU and {gpu:g} GPU for one trial "
        f"(largest node: {largest[0]:g} CPUs, {largest[1]:g} GPUs)"
    )
    if session.embedded:
        field, value = ("resources.gpu", gpu) if gpu > largest[1] else ("resources.cpu", cpu)
        raise SpecError([Problem(field, value, message)])
    log.warning("%s; trials wait until the cluster adds such a node", message)


def _check_custom(custom: dict[str, float], session: RaySession) -> None:
    """Custom resources no node has: an error on the embedded Ray, a warning on a cluster."""
    if session.fits_custom(custom):
        return
    wanted = ", ".join(f"{name}: {amount:g}" for name, amount in custom.items())
    message = f"no node has {{{wanted}}}; start nodes with `ray start --resources`"
    if session.embedded:
        raise SpecError([Problem("resources.custom", custom, message)])
    log.warning("%s; trials wait until the cluster adds such a node", message)


def _ray_experiment_name(storage: ResultsPath, run_id: str) -> str:
    """A resumed run gets a fresh Ray experiment directory beside the interrupted one."""
    name, attempt = run_id, 1
    while (storage / name).exists():
        attempt += 1
        name = f"{run_id}-attempt{attempt}"
    return name


def _outcome(run_id: str, store: ResultsStore, progress: Progress) -> SweepOutcome:
    return SweepOutcome(
        run_id=run_id,
        sweep_dir=store.sweep_dir,
        evaluated=progress.done,
        skipped=0,
        errors=progress.errors,
        diverged=progress.diverged,
        best=None,
    )


def _quiet(progress: Progress) -> None:
    pass


def _now() -> str:
    return datetime.now(UTC).isoformat()
