"""`clip:<hf-id-or-folder>`: CLIP image and text towers (transformers), as in the paper.

Image and prompt embeddings live in one space, so the prompt weights and the image kernel use
the VLM the paper uses. The paper's preset is `clip:openai/clip-vit-large-patch14`.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import torch
from PIL import Image

from gmi.encoders.base import Encoder, l2_normalise
from gmi.hf import load_pretrained, require

DEFAULT_CLIP = "openai/clip-vit-large-patch14"


def _features(output: Any) -> torch.Tensor:
    # transformers < 5 returns the projected tensor; 5.x an output whose pooler_output it is
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ClipEncoder(Encoder):
    def __init__(self, source: str = DEFAULT_CLIP, device: str = "cpu") -> None:
        require("transformers", "clip")
        self.source = source
        self.name = f"clip:{source}"
        self.device = device
        _ = self.model, self.processor  # load now: a missing model fails at once, with help

    @cached_property
    def model(self) -> Any:
        from transformers import CLIPModel

        return load_pretrained(CLIPModel.from_pretrained, self.source).to(self.device).eval()

    @cached_property
    def processor(self) -> Any:
        from transformers import CLIPProcessor

        return load_pretrained(CLIPProcessor.from_pretrained, self.source)

    @torch.inference_mode()
    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        out = _features(
            self.model.get_image_features(pixel_values=inputs["pixel_values"].to(self.device))
        )
        return l2_normalise(out.float().cpu().numpy())

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.model.config.projection_dim), dtype=np.float32)
        inputs = self.processor(
            text=list(texts), return_tensors="pt", padding=True, truncation=True
        )
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        return l2_normalise(_features(self.model.get_text_features(**inputs)).float().cpu().numpy())


def create(argument: str | None, device: str = "cpu", home: str | None = None) -> ClipEncoder:
    return ClipEncoder(argument or DEFAULT_CLIP, device=device)
