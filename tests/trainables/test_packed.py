"""Packed training without Ray: every member trains exactly as its unpacked twin would."""

from __future__ import annotations

import dataclasses
import io
import math
import os
import subprocess
import sys
from collections.abc import Sequence

import pytest
import torch

from trainables import (
    Dataset,
    EpochResult,
    HParams,
    PackMember,
    build_state,
    load_dataset,
    pack_size_auto,
    run_packed_training,
    run_training,
)
from trainables.packing import (
    MLPStack,
    PackedRun,
    StackedData,
    shape_group,
    stack_sizes,
)
from trainables.packing._mlp_forward import member_tensors


def _data(dtype: torch.dtype, seeds: Sequence[int], device: str = "cpu") -> dict[int, Dataset]:
    return {seed: load_dataset("digits", seed=seed, dtype=dtype, device=device) for seed in seeds}


# The CUDA cases run where a GPU is (bench/device/check.sh runs them on a lent GPU machine).
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
DEVICES = ["cpu", pytest.param("cuda", marks=needs_cuda)]


# Five shape groups, widths padded within groups, every optimizer, schedule and decay.
CONFIGS: list[tuple[HParams, int]] = [
    (HParams(lr=0.1, beta=0.95, weight_decay=1e-4, hidden=16), 0),
    (HParams(lr=0.05, beta=0.8, hidden=32, lr_decay="exponential", decay_rate=0.2,
             bn_momentum=0.3), 1),
    (HParams(lr=0.01, optimizer="adam", hidden=24, weight_decay=1e-3), 2),
    (HParams(lr=0.003, optimizer="adam", hidden=8, beta1=0.8, beta2=0.99, eps=1e-6,
             lr_decay="inverse_time", decay_rate=1.0), 3),
    (HParams(lr=0.05, optimizer="sgd", batchnorm=False, hidden=20, depth=3), 4),
    (HParams(lr=0.02, optimizer="sgd", batchnorm=False, hidden=7, depth=3,
             weight_decay=0.01), 5),
    (HParams(lr=0.1, hidden=12, depth=1, batch_size=100), 6),
]  # fmt: skip


def _members(configs: Sequence[tuple[HParams, int]], data: dict[int, Dataset]) -> list[PackMember]:
    return [PackMember(hp, seed, data[seed]) for hp, seed in configs]


