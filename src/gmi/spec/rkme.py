"""Reduced-set Kernel Mean Embedding (RKME): summarise n points by K weighted points.

Objective (METHOD.md 2a): minimise || mu - sum_j beta_j k(c_j, .) ||^2_H over c and beta, where
mu = (1/n) sum_i k(x_i, .). Solver: k-means++ init + a few Lloyd steps; beta by a non-negative
least-squares solve in float64; a few true-gradient steps on the points (accepted only when the
MMD falls), re-solving beta after each.

Convention: beta >= 0 WITHOUT a sum-to-one constraint. It reaches a far lower MMD than beta on
the simplex (METHOD.md 7); the scoring keeps the total mass sum(beta) when it re-weights points,
so uniform prompt weights reproduce the baseline score exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gmi.spec.kernels import gaussian_kernel

_RIDGE = 1e-8  # keeps the kernel matrix of the reduced points positive definite


@dataclass(frozen=True)
class ReducedSet:
    """K points (float32), their weights beta (float64) and each input's nearest point."""

    points: np.ndarray
    beta: np.ndarray
    assignment: np.ndarray


def mmd_squared(
    x: np.ndarray, points: np.ndarray, beta: np.ndarray, gamma: float, kxx: float | None = None
) -> float:
    """|| (1/n) sum_i k(x_i, .) - sum_j beta_j k(c_j, .) ||^2, in float64. `kxx` (the mean of
    k(x_i, x_j), O(n^2 d), constant while the points move) may be given once by the caller."""
    if kxx is None:
        kxx = float(gaussian_kernel(x, x, gamma).mean())
    kcx = gaussian_kernel(points, x, gamma).mean(axis=1)
    kcc = gaussian_kernel(points, points, gamma)
    beta = np.asarray(beta, dtype=np.float64)
    return float(kxx - 2.0 * beta @ kcx + beta @ kcc @ beta)


def mmd_gradient(
    x: np.ndarray,
    points: np.ndarray,
    beta: np.ndarray,
    gamma: float,
    xx: np.ndarray | None = None,
) -> np.ndarray:
    """Gradient of the MMD^2 with respect to the points:

    d MMD^2 / d c_j = 4 gamma beta_j [ mean_i k(c_j,x_i)(c_j-x_i)
                                       - sum_l beta_l k(c_j,c_l)(c_j-c_l) ].

    Written from the objective (METHOD.md 7) and checked against finite differences in the tests.
    """
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(points, dtype=np.float64)
    if xx is None:
        xx = np.einsum("nd,nd->n", x, x)
    kcx = np.exp(-gamma * _to_data(x, xx, c))  # [K, n]
    kcc = gaussian_kernel(c, c, gamma)  # [K, K]
    n = x.shape[0]
    data_term = (kcx.sum(axis=1)[:, None] * c - kcx @ x) / n
    bk = kcc * beta[None, :]
    self_term = bk.sum(axis=1)[:, None] * c - bk @ c
    return 4.0 * gamma * beta[:, None] * (data_term - self_term)


SIMPLEX_PENALTY = 1e6  # weight of the sum-to-one row (relative to the kernel's scale)


def solve_beta(
    x: np.ndarray, points: np.ndarray, gamma: float, simplex: bool = False
) -> np.ndarray:
    """Optimal beta >= 0 for fixed points: min beta^T Kcc beta - 2 b^T beta, b = mean_i k(c, x_i).

    Rewritten as non-negative least squares with the Cholesky factor Kcc = L L^T:
    || L^T beta - L^{-1} b ||^2 (equal up to a constant). simplex=True adds sum(beta) = 1 (the
    constraint of the paper's and learnware's RKME) as one heavily weighted row of the same
    least squares, then divides out the residual: for comparisons (benchmarks/learnware_rkme.py);
    gmi's specs keep the free mass (METHOD.md 7).
    """
    kcc = gaussian_kernel(points, points, gamma)
    b = gaussian_kernel(points, x, gamma).mean(axis=1)
    return _solve_beta(kcc, b, simplex)


def _solve_beta(kcc: np.ndarray, b: np.ndarray, simplex: bool) -> np.ndarray:
    kcc = kcc.copy()
    kcc[np.diag_indices_from(kcc)] += _RIDGE
    chol = np.linalg.cholesky(kcc)
    rhs = np.linalg.solve(chol, b)
    from scipy.optimize import nnls  # imported here: 0.3 s that identify never needs

    matrix = chol.T
    if simplex:
        weight = np.sqrt(SIMPLEX_PENALTY * float(np.trace(kcc)) / len(b))
        matrix = np.vstack([matrix, np.full((1, len(b)), weight)])
        rhs = np.r_[rhs, weight]
    beta, _ = nnls(matrix, rhs, maxiter=50 * len(b))
    if simplex and beta.sum() > 0:
        beta = beta / beta.sum()
    return beta


