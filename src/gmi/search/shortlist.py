"""What a searcher answers (Shortlist) and the interface every searcher has (Searcher).

Its own file so that the searchers (gmi.search.ann, gmi.search.milvus) and the name table that
loads them (gmi.search.searchers) import it without importing each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gmi.search.arrays import PackedArrays


@dataclass(frozen=True)
class Shortlist:
    """What an approximate searcher found for the query images [T]: the candidate slots and
    every valid neighbour found (image, point row, squared distance), so that the ranking core
    can bound each candidate's distance before reading its points."""

    slots: np.ndarray  # [C] sorted unique live slots owning one of some image's N nearest points
    radius2: np.ndarray  # [T] squared distance of each image's N-th nearest point (inf: all)
    exhaustive: bool  # every indexed point was looked at and returned: nothing is unlisted
    image: np.ndarray  # [F] which query image each found neighbour is of
    rows: np.ndarray  # [F] its packed point row
    d2: np.ndarray  # [F] float64 its squared distance
    column: np.ndarray  # [F] its slot's index in `slots`
    # [T, C] each image's expected squared distance to a point of each candidate (None: not
    # asked for); orders the candidates when the shortlist cannot certify (gmi.search.summaries)
    expected2: np.ndarray | None = None

    def with_expected(self, expected2: np.ndarray) -> Shortlist:
        return dataclasses.replace(self, expected2=expected2)

    @classmethod
    def from_neighbours(
        cls,
        arrays: PackedArrays,
        ids: np.ndarray,
        d2: np.ndarray,
        exhaustive: bool,
        radius2: np.ndarray | None = None,
    ) -> Shortlist:
        """From a k-NN answer over point rows: ids/d2 [T, n] (id -1: no more points). Rows
        beyond these arrays (indexed by a newer state) and dead slots are dropped. `radius2`
        [T]: how far the index vouches that nothing unreturned lies (default: its farthest
        answer; less when its distances are approximate)."""
        returned = ids >= 0
        # the N-th distance; an index that returned fewer (an inverted file probes some lists
        # only) vouches for its farthest answer, not beyond; none at all vouches for nothing
        if radius2 is None:
            radius2 = np.where(returned, d2, -np.inf).max(axis=1)
        radius2 = np.asarray(radius2, dtype=np.float64)
        radius2 = np.inf if exhaustive else np.maximum(radius2, 0.0)
        radius2 = np.broadcast_to(radius2, (ids.shape[0],)).astype(np.float64)
        valid = returned & (ids < len(arrays.points))
        owner = np.full(ids.shape, -1, np.int64)
        owner[valid] = np.searchsorted(np.asarray(arrays.point_offsets), ids[valid], "right") - 1
        valid &= np.asarray(arrays.alive)[np.maximum(owner, 0)]
        slots, column = np.unique(owner[valid], return_inverse=True)
        image = np.broadcast_to(np.arange(ids.shape[0])[:, None], ids.shape)[valid]
        return cls(
            slots=slots,
            radius2=radius2,
            exhaustive=exhaustive,
            image=image,
            rows=ids[valid].astype(np.int64),
            d2=d2[valid].astype(np.float64),
            column=column.ravel(),
        )

    @property
    def nearest2(self) -> np.ndarray:
        """[T, C] squared distance of each image's nearest found point of each candidate (the
        image's radius2 when none of its points was found)."""
        out = np.repeat(self.radius2[:, None], self.slots.size, axis=1)
        np.minimum.at(out, (self.image, self.column), self.d2)
        return out


class Searcher(Protocol):
    """Every searcher, by the same methods: callers (identify, `gmi index`, `gmi check`)
    never ask which one it is. `indexed`: it keeps an index beside the registry (exact does
    not: its status is empty, nothing to check or rebuild)."""

    name: str
    indexed: bool

    def shortlist(
        self, arrays: PackedArrays, features: np.ndarray, n: int, estimate: bool = False
    ) -> Shortlist | None:
        """The slots owning the `n` nearest points of each image (features already in the
        points' space); None = score every live slot. `estimate`: also each candidate's
        expected distance (Shortlist.expected2), if the searcher can tell."""

    def sync(self, arrays: PackedArrays) -> int:
        """Bring the index up to every committed row of `arrays`; returns its row count."""

    def rebuild(self, arrays: PackedArrays) -> object:
        """Build the index of `arrays` afresh (`gmi index rebuild`, `gmi check --repair`)."""

    def status(self, arrays: PackedArrays) -> dict[str, Any]:
        """What `gmi index` shows of this searcher's index for `arrays` (syncing it first)."""

    def check(self, arrays: PackedArrays) -> list[str]:
        """What is wrong with the index (`gmi check`); [] when it is whole or not yet made."""

    def leftovers(self, home: str | Path, generation: str) -> list[Path]:
        """Its files in a registry home that no committed state uses (`gmi check`)."""
