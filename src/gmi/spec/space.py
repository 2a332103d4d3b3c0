"""A hub-learned feature space: within-model whitening fitted on the hub's own spec images.

Why: a model's spec images vary in content (whatever their prompts asked for) but share a
style; a query is told apart from the model's siblings by the style. The within-model scatter
S_w (how a model's images vary around that model's mean, pooled over the hub's models) says
which feature directions carry content and JPEG noise rather than style; whitening by it,

    W = (S_w / n + alpha * tr(S_w / n) / d * I) ^ (-1/2),   alpha = DEFAULT_SHRINKAGE

shrinks those directions and stretches the ones in which a model's images agree. Labels are
the models: no extra annotation, and a model the space never saw is projected like any other
(benchmarks/feature_space.py measures leave-model-out and leave-family-out).

The statistics are sufficient and additive (n, sum, X'X and sum_m s_m s_m' / n_m), so a
submit adds its model's images and a removal subtracts them, O(images x d^2), never O(hub);
`fit` is one d x d eigendecomposition. Pure float64 numpy functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gmi.spec.kernels import GAMMA_SCALE, median_heuristic_gamma

# Chosen on the validation split (docs/benchmark.md): top-1 is flat from 0.3 to 10 (within
# 0.01), and only strong shrinkage keeps the calibration honest: whitening stretches the
# directions in which a model's spec images agree, and uploads differ from them there (crop,
# resize), so at alpha = 1 genuine queries looked farther than held-out spec images and 7.8%
# of them were called "no close match"; at 10, 0.8% (as encoded: 0%).
DEFAULT_SHRINKAGE = 10.0
SPACES = ("identity", "whiten")
DEFAULT_SPACE = "whiten"  # new registries; registries made before it keep "identity"
REFIT_GROWTH = 2.0  # refit when the live models reach this multiple of those fitted on


def enough_images(n_images: int, dim: int) -> bool:
    """Whether a hub holds enough spec images to learn its space: at least one per feature
    dimension (1,056 for the default encoder: 22 models of 48 images). Below that the
    within-model scatter is mostly the shrinkage target, and the images it was fitted on are
    the ones the calibration holds out: fresh uploads would look farther than they are, and
    "no close match" would fire on genuine queries (measured on a 3-model hub). A smaller hub
    ranks as encoded."""
    return n_images >= max(dim, 2)


@dataclass(frozen=True)
class ScatterStatistics:
    """Running statistics of labelled features: enough for the within-model scatter."""

    n: int
    total: np.ndarray  # [d] sum of all features
    second: np.ndarray  # [d, d] sum of x x'
    between: np.ndarray  # [d, d] sum over models of s_m s_m' / n_m

    @classmethod
    def empty(cls, d: int) -> ScatterStatistics:
        return cls(0, np.zeros(d), np.zeros((d, d)), np.zeros((d, d)))

    def add(self, features: np.ndarray, sign: int = 1) -> ScatterStatistics:
        """These statistics with one model's features [n_m, d] added (sign=-1: removed)."""
        x = np.asarray(features, dtype=np.float64)
        if x.shape[0] == 0:
            return self
        s = x.sum(axis=0)
        return ScatterStatistics(
            self.n + sign * x.shape[0],
            self.total + sign * s,
            self.second + sign * (x.T @ x),
            self.between + sign * np.outer(s, s) / x.shape[0],
        )

    def subtract(self, features: np.ndarray) -> ScatterStatistics:
        return self.add(features, sign=-1)

    @classmethod
    def of(cls, features_per_model: Sequence[np.ndarray]) -> ScatterStatistics:
        features = [np.asarray(x) for x in features_per_model if len(x)]
        counts = np.array([len(x) for x in features], dtype=np.int64)
        return cls.of_segments(np.concatenate(features), counts)

    @classmethod
    def of_segments(cls, features: np.ndarray, counts: np.ndarray) -> ScatterStatistics:
        """Statistics of consecutive models' features [sum(counts), d] in a few products (the
        registry feeds its packed rows chunk by chunk and merges)."""
        x = np.asarray(features, dtype=np.float64)
        counts = np.asarray(counts, dtype=np.int64)
        counts = counts[counts > 0]
        if x.shape[0] == 0:
            return cls.empty(x.shape[1])
        sums = np.add.reduceat(x, np.r_[0, np.cumsum(counts)[:-1]], axis=0)
        return cls(int(x.shape[0]), x.sum(axis=0), x.T @ x, (sums / counts[:, None]).T @ sums)

    def merge(self, other: ScatterStatistics) -> ScatterStatistics:
        return ScatterStatistics(
            self.n + other.n,
            self.total + other.total,
            self.second + other.second,
            self.between + other.between,
        )

    def within(self) -> np.ndarray:
        """The pooled within-model covariance [d, d] (S_w / n)."""
        if self.n == 0:
            raise ValueError("no features: the within-model scatter is undefined")
        scatter = self.second - self.between
        return (scatter + scatter.T) / (2 * self.n)


