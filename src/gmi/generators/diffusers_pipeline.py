"""`diffusers:<hf-id-or-folder>`: a real text-to-image pipeline (SD 1.x / 2.x / SDXL, ...).

Loaded with `AutoPipelineForText2Image` from local files (gmi.hf), optionally with a LoRA,
fp16 on CUDA and float32 on CPU; fixed seeds (one torch.Generator per image), batched.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image

from gmi.hf import ModelUnavailableError, load_pretrained, require


def pick_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailableError("--device cuda asked for, but no CUDA device is available")
    return device


class DiffusersGenerator:
    def __init__(
        self,
        source: str,
        *,
        lora: str | None = None,
        device: str = "auto",
        steps: int = 30,
        guidance: float | None = None,
        batch_size: int = 4,
    ) -> None:
        require("diffusers", "diffusers")
        from diffusers import AutoPipelineForText2Image

        self.name = f"diffusers:{source}"
        self.device = pick_device(device)
        dtype = torch.float16 if self.device == "cuda" else torch.float32
        self.pipe: Any = load_pretrained(
            AutoPipelineForText2Image.from_pretrained, source, torch_dtype=dtype
        )
        if lora:
            try:
                self.pipe.load_lora_weights(lora)
            except (OSError, ValueError) as exc:
                raise ModelUnavailableError(f"LoRA {lora}: cannot be loaded ({exc})") from exc
        self.pipe.to(self.device)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps = steps
        self.guidance = guidance
        self.batch_size = batch_size

    @torch.inference_mode()
    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        images: list[Image.Image] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = prompts[start : start + self.batch_size]
            generators = [
                torch.Generator("cpu").manual_seed(s)
                for s in seeds[start : start + self.batch_size]
            ]
            extra = {} if self.guidance is None else {"guidance_scale": self.guidance}
            out = self.pipe(
                chunk,
                num_inference_steps=self.steps,
                generator=generators,
                output_type="pil",
                **extra,
            )
            images += list(out.images)
        return images


def create(argument: str | None, **options: Any) -> DiffusersGenerator:
    if not argument:
        raise ModelUnavailableError("name a pipeline: diffusers:<hf-id-or-folder>")
    return DiffusersGenerator(argument, **options)
