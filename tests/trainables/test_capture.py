"""A stack's step recorded once and replayed (`packing/_capture.py`).

On a CPU there are no CUDA graphs, so these tests drive `StepCapture` through a stand-in
backend whose "recording" keeps the step and whose replay reruns it on the static index
buffer: a run through it trains exactly as an eager one if and only if every batch's indices
reach that buffer, the ragged last batch runs eagerly, a failed recording loses no step and the
optimizer's step count is kept outside the recorded step. The real recording is checked on a
GPU (the last test, run by `bench/device/check.sh`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import torch
from torch import nn

from trainables import Dataset, HParams, load_dataset
from trainables.packing import PackedRun, PackMember, Stack, StepCapture


class Replaying:
    """CPU stand-in for CUDA graphs, with a scripted clock: `eager_s` and `graph_s` are what
    the trial steps take, each way."""

    def __init__(self, *, eager_s: float = 1.0, graph_s: float = 0.1, fail: bool = False):
        self.fail = fail
        self.times = iter([0.0, eager_s, 10.0, 10.0 + graph_s])
        self.warmups = self.recordings = self.replays = 0

    def warm_up(self, step: Callable[[torch.Tensor], torch.Tensor], index: torch.Tensor):
        self.warmups += 1
        return step(index)

    def record(self, step: Callable[[torch.Tensor], torch.Tensor], index: torch.Tensor):
        if self.fail:
            raise RuntimeError("operation not permitted when stream is capturing\nmore")
        self.recordings += 1

        def replay() -> torch.Tensor:
            self.replays += 1
            return step(index)  # reads the static buffer, as a graph would

        return replay

    def synchronize(self) -> None:
        pass

    def clock(self) -> float:
        return next(self.times)


def _steps(capture: StepCapture, batches: list[torch.Tensor]) -> list[int]:
    return [int(capture(b)[0]) for b in batches]


def _echo(seen: list[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A step that returns (and records) the first index of its batch."""

    def step(index: torch.Tensor) -> torch.Tensor:
        seen.append(int(index[0, 0]))
        return index[:, 0].clone()

    return step


BATCHES = [torch.full((2, 4), i) for i in range(16)]
TRIAL_END = StepCapture.WARMUP + 2 * StepCapture.TRIAL


def test_a_faster_replay_is_kept_and_every_batch_reaches_the_static_buffer() -> None:
    seen: list[int] = []
    backend = Replaying(eager_s=1.0, graph_s=0.2)
    capture = StepCapture(_echo(seen), backend)
    assert _steps(capture, BATCHES) == list(range(16))  # each step saw its own batch
    assert seen == list(range(16))
    assert capture.state == "graph"
    assert capture.decision == "graph: 40.00 ms a step against 200.00 eager"
    assert backend.warmups == StepCapture.WARMUP
    assert backend.recordings == 1
    assert backend.replays == 16 - StepCapture.WARMUP - StepCapture.TRIAL


def test_a_replay_that_is_not_faster_is_dropped() -> None:
    seen: list[int] = []
    backend = Replaying(eager_s=1.0, graph_s=1.0)
    capture = StepCapture(_echo(seen), backend)
    assert _steps(capture, BATCHES) == list(range(16))
    assert capture.state == "eager"
    assert capture.decision.startswith("eager: no faster")
    assert backend.replays == StepCapture.TRIAL  # the trial only; eager from then on


def test_a_failed_recording_runs_that_step_eagerly_and_stays_eager() -> None:
    seen: list[int] = []
    capture = StepCapture(_echo(seen), Replaying(fail=True))
    assert _steps(capture, BATCHES) == list(range(16))
    assert seen == list(range(16))  # no step lost, none run twice
    assert capture.state == "eager"
    assert capture.decision == (
        "eager: recording failed (RuntimeError: operation not permitted when stream is capturing)"
    )


