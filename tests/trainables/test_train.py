"""Training without Ray: learning, schedules, divergence, determinism and exact resumption."""

from __future__ import annotations

import io
import math

import pytest
import torch

from trainables import (
    Dataset,
    EpochResult,
    HParams,
    TrainState,
    build_state,
    evaluate,
    load_dataset,
    load_state,
    run_training,
    softmax_cross_entropy,
    state_dict,
    train_epoch,
)


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_dataset("digits", seed=0)


def _tiny_dataset(n_train: int, seed: int = 0) -> Dataset:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_train + 6, 4, generator=generator)
    y = torch.arange(n_train + 6) % 3
    return Dataset("tiny", x[:n_train], y[:n_train], x[n_train:], y[n_train:], 4, 3)


def _assert_same_state(a: TrainState, b: TrainState) -> None:
    for (name, left), right in zip(
        a.model.state_dict().items(), b.model.state_dict().values(), strict=True
    ):
        assert torch.equal(left, right), name  # weights and BatchNorm running statistics
    assert torch.equal(a.generator.get_state(), b.generator.get_state())
    assert a.epoch == b.epoch
    assert a.optimizer.param_groups[0]["lr"] == b.optimizer.param_groups[0]["lr"]


def test_digits_learns(digits: Dataset) -> None:
    results = run_training(HParams(lr=0.1, optimizer="momentum"), digits, epochs=10, seed=0)
    assert [r.epoch for r in results] == list(range(1, 11))
    assert not any(r.diverged for r in results)
    assert results[-1].val_accuracy > 0.9
    assert results[-1].train_loss < results[0].train_loss


@pytest.mark.parametrize(
    ("decay", "expected"),
    [
        ("none", lambda t: 0.2),
        ("inverse_time", lambda t: 0.2 / (1 + 0.5 * t)),
        ("exponential", lambda t: 0.2 * math.exp(-0.5 * t)),
    ],
)
def test_learning_rate_schedules(digits: Dataset, decay: str, expected) -> None:
    hp = HParams(lr=0.2, lr_decay=decay, decay_rate=0.5, hidden=16)
    results = run_training(hp, digits, epochs=4, seed=0)
    # The rate used during epoch e (1-based) is the schedule at t = e - 1 completed epochs.
    assert [r.lr for r in results] == pytest.approx([expected(t) for t in range(4)], rel=1e-12)


def test_divergence_is_reported_and_stops_training(digits: Dataset) -> None:
    seen: list[EpochResult] = []

    def record(result: EpochResult, state: TrainState) -> bool:
        seen.append(result)
        return True

    hp = HParams(lr=10.0, optimizer="sgd", batchnorm=False)
    results = run_training(hp, digits, epochs=5, seed=0, on_epoch=record)
    assert len(results) == 1 and results == seen
    assert results[0].diverged
    assert not math.isfinite(results[0].train_loss)


def test_on_epoch_can_stop_early(digits: Dataset) -> None:
    results = run_training(
        HParams(hidden=8), digits, epochs=5, seed=0, on_epoch=lambda r, s: r.epoch < 2
    )
    assert [r.epoch for r in results] == [1, 2]


@pytest.mark.parametrize(
    "hp",
    [
        HParams(lr=0.1, optimizer="momentum", beta=0.95, weight_decay=1e-4),
        HParams(lr=0.01, optimizer="adam", batch_size=100, lr_decay="exponential", decay_rate=0.1),
        HParams(lr=0.05, optimizer="sgd", batchnorm=False, lr_decay="inverse_time", decay_rate=1),
    ],
    ids=["momentum", "adam", "sgd-no-bn"],
)
def test_same_seed_is_bit_identical(digits: Dataset, hp: HParams) -> None:
    first = build_state(hp, digits, seed=3)
    second = build_state(hp, digits, seed=3)
    a = run_training(hp, digits, epochs=3, seed=3, state=first)
    b = run_training(hp, digits, epochs=3, seed=3, state=second)
    assert a == b
    _assert_same_state(first, second)
    other = run_training(hp, digits, epochs=3, seed=4)
    assert other != a


