"""The searcher seam: which models the exact scorer ranks for a query.

`exact` returns every live model (the reference, and the right choice up to ~10^5 models on a
CPU). An approximate searcher (hub-scale part 2: FAISS, Milvus) returns a shortlist of slots
whose spec points are nearest to the query; the exact rule then ranks only those. Registered by
name, like encoders.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from gmi.search.arrays import PackedArrays


class Searcher(Protocol):
    name: str

    def candidates(self, arrays: PackedArrays, features: np.ndarray) -> np.ndarray | None:
        """Slots to score for these query features; None means all live slots."""


class ExactSearcher:
    name = "exact"

    def candidates(self, arrays: PackedArrays, features: np.ndarray) -> np.ndarray | None:
        return None


EXACT = ExactSearcher()
SEARCHERS: dict[str, Searcher] = {"exact": EXACT}


def load_searcher(name: str) -> Searcher:
    if name not in SEARCHERS:
        raise ValueError(f"unknown searcher {name!r}; valid: {', '.join(SEARCHERS)}")
    return SEARCHERS[name]
