"""`hub`: an interrogator learned from the hub's own (spec image, prompt) pairs.

A hub holds thousands of image-prompt pairs in its specifications. Ridge regression (closed
form, penalty by GCV; gmi.spec.ridge) maps image features to the prompt embedding, so the
interrogator answers directly in prompt-embedding space, which is where the weights of the
weighted RKME live: no captioning model and no text round trip. For display it names the
hub's standard prompt nearest to the prediction.

The fitted model belongs to the registry: the Hub refits it when models are added or removed
and stores it as safetensors (`PackedIndex.learned`); without a stored one (e.g. in the
benchmark) it is fitted on the index's pairs on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder, l2_normalise
from gmi.interrogators.base import Interrogation, Interrogator
from gmi.spec.ridge import RidgeModel

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex


class HubInterrogator(Interrogator):
    name = "hub"

    def model_for(self, index: PackedIndex) -> RidgeModel | None:
        """The index's stored model, else one fitted on its pairs and kept ON the index (a
        cache attached to the object it was computed from cannot answer for another)."""
        return index.image_to_prompt

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: PackedIndex
    ) -> list[Interrogation]:
        model = self.model_for(index)
        if model is None:  # the hub's ridge could not be fitted: uniform weights
            return [Interrogation(text="", uniform=True) for _ in images]
        predicted = l2_normalise(model.predict(features))
        texts, embeddings = index.standard_prompts()
        nearest = (predicted @ embeddings.T).argmax(axis=1)
        return [
            Interrogation(text=texts[j], embedding=p)
            for j, p in zip(nearest, predicted, strict=True)
        ]


def create(argument: str | None, device: str = "cpu") -> HubInterrogator:
    return HubInterrogator()
