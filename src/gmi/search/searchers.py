"""The searcher seam: which models the exact scorer ranks for a query.

`exact` scores every live model (the reference, and the right choice up to ~10^4-10^5 models
on a CPU). An approximate searcher returns, per query image, the slots owning its N nearest
spec points and the squared distance R^2 of the N-th; the ranking core (gmi.search.ranking)
scores only those slots exactly and, for the local rule, proves the shortlist complete
(METHOD.md section 9) or asks again with a larger N. Registered by name, like encoders:

    exact   every live model
    ann     FAISS over the registry's spec points, kept beside it (gmi.search.ann)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from gmi.search.arrays import PackedArrays


@dataclass(frozen=True)
class Shortlist:
    """What an approximate searcher found for the query images [T]."""

    slots: np.ndarray  # [C] sorted unique live slots owning one of some image's N nearest points
    nearest2: np.ndarray  # [T, C] squared distance of each image's nearest found point of each
    #                       candidate (radius2 of that image when none of its points was found)
    radius2: np.ndarray  # [T] squared distance of each image's N-th nearest point (inf: fewer)
    exhaustive: bool  # N covered every indexed point: the shortlist is all there is

    @classmethod
    def from_neighbours(
        cls, arrays: PackedArrays, ids: np.ndarray, d2: np.ndarray, exhaustive: bool
    ) -> Shortlist:
        """From a k-NN answer over point rows: ids/d2 [T, n] (id -1: no more points). Rows
        beyond these arrays (indexed by a newer state) and dead slots are dropped."""
        t = ids.shape[0]
        radius2 = np.where(ids[:, -1] >= 0, d2[:, -1], np.inf).astype(np.float64)
        valid = (ids >= 0) & (ids < len(arrays.points))
        owner = np.full(ids.shape, -1, np.int64)
        owner[valid] = np.searchsorted(np.asarray(arrays.point_offsets), ids[valid], "right") - 1
        valid &= np.asarray(arrays.alive)[np.maximum(owner, 0)]
        slots, column = np.unique(owner[valid], return_inverse=True)
        nearest2 = np.repeat(radius2[:, None], slots.size, axis=1)
        rows = np.broadcast_to(np.arange(t)[:, None], ids.shape)[valid]
        np.minimum.at(nearest2, (rows, column), d2[valid].astype(np.float64))
        return cls(slots, nearest2, radius2, exhaustive)


class Searcher(Protocol):
    name: str

    def shortlist(self, arrays: PackedArrays, features: np.ndarray, n: int) -> Shortlist | None:
        """The slots owning the `n` nearest points of each image (features already in the
        points' space); None = score every live slot."""


class ExactSearcher:
    name = "exact"

    def shortlist(self, arrays: PackedArrays, features: np.ndarray, n: int) -> Shortlist | None:
        return None


EXACT = ExactSearcher()
SEARCHER_NAMES = ("exact", "ann")


def load_searcher(name: str) -> Searcher:
    """A searcher by name (the ANN one imports FAISS only when asked for)."""
    if name == "exact":
        return EXACT
    if name == "ann":
        from gmi.search.ann import ANN

        return ANN
    raise ValueError(f"unknown searcher {name!r}; valid: {', '.join(SEARCHER_NAMES)}")