def whitening(stats: ScatterStatistics, shrinkage: float = DEFAULT_SHRINKAGE) -> np.ndarray:
    """The symmetric whitening matrix W [d, d] (float64): features map to x @ W.

    Shrinkage towards a multiple of the identity keeps W well conditioned when a hub has fewer
    images than dimensions: alpha x the average variance is added in every direction."""
    within = stats.within()
    d = within.shape[0]
    ridge = shrinkage * np.trace(within) / d
    values, vectors = np.linalg.eigh(within + max(ridge, 1e-12) * np.eye(d))
    return (vectors * np.maximum(values, 1e-12) ** -0.5) @ vectors.T


def project(features: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Features [n, d] in the learned space, float32 like every stored feature (a float32
    product: the matrix is stored in float32, and upcasting its d x d entries per query would
    cost more than the product)."""
    x = np.asarray(features, dtype=np.float32)
    return np.asarray(x @ np.asarray(matrix, dtype=np.float32), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class FittedSpace:
    """One version of a hub's learned space: the matrix, the kernel width in it, and how many
    models it was fitted on (the refit rule compares the hub's size with it)."""

    matrix: np.ndarray  # [d, d] float32
    gamma: float
    models: int
    shrinkage: float = DEFAULT_SHRINKAGE

    def project(self, features: np.ndarray) -> np.ndarray:
        return project(features, self.matrix)

    def due(self, live_models: int) -> bool:
        """Whether a hub of `live_models` models should refit: amortised O(1) per submit
        (each refit re-projects the hub once, and the hub has doubled since the last)."""
        return live_models >= REFIT_GROWTH * max(self.models, 1)

    def to_tensors(self) -> dict[str, np.ndarray]:
        return {
            "matrix": np.ascontiguousarray(self.matrix, dtype=np.float32),
            "gamma": np.array([self.gamma], dtype=np.float64),
            "models": np.array([self.models], dtype=np.int64),
            "shrinkage": np.array([self.shrinkage], dtype=np.float64),
        }

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> FittedSpace:
        return cls(
            np.asarray(tensors["matrix"], dtype=np.float32),
            float(tensors["gamma"][0]),
            int(tensors["models"][0]),
            float(tensors["shrinkage"][0]),
        )


def fit_space(
    stats: ScatterStatistics,
    sample: np.ndarray,
    models: int,
    shrinkage: float = DEFAULT_SHRINKAGE,
) -> FittedSpace:
    """The whitening of these statistics, with the kernel width of the space: GAMMA_SCALE x
    the median heuristic of `sample` (features drawn from the fitted models) once projected.
    The hub is known when its space is fitted, so the width comes from the pooled hub, not
    from its first model as the registry's encoder-space gamma must."""
    matrix = whitening(stats, shrinkage)
    gamma = GAMMA_SCALE * median_heuristic_gamma(np.asarray(sample, dtype=np.float64) @ matrix)
    return FittedSpace(matrix.astype(np.float32), float(gamma), int(models), shrinkage)


def fit_space_of(
    features_per_model: Sequence[np.ndarray], shrinkage: float = DEFAULT_SHRINKAGE
) -> FittedSpace:
    """The space of these models' features (one array [n_m, d] per model), all in memory
    (benchmarks, tests; the registry streams its packed rows through `of_segments`)."""
    models = [np.asarray(x) for x in features_per_model if len(x)]
    if not models or sum(len(x) for x in models) < 2:
        raise ValueError("a learned space needs at least two images")
    pooled = np.concatenate(models)
    # the median heuristic subsamples 2,048 points deterministically: bounded cost
    return fit_space(ScatterStatistics.of(models), pooled, len(models), shrinkage)
