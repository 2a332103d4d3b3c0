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

A compact space keeps the top r directions of the whitened hub in which its MODELS differ
(the generalised eigenproblem of between- and within-model scatter, the hub mean removed):
what tells a query's model from its siblings. The points are then r-wide
(r = DEFAULT_SPACE_DIMS of d = 1,056 by default), stored as bfloat16 (gmi.search.bf16), and
the scan reads 16x fewer bytes; the kernel width stays the full whitened space's, so that the
directions left out only add a nearly common term to every distance of a query
(benchmarks/compact_space.py measures agreement with the full space and the ranking).
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
# directions a new registry's space keeps (0 = all d); chosen on the validation split and the
# agreement with the full space (docs/scale.md "The compact space")
DEFAULT_SPACE_DIMS = 128


def storage_of(dims: int) -> str:
    """How a newly fitted space of `dims` directions stores its points: bfloat16 when compact
    (the format compact spaces came with), float32 for a full-width one (as before them)."""
    return "bfloat16" if dims > 0 else "float32"


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


def project(features: np.ndarray, matrix: np.ndarray, mean: np.ndarray | None = None) -> np.ndarray:
    """Features [n, d] in the learned space [n, r], float32 like every stored feature (a
    float32 product: the matrix is stored in float32, and upcasting its d x r entries per
    query would cost more than the product). `mean` (the hub mean, None for spaces fitted
    before it was kept) is removed first: distances do not change, norms shrink."""
    x = np.asarray(features, dtype=np.float32)
    if mean is not None:
        x = x - np.asarray(mean, dtype=np.float32)
    return np.asarray(x @ np.asarray(matrix, dtype=np.float32), dtype=np.float32)


@dataclass(frozen=True, eq=False)
class FittedSpace:
    """One version of a hub's learned space: the matrix, the kernel width in it, how many
    models it was fitted on (the refit rule compares the hub's size with it), the hub mean it
    centres on and how its points are stored. Spaces written before compact spaces have a
    square matrix, no mean and float32 points; they read and rank as they did."""

    matrix: np.ndarray  # [d, r] float32 (r = d: the full whitening)
    gamma: float
    models: int
    shrinkage: float = DEFAULT_SHRINKAGE
    mean: np.ndarray | None = None  # [d] float32
    storage: str = "float32"  # or "bfloat16" (gmi.search.bf16.STORAGES)

    @property
    def dims(self) -> int:
        return int(self.matrix.shape[1])

    def project(self, features: np.ndarray) -> np.ndarray:
        return project(features, self.matrix, self.mean)

    def due(self, live_models: int) -> bool:
        """Whether a hub of `live_models` models should refit: amortised O(1) per submit
        (each refit re-projects the hub once, and the hub has doubled since the last)."""
        return live_models >= REFIT_GROWTH * max(self.models, 1)

    def to_tensors(self) -> dict[str, np.ndarray]:
        tensors = {
            "matrix": np.ascontiguousarray(self.matrix, dtype=np.float32),
            "gamma": np.array([self.gamma], dtype=np.float64),
            "models": np.array([self.models], dtype=np.int64),
            "shrinkage": np.array([self.shrinkage], dtype=np.float64),
        }
        if self.mean is not None:
            tensors["mean"] = np.ascontiguousarray(self.mean, dtype=np.float32)
        if self.storage != "float32":  # absent = float32: the files before bfloat16
            tensors["bfloat16"] = np.array([1], dtype=np.int8)
        return tensors

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> FittedSpace:
        mean = tensors.get("mean")
        return cls(
            np.asarray(tensors["matrix"], dtype=np.float32),
            float(tensors["gamma"][0]),
            int(tensors["models"][0]),
            float(tensors["shrinkage"][0]),
            None if mean is None else np.asarray(mean, dtype=np.float32),
            "bfloat16" if "bfloat16" in tensors else "float32",
        )


# directions are ranked by between-model variance once whitened (the generalised
# eigenproblem S_b v = l S_w v, shrunk like the whitening), plus this share of the total
# variance: a hub of M models has M - 1 between-model directions, and the rest are ordered by
# how much the images vary in them
TOTAL_SHARE = 1e-3


def discriminant_directions(
    stats: ScatterStatistics, matrix: np.ndarray, dims: int, total_share: float = TOTAL_SHARE
) -> np.ndarray:
    """The top `dims` directions [d, dims] (orthonormal in the space `matrix` maps to) in
    which the hub's models differ most once whitened: eigenvectors of the mapped between-model
    covariance (+ total_share x the mapped total covariance), largest first; signs fixed so
    that each direction's largest entry is positive (the same statistics give the same
    space)."""
    mean = stats.total / stats.n
    total = stats.second / stats.n - np.outer(mean, mean)
    between = stats.between / stats.n - np.outer(mean, mean)
    mapped = matrix.T @ (between + total_share * total) @ matrix
    values, vectors = np.linalg.eigh((mapped + mapped.T) / 2)
    top = vectors[:, np.argsort(values)[::-1][:dims]]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(top.shape[1])])
    return top * np.where(signs == 0, 1.0, signs)


def fit_space(
    stats: ScatterStatistics,
    sample: np.ndarray,
    models: int,
    shrinkage: float = DEFAULT_SHRINKAGE,
    dims: int = 0,
    storage: str = "float32",
) -> FittedSpace:
    """The whitening of these statistics, centred on the hub mean, kept to its top `dims`
    principal directions (0 or >= d: all), with the kernel width of the FULL whitened space:
    GAMMA_SCALE x the median heuristic of `sample` (features drawn from the fitted models)
    once projected. The hub is known when its space is fitted, so the width comes from the
    pooled hub, not from its first model as the registry's encoder-space gamma must."""
    matrix = whitening(stats, shrinkage)
    mean = stats.total / stats.n
    centred = np.asarray(sample, dtype=np.float64) - mean
    gamma = GAMMA_SCALE * median_heuristic_gamma(centred @ matrix)
    if 0 < dims < matrix.shape[0]:
        matrix = matrix @ discriminant_directions(stats, matrix, dims)
    return FittedSpace(
        matrix.astype(np.float32),
        float(gamma),
        int(models),
        shrinkage,
        mean.astype(np.float32),
        storage,
    )


def fit_space_of(
    features_per_model: Sequence[np.ndarray],
    shrinkage: float = DEFAULT_SHRINKAGE,
    dims: int = 0,
    storage: str = "float32",
) -> FittedSpace:
    """The space of these models' features (one array [n_m, d] per model), all in memory
    (benchmarks, tests; the registry streams its packed rows through `of_segments`)."""
    models = [np.asarray(x) for x in features_per_model if len(x)]
    if not models or sum(len(x) for x in models) < 2:
        raise ValueError("a learned space needs at least two images")
    pooled = np.concatenate(models)
    # the median heuristic subsamples 2,048 points deterministically: bounded cost
    stats = ScatterStatistics.of(models)
    return fit_space(stats, pooled, len(models), shrinkage, dims, storage)
