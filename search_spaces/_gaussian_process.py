"""A small Gaussian process for the model-guided sampler: Matérn-5/2 with one length per input.

Written here rather than taken from scikit-learn because the sampler refits after every round
and draws joint posterior samples over a thousand candidates: scikit-learn's general kernel
machinery made a 16-round run take tens of seconds, this one well under a second per round.
Targets are expected standardised (the sampler feeds normal scores), so the prior mean is 0.
Hyperparameters (lengths, signal and noise variance) maximise the marginal likelihood with
analytic gradients, from two starting points, within bounds that keep the fit well-posed.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import cho_solve, solve_triangular

_SQRT5 = math.sqrt(5.0)
_STARTS = (0.2, 1.0)
_LOG_LENGTH = (math.log(0.02), math.log(20.0))
_LOG_SIGNAL = (math.log(0.05), math.log(20.0))
_LOG_NOISE = (math.log(1e-6), math.log(1.0))


def _matern(x: np.ndarray, z: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Matérn-5/2 correlation, scaled distances r) between the rows of x and z."""
    from scipy.spatial.distance import cdist

    r = cdist(x / lengths, z / lengths)
    return (1.0 + _SQRT5 * r + (5.0 / 3.0) * r**2) * np.exp(-_SQRT5 * r), r


class GaussianProcess:
    """Fit with `fit(x, y)`; then `posterior(points)` gives the mean and the full covariance."""

    def __init__(self) -> None:
        self.lengths = np.empty(0)
        self.signal = 1.0
        self.noise = 1e-3
        self._x = np.empty((0, 0))
        self._factor: np.ndarray = np.empty((0, 0))
        self._alpha = np.empty(0)

    def _nll(self, theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
        """Negative log marginal likelihood and its gradient in the log parameters."""
        d = x.shape[1]
        lengths, signal, noise = np.exp(theta[:d]), math.exp(theta[d]), math.exp(theta[d + 1])
        corr, r = _matern(x, x, lengths)
        k = signal * corr + noise * np.eye(len(x))
        try:
            factor = np.linalg.cholesky(k)
        except np.linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = cho_solve((factor, True), y)
        nll = 0.5 * y @ alpha + np.log(np.diag(factor)).sum() + 0.5 * len(x) * math.log(2 * math.pi)
        inverse = cho_solve((factor, True), np.eye(len(x)))
        w = np.outer(alpha, alpha) - inverse  # d nll / dK = -w / 2
        # d corr / d log(length_k) = (5/3)(1 + sqrt5 r) exp(-sqrt5 r) * (dx_k / length_k)^2
        common = signal * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * np.exp(-_SQRT5 * r) * w
        grad = np.empty_like(theta)
        for j in range(d):
            scaled = (x[:, None, j] - x[None, :, j]) / lengths[j]
            grad[j] = -0.5 * np.sum(common * scaled**2)
        grad[d] = -0.5 * np.sum(w * signal * corr)
        grad[d + 1] = -0.5 * noise * np.trace(w)
        return float(nll), grad

    def fit(self, x: np.ndarray, y: np.ndarray) -> GaussianProcess:
        from scipy.optimize import minimize

        d = x.shape[1]
        bounds = [_LOG_LENGTH] * d + [_LOG_SIGNAL, _LOG_NOISE]
        best: tuple[float, np.ndarray] | None = None
        for length in _STARTS:
            start = np.array([math.log(length)] * d + [0.0, math.log(1e-2)])
            result = minimize(
                self._nll, start, args=(x, y), jac=True, method="L-BFGS-B", bounds=bounds,
                options={"maxiter": 100},
            )  # fmt: skip
            if best is None or result.fun < best[0]:
                best = (float(result.fun), result.x)
        assert best is not None
        theta = best[1]
        self.lengths, self.signal, self.noise = (
            np.exp(theta[:d]), math.exp(theta[d]), math.exp(theta[d + 1]),
        )  # fmt: skip
        corr, _ = _matern(x, x, self.lengths)
        k = self.signal * corr + (self.noise + 1e-10) * np.eye(len(x))
        self._x = x
        self._factor = np.linalg.cholesky(k)
        self._alpha = cho_solve((self._factor, True), y)
        return self

    def posterior(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean (m,) and covariance (m, m) of the latent function at `points`."""
        cross = self.signal * _matern(self._x, points, self.lengths)[0]
        mean = cross.T @ self._alpha
        v = solve_triangular(self._factor, cross, lower=True)
        prior = self.signal * _matern(points, points, self.lengths)[0]
        return mean, prior - v.T @ v
