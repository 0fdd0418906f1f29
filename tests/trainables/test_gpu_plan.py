"""How `pack: auto` lays packs over a cluster's GPUs: every GPU busy, none running packs in
series while it idles, and no more side by side than its CPUs can feed."""

from __future__ import annotations

import pytest

from trainables.packing import (
    CUDA_PACK_LIMIT,
    GPU_SATURATING_MEMBERS,
    MAX_PACKS_PER_GPU,
    plan_gpu_packs,
)


def test_a_big_group_shares_one_gpu_side_by_side_instead_of_in_series() -> None:
    plan = plan_gpu_packs(2048, gpus=1, cpus=16, cpu_per_trial=1)
    assert (plan.packs, plan.members, plan.per_gpu, plan.gpu_share) == (4, 512, 4, 0.25)
    assert plan.members >= GPU_SATURATING_MEMBERS  # each still fills the kernels


def test_a_group_that_fills_one_gpu_gets_it_whole() -> None:
    plan = plan_gpu_packs(256, gpus=1, cpus=16, cpu_per_trial=1)
    assert (plan.packs, plan.members, plan.gpu_share) == (1, 256, 1.0)
    small = plan_gpu_packs(10, gpus=1, cpus=16, cpu_per_trial=1)
    assert (small.packs, small.members, small.gpu_share) == (1, 10, 1.0)


def test_every_gpu_of_the_cluster_takes_a_share() -> None:
    plan = plan_gpu_packs(2048, gpus=8, cpus=128, cpu_per_trial=1)
    assert (plan.packs, plan.members, plan.gpu_share) == (8, 256, 1.0)
    few = plan_gpu_packs(3, gpus=8, cpus=128, cpu_per_trial=1)
    assert few.packs == 3 and few.members == 1  # never more packs than configurations


def test_cpus_bound_how_many_packs_run_side_by_side() -> None:
    plan = plan_gpu_packs(2048, gpus=1, cpus=2, cpu_per_trial=1)
    assert plan.per_gpu == 2 and plan.gpu_share == 0.5
    assert plan.packs * plan.members >= 2048 and plan.members <= CUDA_PACK_LIMIT
    assert "wait for a slot" in plan.why


@pytest.mark.parametrize("size", [1, 255, 513, 1000, 5000, 20000])
@pytest.mark.parametrize("gpus", [1, 2, 8])
def test_every_configuration_has_a_pack_and_shares_sum_to_at_most_one_gpu(
    size: int, gpus: int
) -> None:
    plan = plan_gpu_packs(size, gpus=gpus, cpus=16 * gpus, cpu_per_trial=1)
    assert plan.packs * plan.members >= size
    assert plan.members <= CUDA_PACK_LIMIT
    assert 1 <= plan.per_gpu <= MAX_PACKS_PER_GPU
    assert plan.gpu_share * plan.per_gpu == pytest.approx(1.0)


def test_a_memory_cap_runs_packs_in_waves_rather_than_overfilling_a_gpu() -> None:
    plan = plan_gpu_packs(2048, gpus=1, cpus=16, cpu_per_trial=1, member_cap=600)
    assert plan.members * plan.per_gpu <= 600
    assert plan.packs * plan.members >= 2048
