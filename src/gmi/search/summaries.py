"""Per-model summaries of the packed points (mean and spread), for ordering a shortlist.

Why: at hub scale the local rule's kernel is wide next to the distances between sibling
models (benchmarks/ann.py at 10^5 models: s*gamma*R^2 ~ 0.75 for the 16,384th nearest point,
k-th best distance 1.1-1.9), so a model's distance is a weighted average over MOST of its
points, not its nearest few: no point shortlist certifies there, and the lower bound (the
points not returned put at the radius) orders candidates poorly. Putting the points a search
did not return at their model's EXPECTED squared distance instead, ||z - mean||^2 + spread
(spread = mean ||c - mean||^2), estimates the distance well enough that the true top 10 are
among the first few hundred candidates (docs/scale.md). The estimate only orders: every
model answered is scored exactly.

Kept in memory beside the searcher's index, extended as rows are committed (whole models);
one pass over the points when an index is opened.
"""

from __future__ import annotations

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.backends import slot_chunks

CHUNK_POINTS = 1 << 16


class ModelSummaries:
    """Means [S, r] (float32) and spreads [S] (float64 sums) of the slots summarised so far."""

    def __init__(self, dim: int) -> None:
        self.means = np.zeros((0, dim), np.float32)
        self.spread = np.zeros(0, np.float64)

    @property
    def slots(self) -> int:
        return int(self.spread.size)

    def extend(self, arrays: PackedArrays) -> None:
        """Summarise the slots of `arrays` not summarised yet (rows only ever grow)."""
        offsets = np.asarray(arrays.point_offsets)
        s0, s1 = self.slots, arrays.n_slots
        if s1 <= s0:
            return
        means = np.zeros((s1 - s0, self.means.shape[1]), np.float32)
        spread = np.zeros(s1 - s0, np.float64)
        for s, e in slot_chunks(offsets, s0, s1, CHUNK_POINTS):
            p0, p1 = int(offsets[s]), int(offsets[e])
            counts = np.diff(offsets[s : e + 1])
            present = counts > 0
            if p1 == p0:
                continue
            # float32 sums (the means only order candidates; 48 terms lose ~1e-6 of them) and
            # the stored squared norms: one decoded pass, no float64 copy of the points (the
            # float64 pass took 148 s at 10^6 models)
            values = np.asarray(arrays.points[p0:p1], dtype=np.float32)
            starts = (offsets[s:e] - p0)[present]
            mean = np.add.reduceat(values, starts, axis=0) / counts[present, None]
            norms = np.asarray(arrays.sq_norms[p0:p1], dtype=np.float64)
            norms = np.add.reduceat(norms, starts)
            index = np.flatnonzero(present) + s - s0
            means[index] = mean
            mean64 = mean.astype(np.float64)
            spread[index] = np.maximum(norms / counts[present] - (mean64**2).sum(axis=1), 0.0)
        self.means = np.concatenate([self.means, means])
        self.spread = np.concatenate([self.spread, spread])

    def expected2(self, features: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """[T, C] expected squared distance of each image to a point of each slot."""
        z = np.asarray(features, dtype=np.float64)
        mean = self.means[slots].astype(np.float64)
        cross = z @ mean.T
        zz = np.einsum("td,td->t", z, z)[:, None]
        mm = np.einsum("cd,cd->c", mean, mean)[None]
        return np.maximum(zz + mm - 2.0 * cross, 0.0) + self.spread[slots][None]
