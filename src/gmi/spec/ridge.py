"""Closed-form ridge regression with the penalty chosen by generalised cross-validation.

Used by the `hub` interrogator to learn image features -> prompt embedding from the hub's own
(spec image, prompt) pairs. One SVD of the centred features gives the solution for every
penalty at once, so choosing lambda by GCV costs nothing extra: seconds for 10,000 pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAMBDA_GRID = np.logspace(-4, 2, 13)  # relative to the mean squared singular value


def thin_svd(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u, s, vt of a thin SVD that does not fail on unlucky inputs.

    LAPACK's divide-and-conquer driver (numpy's gesdd) can raise "SVD did not converge" on
    ordinary data (one real 801 x 1056 hub matrix does); one model's images must never make
    the hub's learned parts fail. Fallbacks, in order: scipy's QR-iteration driver (gesvd),
    then the eigendecomposition of the smaller Gram matrix (eigh always converges for a
    symmetric matrix; squaring the condition number only matters for directions the ridge
    penalty shrinks away anyway).
    """
    try:
        return np.linalg.svd(centred, full_matrices=False)
    except np.linalg.LinAlgError:
        pass
    try:
        from scipy.linalg import svd

        return svd(centred, full_matrices=False, lapack_driver="gesvd", check_finite=False)
    except (np.linalg.LinAlgError, ValueError):
        pass
    return gram_svd(centred)


def gram_svd(centred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The thin SVD from eigh of the n x n (or d x d) Gram matrix: the last-resort solver."""
    n, d = centred.shape
    wide = n <= d
    gram = centred @ centred.T if wide else centred.T @ centred
    eigval, vectors = np.linalg.eigh((gram + gram.T) / 2.0)
    order = np.argsort(eigval)[::-1]
    s = np.sqrt(np.maximum(eigval[order], 0.0))
    vectors = vectors[:, order]
    keep = s > (s[0] if s.size else 0.0) * 1e-10
    s, vectors = s[keep], vectors[:, keep]
    if wide:  # vectors are u; v = X' u / s
        return vectors, s, ((centred.T @ vectors) / s).T
    return (centred @ vectors) / s, s, vectors.T


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
        u, s, vt = thin_svd(x - x_mean)
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


@dataclass(frozen=True)
class RidgeStatistics:
    """Running sufficient statistics of (x, y) pairs: n, sums, X'X, X'Y and sum ||y||^2.

    A hub adds and removes models one at a time; refitting the ridge on all pairs after each
    is O(hub). These statistics change by O(own pairs) per model (add / subtract), and `solve`
    gives the SAME model as RidgeModel.fit on all pairs (same GCV choice of the penalty): the
    eigendecomposition of the centred X'X carries the singular values and the projections of
    Y that the SVD gives. Float64 throughout; cost of solve O(d^3), independent of the hub.
    """

    n: float
    sum_x: np.ndarray  # [d]
    sum_y: np.ndarray  # [e]
    xx: np.ndarray  # [d, d]
    xy: np.ndarray  # [d, e]
    yy: float

    @classmethod
    def empty(cls, d: int, e: int) -> RidgeStatistics:
        return cls(0.0, np.zeros(d), np.zeros(e), np.zeros((d, d)), np.zeros((d, e)), 0.0)

    def add(self, x: np.ndarray, y: np.ndarray, sign: float = 1.0) -> RidgeStatistics:
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        return RidgeStatistics(
            self.n + sign * x.shape[0],
            self.sum_x + sign * x.sum(axis=0),
            self.sum_y + sign * y.sum(axis=0),
            self.xx + sign * (x.T @ x),
            self.xy + sign * (x.T @ y),
            self.yy + sign * float((y * y).sum()),
        )

    def subtract(self, x: np.ndarray, y: np.ndarray) -> RidgeStatistics:
        return self.add(x, y, sign=-1.0)

    def solve(self, grid: np.ndarray = LAMBDA_GRID) -> RidgeModel:
        n = round(self.n)
        if n < 2:
            raise ValueError("ridge regression needs at least two paired rows")
        x_mean, y_mean = self.sum_x / n, self.sum_y / n
        cxx = self.xx - n * np.outer(x_mean, x_mean)
        cxy = self.xy - n * np.outer(x_mean, y_mean)
        cyy = self.yy - n * float(y_mean @ y_mean)
        eigval, v = np.linalg.eigh((cxx + cxx.T) / 2.0)
        rank = min(n, cxx.shape[0])  # what a thin SVD of the centred data would return
        order = np.argsort(eigval)[::-1][:rank]
        s2 = np.maximum(eigval[order], 0.0)
        v = v[:, order]
        proj = v.T @ cxy  # = s * (u' Yc), [r, e]
        keep = s2 > s2.max() * 1e-12 if s2.size and s2.max() > 0 else np.zeros(rank, bool)
        uy2 = np.zeros(rank)
        uy2[keep] = (proj[keep] ** 2).sum(axis=1) / s2[keep]  # ||u_i' Yc||^2
        scale = float(np.mean(s2)) if s2.size else 1.0
        best = None
        for rel in grid:
            lam = rel * scale
            shrink = s2 / (s2 + lam)
            residual = cyy - 2.0 * float((shrink * uy2).sum()) + float((shrink**2 * uy2).sum())
            gcv = max(residual, 0.0) / n / (1.0 - shrink.sum() / n) ** 2
            if best is None or gcv < best[0]:
                best = (gcv, lam)
        lam = best[1]  # type: ignore[index]
        weights = v @ (proj / (s2 + lam)[:, None])
        return RidgeModel(weights=weights, x_mean=x_mean, y_mean=y_mean, penalty=float(lam))

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "n": np.array([self.n]),
            "sum_x": self.sum_x,
            "sum_y": self.sum_y,
            "xx": self.xx,
            "xy": self.xy,
            "yy": np.array([self.yy]),
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> RidgeStatistics:
        return cls(
            float(arrays["n"][0]),
            arrays["sum_x"],
            arrays["sum_y"],
            arrays["xx"],
            arrays["xy"],
            float(arrays["yy"][0]),
        )