def _to_data(x: np.ndarray, xx: np.ndarray, points: np.ndarray) -> np.ndarray:
    """[K, n] squared distances from points to the rows of x, with the rows' squared norms xx
    computed once per build (reading x for its norms in every step cost as much as the
    product itself)."""
    pp = np.einsum("kd,kd->k", points, points)
    return np.maximum(pp[:, None] + xx[None, :] - 2.0 * (points @ x.T), 0.0)


def _fit(x: np.ndarray, xx: np.ndarray, points: np.ndarray, gamma: float, simplex: bool):
    """(beta, MMD^2 without its constant term) for fixed points: ONE kernel pass over the data
    serves both (the optimisation compares values only)."""
    kcc = gaussian_kernel(points, points, gamma)
    kcx = np.exp(-gamma * _to_data(x, xx, points)).mean(axis=1)
    beta = _solve_beta(kcc, kcx, simplex)
    return beta, float(-2.0 * beta @ kcx + beta @ kcc @ beta)


def _kmeans_pp_init(x: np.ndarray, xx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    n = x.shape[0]
    centers = [int(rng.integers(n))]
    closest = _to_data(x, xx, x[centers[0]][None, :])[0]
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # all remaining points coincide with a centre: pick any unused one
            unused = np.setdiff1d(np.arange(n), centers)
            nxt = int(rng.choice(unused))
        else:
            nxt = int(rng.choice(n, p=closest / total))
        centers.append(nxt)
        closest = np.minimum(closest, _to_data(x, xx, x[nxt][None, :])[0])
    return x[centers].copy()


def kmeans(x: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ + Lloyd steps; an empty cluster is re-seeded at the worst-fitted point."""
    xx = np.einsum("nd,nd->n", x, x)
    centers = _kmeans_pp_init(x, xx, k, rng)
    for _ in range(iterations):
        d2 = _to_data(x, xx, centers).T
        labels = d2.argmin(axis=1)
        counts = np.bincount(labels, minlength=k)
        sums = (labels[None, :] == np.arange(k)[:, None]).astype(np.float64) @ x  # [k, d]
        empty = counts == 0
        centers[~empty] = sums[~empty] / counts[~empty, None]
        if empty.any():
            worst = np.argsort(-d2[np.arange(len(x)), labels])[: int(empty.sum())]
            centers[empty] = x[worst]
    return centers


def build_reduced_set(
    features: np.ndarray,
    n_points: int,
    gamma: float,
    *,
    kmeans_iterations: int = 10,
    gradient_steps: int = 10,
    seed: int = 0,
    simplex: bool = False,
) -> ReducedSet:
    """Summarise features [n, d] by at most n_points weighted points.

    With n_points >= n the points are the inputs themselves and beta = 1/n (MMD exactly 0).
    simplex=True keeps beta on the simplex (beta >= 0, sum 1), see solve_beta.
    """
    x = np.asarray(features, dtype=np.float64)
    n = x.shape[0]
    if n == 0:
        raise ValueError("cannot build a specification from zero images")
    if n_points >= n:
        return ReducedSet(
            points=x.astype(np.float32),
            beta=np.full(n, 1.0 / n),
            assignment=np.arange(n),
        )
    rng = np.random.default_rng(seed)
    centers = kmeans(x, n_points, kmeans_iterations, rng)
    xx = np.einsum("nd,nd->n", x, x)
    beta, current = _fit(x, xx, centers, gamma, simplex)
    step = 1.0 / (4.0 * gamma)  # a natural length scale: gradients carry a factor 4 gamma
    for _ in range(gradient_steps):
        grad = mmd_gradient(x, centers, beta, gamma, xx=xx)
        while step > 1e-6:
            candidate = centers - step * grad / max(float(beta.max()), 1e-12)
            cand_beta, value = _fit(x, xx, candidate, gamma, simplex)
            if value < current:
                centers, beta, current = candidate, cand_beta, value
                step *= 1.5
                break
            step *= 0.5
    assignment = _to_data(x, xx, centers).argmin(axis=0)
    return ReducedSet(points=centers.astype(np.float32), beta=beta, assignment=assignment)
