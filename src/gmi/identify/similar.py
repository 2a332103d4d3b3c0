"""Model-to-model search: the models that make images like a registered model's own.

Why through the identify ranking and not a symmetric MMD between specifications: the model's
spec images (the packed pair features, as encoded) ARE a requirement of many images, each
with the prompt it was drawn for. Ranking them as one requirement (each image weighted by its
own prompt, METHOD.md section 3; the group's mean distance) asks exactly what a hub user
means by "similar": which other models make these images for these prompts. It reuses
the searcher (an exact scan, or the ANN shortlist at hub scale), the scoring rule and the
calibrated score, with no per-model term to precompute. An MMD between two specifications
would need every model's self-kernel sum, which is O(n^2) per model and so must be packed
at submit time.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from gmi.errors import InvalidInputError, NotFoundError
from gmi.identify import steps
from gmi.registry.packed.index import PackedIndex
from gmi.search import ranking
from gmi.search.ranking import RankPlan
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings

MAX_TOP = 1000


@dataclass(frozen=True)
class SimilarModel:
    """One model close to the asked one: its calibrated score and distance."""

    model: str
    score: float
    distance: float

    def to_json(self) -> dict:
        return {"model": self.model, "score": self.score, "distance": self.distance}


def similar_models(
    index: PackedIndex, settings: HubSettings, plan: RankPlan, home: Path, name: str, top: int = 5
) -> list[SimilarModel]:
    """The `top` models closest to `name` (itself left out), best first. `plan` says where
    and with which searcher to rank; the scoring rule is the registry's."""
    if not 1 <= top <= MAX_TOP:
        raise InvalidInputError(f"--top must be between 1 and {MAX_TOP}")
    slot = index.position.get(name)
    if slot is None:
        raise NotFoundError(f"no model named {name!r}")
    arrays = index.arrays
    if not bool(np.asarray(arrays.alive)[slot]):
        why = index.skipped.get(name, "it is not in the packed index")
        raise InvalidInputError(f"model {name!r} cannot be compared: {why}")
    p0, p1 = int(arrays.pair_offsets[slot]), int(arrays.pair_offsets[slot + 1])
    if p1 == p0:
        raise InvalidInputError(f"model {name!r} has no spec images to compare")
    features = np.asarray(arrays.pair_features[p0:p1], dtype=np.float32)
    prompts = np.asarray(arrays.prompts)[np.asarray(arrays.pair_prompt[p0:p1])]
    weights = PointWeights.from_prompts(prompts, p1 - p0, settings.tau)
    groups = [list(range(p1 - p0))]
    weights = weights.for_rule(groups, settings.scoring, settings.combine)
    plan = replace(plan, scoring=settings.scoring, combine=settings.combine, k=top + 1)
    row = ranking.distances(arrays, features, weights, groups, plan)[0]
    row[slot] = np.inf
    order = ranking.top_k(row, top)
    scores = steps.calibration_of(index, home).score(row[order])
    return [
        SimilarModel(arrays.names[m], float(scores[r]), float(row[m])) for r, m in enumerate(order)
    ]
