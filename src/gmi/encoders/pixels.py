"""Raw-pixel encoder: the `rkme-pixels` baseline, and a model-free encoder for fast tests.

Images: downsampled to side x side RGB, mean-centred, L2-normalised. Prompts: a hashed
bag-of-words (each lower-cased word adds 1 to a bucket chosen by a stable hash), so it needs no
model and is deterministic across processes.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder, l2_normalise

TEXT_DIM = 256
_WORD = re.compile(r"[a-z0-9]+")


class PixelEncoder(Encoder):
    def __init__(self, side: int = 32) -> None:
        self.side = side
        self.name = "pixels" if side == 32 else f"pixels:{side}"

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        rows = []
        for image in images:
            small = image.convert("RGB").resize((self.side, self.side), Image.Resampling.BOX)
            v = np.asarray(small, dtype=np.float32).reshape(-1) / 255.0
            rows.append(v - v.mean())
        if not rows:
            return np.zeros((0, 3 * self.side * self.side), dtype=np.float32)
        return l2_normalise(np.stack(rows))

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in _WORD.findall(text.lower()):
                bucket = int.from_bytes(
                    hashlib.blake2b(word.encode(), digest_size=4).digest(), "little"
                )
                out[row, bucket % TEXT_DIM] += 1.0
        out[out.sum(axis=1) == 0, 0] = 1.0  # empty prompt: a fixed unit vector, not NaN
        return l2_normalise(out)


def create(argument: str | None, device: str = "cpu", home: str | None = None) -> PixelEncoder:
    return PixelEncoder(int(argument) if argument else 32)
