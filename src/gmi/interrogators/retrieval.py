"""`retrieval`: the prompts of the hub's spec images nearest to the user's image.

A hub holds many (image, prompt) pairs in its specifications; the prompts of the images that
look most like the query are a caption that needs no captioning model. The prompt embedding
is the similarity-weighted mean of the r nearest pairs' prompt embeddings (used directly for
the weights); the text shown is the nearest pair's prompt.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder, l2_normalise
from gmi.interrogators.base import Interrogation, Interrogator

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex

_TEMPERATURE = 0.02  # softmax over cosine similarities of the r nearest spec images


class RetrievalInterrogator(Interrogator):
    def __init__(self, neighbours: int = 8) -> None:
        self.neighbours = neighbours
        self.name = "retrieval" if neighbours == 8 else f"retrieval:{neighbours}"

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: PackedIndex
    ) -> list[Interrogation]:
        sims = l2_normalise(features) @ index.unit_pair_features.T  # [n, P]
        r = min(self.neighbours, sims.shape[1])
        nearest = np.argsort(-sims, axis=1)[:, :r]
        out = []
        for row, idx in zip(sims, nearest, strict=True):
            w = np.exp((row[idx] - row[idx].max()) / _TEMPERATURE)
            prompts = index.pair_prompt_vectors(idx)
            embedding = l2_normalise((w[:, None] * prompts).sum(axis=0))
            out.append(Interrogation(text=index.pair_text(int(idx[0])), embedding=embedding))
        return out


def create(argument: str | None, device: str = "cpu") -> RetrievalInterrogator:
    return RetrievalInterrogator(int(argument) if argument else 8)
