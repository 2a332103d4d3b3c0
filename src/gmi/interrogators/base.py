"""The interrogator interface (METHOD.md section 3, step 2)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder
from gmi.index import HubIndex


@dataclass(frozen=True)
class Interrogation:
    """The prompt recovered for one query.

    text: what is shown to the user. embedding: the prompt embedding used for the weights, or
    None to have the pipeline encode `text` with the registry's text encoder; an interrogator
    that works in prompt-embedding space directly (retrieval) sets it. `uniform` means "no
    prompt information": the pipeline scores with uniform weights (the RKME baseline).
    """

    text: str
    embedding: np.ndarray | None = None
    uniform: bool = False


class Interrogator(ABC):
    name: str

    @abstractmethod
    def interrogate(
        self,
        images: list[Image.Image],
        features: np.ndarray,
        encoder: Encoder,
        index: HubIndex,
    ) -> list[Interrogation]:
        """One Interrogation per image. `features` are the images' encoder features [n, d]."""
