"""No interrogation: uniform point weights, i.e. the prompt-agnostic RKME baseline (METHOD 2a)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder
from gmi.interrogators.base import Interrogation, Interrogator

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex


class NoInterrogator(Interrogator):
    name = "none"

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: PackedIndex
    ) -> list[Interrogation]:
        return [Interrogation(text="", uniform=True) for _ in images]


def create(argument: str | None, device: str = "cpu") -> NoInterrogator:
    return NoInterrogator()
