"""Functional ANOVA over a random forest (Hutter, Hoos & Leyton-Brown, ICML 2014).

Each regression tree is a piecewise-constant function on axis-aligned boxes, so its marginal
over one feature (the average over every other feature, uniformly over the domain) is exact and
cheap: along that feature the leaves' edges cut the domain into intervals, and on each interval
the marginal is the volume-weighted mean of the leaves covering it. The importance of a feature
is the variance of that marginal as a fraction of the tree's total variance, averaged over trees.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.tree import DecisionTreeRegressor

__all__ = ["FanovaResult", "fanova"]


@dataclass(frozen=True)
class FanovaResult:
    """Per feature: mean and std over trees of the main effect's fraction of the variance."""

    fraction: np.ndarray
    std: np.ndarray


def fanova(
    x: np.ndarray, y: np.ndarray, domain: np.ndarray, *, n_trees: int = 64, seed: int = 0
) -> FanovaResult:
    """``x``: (n, d) in sampling coordinates; ``domain``: (d, 2) lower/upper bound per feature."""
    # Imported here: scikit-learn takes seconds to import, and `caviar run` imports `analysis`.
    from sklearn.ensemble import RandomForestRegressor

    forest = RandomForestRegressor(
        n_estimators=n_trees, max_depth=64, min_samples_leaf=1, random_state=seed
    )
    forest.fit(x, y)
    fractions = []
    for tree in forest.estimators_:
        leaves = _leaf_boxes(tree, domain)
        total = _total_variance(*leaves)
        if total > 0:
            fractions.append(
                [_main_effect_variance(*leaves, feature=f) / total for f in range(x.shape[1])]
            )
    if not fractions:
        return FanovaResult(np.zeros(x.shape[1]), np.zeros(x.shape[1]))
    matrix = np.asarray(fractions)
    return FanovaResult(matrix.mean(axis=0), matrix.std(axis=0))


def _leaf_boxes(
    tree: DecisionTreeRegressor, domain: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each leaf's box (lower, upper: (leaves, d)), value, and widths as fractions of the domain."""
    structure = tree.tree_
    lows, highs, values = [], [], []
    stack = [(0, domain[:, 0].copy(), domain[:, 1].copy())]
    while stack:
        node, low, high = stack.pop()
        left, right = structure.children_left[node], structure.children_right[node]
        if left == right:  # a leaf
            lows.append(low)
            highs.append(high)
            values.append(structure.value[node].ravel()[0])
            continue
        feature, threshold = structure.feature[node], structure.threshold[node]
        # Thresholds may lie outside the domain when it is narrower than the data: clip.
        cut = min(max(threshold, low[feature]), high[feature])
        left_high, right_low = high.copy(), low.copy()
        left_high[feature], right_low[feature] = cut, cut
        stack.append((left, low, left_high))
        stack.append((right, right_low, high))
    low_arr, high_arr = np.asarray(lows), np.asarray(highs)
    widths = (high_arr - low_arr) / (domain[:, 1] - domain[:, 0])
    return low_arr, high_arr, np.asarray(values), widths


def _total_variance(
    low: np.ndarray, high: np.ndarray, value: np.ndarray, widths: np.ndarray
) -> float:
    weight = widths.prod(axis=1)
    mean = float(weight @ value)
    return float(weight @ (value - mean) ** 2)


def _main_effect_variance(
    low: np.ndarray, high: np.ndarray, value: np.ndarray, widths: np.ndarray, *, feature: int
) -> float:
    weight = widths.prod(axis=1)
    mean = float(weight @ value)
    edges = np.unique(np.concatenate([low[:, feature], high[:, feature]]))
    if len(edges) < 2:
        return 0.0
    mids = (edges[:-1] + edges[1:]) / 2
    lengths = np.diff(edges) / (edges[-1] - edges[0])
    covers = (low[None, :, feature] <= mids[:, None]) & (mids[:, None] < high[None, :, feature])
    # The leaves covering one interval partition the other features' domain: weight each by the
    # volume of its box with this feature's extent taken out.
    with np.errstate(divide="ignore", invalid="ignore"):
        others = np.where(widths[:, feature] > 0, weight / widths[:, feature], 0.0)
    marginal = covers @ (others * value)
    return float(lengths @ (marginal - mean) ** 2)
