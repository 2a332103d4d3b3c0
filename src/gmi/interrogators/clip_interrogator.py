"""`clip-interrogator[:<blip>]`: the paper's interrogator, in the manner of CLIP Interrogator.

A BLIP caption says *what* is in the image; CLIP then ranks modifier phrases (medium, movement,
flavours; shipped as data/modifiers.json) by image-text similarity and appends the best ones,
which say *how* it looks, the part that distinguishes generators. The modifier text embeddings
are computed once per process, so a query costs one BLIP caption and one CLIP text pass over
the candidate prompts. Needs a CLIP encoder in the registry (the `paper` preset).
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from gmi.encoders.base import Encoder
from gmi.errors import ConflictError
from gmi.interrogators.base import Interrogation, Interrogator
from gmi.interrogators.blip import DEFAULT_BLIP, BlipCaptioner

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex

FLAVOURS = 3  # how many flavour phrases are appended


@lru_cache(maxsize=1)
def modifiers() -> dict[str, list[str]]:
    text = resources.files("gmi.interrogators").joinpath("data/modifiers.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


class ClipInterrogator(Interrogator):
    def __init__(self, blip: str = DEFAULT_BLIP, device: str = "cpu") -> None:
        self.name = "clip-interrogator" if blip == DEFAULT_BLIP else f"clip-interrogator:{blip}"
        self.captioner = BlipCaptioner(blip, device=device)
        self._tables: dict[str, tuple[list[str], np.ndarray]] = {}

    def _table(self, encoder: Encoder) -> dict[str, tuple[list[str], np.ndarray]]:
        if not encoder.name.startswith(("clip:", "open_clip:")):
            raise ConflictError(
                "clip-interrogator ranks modifiers with CLIP: use it on a "
                "registry whose encoder is clip:... (preset `paper`)"
            )
        if encoder.name not in self._tables:
            self._tables = {
                encoder.name: {k: (v, encoder.encode_texts(v)) for k, v in modifiers().items()}
            }  # type: ignore[dict-item]
        return self._tables[encoder.name]  # type: ignore[return-value]

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: PackedIndex
    ) -> list[Interrogation]:
        table = self._table(encoder)
        captions = self.captioner.caption(images)
        out = []
        for caption, feature in zip(captions, features, strict=True):
            parts = [caption]
            for kind in ("medium", "movement"):
                phrases, embeddings = table[kind]
                parts.append(phrases[int(np.argmax(embeddings @ feature))])
            phrases, embeddings = table["flavour"]
            best = np.argsort(-(embeddings @ feature))[:FLAVOURS]
            parts += [phrases[i] for i in best]
            out.append(Interrogation(text=", ".join(p for p in parts if p)))
        return out


def create(argument: str | None, device: str = "cpu") -> ClipInterrogator:
    return ClipInterrogator(argument or DEFAULT_BLIP, device=device)
