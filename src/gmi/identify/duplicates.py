"""Near-duplicates: is a newly submitted model a copy of one the hub already has (a re-upload
under another name, a renamed checkpoint)?

Two kinds of evidence, the certain one first:
- the same checkpoint: a checkpoint identity (hash, AIR) the new model was submitted with is
  already registered for another model;
- images that cannot be told apart from the other model's: a statistical test against each
  of the CANDIDATES models `gmi similar` ranks closest.

Why a test and not a distance threshold: on the zoo, copies of one model lie farther apart
(0.13-0.49) than two distinct siblings of another family (0.275, docs/similar.md); no fixed
distance, nor a score calibrated hub-wide, separates them. A test judges each pair on its own
noise. Where the two models were drawn for the same prompts (a hub's standard prompt set),
their images are compared prompt by prompt (paired_test): the prompts' content cancels and a
sibling's change of manner stands out against seed noise; otherwise the kernel two-sample
test (MMD^2, copy_test) compares the two sets. Either way a model is flagged when its
statistic stays within the NULL_QUANTILE of the statistic's null (random sign flips of the
paired differences; random splits of the pooled images): what a copy looks like. Measured
on both zoos in docs/similar.md (benchmarks/near_duplicates.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gmi.registry.base import Store
from gmi.registry.packed.index import PackedIndex

PERMUTATIONS = 2000
NULL_QUANTILE = 0.999
MIN_PAIRED = 8  # prompts two models must share for the paired test
CANDIDATES = 3  # the models `similar` ranks closest that are tested


@dataclass(frozen=True)
class NearDuplicate:
    """The registered model a new one copies, and the evidence."""

    model: str
    reason: str  # "checkpoint" (a shared checkpoint identity) or "images"
    statistic: float = 0.0  # MMD^2 of the new model's images against the other's
    threshold: float = 0.0  # the other model's own split-half null: mean + NULL_Z std

    def to_json(self) -> dict:
        return {
            "model": self.model,
            "reason": self.reason,
            "statistic": self.statistic,
            "threshold": self.threshold,
        }


def _kernel(a: np.ndarray, b: np.ndarray, gamma: float) -> np.ndarray:
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.exp(-gamma * np.maximum(d2, 0.0))


def _mmd2_of(pooled: np.ndarray, first: np.ndarray) -> float:
    """Unbiased MMD^2 of the split of a pooled kernel matrix into `first` (bool) / the rest."""
    second = ~first
    m, n = int(first.sum()), int(second.sum())
    kxx = pooled[np.ix_(first, first)]
    kyy = pooled[np.ix_(second, second)]
    within_x = (kxx.sum() - np.trace(kxx)) / (m * (m - 1))
    within_y = (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(within_x + within_y - 2.0 * pooled[np.ix_(first, second)].mean())


def mmd2(x: np.ndarray, y: np.ndarray, gamma: float) -> float:
    """Unbiased MMD^2 between two samples with the Gaussian kernel exp(-gamma ||a - b||^2),
    summed in float64 (METHOD.md section 7: the statistic is small next to its terms)."""
    pooled = np.concatenate([x, y]).astype(np.float64)
    first = np.arange(len(pooled)) < len(x)
    return _mmd2_of(_kernel(pooled, pooled, gamma), first)


def copy_test(
    new: np.ndarray, other: np.ndarray, gamma: float, seed: int = 0
) -> tuple[float, float]:
    """(statistic, threshold): the unbiased MMD^2 of the two samples, and the NULL_QUANTILE
    of its permutation null (the pooled images split at random, PERMUTATIONS times): a
    statistic at or below it does not show the two samples come from different models."""
    pooled = np.concatenate([new, other]).astype(np.float64)
    kernel = _kernel(pooled, pooled, gamma)
    first = np.arange(len(pooled)) < len(new)
    statistic = _mmd2_of(kernel, first)
    rng = np.random.default_rng(seed)
    null = [_mmd2_of(kernel, rng.permutation(first)) for _ in range(PERMUTATIONS)]
    return statistic, float(np.quantile(null, NULL_QUANTILE))


def paired_test(
    new: np.ndarray, other: np.ndarray, prompts: np.ndarray, seed: int = 0
) -> tuple[float, float]:
    """(statistic, threshold) for images paired by prompt (row i of `new` and `other` drawn
    for prompt embedding `prompts[i]`). The statistic sums the paired differences' inner
    products weighted by how alike their prompts are: sum_ij kq(i, j) <d_i, d_j>. A sibling
    that changes its manner the same way for every prompt adds up over all pairs; one that
    changes it one way for day prompts and the other for night prompts (the paper's
    Example B.1: the same images overall) adds up over pairs of alike prompts; a copy's
    differences are seed noise, symmetric about zero. The threshold is the NULL_QUANTILE of
    the statistic under random sign flips of the differences (exact for a copy).
    Pairing by prompt removes what the prompts put in the images, which dominates their
    variance."""
    d = np.asarray(new, dtype=np.float64) - np.asarray(other, dtype=np.float64)
    q = np.asarray(prompts, dtype=np.float64)
    q2 = np.square(q[:, None, :] - q[None, :, :]).sum(-1)
    median = np.median(q2[np.triu_indices(len(q), 1)]) if len(q) > 1 else 1.0
    weighted = np.exp(-q2 / max(median, 1e-12)) * (d @ d.T)
    statistic = float(weighted.sum())
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(PERMUTATIONS, len(d)))
    null = np.einsum("bi,ij,bj->b", signs, weighted, signs)
    return statistic, float(np.quantile(null, NULL_QUANTILE))


@dataclass(frozen=True)
class ModelImages:
    """A model's spec images as the tests read them: features (as encoded), where the hub
    compares them (its learned space), their prompts' texts and embeddings."""

    features: np.ndarray
    points: np.ndarray
    texts: list[str]
    prompts: np.ndarray


