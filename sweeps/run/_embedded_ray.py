"""Two costs of an embedded Ray that caviar can take off every run: new processes for the trial
actors, and a second spent stopping the autoscaler's monitor.

Both reach into Ray (Tune's actor-class cache, the node's process table), so both check that
what they change is there and otherwise leave Ray as it is: a Ray that moved them on runs as
before, only slower. Neither applies to a cluster that caviar joins: its workers were not
started from this process's environment, and its daemons are not caviar's to stop.
"""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

__all__ = [
    "TUNE_TRIAL_ENV",
    "stop_monitor",
    "trial_actors_on_prestarted_workers",
    "workers_started_with",
]

log = logging.getLogger(__name__)

# What Tune gives every trial actor as its runtime environment (ray.tune.execution.class_cache:
# for PyTorch Lightning, ray-project/ray#28197). Set in the driver's environment before an
# embedded Ray starts, every worker inherits it, so the trial actors need no runtime env.
TUNE_TRIAL_ENV = {"PL_DISABLE_FORK": "1"}

_MONITOR_REAP_S = 2.0

# While an embedded Ray started by this process is up: the environment its workers started
# with. None otherwise (no Ray, or a cluster joined), and Tune's registration stands.
_workers_environment: dict[str, str] | None = None


@contextmanager
def workers_started_with(environment: Mapping[str, str]) -> Iterator[None]:
    """Within the block, an embedded Ray is up whose workers started with `environment`."""
    global _workers_environment
    _workers_environment = dict(environment)
    try:
        yield
    finally:
        _workers_environment = None


def trial_actors_on_prestarted_workers() -> bool:
    """Let Tune's trial actors run on the workers an embedded Ray prestarted; whether they can.

    Tune registers its trainable's actor class with a runtime env of a few environment
    variables (`PL_DISABLE_FORK` and any of a fixed list it copies from the driver). Ray
    matches workers to actors by runtime env, so no prestarted worker (started with none)
    fits, and every trial actor waited for a new process: its start and `import ray`, 1.4 s
    of every trial wave on the 2-core VM, on top of the worker prestarted and idle beside it
    (docs/performance.md). Tune's registration is wrapped, once: while an embedded Ray is up
    (`workers_started_with`) and each of those variables already has Tune's value in the
    environment its workers started with, the class is registered without a runtime env, and
    the actors take the prestarted workers. Otherwise (no embedded Ray, or a variable set after
    it started) Tune's own registration stands. Called where caviar builds its Tuners, which
    have imported Tune already; a run that ends before (a spec refused for its resources)
    does not import it for this.
    """
    try:
        from ray.tune.execution import class_cache
    except ImportError:  # another Ray
        return False
    cache_type = getattr(class_cache, "_ActorClassCache", None)
    defaults = getattr(class_cache, "DEFAULT_ENV_VARS", None)
    propagated = getattr(class_cache, "ENV_VARS_TO_PROPAGATE", None)
    if cache_type is None or not isinstance(defaults, dict) or propagated is None:
        return False
    tunes_get: Callable[[Any, type], Any] = cache_type.get
    if getattr(tunes_get, "_caviar", False):  # wrapped already
        return True

    def get(cache: Any, trainable_cls: type) -> Any:
        environment = _workers_environment
        wanted = {**defaults, **{k: os.environ[k] for k in propagated if k in os.environ}}
        if environment is None or any(environment.get(k) != v for k, v in wanted.items()):
            return tunes_get(cache, trainable_cls)
        if trainable_cls not in cache._cache:
            import ray

            cache._cache[trainable_cls] = ray.remote(trainable_cls)
        return cache._cache[trainable_cls]

    get._caviar = True  # type: ignore[attr-defined]
    cache_type.get = get
    return True


def stop_monitor() -> bool:
    """Kill the embedded Ray's autoscaler monitor, ahead of `ray.shutdown`; whether it was.

    `ray.shutdown` stops Ray's daemons one after another, each with a SIGTERM and up to a
    second's wait. The monitor is stopped after the GCS, and its SIGTERM handler reports its
    end to that GCS, which is gone: it never exits in time, and every run waited the full
    second before Ray killed it (1.0 of the 1.2-1.4 s a shutdown took, timed per daemon). A
    single node started by `ray.init` has nothing for an autoscaler to scale or clean up, so
    the monitor is killed outright; Ray then finds it dead and skips it.
    """
    try:
        from ray._private import ray_constants, worker
    except ImportError:
        return False
    node = getattr(worker, "_global_node", None)
    processes = getattr(node, "all_processes", None)
    kind = getattr(ray_constants, "PROCESS_TYPE_MONITOR", None)
    if not isinstance(processes, dict) or kind not in processes:
        return False
    stopped = False
    for info in processes[kind]:
        process = getattr(info, "process", None)
        if not isinstance(process, subprocess.Popen) or process.poll() is not None:
            continue
        process.kill()
        try:
            process.wait(timeout=_MONITOR_REAP_S)
        except subprocess.TimeoutExpired:  # Ray's own shutdown waits for it again
            log.debug("Ray's monitor (pid %d) did not exit after SIGKILL", process.pid)
        stopped = True
    return stopped
