"""The encoder interface: two methods, L2-normalised float32 outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
from PIL import Image


class Encoder(ABC):
    """Maps images (G) and prompts (T) to vectors, as in METHOD.md section 2.

    `name` is the registry id (with its argument); a registry stores it and refuses specs or
    queries from any other encoder, because features of different encoders are not comparable.
    """

    name: str

    @abstractmethod
    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        """[n, d] float32, each row L2-normalised."""

    @abstractmethod
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        """[n, e] float32, each row L2-normalised."""


@dataclass(frozen=True)
class Encoded:
    """Features [n, d] and the name of the encoder that made them."""

    features: np.ndarray
    encoder: str

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, rows: slice) -> Encoded:
        return Encoded(self.features[rows], self.encoder)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
