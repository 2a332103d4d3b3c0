"""Closed-form ridge regression with the penalty chosen by generalised cross-validation.

Used by the `hub` interrogator to learn image features -> prompt embedding from the hub's own
(spec image, prompt) pairs. One SVD of the centred features gives the solution for every
penalty at once, so choosing lambda by GCV costs nothing extra: seconds for 10,000 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAMBDA_GRID = np.logspace(-4, 2, 13)  # relative to the mean squared singular value


@dataclass(frozen=True)
class RidgeModel:
    weights: np.ndarray  # [d, e] float64
    x_mean: np.ndarray  # [d]
    y_mean: np.ndarray  # [e]
    penalty: float

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, grid: np.ndarray = LAMBDA_GRID) -> RidgeModel:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if x.shape[0] != y.shape[0] or x.shape[0] < 2:
            raise ValueError("ridge regression needs at least two paired rows")
        x_mean, y_mean = x.mean(axis=0), y.mean(axis=0)
        u, s, vt = np.linalg.svd(x - x_mean, full_matrices=False)
        uy = u.T @ (y - y_mean)  # [r, e]
        n = x.shape[0]
        scale = float(np.mean(s**2)) if s.size else 1.0
        best = None
        for rel in grid:
            lam = rel * scale
            shrink = s**2 / (s**2 + lam)  # hat-matrix eigenvalues
            fitted = u @ (shrink[:, None] * uy)
            residual = ((y - y_mean) - fitted) ** 2
            gcv = residual.sum() / n / (1.0 - shrink.sum() / n) ** 2
            if best is None or gcv < best[0]:
                best = (gcv, lam)
        lam = best[1]  # type: ignore[index]
        weights = vt.T @ ((s / (s**2 + lam))[:, None] * uy)
        return cls(weights=weights, x_mean=x_mean, y_mean=y_mean, penalty=float(lam))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return (np.asarray(x, dtype=np.float64) - self.x_mean) @ self.weights + self.y_mean

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "weights": self.weights,
            "x_mean": self.x_mean,
            "y_mean": self.y_mean,
            "penalty": np.array([self.penalty]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RidgeModel:
        return cls(
            arrays["weights"], arrays["x_mean"], arrays["y_mean"], float(arrays["penalty"][0])
        )
