"""Packed training: many configurations trained together, each as if it were trained alone.

Layers, from the bottom: `_layout` (members' tensors in one flat buffer), `_optim` (the
stacked optimizers), `_data` (a pack's datasets as one), `_stack` (the `Stack` base: epoch and
evaluation loops, learning rates, checkpoints, restacking; a step replayed as a CUDA graph by
`_capture`), its two networks `_mlp_stack`
(the built-in MLP, hand-written step in `_mlp_forward`) and `_func_stack` (any user network,
through torch.func), `_groups` (which members share a stack, pack sizes), `_run` (a pack's
training from start to end) and `_config` (a packed Ray trial's config, with `_halving`).
"""

from trainables.packing._capture import CAPTURE_ENV, StepCapture
from trainables.packing._config import (
    MEMBER_METRICS,
    PackConfig,
    PackMemberConfig,
    member_metrics,
    pack_config_errors,
)
from trainables.packing._data import StackedData
from trainables.packing._func_stack import FuncStack, vectorize_problem
from trainables.packing._groups import (
    CUDA_PACK_LIMIT,
    GPU_SATURATING_MEMBERS,
    MAX_PACKS_PER_GPU,
    GpuPlan,
    default_stack_size,
    pack_group,
    pack_size_auto,
    plan_gpu_packs,
    shape_group,
    stack_sizes,
)
from trainables.packing._halving import SuccessiveHalving
from trainables.packing._mlp_stack import MLPStack
from trainables.packing._run import OnEpoch, PackedRun, PackMember, run_packed_training
from trainables.packing._stack import Stack

__all__ = [
    "CAPTURE_ENV",
    "CUDA_PACK_LIMIT",
    "GPU_SATURATING_MEMBERS",
    "MAX_PACKS_PER_GPU",
    "MEMBER_METRICS",
    "FuncStack",
    "GpuPlan",
    "MLPStack",
    "OnEpoch",
    "PackConfig",
    "PackMember",
    "PackMemberConfig",
    "PackedRun",
    "Stack",
    "StackedData",
    "StepCapture",
    "SuccessiveHalving",
    "default_stack_size",
    "member_metrics",
    "pack_config_errors",
    "pack_group",
    "pack_size_auto",
    "plan_gpu_packs",
    "run_packed_training",
    "shape_group",
    "stack_sizes",
    "vectorize_problem",
]
