"""Score query images against ALL registered models in one vectorised pass.

Every model's spec is padded to the largest K and stacked: points [M, K, d], beta [M, K],
prompt contexts [M, K, e], a validity mask, and each model's Gram matrix of its points
[M, K, K] (precomputed once, float64). A query batch is then a few matrix products; there is no
Python loop over models (METHOD.md section 3, step 4):

    d_m = mean k(z_t, z_t') - 2 sum_j a_mj mean_t k(z_t, c_mj) + sum_jl a_mj a_ml k(c_mj, c_ml)

with a_mj = mass_m * w_mj beta_mj / sum_l w_ml beta_ml, w the prompt weights. Uniform w gives
a = beta, exactly the baseline RKME distance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gmi.errors import ConflictError
from gmi.spec.kernels import gaussian_kernel, squared_distances
from gmi.spec.specification import Specification

DEFAULT_TAU = 0.1  # temperature of the prompt kernel exp(cos / tau); measured, docs/architecture.md


@dataclass(frozen=True)
class SpecStack:
    """All models' specs, padded and stacked for vectorised scoring."""

    names: list[str]
    points: np.ndarray  # [M, K, d] float32
    beta: np.ndarray  # [M, K] float64, 0 on padding
    point_prompts: np.ndarray  # [M, K, e] float32
    mask: np.ndarray  # [M, K] bool
    gram: np.ndarray  # [M, K, K] float64
    gamma: float

    @classmethod
    def from_specs(cls, names: Sequence[str], specs: Sequence[Specification]) -> SpecStack:
        if not specs:
            raise ValueError("no specifications to stack")
        gammas = {round(s.gamma, 12) for s in specs}
        if len(gammas) != 1:
            raise ConflictError("specifications built with different gamma cannot be compared")
        encoders = {s.encoder for s in specs}
        if len(encoders) != 1:
            raise ConflictError(f"specifications from different encoders: {sorted(encoders)}")
        m = len(specs)
        k = max(s.n_points for s in specs)
        d = specs[0].points.shape[1]
        e = specs[0].point_prompts.shape[1]
        points = np.zeros((m, k, d), dtype=np.float32)
        beta = np.zeros((m, k), dtype=np.float64)
        prompts = np.zeros((m, k, e), dtype=np.float32)
        mask = np.zeros((m, k), dtype=bool)
        for i, spec in enumerate(specs):  # I/O-side assembly, not the scoring path
            n = spec.n_points
            points[i, :n] = spec.points
            beta[i, :n] = spec.beta
            prompts[i, :n] = spec.point_prompts
            mask[i, :n] = True
        gamma = specs[0].gamma
        gram = gaussian_kernel(points, points, gamma) * (mask[:, :, None] & mask[:, None, :])
        return cls(list(names), points, beta, prompts, mask, gram, gamma)

    def __len__(self) -> int:
        return len(self.names)


def prompt_weights(
    query_prompts: np.ndarray | None, stack: SpecStack, tau: float = DEFAULT_TAU
) -> np.ndarray:
    """Per-query, per-model point weights w [G, M, K], normalised over each model's points.

    w_mj is proportional to exp(cos(q_t, q_mj) / tau). query_prompts=None means uniform weights
    (the prompt-agnostic baseline) and returns [1, M, K].
    """
    if query_prompts is None:
        w = stack.mask[None].astype(np.float64)
    else:
        q = np.asarray(query_prompts, dtype=np.float64)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        cos = np.einsum("ge,mke->gmk", q, stack.point_prompts.astype(np.float64))
        logits = np.where(stack.mask[None], cos / tau, -np.inf)
        logits -= logits.max(axis=2, keepdims=True)
        w = np.exp(logits)
    return w / w.sum(axis=2, keepdims=True)


VISUAL_TEMPERATURE = 0.01  # of the visual prompt kernel, in squared feature distance


def visual_prompt_weights(
    query_visual: np.ndarray,
    point_visual: np.ndarray,
    mask: np.ndarray,
    temperature: float = VISUAL_TEMPERATURE,
) -> np.ndarray:
    """Point weights [G, M, K] from a learned *visual* prompt kernel.

    Each point's prompt is represented by what the hub's models draw for it (the mean image
    feature of that prompt over all models, `point_visual` [M, K, d]); a query prompt by the
    same quantity predicted from its text (`query_visual` [G, d]). Two prompts are then close
    when they produce similar pictures, not when their words mean similar things: "at night"
    matters more than "cat" vs "dog" to what the image looks like. w ~ exp(-||.||^2 / T).
    """
    q = np.asarray(query_visual, dtype=np.float64)
    m, k, d = point_visual.shape
    d2 = squared_distances(q, point_visual.reshape(m * k, d)).reshape(-1, m, k)
    logits = np.where(mask[None], -d2 / temperature, -np.inf)
    logits -= logits.max(axis=2, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=2, keepdims=True)


