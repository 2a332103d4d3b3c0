"""No interrogation: uniform point weights, i.e. the prompt-agnostic RKME baseline (METHOD 2a)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder
from gmi.index import HubIndex
from gmi.interrogators.base import Interrogation, Interrogator


class NoInterrogator(Interrogator):
    name = "none"

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: HubIndex
    ) -> list[Interrogation]:
        return [Interrogation(text="", uniform=True) for _ in images]


def create(argument: str | None) -> NoInterrogator:
    return NoInterrogator()