def _max_difference(a: Sequence[EpochResult], b: Sequence[EpochResult]) -> float:
    assert [r.epoch for r in a] == [r.epoch for r in b]
    assert [r.diverged for r in a] == [r.diverged for r in b]
    return max(
        max(abs(x.train_loss - y.train_loss), abs(x.val_loss - y.val_loss), abs(x.lr - y.lr))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("device", DEVICES)
def test_float64_packed_run_equals_unpacked_runs(device: str) -> None:
    """Packed on `device` (on a GPU: one stack per group, cuBLAS and CUDA kernels) against
    the unpacked runs on the CPU."""
    data = _data(torch.float64, [seed for _, seed in CONFIGS], device)
    cpu_data = _data(torch.float64, [seed for _, seed in CONFIGS])
    packed = run_packed_training(_members(CONFIGS, data), epochs=3)
    for (hp, seed), results in zip(CONFIGS, packed, strict=True):
        alone = run_training(hp, cpu_data[seed], epochs=3, seed=seed)
        assert _max_difference(results, alone) < 1e-9, hp
        n_val = cpu_data[seed].y_val.numel()
        assert _correct_counts(results, n_val) == _correct_counts(alone, n_val), hp
        assert [r.lr for r in results] == [r.lr for r in alone]  # the same Python arithmetic


def _correct_counts(results: Sequence[EpochResult], n_val: int) -> list[int]:
    """Each epoch's count of correct validation predictions, read back from its accuracy.

    The counts are what must match exactly. The accuracies may not, by one unit in the last
    place: the packed run divides on its device, and CUDA divides a tensor by a scalar as a
    multiplication by the scalar's reciprocal (an H200 gave 319 * (1/360) = 0.8861111111111112,
    the CPU 319 / 360 = 0.8861111111111111)."""
    return [round(r.val_accuracy * n_val) for r in results]


def test_accuracies_one_ulp_apart_count_the_same_predictions() -> None:
    """The float64 test's accuracy comparison holds for the H200's pair of accuracies, and
    still tells one prediction more or less apart."""
    n_val = 360
    alone = [EpochResult(1, 0.5, 0.4, 319 / n_val, 0.1, False)]
    on_cuda = torch.tensor([319.0], dtype=torch.float64) * (1 / n_val)  # CUDA's scalar division
    packed = [dataclasses.replace(alone[0], val_accuracy=on_cuda.item())]
    assert packed[0].val_accuracy == 0.8861111111111112 != alone[0].val_accuracy
    assert _correct_counts(packed, n_val) == _correct_counts(alone, n_val) == [319]
    for other in (318, 320):
        one_off = [dataclasses.replace(alone[0], val_accuracy=other / n_val)]
        assert _correct_counts(one_off, n_val) != _correct_counts(alone, n_val)
    # Any count of any split size, divided either way or one ulp off, reads back the same.
    for n in (360, 450, 1797):
        for k in range(n + 1):
            exact = k / n
            near = (k * (1 / n), math.nextafter(exact, 0.0), math.nextafter(exact, 2.0))
            as_results = [dataclasses.replace(alone[0], val_accuracy=a) for a in near]
            assert _correct_counts(as_results, n) == [k] * 3


def _first_batches(data: dict[int, Dataset], n: int) -> dict[int, Dataset]:
    """Each split cut to its first `n` training samples: with batch size `n`, one epoch is
    exactly one optimizer step."""
    return {
        seed: dataclasses.replace(d, x_train=d.x_train[:n], y_train=d.y_train[:n])
        for seed, d in data.items()
    }


# Kernel choices that differ from this machine's best: MKL's AVX2 GEMMs (an AMD EPYC's pick,
# even with AVX-512) and ATen's portable elementwise kernels.
KERNEL_VARIANTS = [
    {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    {"ATEN_CPU_CAPABILITY": "default"},
    {"MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"},
]


@pytest.mark.parametrize("device", DEVICES)
def test_float32_packed_step_is_within_rounding_noise(device: str) -> None:
    """What float32 guarantees is one step: sums in another order (a padded width, another
    GEMM kernel) differ by ~1e-7. Over whole epochs that is not a bound: training is
    non-smooth at ReLU's kink, and a pre-activation within rounding of zero (1.2e-7 at step 8
    of this data, seen with MKL's AVX2 kernels) flips a gradient term, which grows to 2.3e-2 in
    the validation loss by epoch 3. The float64 test above is the strict one over epochs.

    Two steps of one batch each here, a padded width of 32 included. Tolerance 1e-5 on losses
    (observed ~1e-7), two validation samples on accuracy. Adam is left out: in float32 it turns
    rounding noise in near-zero gradients into full-size steps (eps=1e-8 is below float32
    noise). Both runs on `device`."""
    configs = CONFIGS[:2] + CONFIGS[4:6]
    data = _first_batches(_data(torch.float32, [seed for _, seed in configs], device), 64)
    packed = run_packed_training(_members(configs, data), epochs=2)
    for (hp, seed), results in zip(configs, packed, strict=True):
        alone = run_training(hp, data[seed], epochs=2, seed=seed)
        assert _max_difference(results, alone) < 1e-5, hp
        n_val = data[seed].y_val.numel()
        for x, y in zip(results, alone, strict=True):
            assert abs(x.val_accuracy - y.val_accuracy) <= 2 / n_val + 1e-12


@pytest.mark.parametrize("variant", KERNEL_VARIANTS, ids=lambda v: ",".join(v.values()))
def test_float32_step_holds_whatever_kernels_the_cpu_picks(variant: dict[str, str]) -> None:
    """The float32 test again, in a process whose MKL and ATen pick other kernels than this
    CPU's best: the README's test command must pass on any x86-64 machine."""
    test = f"{__file__}::test_float32_packed_step_is_within_rounding_noise[cpu]"
    env = {**os.environ, **variant}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_stacking_and_member_order_do_not_change_results() -> None:
    configs = [c for c in CONFIGS if c[0].batchnorm and c[0].optimizer == "momentum"]
    configs += [(HParams(lr=0.07, hidden=40, weight_decay=1e-3), 7)]
    data = _data(torch.float64, [seed for _, seed in configs])
    together = run_packed_training(_members(configs, data), epochs=2)
    in_pairs = run_packed_training(_members(configs[::-1], data), epochs=2, stack_size=2)[::-1]
    for a, b in zip(together, in_pairs, strict=True):
        assert _max_difference(a, b) < 1e-12


def test_a_diverging_member_is_dropped_and_leaves_the_others_untouched() -> None:
    diverging = (HParams(lr=10.0, optimizer="sgd", batchnorm=False), 0)  # NaN in epoch 1
    healthy = [
        (HParams(lr=0.05, optimizer="sgd", batchnorm=False, hidden=32), 1),
        (HParams(lr=0.1, optimizer="sgd", batchnorm=False, hidden=96, weight_decay=1e-3), 2),
    ]
    configs = [healthy[0], diverging, healthy[1]]
    assert len({shape_group(hp) for hp, _ in configs}) == 1  # one stack, padded to 96
    data = _data(torch.float64, [0, 1, 2])
    seen: list[dict[int, EpochResult]] = []

    def record(epoch: int, results: dict[int, EpochResult]) -> None:
        seen.append(dict(results))

    packed = run_packed_training(_members(configs, data), epochs=3, on_epoch=record)

    assert len(packed[1]) == 1 and packed[1][0].diverged
    assert [sorted(epoch) for epoch in seen] == [[0, 1, 2], [0, 2], [0, 2]]
    without = run_packed_training(_members(healthy, data), epochs=3)
    for results, clean, (hp, seed) in zip([packed[0], packed[2]], without, healthy, strict=True):
        assert not any(r.diverged for r in results)
        assert _max_difference(results, clean) < 1e-12
        assert _max_difference(results, run_training(hp, data[seed], epochs=3, seed=seed)) < 1e-9


def test_stopped_members_leave_and_the_rest_go_on_unchanged() -> None:
    configs = [
        (HParams(lr=0.1, hidden=16), 0),
        (HParams(lr=0.05, hidden=64), 1),  # the widest: stopping it trims the padding
        (HParams(lr=0.02, hidden=8, weight_decay=1e-3), 2),
    ]
    data = _data(torch.float64, [0, 1, 2])
    trained: list[list[int]] = []

    def stop_the_wide_one(epoch: int, results: dict[int, EpochResult]) -> set[int]:
        trained.append(sorted(results))
        return {1} if epoch == 1 else set()

    stopped = run_packed_training(_members(configs, data), epochs=3, on_epoch=stop_the_wide_one)
    full = run_packed_training(_members(configs, data), epochs=3)
    assert trained == [[0, 1, 2], [0, 2], [0, 2]]
    assert stopped[1] == full[1][:1]
    for index in (0, 2):
        assert _max_difference(stopped[index], full[index]) < 1e-12


def _stack(configs: Sequence[tuple[HParams, int]], data: dict[int, Dataset]) -> MLPStack:
    datasets = list(data.values())
    index = {seed: i for i, seed in enumerate(data)}
    return MLPStack.build(
        list(range(len(configs))),
        [hp for hp, _ in configs],
        [seed for _, seed in configs],
        [index[seed] for _, seed in configs],
        datasets,
    )


def _member_view(stack: MLPStack, row: int) -> dict[str, torch.Tensor]:
    views = {
        **stack.shape.parameters.views(stack.params),
        **stack.shape.running.views(stack.running),
    }
    return {name: view[row] for name, view in views.items()}


def test_members_start_from_build_state_weights_and_padding_stays_zero() -> None:
    configs = [(HParams(hidden=4), 3), (HParams(hidden=16, weight_decay=0.1), 4)]
    data = _data(torch.float32, [3, 4])
    stack = _stack(configs, data)
    for row, (hp, seed) in enumerate(configs):
        expected = member_tensors(build_state(hp, data[seed], seed=seed).model)  # type: ignore[arg-type]
        actual = _member_view(stack, row)
        for name, tensor in expected.items():
            region = tuple(slice(0, n) for n in tensor.shape)
            assert torch.equal(actual[name][region], tensor), name

    stacked = StackedData.from_datasets(list(data.values()))
    for _ in range(2):
        stack.train_epoch(stacked)
    narrow = _member_view(stack, 0)  # width 4 of 16: everything beyond unit 4 is padding
    momentum = stack.shape.parameters.views(stack.optimizer.state["momentum"])
    for layer in range(2):
        assert not narrow[f"w{layer}"][:, 4:].any()
        assert not narrow[f"gamma{layer}"][4:].any() and not narrow[f"beta{layer}"][4:].any()
        assert not momentum[f"w{layer}"][0][:, 4:].any()
    assert not narrow["w1"][4:].any() and not narrow["w_out"][:, 4:].any()  # w_out: (classes, in)
    assert narrow["w1"][:4, :4].any()  # the real units did train


def test_restack_drops_rows_and_trims_padding_without_changing_them() -> None:
    configs = [(HParams(hidden=6), 0), (HParams(hidden=20), 1), (HParams(hidden=10), 2)]
    data = _data(torch.float64, [0, 1, 2])
    stack = _stack(configs, data)
    stack.train_epoch(StackedData.from_datasets(list(data.values())))
    smaller = MLPStack.restack([(stack, [2, 0])])
    assert smaller.members == [2, 0] and smaller.shape.hidden == 10
    assert smaller.optimizer.steps == stack.optimizer.steps
    for new_row, old_row in ((0, 2), (1, 0)):
        old, new = _member_view(stack, old_row), _member_view(smaller, new_row)
        for name, tensor in new.items():
            region = tuple(slice(0, n) for n in tensor.shape)
            assert torch.equal(old[name][region], tensor), name


def test_datasets_of_different_split_sizes_cannot_share_a_pack() -> None:
    members = [
        PackMember(HParams(), 0, load_dataset("digits", seed=0)),
        PackMember(HParams(), 1, load_dataset("digits", seed=1, val_fraction=0.3)),
    ]
    with pytest.raises(ValueError, match="must agree in split sizes"):
        run_packed_training(members, epochs=1)


@pytest.mark.parametrize(
    ("total", "limit", "sizes"),
    [(5, None, [5]), (5, 8, [5]), (64, 32, [32, 32]), (65, 32, [22, 22, 21]), (1, 1, [1])],
)
def test_stack_sizes_are_balanced(total: int, limit: int | None, sizes: list[int]) -> None:
    assert stack_sizes(total, limit) == sizes


@pytest.mark.parametrize(
    ("device", "group", "parallel", "expected"),
    [
        ("cpu", 1, 1, 1),
        ("cpu", 100, 1, 100),
        ("cpu", 256, 1, 128),
        ("cpu", 130, 1, 65),
        ("cpu", 256, 2, 128),
        ("cpu", 256, 8, 32),
        ("cpu", 3, 8, 1),
        ("cuda", 1000, 1, 500),
        ("cuda", 256, 1, 256),
    ],
)
def test_pack_size_auto_policy(device: str, group: int, parallel: int, expected: int) -> None:
    assert pack_size_auto(device, group, parallel_trials=parallel) == expected


def test_pack_size_auto_rejects_an_empty_group() -> None:
    with pytest.raises(ValueError, match="group_size must be >= 1"):
        pack_size_auto("cpu", 0)


def _drive(run: PackedRun, epochs: int, stop: dict[int, set[int]]) -> list[dict[int, EpochResult]]:
    """Train `run` to `epochs`, stopping members as `stop[epoch]` says; each epoch's results."""
    seen = []
    while run.stacks and run.epoch < epochs:
        results = run.train_epoch()
        run.drop(stop.get(run.epoch, set()))
        seen.append(results)
    return seen


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_pack_continued_from_its_saved_state_ends_bit_identical(dtype: torch.dtype) -> None:
    """What a restarted pack trial does: save after epoch 2, load in a fresh run, go on. Every
    shape group and optimizer of CONFIGS, plus a member that diverges and one stopped before
    the save, so the saved stacks are compacted ones."""
    configs = [*CONFIGS, (HParams(lr=10.0, optimizer="sgd", batchnorm=False), 0)]
    data = _data(dtype, [seed for _, seed in configs])
    members = _members(configs, data)
    stop = {1: {1}}  # member 1 leaves after epoch 1; member 7 diverges in epoch 1
    whole = _drive(PackedRun.start(members, stack_size=2), 5, stop)

    first = PackedRun.start(members, stack_size=2)
    before = _drive(first, 2, stop)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = PackedRun.from_state(_members(configs, data), saved, stack_size=2)
    assert resumed.epoch == 2
    assert sorted(resumed.active) == [0, 2, 3, 4, 5, 6]
    after = _drive(resumed, 5, stop)

    assert [sorted(r) for r in before + after] == [sorted(r) for r in whole]
    # Bit for bit: repr round-trips every float exactly (and shows a diverged NaN as nan).
    assert repr(before + after) == repr(whole)


@needs_cuda
def test_a_pack_saved_on_a_gpu_continues_on_the_cpu() -> None:
    """A pack trial restarted on another kind of node: the state saved on CUDA loads on a
    CPU (generators are CPU generators everywhere) and the run goes on to the results of the
    uninterrupted GPU run, up to the devices' float64 rounding."""
    configs = CONFIGS[:5]
    seeds = [seed for _, seed in configs]
    gpu, cpu = _data(torch.float64, seeds, "cuda"), _data(torch.float64, seeds)
    whole = _drive(PackedRun.start(_members(configs, gpu)), 4, {})

    first = PackedRun.start(_members(configs, gpu))
    before = _drive(first, 2, {})
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, map_location="cpu", weights_only=True)
    after = _drive(PackedRun.from_state(_members(configs, cpu), saved), 4, {})

    assert [sorted(r) for r in before + after] == [sorted(r) for r in whole]
    for got, expected in zip(before + after, whole, strict=True):
        for member, result in got.items():
            assert _max_difference([result], [expected[member]]) < 1e-9


def test_a_saved_pack_is_refused_for_other_members() -> None:
    data = _data(torch.float32, [0, 1])
    run = PackedRun.start(_members(CONFIGS[:2], data))
    saved = run.state_dict()
    with pytest.raises(ValueError, match="this pack has 1"):
        PackedRun.from_state(_members(CONFIGS[:1], data), saved)
