"""`strategy: {kind: auto}`: panda or caviar, decided from the compute at hand.

With many trial slots and time for a few hundred trainings, sampling many models in parallel
(caviar: coarse-to-fine) finds better settings than nursing one; with one or two slots and time
for a handful, babysitting one model (panda) makes better use of it. The decision needs three
numbers: how many trials the cluster runs at once, what one configuration costs (a short probe
trains one for an epoch where trials run), and the time budget. It is made once per run,
printed, recorded in `_auto/<run_id>.json`, and a resumed run keeps it.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from analysis import ResultsPath, ResultsStore, SweepLayout, write_text_atomically
from sweeps._errors import Problem, SpecError
from sweeps.plan import Progress
from sweeps.record import AUTO_EVENT, events_schema
from sweeps.run import (
    RaySession,
    SweepOutcome,
    check_resources,
    check_results_dir,
    latest_run,
    new_run_id,
    ray_session,
    refuse_if_locked,
    strategy_driver,
    sweep_lock,
)
from sweeps.spec import (
    AutoStrategy,
    CoarseToFineStrategy,
    PandaStrategy,
    Sweep,
    kind_of,
    parse_time_budget,
    with_strategy,
)

__all__ = [
    "AutoDecision",
    "concrete_sweep",
    "decide",
    "decide_auto",
    "load_decision",
    "probe_epoch_seconds",
    "run_auto",
    "save_decision",
]

log = logging.getLogger(__name__)

# Below this many affordable configurations a search has too few points to narrow on: two
# rounds of 16 is the least coarse-to-fine can do something with.
MIN_CAVIAR_CONFIGS = 32
MIN_CAVIAR_SLOTS = 2
TRIAL_OVERHEAD_S = 1.0  # a reused Ray worker's start-up per trial, measured on 2 cores
MAX_ROUNDS = 8


@dataclass(frozen=True)
class AutoDecision:
    mode: str  # "caviar" or "panda"
    slots: int
    nodes: int
    epoch_s: float
    budget_s: float
    affordable: int  # configurations the budget pays for across all slots
    strategy: dict[str, Any]  # the concrete strategy run
    reasons: str

    def line(self) -> str:
        return f"auto: {self.mode} ({self.reasons})"


def decide(sweep: Sweep, *, cpus: float, gpus: float, nodes: int, epoch_s: float) -> AutoDecision:
    """The decision as a pure function of the cluster, the probe and the spec (tested alone)."""
    auto = sweep.spec.strategy
    if not isinstance(auto, AutoStrategy):
        raise TypeError(f"not an auto sweep: {auto.kind}")
    budget_s = parse_time_budget(auto.time_budget)
    resources = sweep.spec.resources
    slots = int(cpus // resources.cpu)
    if resources.gpu > 0:
        slots = min(slots, int(gpus // resources.gpu))
    slots = max(slots, 0)
    config_s = epoch_s * sweep.spec.trainable.epochs + TRIAL_OVERHEAD_S
    affordable = int(slots * budget_s // config_s) if slots else 0
    facts = (
        f"{slots} trial slot(s) on {nodes} node(s), {epoch_s:.2f} s per epoch, "
        f"{config_s:.0f} s per configuration, budget {budget_s:.0f} s: "
        f"{affordable} configurations affordable"
    )
    if slots >= MIN_CAVIAR_SLOTS and affordable >= MIN_CAVIAR_CONFIGS:
        per_round = max(16, slots)
        rounds = min(MAX_ROUNDS, affordable // per_round)
        if rounds < 2:
            rounds, per_round = 2, affordable // 2
        strategy: dict[str, Any] = {
            "kind": kind_of(CoarseToFineStrategy),
            "rounds": rounds,
            "per_round": per_round,
            "sampler": auto.sampler,
        }
        why = f"{facts} >= {MIN_CAVIAR_CONFIGS}; coarse-to-fine, {rounds} rounds x {per_round}"
        return AutoDecision("caviar", slots, nodes, epoch_s, budget_s, affordable, strategy, why)
    models = max(1, min(slots, auto.max_models))
    strategy = {"kind": kind_of(PandaStrategy), "models": models, "start": dict(auto.start)}
    if slots < MIN_CAVIAR_SLOTS:
        why = f"{facts}; fewer than {MIN_CAVIAR_SLOTS} slots: babysit {models} model(s)"
    else:
        why = f"{facts} < {MIN_CAVIAR_CONFIGS}: babysit {models} model(s)"
    return AutoDecision("panda", slots, nodes, epoch_s, budget_s, affordable, strategy, why)


def concrete_sweep(sweep: Sweep, decision: AutoDecision) -> Sweep:
    """The sweep as it runs: the spec with `auto` replaced by the decided strategy.

    Panda starts from `start`, else from the first `initial` point; `initial` and early
    stopping are caviar's, so panda drops them.
    """
    if decision.mode == "caviar":
        return with_strategy(sweep, CoarseToFineStrategy.model_validate(decision.strategy))
    strategy = dict(decision.strategy)
    if not strategy.get("start") and sweep.spec.initial:
        strategy["start"] = dict(sweep.spec.initial[0])
    panda = PandaStrategy.model_validate(strategy)
    return with_strategy(sweep, panda, initial=[], early_stopping=None)


def run_auto(
    sweep: Sweep,
    results_dir: ResultsPath,
    *,
    address: str | None,
    resume: bool,
    show: Callable[[Progress], None] | None,
    run_id: str | None,
) -> SweepOutcome:
    """Auto's row's driver: decide, then hand the concrete sweep to its own driver, under the
    run the decision names, in the Ray session the decision's probe used. `run_id` is the
    decision's to give."""
    check_results_dir(results_dir)  # before Ray starts: a bad --results fails at once
    refuse_if_locked(ResultsStore(results_dir, sweep.name).sweep_dir)  # and a held sweep
    with ray_session(address) as session:  # one Ray for the decision's probe and the run
        concrete, run_id = decide_auto(sweep, results_dir, session, resume=resume)
        run = strategy_driver(concrete)  # panda's or coarse-to-fine's, never auto's
        return run(concrete, results_dir, address=address, resume=resume, show=show, run_id=run_id)


