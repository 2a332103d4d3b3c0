"""Distances of a shortlist's candidates from the shortlist alone (no vectors read).

The local rule's distance of model m to image i is d_m = -log sum_j a_mj exp(-s d_mj^2), with
a_m the query's normalised point weights. A point the search did not return lies at
d >= the image's radius R, so putting the found points at their distances and the others at
R can only lower d_m: a LOWER BOUND, which proves that a candidate cannot enter the top k.
Putting the unreturned points at an expected distance instead (gmi.search.summaries) gives an
ESTIMATE, which orders candidates when nothing can be proved.

Both need the same per-point parts: the weights (the points' prompt ids and beta, not their
vectors), where each found point sits among its model's points and the weights' log-sum-exp.
`CandidatePoints` computes them once per shortlist; each bound or estimate then costs one
fill and one log-sum-exp (at 10^5 models, ~4,000 candidates x 48 points per query).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.backends import segment_lse
from gmi.search.shortlist import Shortlist
from gmi.search.weights import PointWeights


class CandidatePoints:
    """The weights of every point of a shortlist's candidates, for one query."""

    def __init__(
        self,
        arrays: PackedArrays,
        found: Shortlist,
        weights: PointWeights,
        groups: Sequence[Sequence[int]],
        scale: float,
    ) -> None:
        self.found, self.weights, self.groups, self.scale = found, weights, groups, scale
        self.counts = np.asarray(arrays.point_counts[found.slots])
        starts = arrays.point_offsets[found.slots]
        self.offsets = np.r_[0, np.cumsum(self.counts)].astype(np.int64)
        light = arrays.subset(found.slots, points=False)
        # reduced points' visual weights need their vectors: such hubs use the nearest point
        self.nearest_only = "visual" in weights.kinds and bool(
            (np.asarray(light.point_text) < 0).any()
        )
        if self.nearest_only:
            return
        self.where = self.offsets[found.column] + (found.rows - starts[found.column])
        logw = weights.point_logits(light, weights.tables(light), 0, int(self.offsets[-1]))
        self.logw = logw + np.log(np.asarray(light.beta, dtype=np.float64))[None]
        self.present = self.counts > 0
        self.segments = self.offsets[:-1][self.present]
        self.norm = segment_lse(self.logw, self.segments, self.counts[self.present])

    def lower_bounds(self) -> np.ndarray:
        """[G, C] lower bounds: unreturned points at each image's radius."""
        if self.nearest_only:
            return self._per_group(self.scale * self.found.nearest2)
        total = int(self.offsets[-1])
        return self._distances(np.repeat(self.found.radius2[:, None], total, axis=1))

    def estimates(self, unfound2: np.ndarray) -> np.ndarray:
        """[G, C] estimates: unreturned points at `unfound2` [T, C] (per image and candidate)."""
        if self.nearest_only:
            return self._per_group(self.scale * unfound2)
        return self._distances(np.repeat(unfound2, self.counts, axis=1))

    def _distances(self, d2: np.ndarray) -> np.ndarray:
        """The found points put at their distances into `d2` [T, points], then d_m."""
        np.minimum.at(d2, (self.found.image, self.where), self.found.d2)
        near = segment_lse(self.logw - self.scale * d2, self.segments, self.counts[self.present])
        per_image = np.full((len(self.weights.kinds), self.found.slots.size), np.inf)
        per_image[:, self.present] = -(near - self.norm)
        return self._per_group(per_image)

    def _per_group(self, per_image: np.ndarray) -> np.ndarray:
        return np.stack([per_image[list(g)].mean(axis=0) for g in self.groups])
