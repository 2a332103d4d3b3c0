"""Scoring rules, registered by name like encoders: each turns the packed arrays and a query
into distances (lower = better). The display score of any rule is the hub's calibration of its
distances (gmi.spec.calibration), so a new rule needs no score code of its own.

    local   prompt-weighted kernel density (gmi's default, measured best; METHOD.md sec. 9)
    rkme    the paper's weighted RKME distance

Every rule has a float64 `reference` computed on padded chunks of models with the plain
formulas of gmi.spec.scoring (the ground truth the tests and benchmarks compare against). A
rule with a `fast` path (local) also scores in float32 over the flat arrays with precomputed
norms, chunked, on numpy or torch (gmi.search.backends).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.weights import PointWeights
from gmi.spec.kernels import gaussian_kernel
from gmi.spec.scoring import LOCAL_SHARPNESS, SpecStack, score_local, score_queries

REFERENCE_CHUNK_POINTS = 1 << 16  # points per padded float64 chunk: bounded memory


def padded(arrays: PackedArrays, slots: np.ndarray, gram: bool) -> tuple[SpecStack, np.ndarray]:
    """Slots as a padded SpecStack [C, K, d] plus each cell's flat point index (-1: padding)."""
    counts = arrays.point_counts[slots]
    k = max(int(counts.max()) if counts.size else 1, 1)
    cell = np.arange(k)[None, :]
    index = np.where(cell < counts[:, None], arrays.point_offsets[slots][:, None] + cell, -1)
    mask = index >= 0
    safe = np.where(mask, index, 0)
    rows = np.asarray(arrays.points[safe.ravel()]).reshape(*safe.shape, -1)  # decoded rows only
    points = np.where(mask[..., None], rows, 0.0).astype(np.float32)
    beta = np.where(mask, np.asarray(arrays.beta)[safe], 0.0)
    prompts = np.asarray(arrays.prompts)[np.asarray(arrays.point_prompt)[safe]]
    g = (
        gaussian_kernel(points, points, arrays.gamma) * (mask[:, :, None] & mask[:, None, :])
        if gram
        else np.zeros((len(slots), 0, 0))
    )
    names = [arrays.names[s] for s in slots]
    return SpecStack(names, points, beta, prompts, mask, g, arrays.gamma), index


def padded_weights(
    weights: PointWeights, tables: tuple, arrays: PackedArrays, index: np.ndarray
) -> np.ndarray:
    """Normalised point weights [T, C, K] of a padded chunk (0 on padding)."""
    mask = index >= 0
    flat = index[mask]
    logits = np.full((len(weights.kinds), *index.shape), -np.inf)
    if flat.size:
        lo, hi = int(flat.min()), int(flat.max()) + 1
        logits[:, mask] = weights.point_logits(arrays, tables, lo, hi)[:, flat - lo]
    logits -= logits.max(axis=2, keepdims=True)
    w = np.exp(logits)
    return w / w.sum(axis=2, keepdims=True)


def chunks_of(arrays: PackedArrays, slots: np.ndarray, chunk_points: int):
    """Consecutive pieces of `slots` holding about chunk_points points each."""
    counts = np.asarray(arrays.point_counts[slots])
    start, total = 0, 0
    for i, c in enumerate(counts):
        total += int(c)
        if total >= chunk_points:
            yield slots[start : i + 1]
            start, total = i + 1, 0
    if start < len(slots):
        yield slots[start:]


@dataclass(frozen=True)
class LocalRule:
    """d_m = -log sum_j a_mj exp(-sharpness * gamma * ||z - c_mj||^2) per image; a group takes
    the mean over its images."""

    name: str = "local"
    sharpness: float = LOCAL_SHARPNESS
    has_fast: bool = True

    def reference(
        self,
        arrays: PackedArrays,
        slots: np.ndarray,
        features: np.ndarray,
        weights: PointWeights,
        groups: Sequence[Sequence[int]],
        combine: str,
    ) -> np.ndarray:
        tables = weights.tables(arrays)
        out = np.empty((len(features), len(slots)))
        done = 0
        for part in chunks_of(arrays, slots, REFERENCE_CHUNK_POINTS):
            stack, index = padded(arrays, part, gram=False)
            w = padded_weights(weights, tables, arrays, index)
            out[:, done : done + len(part)] = score_local(
                stack, features, sharpness=self.sharpness, weights=w
            )
            done += len(part)
        return np.stack([out[list(g)].mean(axis=0) for g in groups])


@dataclass(frozen=True)
class RkmeRule:
    """The paper's weighted RKME: squared RKHS distance between the query's empirical
    embedding and the prompt-reweighted reduced set. combine="joint" scores a group's images
    as one distribution with one weight row per GROUP (the caller averages the prompts)."""

    name: str = "rkme"
    has_fast: bool = False

    def reference(
        self,
        arrays: PackedArrays,
        slots: np.ndarray,
        features: np.ndarray,
        weights: PointWeights,
        groups: Sequence[Sequence[int]],
        combine: str,
    ) -> np.ndarray:
        tables = weights.tables(arrays)
        joint = combine == "joint"
        rows = len(groups) if joint else len(features)
        out = np.empty((rows, len(slots)))
        done = 0
        for part in chunks_of(arrays, slots, REFERENCE_CHUNK_POINTS // 4):
            stack, index = _padded_with_gram(arrays, part)
            w = padded_weights(weights, tables, arrays, index)
            per = score_queries(stack, features, groups if joint else None, weights=w)
            out[:, done : done + len(part)] = per
            done += len(part)
        if joint:
            return out
        return np.stack([out[list(g)].mean(axis=0) for g in groups])


GRAM_CACHE_BYTES = 256 * 2**20  # Gram blocks kept per packed-arrays snapshot, at most


def _padded_with_gram(arrays: PackedArrays, part: np.ndarray) -> tuple[SpecStack, np.ndarray]:
    """A padded chunk with its models' Gram matrices [C, K, K] (float64). The Gram of a model
    does not depend on the query, so chunks are kept on the (immutable) arrays object, up to
    GRAM_CACHE_BYTES: the RKME then costs per query what the plain formulas cost."""
    key = ("gram", int(part[0]), int(part[-1]), len(part))
    cache = arrays.device_copies
    if key in cache:
        return cache[key]
    found = padded(arrays, part, gram=True)
    used = sum(v[0].gram.nbytes for k, v in cache.items() if k[0] == "gram")
    if used + found[0].gram.nbytes <= GRAM_CACHE_BYTES:
        cache[key] = found
    return found


class ScoringRule(Protocol):
    """What the ranking core needs of a rule: its name, whether the vectorised local kernel
    scores it (`has_fast`, with `sharpness`), and the float64 reference over given slots."""

    name: str
    has_fast: bool

    def reference(
        self,
        arrays: PackedArrays,
        slots: np.ndarray,
        features: np.ndarray,
        weights: PointWeights,
        groups: Sequence[Sequence[int]],
        combine: str,
    ) -> np.ndarray: ...


# THE name table of scoring rules: settings validation, `gmi init --scoring` and the ranking
# core read it; a new rule is one class here and one entry
SCORING_RULES: dict[str, ScoringRule] = {rule.name: rule for rule in (LocalRule(), RkmeRule())}
SCORINGS = tuple(SCORING_RULES)


def scoring_rule(name: str) -> ScoringRule:
    if name not in SCORING_RULES:
        raise ValueError(f"unknown scoring {name!r}; valid: {', '.join(SCORING_RULES)}")
    return SCORING_RULES[name]
