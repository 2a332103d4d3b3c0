"""Pure kernel functions (no state, no I/O).

All sums that feed an MMD are taken in float64: at small gamma the MMD^2 is ~1e-6 next to
constant terms ~1 (METHOD.md section 7), so float32 would lose it to rounding.
"""

from __future__ import annotations

import numpy as np


def squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise ||a_i - b_j||^2 for a [..., n, d] and b [..., m, d], in float64, clipped at 0.

    Uses the expansion |a|^2 + |b|^2 - 2ab (one matrix product, no [n, m, d] temporary).
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aa = np.einsum("...nd,...nd->...n", a, a)[..., :, None]
    bb = np.einsum("...md,...md->...m", b, b)[..., None, :]
    d2 = aa + bb - 2.0 * (a @ np.swapaxes(b, -1, -2))
    return np.maximum(d2, 0.0)


def gaussian_kernel(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    """k(a, b) = exp(-gamma ||a - b||^2), float64, batched over leading axes."""
    return np.exp(-gamma * squared_distances(a, b))


GAMMA_SCALE = 2.0  # registries use GAMMA_SCALE x the median heuristic (docs/benchmark.md)


def default_gamma(features: np.ndarray) -> float:
    """The gamma a new registry fixes from its first model: a scaled median heuristic.

    The benchmark's gamma sweep (the paper's Figure 5) is flat from 0.5x to 5x the median
    heuristic and best around 2x for the weighted method, so registries start there.
    """
    return GAMMA_SCALE * median_heuristic_gamma(features)


def median_heuristic_gamma(features: np.ndarray, max_points: int = 2048, seed: int = 0) -> float:
    """gamma = 1 / median of the pairwise squared distances (off-diagonal).

    The median heuristic puts a typical pair of points at k = exp(-1): the kernel neither
    saturates (all ~1) nor vanishes (all ~0). Subsampled for large sets; deterministic.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.shape[0] < 2:
        raise ValueError("the median heuristic needs at least two points")
    if x.shape[0] > max_points:
        rng = np.random.default_rng(seed)
        x = x[rng.choice(x.shape[0], max_points, replace=False)]
    d2 = squared_distances(x, x)
    off_diagonal = d2[np.triu_indices(x.shape[0], k=1)]
    median = float(np.median(off_diagonal))
    if median <= 1e-12:
        raise ValueError("all points are identical: gamma cannot be chosen from the data")
    return 1.0 / median