def model_images(index: PackedIndex, name: str) -> ModelImages:
    arrays = index.arrays
    slot = index.position[name]
    p0, p1 = int(arrays.pair_offsets[slot]), int(arrays.pair_offsets[slot + 1])
    features = np.asarray(arrays.pair_features[p0:p1], dtype=np.float32)
    prompts = np.asarray(arrays.prompts)[np.asarray(arrays.pair_prompt[p0:p1])]
    texts = [arrays.texts[int(t)] for t in np.asarray(arrays.pair_text[p0:p1])]
    return ModelImages(features, arrays.to_space(features), texts, prompts)


def test_copy(new: ModelImages, other: ModelImages, gamma: float) -> tuple[str, float, float]:
    """(test, statistic, threshold): paired by prompt where the two models share at least
    MIN_PAIRED prompts (a hub's standard prompt set; the first image of each), on the
    features as encoded; else the kernel two-sample test in the hub's space."""
    first_new = {text: i for i, text in reversed(list(enumerate(new.texts)))}
    first_other = {text: i for i, text in reversed(list(enumerate(other.texts)))}
    shared = sorted(set(first_new) & set(first_other))
    if len(shared) >= MIN_PAIRED:
        rows_new = [first_new[t] for t in shared]
        rows_other = [first_other[t] for t in shared]
        statistic, threshold = paired_test(
            new.features[rows_new], other.features[rows_other], new.prompts[rows_new]
        )
        return "paired", statistic, threshold
    return ("mmd", *copy_test(new.points, other.points, gamma))


def near_duplicate(index: PackedIndex, name: str, candidates: list[str]) -> NearDuplicate | None:
    """Whether the images of `name` (registered, in `index`) cannot be told apart from those
    of one of `candidates` (the models most similar to it, best first)."""
    new = model_images(index, name)
    if len(new.texts) < 4:
        return None
    for other in candidates[:CANDIDATES]:
        if other not in index.position:
            continue
        images = model_images(index, other)
        if len(images.texts) < 4:
            continue
        _, statistic, threshold = test_copy(new, images, index.arrays.gamma)
        if statistic <= threshold:
            return NearDuplicate(other, "images", statistic, threshold)
    return None


def find_near_duplicate(
    store: Store, index: Callable[[], PackedIndex], name: str, similar: Callable[[], list[str]]
) -> NearDuplicate | None:
    """Whether registered model `name` copies another: a checkpoint identity it shares with
    another model, else the images of the models `similar()` ranks closest (best first).
    None on a hub of one model."""
    keys = store.model_hashes(name)
    for _, names in sorted(store.models_with_keys(keys).items()):
        others = [n for n in names if n != name]
        if others:
            return NearDuplicate(others[0], "checkpoint")
    if store.count() < 2:
        return None
    return near_duplicate(index(), name, similar())
