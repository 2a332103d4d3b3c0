"""The interrogator interface (METHOD.md section 3, step 2)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder, l2_normalise

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex


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


def prompt_embeddings(asked: list[Interrogation], encoder: Encoder) -> np.ndarray | None:
    """One L2-normalised prompt embedding per interrogation [n, e], encoding the texts of those
    that gave none (one batched call); None when the interrogator asks for uniform weights."""
    if all(a.uniform for a in asked):
        return None
    if any(a.uniform for a in asked):
        raise ValueError("an interrogator must be uniform for all images or for none")
    to_encode = [i for i, a in enumerate(asked) if a.embedding is None]
    encoded = dict(
        zip(to_encode, encoder.encode_texts([asked[i].text for i in to_encode]), strict=True)
    )
    rows = [encoded[i] if a.embedding is None else a.embedding for i, a in enumerate(asked)]
    return l2_normalise(np.stack(rows))


class Interrogator(ABC):
    name: str

    @abstractmethod
    def interrogate(
        self,
        images: list[Image.Image],
        features: np.ndarray,
        encoder: Encoder,
        index: PackedIndex,
    ) -> list[Interrogation]:
        """One Interrogation per image. `features` are the images' encoder features [n, d]."""
