"""A stack's training step replayed as one CUDA graph, where that is measured to pay.

On a GPU a packed step of a small network is launch-bound: hundreds of small kernels, each
dispatched from Python through vmap, autograd and the optimizer (~8.5 ms a step for 256
members of the worked example's CNN on an H200, the GPU idle in between). A CUDA graph
records the step's kernels once and replays them with one launch. A stack's full-batch step
has static shapes (K members, B samples) and reads only device tensors that live as long as
the stack (weights, moments, running statistics, dropout counters), so it can be recorded as
it is; only the batch's sample indices change, and they are copied into a static buffer before
each replay.

Per stack (one K, one batch size) `StepCapture` does: a few eager warm-up steps on a side
stream (as `torch.cuda.graphs` asks: lazily created cuBLAS handles and autograd buffers must
exist before recording), a few eager steps timed, the recording, as many replays timed, and
then keeps whichever was faster. A recording that fails, or replays that are not faster, leave
the stack eager for good, with one log line. Every step, warm-up and trial included, is a real
training step, so the decision costs only the host synchronisations of the timing.

Not recorded: a ragged last batch (another shape: it runs eagerly), Adam (its bias correction
reads the step count as a Python number) and bfloat16 autocast (its weight cache must be off
while recording). On a CPU there is nothing to record; a compiled step was measured not to pay
there (`bench/packed_cnn_compile.py`), so CPU steps stay eager.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import Protocol

import torch

__all__ = ["CAPTURE_ENV", "CudaGraphs", "GraphBackend", "StepCapture", "graph_backend"]

logger = logging.getLogger(__name__)

# `CAVIAR_CUDA_GRAPHS=0` keeps every step eager (a diagnostic switch: results do not depend
# on it beyond floating-point rounding).
CAPTURE_ENV = "CAVIAR_CUDA_GRAPHS"

Step = Callable[[torch.Tensor], torch.Tensor]


class GraphBackend(Protocol):
    """What `StepCapture` needs from CUDA; a test supplies a CPU stand-in."""

    def warm_up(self, step: Step, index: torch.Tensor) -> torch.Tensor:
        """One eager step run where a recording can follow (CUDA: a side stream)."""

    def record(self, step: Step, index: torch.Tensor) -> Callable[[], torch.Tensor]:
        """Record `step` reading `index` (a static buffer); returns the replay, which gives
        the step's (static) output."""

    def synchronize(self) -> None: ...

    def clock(self) -> float:
        """Seconds, for timing steps between `synchronize` calls."""


class CudaGraphs:
    """`torch.cuda.CUDAGraph` recording, after PyTorch's whole-network capture recipe."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self._side = torch.cuda.Stream(device=device)

    def warm_up(self, step: Step, index: torch.Tensor) -> torch.Tensor:
        self._side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self._side):
            loss = step(index)
        torch.cuda.current_stream(self.device).wait_stream(self._side)
        return loss

    def record(self, step: Step, index: torch.Tensor) -> Callable[[], torch.Tensor]:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step(index)

        def replay() -> torch.Tensor:
            graph.replay()
            return out

        return replay

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def clock(self) -> float:
        return time.perf_counter()


def graph_backend(device: torch.device) -> GraphBackend | None:
    """Where steps on `device` are worth trying to record: CUDA, unless switched off."""
    if device.type != "cuda" or os.environ.get(CAPTURE_ENV, "1") == "0":
        return None
    return CudaGraphs(device)


class StepCapture:
    """Runs a stack's step eagerly or as a recorded graph; see the module docstring.

    `step(index)` is one full training step on the (K, B) sample indices `index`, returning
    the (K,) batch losses; it must read only device tensors that outlive it (no Python
    number that changes between steps), since a replay reruns its kernels, not its Python.
    `backend` None: always eager.
    """

    WARMUP = 3  # eager steps before timing: first-call costs out of the measurement
    TRIAL = 5  # steps timed each way

    def __init__(self, step: Step, backend: GraphBackend | None) -> None:
        self._step = step
        self._backend = backend
        # warmup -> timing-eager -> record -> timing-graph -> graph, or eager at any point
        self.state = "eager" if backend is None else "warmup"
        self.decision = "" if backend is None else "undecided"
        self._shape: torch.Size | None = None
        self._calls = 0  # full-batch steps so far
        self._started = 0.0
        self._eager_s = 0.0
        self._index: torch.Tensor | None = None  # the static buffer a recording reads
        self._replay: Callable[[], torch.Tensor] | None = None

    def __call__(self, index: torch.Tensor) -> torch.Tensor:
        backend = self._backend
        if backend is None or self.state == "eager":
            return self._step(index)
        if self._shape is None:
            self._shape = index.shape
        if index.shape != self._shape:  # a ragged last batch: another shape, eager
            return self._step(index)
        self._calls += 1
        if self.state == "graph":
            return self._replayed(index)
        if self.state == "warmup":
            loss = backend.warm_up(self._step, index)
            if self._calls == self.WARMUP:
                self.state, self._started = "timing-eager", self._timestamp(backend)
            return loss
        if self.state == "timing-eager":
            loss = self._step(index)
            if self._calls == self.WARMUP + self.TRIAL:
                self._eager_s = self._timestamp(backend) - self._started
                self.state = "record"
            return loss
        if self.state == "record":
            self._index = index.clone()
            try:
                self._replay = backend.record(self._step, self._index)
            except Exception as exc:  # whatever CUDA refuses to record: eager, said once
                self._give_up(f"recording failed ({type(exc).__name__}: {_first_line(exc)})")
                return self._step(index)  # nothing of the recorded step has run
            self.state, self._started = "timing-graph", self._timestamp(backend)
        loss = self._replayed(index)
        if self._calls == self.WARMUP + 2 * self.TRIAL:
            self._decide(self._timestamp(backend) - self._started)
        return loss

    @staticmethod
    def _timestamp(backend: GraphBackend) -> float:
        backend.synchronize()
        return backend.clock()

    def _replayed(self, index: torch.Tensor) -> torch.Tensor:
        assert self._index is not None and self._replay is not None  # set by recording
        self._index.copy_(index)
        return self._replay()

    def _decide(self, graph_s: float) -> None:
        eager_ms = 1e3 * self._eager_s / self.TRIAL
        graph_ms = 1e3 * graph_s / self.TRIAL
        if graph_s < self._eager_s:
            self.state = "graph"
            self.decision = f"graph: {graph_ms:.2f} ms a step against {eager_ms:.2f} eager"
            logger.info("a stack of shape %s replays its step as a CUDA graph: %s",
                        tuple(self._shape or ()), self.decision)  # fmt: skip
        else:
            self._give_up(f"no faster: {graph_ms:.2f} ms a step against {eager_ms:.2f} eager")

    def _give_up(self, why: str) -> None:
        self.state, self.decision = "eager", f"eager: {why}"
        self._index = self._replay = None  # frees the graph's memory pool
        logger.info("a stack of shape %s stays eager: %s", tuple(self._shape or ()), why)


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else ""
