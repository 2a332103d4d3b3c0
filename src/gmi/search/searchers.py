"""The searcher seam: which models the exact scorer ranks for a query.

`exact` scores every live model (the reference, and the right choice up to ~10^4-10^5 models
on a CPU). An approximate searcher returns, per query image, the slots owning its N nearest
spec points and the squared distance R^2 of the N-th; the ranking core (gmi.search.ranking)
scores only those slots exactly and, for the local rule, proves the shortlist complete
(METHOD.md section 9) or asks again with a larger N. Registered by name, like encoders:

    exact   every live model
    ann     FAISS over the registry's spec points, kept beside it (gmi.search.ann)
    milvus  a Milvus collection of them: Milvus Lite (a .db file) or a server (gmi.search.milvus)
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.shortlist import Searcher, Shortlist

__all__ = [
    "EXACT",
    "SEARCHER_NAMES",
    "ExactSearcher",
    "Searcher",
    "Shortlist",
    "load_searcher",
    "registry_searcher",
]


class ExactSearcher:
    """Scores every live model: no index to keep, check or rebuild."""

    name = "exact"
    indexed = False

    def shortlist(
        self, arrays: PackedArrays, features: np.ndarray, n: int, estimate: bool = False
    ) -> Shortlist | None:
        return None

    def sync(self, arrays: PackedArrays) -> int:
        return 0

    def rebuild(self, arrays: PackedArrays) -> None:
        return None

    def status(self, arrays: PackedArrays) -> dict[str, Any]:
        return {}

    def check(self, arrays: PackedArrays) -> list[str]:
        return []

    def leftovers(self, home: str | Path, generation: str) -> list[Path]:
        return []


EXACT = ExactSearcher()


def _ann(milvus_uri: str | None) -> Searcher:
    from gmi.search.ann import ANN

    return ANN


def _milvus(milvus_uri: str | None) -> Searcher:
    from gmi.search.milvus import milvus_searcher

    if not milvus_uri:
        raise ValueError("the milvus searcher needs a URI (gmi init --milvus-uri)")
    return milvus_searcher(milvus_uri)


# THE name table of searchers (settings validation and `gmi init --searcher` read it); FAISS
# and pymilvus are imported only when their searcher is asked for
SEARCHERS: dict[str, Callable[[str | None], Searcher]] = {
    "exact": lambda milvus_uri: EXACT,
    "ann": _ann,
    "milvus": _milvus,
}
SEARCHER_NAMES = tuple(SEARCHERS)


def registry_searcher(name: str, milvus_uri: str | None, home: str | Path) -> Searcher:
    """The searcher a registry's settings name (`gmi init --searcher`); Milvus without a URI
    is Milvus Lite in the registry's own folder, found from the home each time."""
    if name == "milvus" and not milvus_uri:
        from gmi.search.milvus import default_uri

        milvus_uri = default_uri(home)
    return load_searcher(name, milvus_uri)


def load_searcher(name: str, milvus_uri: str | None = None) -> Searcher:
    """A searcher by name."""
    if name not in SEARCHERS:
        raise ValueError(f"unknown searcher {name!r}; valid: {', '.join(SEARCHER_NAMES)}")
    return SEARCHERS[name](milvus_uri)