def score_queries(
    stack: SpecStack,
    query_features: np.ndarray,
    groups: Sequence[Sequence[int]] | None = None,
    query_prompts: np.ndarray | None = None,
    tau: float = DEFAULT_TAU,
    top: int | None = None,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Squared RKHS distances d [G, M] between each query group and each model (lower = better).

    query_features [T, d]: encoded query images. groups: which rows form one requirement
    (default: each image its own). query_prompts [G, e] or None (uniform weights).
    """
    z = np.asarray(query_features, dtype=np.float64)
    if groups is None:
        groups = [[t] for t in range(z.shape[0])]
    m, k, d = stack.points.shape
    cross = gaussian_kernel(z, stack.points.reshape(m * k, d), stack.gamma).reshape(-1, m, k)
    n_groups = len(groups)
    cross_mean = np.stack([cross[list(g)].mean(axis=0) for g in groups])  # [G, M, K]
    self_term = np.array(
        [gaussian_kernel(z[list(g)], z[list(g)], stack.gamma).mean() for g in groups]
    )
    w = prompt_weights(query_prompts, stack, tau) if weights is None else weights
    if top is not None:
        w = keep_top(w, top)
    if w.shape[0] == 1 and n_groups > 1:
        w = np.broadcast_to(w, (n_groups, m, k))
    elif w.shape[0] != n_groups:
        raise ValueError("one query prompt per group is needed")
    mass = stack.beta.sum(axis=1)  # [M]
    wb = w * stack.beta[None]
    a = wb * (mass[None, :, None] / np.maximum(wb.sum(axis=2, keepdims=True), 1e-300))
    cross_term = np.einsum("gmk,gmk->gm", a, cross_mean)
    quad_term = np.einsum("gmk,mkl,gml->gm", a, stack.gram, a)
    return self_term[:, None] - 2.0 * cross_term + quad_term


DEFAULT_SCORING = "local"  # measured best (docs/benchmark.md); "rkme" is the paper's method
LOCAL_SHARPNESS = 10.0  # the local kernel is this many times narrower than the spec's gamma


def keep_top(weights: np.ndarray, r: int) -> np.ndarray:
    """Restrict weights [G, M, K] to each model's r largest, renormalised (a local variant)."""
    if r >= weights.shape[2]:
        return weights
    threshold = -np.partition(-weights, r - 1, axis=2)[:, :, r - 1 : r]
    kept = np.where(weights >= threshold, weights, 0.0)
    return kept / kept.sum(axis=2, keepdims=True)


def score_local(
    stack: SpecStack,
    query_features: np.ndarray,
    image_prompts: np.ndarray | None = None,
    tau: float = DEFAULT_TAU,
    sharpness: float = LOCAL_SHARPNESS,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Prompt-weighted kernel density, per image [T, M] (lower = better):

        d_m = -log sum_j a_mj exp(-sharpness * gamma * ||z - c_mj||^2)

    with a the same prompt-and-beta weights as the weighted RKME. As sharpness grows this
    tends to nearest-neighbour search inside the prompt-weighted set ("kNN inside the weighted
    set"); at sharpness 1 it is the log of the RKME cross term. It drops the RKME's self term
    of the model, which penalises models whose relevant points are spread out.
    """
    z = np.asarray(query_features, dtype=np.float64)
    m, k, d = stack.points.shape
    d2 = squared_distances(z, stack.points.reshape(m * k, d)).reshape(-1, m, k)
    w = prompt_weights(image_prompts, stack, tau) if weights is None else weights
    a = w * stack.beta[None]
    a = a / np.maximum(a.sum(axis=2, keepdims=True), 1e-300)
    log_terms = np.where(
        a > 0, np.log(np.maximum(a, 1e-300)) - sharpness * stack.gamma * d2, -np.inf
    )
    peak = log_terms.max(axis=2, keepdims=True)
    return -(peak[..., 0] + np.log(np.exp(log_terms - peak).sum(axis=2)))


def score_requirements(
    stack: SpecStack,
    query_features: np.ndarray,
    groups: Sequence[Sequence[int]],
    image_prompts: np.ndarray | None = None,
    tau: float = DEFAULT_TAU,
    combine: str = "mean",
    scoring: str = "rkme",
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """Distances [G, M] for requirements made of one or several example images.

    scoring="rkme": the paper's weighted RKME distance; "local": prompt-weighted kernel
    density (score_local), measured best on the benchmark. weights [T, M, K] (per image), when
    given, replace the prompt weights (e.g. from a user-stated prompt).
    combine="mean" (default): each image is scored with its OWN prompt weights and a group
    takes the mean distance. combine="joint": the group's images form one empirical
    distribution scored with one averaged prompt (METHOD.md's single-embedding reading). The
    mean measured better with 4 images per requirement (docs/benchmark.md): averaging
    different prompts blurs the weights, while each image knows its own content.
    """
    if scoring not in ("local", "rkme"):  # the two formulas here (the registered rules with
        # their names: gmi.search.rules.SCORING_RULES)
        raise ValueError(f"unknown scoring {scoring!r}; valid: local, rkme")
    if combine == "joint" and scoring == "rkme":
        prompts = None if image_prompts is None else group_prompts(image_prompts, groups)
        return score_queries(stack, query_features, groups, prompts, tau, weights=weights)
    if combine not in ("mean", "joint"):
        raise ValueError(f"unknown combine rule {combine!r} (mean or joint)")
    if scoring == "local":
        per_image = score_local(stack, query_features, image_prompts, tau, weights=weights)
    else:
        per_image = score_queries(stack, query_features, None, image_prompts, tau, weights=weights)
    return np.stack([per_image[list(g)].mean(axis=0) for g in groups])


def group_prompts(prompts: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """One prompt embedding per group of images: the normalised mean of the images' ones."""
    p = np.asarray(prompts, dtype=np.float64)
    means = np.stack([p[list(g)].mean(axis=0) for g in groups])
    return (means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )
