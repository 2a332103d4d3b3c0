"""`blip:<hf-id-or-folder>`: a BLIP captioning model (transformers) as the interrogator."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from gmi.encoders.base import Encoder
from gmi.hf import load_pretrained, require
from gmi.interrogators.base import Interrogation, Interrogator

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex

DEFAULT_BLIP = "Salesforce/blip-image-captioning-large"
MAX_NEW_TOKENS = 30


class BlipCaptioner:
    """Image -> caption; one vision forward pass plus one decoder pass per generated token."""

    def __init__(self, source: str = DEFAULT_BLIP, device: str = "cpu") -> None:
        require("transformers", "clip")
        self.source = source
        self.device = device
        _ = self.model, self.processor  # load now: a missing model fails at once, with help

    @cached_property
    def model(self) -> Any:
        from transformers import BlipForConditionalGeneration

        return (
            load_pretrained(BlipForConditionalGeneration.from_pretrained, self.source)
            .to(self.device)
            .eval()
        )

    @cached_property
    def processor(self) -> Any:
        from transformers import BlipProcessor

        return load_pretrained(BlipProcessor.from_pretrained, self.source)

    @torch.inference_mode()
    def caption(self, images: list[Image.Image]) -> list[str]:
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        ids = self.model.generate(
            pixel_values=inputs["pixel_values"].to(self.device),
            max_new_tokens=MAX_NEW_TOKENS,
            num_beams=1,
            do_sample=False,
        )
        return [t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)]


class BlipInterrogator(Interrogator):
    def __init__(self, source: str = DEFAULT_BLIP, device: str = "cpu") -> None:
        self.name = f"blip:{source}"
        self.captioner = BlipCaptioner(source, device=device)

    def interrogate(
        self, images: list[Image.Image], features: np.ndarray, encoder: Encoder, index: PackedIndex
    ) -> list[Interrogation]:
        return [Interrogation(text=c) for c in self.captioner.caption(images)]


def create(argument: str | None, device: str = "cpu") -> BlipInterrogator:
    return BlipInterrogator(argument or DEFAULT_BLIP, device=device)
