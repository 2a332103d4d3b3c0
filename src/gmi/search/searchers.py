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

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.shortlist import Searcher, Shortlist

__all__ = ["EXACT", "SEARCHER_NAMES", "ExactSearcher", "Searcher", "Shortlist", "load_searcher"]


class ExactSearcher:
    name = "exact"

    def shortlist(self, arrays: PackedArrays, features: np.ndarray, n: int) -> Shortlist | None:
        return None


EXACT = ExactSearcher()
SEARCHER_NAMES = ("exact", "ann", "milvus")


def load_searcher(name: str, milvus_uri: str | None = None) -> Searcher:
    """A searcher by name (FAISS and pymilvus are imported only when asked for)."""
    if name == "exact":
        return EXACT
    if name == "ann":
        from gmi.search.ann import ANN

        return ANN
    if name == "milvus":
        from gmi.search.milvus import milvus_searcher

        if not milvus_uri:
            raise ValueError("the milvus searcher needs a URI (gmi init --milvus-uri)")
        return milvus_searcher(milvus_uri)
    raise ValueError(f"unknown searcher {name!r}; valid: {', '.join(SEARCHER_NAMES)}")
