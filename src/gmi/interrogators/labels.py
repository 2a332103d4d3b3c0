"""`labels`: the top ImageNet classes of the EfficientNet-Lite0 head, as a caption.

Cheap and model-free beyond the encoder's own network, but ImageNet classes describe photos of
objects; for stylised images they say little (METHOD.md section 8), which the demo measures.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gmi.encoders import efficientnet
from gmi.encoders.base import Encoder
from gmi.interrogators.base import Interrogation, Interrogator

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex


@lru_cache(maxsize=1)
def imagenet_classes() -> list[str]:
    text = resources.files("gmi.interrogators").joinpath("data/imagenet_classes.txt").read_text()
    classes = [line.strip() for line in text.splitlines() if line.strip()]
    assert len(classes) == 1000, "the ImageNet class list must have 1000 names"
    return classes


class LabelsInterrogator(Interrogator):
    def __init__(self, top: int = 3, device: str = "cpu") -> None:
        self.top = top
        self.device = device
        self.name = "labels" if top == 3 else f"labels:{top}"

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: PackedIndex
    ) -> list[Interrogation]:
        # Its own forward pass: reusing the encoder's would need a cache, and a cache keyed by
        # object identity served one image's answer for another (ids are reused after free).
        logits = efficientnet.run_backbone(images, taps=(), device=self.device).logits
        classes = imagenet_classes()
        top = np.argsort(-logits, axis=1)[:, : self.top]
        return [
            Interrogation(text="a picture of " + ", ".join(classes[i] for i in row)) for row in top
        ]


def create(argument: str | None, device: str = "cpu") -> LabelsInterrogator:
    return LabelsInterrogator(int(argument) if argument else 3, device=device)