def test_a_batch_of_another_shape_runs_eagerly_between_replays() -> None:
    seen: list[int] = []
    backend = Replaying()
    capture = StepCapture(_echo(seen), backend)
    _steps(capture, BATCHES[:TRIAL_END])
    replays = backend.replays
    ragged = torch.full((2, 3), 99)
    assert int(capture(ragged)[0]) == 99
    assert backend.replays == replays  # not through the recording of the (2, 4) step
    assert int(capture(BATCHES[0])[0]) == 0
    assert backend.replays == replays + 1


def test_without_a_backend_every_step_is_eager() -> None:
    seen: list[int] = []
    capture = StepCapture(_echo(seen), None)
    assert _steps(capture, BATCHES[:3]) == [0, 1, 2]
    assert capture.state == "eager"


# Whole packs through the stand-in: the same numbers as eager, to the bit.


@pytest.fixture(scope="module")
def data() -> Dataset:
    return load_dataset("digits", seed=0)


def _cnn(data: Dataset) -> nn.Module:
    return nn.Sequential(
        nn.Linear(data.n_features, 12, bias=False),
        nn.BatchNorm1d(12),
        nn.ReLU(),
        nn.Dropout(0.2),
        nn.Linear(12, data.n_classes),
    )


def _members(data: Dataset, network: bool, optimizer: str = "momentum") -> list[PackMember]:
    hps = [
        HParams(lr=lr, beta=0.9, hidden=16, batch_size=64, optimizer=optimizer)
        for lr in (0.05, 0.1, 0.2)
    ]
    if not network:
        return [PackMember(hp, seed, data) for seed, hp in enumerate(hps)]
    return [PackMember(hp, seed, data, _cnn, "net") for seed, hp in enumerate(hps)]


def _train(members: list[PackMember], epochs: int) -> tuple[list[list[float]], list[Stack]]:
    run = PackedRun.start(members)
    losses = []
    for _ in range(epochs):
        results = run.train_epoch()
        losses.append([r.train_loss for _, r in sorted(results.items())])
        losses.append([r.val_loss for _, r in sorted(results.items())])
    return losses, list(run.stacks)


@pytest.fixture
def backends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Replaying]]:
    made: list[Replaying] = []

    def backend(device: torch.device) -> Replaying:
        made.append(Replaying())
        return made[-1]

    monkeypatch.setattr(Stack, "graph_backend", staticmethod(backend))
    yield made


@pytest.mark.parametrize("network", [False, True], ids=["mlp-stack", "func-stack"])
def test_a_pack_through_recordings_trains_as_an_eager_pack(
    network: bool, data: Dataset, backends: list[Replaying], monkeypatch: pytest.MonkeyPatch
) -> None:
    recorded, stacks = _train(_members(data, network), epochs=2)
    assert [s.capture.state for s in stacks if s.capture] == ["graph"]
    assert backends[0].replays > 0
    steps = stacks[0].optimizer.steps
    monkeypatch.setattr(Stack, "graph_backend", staticmethod(lambda device: None))
    eager, eager_stacks = _train(_members(data, network), epochs=2)
    assert recorded == eager
    assert steps == eager_stacks[0].optimizer.steps  # counted outside the recorded step


def test_adam_is_never_recorded(data: Dataset, backends: list[Replaying]) -> None:
    _, stacks = _train(_members(data, True, optimizer="adam"), epochs=1)
    assert backends == []
    assert [s.capture.state for s in stacks if s.capture] == ["eager"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graphs_train_as_eager_steps_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """float32 on the GPU: the recorded step's kernels are the eager step's, so the results
    agree to rounding (the recording may pick other cuBLAS workspaces, not other math)."""
    data = load_dataset("digits", seed=0, device="cuda")
    recorded, stacks = _train(_members(data, True), epochs=3)
    decisions = [s.capture.decision for s in stacks if s.capture]
    assert decisions and not any("recording failed" in d for d in decisions), decisions
    monkeypatch.setenv("CAVIAR_CUDA_GRAPHS", "0")
    eager, _ = _train(_members(data, True), epochs=3)
    assert torch.allclose(torch.tensor(recorded), torch.tensor(eager), rtol=1e-4, atol=1e-5)
