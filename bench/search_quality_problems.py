"""Problems of the search-quality benchmark: BBOB functions behind warped parameters; digits.

The functions come from the `ioh` package (IOHprofiler's C++ implementation of the 24 noiseless
BBOB functions, with known optima), so regret is exact. Each function is searched through a
caviar SearchSpace whose parameters are log, reverse-log and linear floats: a configuration is
mapped to its unit coordinates and from there into the function's domain [-5, 5]^d. A method
that samples a reverse-log parameter uniformly in beta instead of in log(1 - beta), say, is
searching a distorted function and pays for it.

"Edge" problems move the optimum onto the boundary of the space in half of the dimensions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from search_spaces import SearchSpace

Objective = Callable[[Sequence[dict]], np.ndarray]  # configs -> losses (minimised)

# One scale per parameter, cycled: every problem of 2+ dims has a log and a reverse-log axis.
_SCALES = (
    {"type": "float", "low": 1e-5, "high": 1.0, "scale": "log"},
    {"type": "float", "low": 0.5, "high": 0.9999, "scale": "reverse_log"},
    {"type": "float", "low": -2.0, "high": 2.0, "scale": "linear"},
)


@dataclass(frozen=True)
class FunctionProblem:
    """BBOB function `fid` in `dim` dimensions; `edge` puts the optimum on the space's boundary."""

    fid: int
    dim: int
    edge: bool = False

    @property
    def name(self) -> str:
        import ioh

        title = ioh.get_problem(self.fid, 1, self.dim, ioh.ProblemClass.BBOB).meta_data.name
        return f"f{self.fid} {title} {self.dim}-D" + (" edge" if self.edge else "")

    def space(self) -> SearchSpace:
        return SearchSpace.from_dict({f"x{i}": _SCALES[i % 3] for i in range(self.dim)})

    def objective(self, instance: int) -> Objective:
        """Regret (f - f_opt) of configurations on BBOB instance `instance`."""
        import ioh

        problem = ioh.get_problem(self.fid, instance, self.dim, ioh.ProblemClass.BBOB)
        space = self.space()
        low, width = np.full(self.dim, -5.0), np.full(self.dim, 10.0)
        if self.edge:
            x_opt = np.asarray(problem.optimum.x)
            for i in range(0, self.dim, 2):  # every other axis: optimum at u = 1 or u = 0
                width[i] = 7.0
                low[i] = x_opt[i] - 7.0 if (i // 2) % 2 == 0 else x_opt[i]
        f_opt = problem.optimum.y

        def regret(configs: Sequence[dict]) -> np.ndarray:
            unit = np.array([space.to_unit(c) for c in configs])
            values = np.asarray(problem(low + unit * width), dtype=np.float64)
            return np.maximum(values - f_opt, 1e-12)

        return regret


# The suite: the five BBOB groups (separable, moderate, ill-conditioned, multimodal with and
# without global structure), 2 to 8 dimensions, two with the optimum on the boundary.
FUNCTION_SUITE: tuple[FunctionProblem, ...] = (
    FunctionProblem(1, 4),  # sphere
    FunctionProblem(2, 4),  # separable ellipsoid
    FunctionProblem(3, 2),  # separable Rastrigin
    FunctionProblem(6, 4),  # attractive sector
    FunctionProblem(8, 4),  # Rosenbrock
    FunctionProblem(10, 8),  # rotated ellipsoid
    FunctionProblem(13, 4),  # sharp ridge
    FunctionProblem(15, 4),  # rotated Rastrigin
    FunctionProblem(17, 6),  # Schaffers F7
    FunctionProblem(20, 2),  # Schwefel
    FunctionProblem(21, 4),  # Gallagher 101 peaks
    FunctionProblem(22, 8),  # Gallagher 21 peaks
    FunctionProblem(1, 8, edge=True),
    FunctionProblem(8, 4, edge=True),
)


# --- the real task: a BatchNorm MLP on digits -------------------------------------------------

DIGITS_SPACE = {
    "lr": {"type": "float", "low": 1e-3, "high": 3.0, "scale": "log"},
    "beta": {"type": "float", "low": 0.5, "high": 0.999, "scale": "reverse_log"},
    "hidden": {"type": "int", "low": 8, "high": 256, "scale": "log"},
    "batch_size": {"type": "choice", "values": [32, 64, 128, 256]},
}
DIGITS_FIXED = {"depth": 2, "optimizer": "momentum"}


def digits_objective(seed: int, epochs: int) -> Objective:
    """Minus the validation accuracy after `epochs` epochs; the split and init follow `seed`."""
    import torch

    from trainables import HParams, load_dataset, run_training

    torch.set_num_threads(1)
    data = load_dataset("digits", seed=seed)

    def loss(configs: Sequence[dict]) -> np.ndarray:
        out = []
        for config in configs:
            hp = HParams.from_mapping({**DIGITS_FIXED, **config})
            results = run_training(hp, data, epochs=epochs, seed=seed)
            last = results[-1]
            out.append(np.nan if last.diverged else -last.val_accuracy)
        return np.asarray(out, dtype=np.float64)

    return loss