def decide_auto(
    sweep: Sweep, results_dir: ResultsPath, session: RaySession, *, resume: bool = False
) -> tuple[Sweep, str | None]:
    """Decide (or, resuming, reuse the decision) and say why; returns the concrete sweep to
    run and the id of the fresh run it records under (None: resume, or the latest run).

    `session` is the run's: the probe trains where the trials will.
    """
    check_results_dir(results_dir)
    store = ResultsStore(results_dir, sweep.name)
    decision = load_decision(store.sweep_dir, sweep.digest) if resume else None
    run_id = None
    # Before the probe: a trial that cannot be placed would keep it waiting.
    check_resources(sweep.spec, session)
    if decision is None:
        # Under the sweep's lock, as a run's writes are: a run that starts meanwhile is refused
        # before it probes too. Let go at the end, for the run itself to take (`open_run`).
        with sweep_lock(store.sweep_dir):
            log.info("auto: probing the cost of one configuration")
            epoch_s = probe_epoch_seconds(sweep)
            decision = decide(
                sweep, cpus=session.cpus, gpus=session.gpus, nodes=session.nodes, epoch_s=epoch_s
            )
            run_id = None if resume else new_run_id()
            recorded_under = run_id
            if recorded_under is None:
                previous = latest_run(store.sweep_dir)
                recorded_under = previous.run_id if previous else None
            save_decision(store.sweep_dir, sweep.digest, decision)
            if recorded_under is not None:
                _record_event(store, recorded_under, decision)
    log.warning("%s", decision.line())  # the CLI shows warnings: the decision is news
    return concrete_sweep(sweep, decision), run_id


def _record_event(store: ResultsStore, run_id: str, decision: AutoDecision) -> None:
    row = {
        "sweep": store.sweep,
        "run_id": run_id,
        "round": 0,
        "kind": AUTO_EVENT,
        "action": f"auto:{decision.mode}",
        "reason": decision.reasons,
        "recorded_at": datetime.now(UTC),
    }
    store.write("events", [row], events_schema(), run_id=run_id, round_index=0)


def probe_epoch_seconds(sweep: Sweep) -> float:
    """Train the space's centre configuration for one epoch where trials run, on the device
    a trial there would get (a GPU when the spec asks for one); seconds taken."""
    import ray

    from trainables import TrialConfig, build_state, run_training, trial_data

    resources = sweep.spec.resources
    centre = sweep.space.from_unit([0.5] * len(sweep.space))
    config = {**sweep.trial_config(centre, sweep.spec.seed), "epochs": 1, "checkpoint_every": 0}

    @ray.remote(num_cpus=resources.cpu, num_gpus=resources.gpu, max_retries=0)
    def probe(flat: dict[str, Any]) -> float:
        trial = TrialConfig.from_flat(flat)
        data = trial_data(trial)
        state = build_state(trial.hparams, data, seed=trial.seed, network=trial.network)
        start = time.perf_counter()
        run_training(
            trial.hparams, data, epochs=1, seed=trial.seed, state=state, precision=trial.precision
        )
        return time.perf_counter() - start

    seconds = float(ray.get(probe.remote(config), timeout=600))
    if not math.isfinite(seconds) or seconds <= 0:
        message = f"the cost probe returned {seconds}"
        raise SpecError([Problem("strategy", sweep.spec.strategy.kind, message)])
    return seconds


def _path(sweep_dir: ResultsPath, digest: str) -> ResultsPath:
    return SweepLayout(sweep_dir).auto_decision(digest)


def save_decision(sweep_dir: ResultsPath, digest: str, decision: AutoDecision) -> None:
    """Keyed by the spec's digest: `--resume` with the same spec keeps the same decision."""
    path = _path(sweep_dir, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, json.dumps(asdict(decision), indent=1))


def load_decision(sweep_dir: ResultsPath, digest: str) -> AutoDecision | None:
    path = _path(sweep_dir, digest)
    if not path.exists():
        return None
    return AutoDecision(**json.loads(path.read_text()))
