"""Why each listed model ranked where it did: its spec images most similar to the query."""

from __future__ import annotations

import numpy as np

from gmi.encoders.base import l2_normalise
from gmi.identify.results import Identification
from gmi.registry.packed.index import PackedIndex


def evidence(index: PackedIndex, result: Identification, per_model: int = 3) -> dict[str, list]:
    """Per listed model: its `per_model` spec images closest to the query (index into the
    model's example images, prompt, cosine similarity). Reads only the listed models' rows."""
    if result.features is None:
        return {}
    query = l2_normalise(result.features).mean(axis=0)
    out = {}
    for match in result.results:
        slot = index.position.get(match.model)
        if slot is None:
            continue
        rows = index.pair_rows(slot)
        features = l2_normalise(np.asarray(index.arrays.pair_features[rows[0] : rows[-1] + 1]))
        sims = features @ query
        best = np.argsort(-sims)[:per_model]
        out[match.model] = [
            {
                "image": int(j),
                "prompt": index.pair_text(int(rows[j])),
                "similarity": round(float(sims[j]), 4),
            }
            for j in best
        ]
    return out
