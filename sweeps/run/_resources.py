"""Whether a run's trials fit the Ray it is connected to, and how many run at once.

Every entry point (run, panda, retune, auto) checks the same way, once Ray is up and before
anything is written: refused on the embedded Ray, a warning on a cluster an autoscaler may grow.
"""

from __future__ import annotations

import logging

from sweeps._errors import Problem, SpecError
from sweeps.run._ray_session import RaySession
from sweeps.spec import SpecModel, Sweep

__all__ = ["check_resources", "trial_slots"]

log = logging.getLogger(__name__)


def check_resources(spec: SpecModel, session: RaySession) -> None:
    """Every entry point checks the same way, once Ray is up and before anything is written:
    CPU and GPU per trial, then custom resources."""
    _check_fits(spec.resources.cpu, spec.resources.gpu, session)
    _check_custom(spec.resources.custom, session)
    _check_precision(spec, session)


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


def _check_precision(spec: SpecModel, session: RaySession) -> None:
    """bf16 on the embedded Ray's GPU, which this process sees: refused before any trial when
    the GPU lacks it. On a cluster the trials check their own GPU (and fail in one line)."""
    if spec.precision == "fp32" or spec.resources.gpu <= 0 or not session.embedded:
        return
    import torch

    from trainables import precision_problem

    if torch.cuda.is_available() and (problem := precision_problem("cuda", spec.precision)):
        raise SpecError([Problem("precision", spec.precision, problem)])


def _check_custom(custom: dict[str, float], session: RaySession) -> None:
    """Custom resources no node has: an error on the embedded Ray, a warning on a cluster."""
    if session.fits_custom(custom):
        return
    wanted = ", ".join(f"{name}: {amount:g}" for name, amount in custom.items())
    message = f"no node has {{{wanted}}}; start nodes with `ray start --resources`"
    if session.embedded:
        raise SpecError([Problem("resources.custom", custom, message)])
    log.warning("%s; trials wait until the cluster adds such a node", message)


def trial_slots(sweep: Sweep, session: RaySession) -> int:
    """How many trials the cluster can run at once, as it is now (an autoscaler may add more)."""
    resources = sweep.spec.resources
    by_cpu = int(session.cpus // resources.cpu)
    by_gpu = int(session.gpus // resources.gpu) if resources.gpu > 0 else by_cpu
    return max(1, min(by_cpu, by_gpu))