def test_training_leaves_global_rng_alone(digits: Dataset) -> None:
    before = torch.get_rng_state()
    run_training(HParams(hidden=8), digits, epochs=1, seed=0)
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize(
    "hp",
    [
        HParams(lr=0.1, optimizer="momentum", bn_momentum=0.3),
        HParams(lr=0.01, optimizer="adam", lr_decay="exponential", decay_rate=0.2),
    ],
    ids=["momentum", "adam-decay"],
)
def test_resume_is_bit_identical(digits: Dataset, hp: HParams) -> None:
    uninterrupted_state = build_state(hp, digits, seed=1)
    uninterrupted = run_training(hp, digits, epochs=6, seed=1, state=uninterrupted_state)

    interrupted = build_state(hp, digits, seed=1)
    head = run_training(hp, digits, epochs=3, seed=1, state=interrupted)
    buffer = io.BytesIO()
    torch.save(state_dict(interrupted), buffer)
    del interrupted
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)

    # A different seed proves that everything after the checkpoint comes from the checkpoint.
    resumed = build_state(hp, digits, seed=99)
    load_state(resumed, saved)
    assert resumed.epoch == 3
    tail = run_training(hp, digits, epochs=6, seed=99, state=resumed)

    assert head + tail == uninterrupted
    _assert_same_state(resumed, uninterrupted_state)
    for left, right in zip(
        resumed.optimizer.state_dict()["state"].values(),
        uninterrupted_state.optimizer.state_dict()["state"].values(),
        strict=True,
    ):
        assert all(torch.equal(left[k], right[k]) for k in left)


def test_state_dict_is_a_snapshot(digits: Dataset) -> None:
    hp = HParams(hidden=8)
    state = build_state(hp, digits, seed=0)
    snapshot = state_dict(state)
    weight = next(iter(snapshot["model"].values())).clone()
    train_epoch(state, digits, hp)
    assert torch.equal(next(iter(snapshot["model"].values())), weight)
    assert snapshot["epoch"] == 0


@pytest.mark.parametrize(("batchnorm", "steps"), [(True, 2), (False, 3)])
def test_final_batch_of_one_is_dropped_only_with_batchnorm(batchnorm: bool, steps: int) -> None:
    data = _tiny_dataset(n_train=9)  # batches of 4, 4 and 1
    hp = HParams(batch_size=4, batchnorm=batchnorm, optimizer="adam", hidden=4, depth=1)
    state = build_state(hp, data, seed=0)
    loss = train_epoch(state, data, hp)
    assert math.isfinite(loss)
    adam_steps = {int(s["step"]) for s in state.optimizer.state_dict()["state"].values()}
    assert adam_steps == {steps}


def test_train_loss_is_weighted_by_batch_size() -> None:
    # With a negligible learning rate the weights stay put, so the epoch's loss must equal the
    # loss over the whole training set, which an unweighted mean of 4, 4, 1 batches would not.
    data = _tiny_dataset(n_train=9, seed=1)
    hp = HParams(lr=1e-12, batch_size=4, batchnorm=False, optimizer="sgd", hidden=4, depth=1)
    state = build_state(hp, data, seed=0)
    with torch.no_grad():
        full = softmax_cross_entropy(state.model(data.x_train), data.y_train).item()
    assert train_epoch(state, data, hp) == pytest.approx(full, rel=1e-5)


def test_evaluate_uses_running_stats_and_restores_mode(digits: Dataset) -> None:
    hp = HParams(hidden=16)
    state = build_state(hp, digits, seed=0)
    train_epoch(state, digits, hp)
    model = state.model
    model.train()
    loss, accuracy = evaluate(model, digits.x_val, digits.y_val)
    assert model.training
    model.eval()
    with torch.no_grad():
        logits = model(digits.x_val)
    assert loss == pytest.approx(softmax_cross_entropy(logits, digits.y_val).item(), rel=1e-6)
    correct = (logits.argmax(1) == digits.y_val).sum().item()
    assert accuracy == correct / digits.y_val.numel()
    evaluate(model, digits.x_val, digits.y_val)
    assert not model.training


def test_float64_training() -> None:
    data = load_dataset("digits", seed=0, dtype=torch.float64)
    state = build_state(HParams(hidden=8), data, seed=0)
    assert all(p.dtype == torch.float64 for p in state.model.parameters())
    results = run_training(HParams(hidden=8), data, epochs=1, seed=0, state=state)
    assert math.isfinite(results[0].val_loss)
