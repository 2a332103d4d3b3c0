"""`open_clip:<arch>/<pretrained>`: OpenCLIP models (optional extra `gmi[open-clip]`).

open_clip needs torchvision, which does not install beside this project's default torch, so it
is an extra for machines that have it. Weights come from open_clip's own cache (local first).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from gmi.encoders.base import Encoder, l2_normalise
from gmi.errors import InvalidInputError
from gmi.hf import ModelUnavailableError, downloads_allowed, require


class OpenClipEncoder(Encoder):
    def __init__(self, spec: str) -> None:
        require("open_clip", "open-clip")
        if "/" not in spec:
            raise InvalidInputError("open_clip encoders are named open_clip:<arch>/<pretrained>")
        import open_clip

        arch, pretrained = spec.split("/", 1)
        self.name = f"open_clip:{spec}"
        if not downloads_allowed():
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # fail at once instead of hanging
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch, pretrained=pretrained
            )
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelUnavailableError(f"open_clip {spec}: {exc}") from exc
        self.model: Any = model.eval()
        self.preprocess = preprocess
        self.tokenizer = open_clip.get_tokenizer(arch)

    @torch.inference_mode()
    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        batch = torch.stack([self.preprocess(im.convert("RGB")) for im in images])
        return l2_normalise(self.model.encode_image(batch).float().numpy())

    @torch.inference_mode()
    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return l2_normalise(self.model.encode_text(self.tokenizer(list(texts))).float().numpy())


def create(argument: str | None, device: str = "cpu", home: str | None = None) -> OpenClipEncoder:
    return OpenClipEncoder(argument or "ViT-B-32/laion2b_s34b_b79k")
