"""An embedded Ray's trial actors can take the workers Ray prestarted (no runtime env that those
workers lack), unless the trials need a variable the workers were not started with; and its
autoscaler monitor is stopped without the second `ray.shutdown` waits for it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _procs import kill_session, session_members, user_env

from sweeps.run._embedded_ray import stop_monitor

# Two waves of two one-CPU trials in caviar's embedded session: first as caviar runs them, then
# after setting a variable Tune copies into its trial actors' runtime env (so the prestarted
# workers, started without it, do not have it). Each trial reports its actor's runtime env and
# what it sees of those variables. (Which worker an actor lands on is Ray's choice: it also
# replaces idle workers now and then, so the test asks for the runtime env that makes the
# prestarted ones eligible, not for their pids.)
SCRIPT = """
import json, os, sys, tempfile
from sweeps.run import ray_session, trial_actors_on_prestarted_workers
from sweeps.run._embedded_ray import stop_monitor

def wave(tune):
    def trainable(config):
        import os, ray
        tune.report({"actor_env": ray.get_runtime_context().runtime_env.get("env_vars"),
                     "fork": os.environ.get("PL_DISABLE_FORK"),
                     "key": os.environ.get("AWS_ACCESS_KEY_ID")})
    grid = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"x": tune.grid_search([0, 1])},
        run_config=tune.RunConfig(storage_path=tempfile.mkdtemp(), verbose=0),
    ).fit()  # as build_tuner's Tuners, after trial_actors_on_prestarted_workers()
    return [{k: r.metrics[k] for k in ("actor_env", "fork", "key")} for r in grid]

out = {}
with ray_session() as session:
    out["starts_without_tune"] = "ray.tune" not in sys.modules
    out["wrapped"] = [trial_actors_on_prestarted_workers(), trial_actors_on_prestarted_workers()]
    from ray import tune
    from ray._private import worker
    out["embedded"] = session.embedded
    out["plain"] = wave(tune)
    os.environ["AWS_ACCESS_KEY_ID"] = "set-after-ray-started"
    out["changed"] = wave(tune)
    monitor = worker._global_node.all_processes["monitor"][0].process
    out["stopped"] = [stop_monitor(), stop_monitor()]
    out["monitor_returncode"] = monitor.poll()
print(json.dumps(out))
"""


@pytest.mark.ray
def test_trial_actors_fit_prestarted_workers_and_the_monitor_is_killed(
    tmp_path: Path,
) -> None:
    env = user_env(tmp_path / "home")
    env.pop("AWS_ACCESS_KEY_ID", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT], env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-3000:]
        # Ray's shutdown stopped what it started (workers may take a moment after the raylet).
        deadline = time.monotonic() + 10
        while session_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not session_members(proc.pid)
    finally:
        kill_session(proc)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["embedded"] is True
    assert result["starts_without_tune"] is True  # a refused spec does not import it for this
    assert result["wrapped"] == [True, True]

    # As caviar runs them: actors without a runtime env (what any prestarted worker fits), with
    # Tune's variable inherited from the environment the workers started in.
    plain = result["plain"]
    assert [t["actor_env"] for t in plain] == [None, None]
    assert [t["fork"] for t in plain] == ["1", "1"]

    # A variable the workers were not started with: Tune's runtime env, which carries it.
    changed = result["changed"]
    assert [t["actor_env"] for t in changed] == [
        {"PL_DISABLE_FORK": "1", "AWS_ACCESS_KEY_ID": "set-after-ray-started"}
    ] * 2
    assert [t["key"] for t in changed] == ["set-after-ray-started"] * 2
    assert [t["fork"] for t in changed] == ["1", "1"]

    assert result["stopped"] == [True, False]  # killed once; the second call finds it dead
    assert result["monitor_returncode"] == -9


def test_without_ray_there_is_no_monitor_to_stop() -> None:
    assert stop_monitor() is False


def test_outside_an_embedded_ray_tunes_registration_stands() -> None:
    """Wrapped, Tune's cache still gives its runtime env where no embedded Ray is up here (no
    Ray, or a cluster joined: workers not started from this environment)."""
    from ray.tune.execution.class_cache import _ActorClassCache

    from sweeps.run import trial_actors_on_prestarted_workers

    class Trainable:
        pass

    assert trial_actors_on_prestarted_workers()
    remote = _ActorClassCache().get(Trainable)
    assert remote._default_options["runtime_env"]["env_vars"]["PL_DISABLE_FORK"] == "1"
