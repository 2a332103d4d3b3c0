"""A zoo of offline, prompt-conditioned procedural text-to-image generators.

    from gmi.zoo import load_zoo
    model = load_zoo()["flat-base"]
    image = model.generate("two red cats in a forest at night", seed=0)

Each model is deterministic per (prompt, seed) with real variation across seeds. See
gmi.zoo.models for the catalogue and gmi.zoo.prompts for the grammar and prompt sets.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
from PIL import Image

from gmi.zoo.models import ModelSpec, builtin_models
from gmi.zoo.prompts import SPEC_PROMPT_SET, TEST_PROMPT_SET, load_prompt_set, parse
from gmi.zoo.render import render_scene
from gmi.zoo.styles import apply_finish


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


@dataclass(frozen=True)
class ZooModel:
    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    def generate(self, prompt: str, seed: int = 0) -> Image.Image:
        """Render `prompt` in this model's manner; the same (prompt, seed) gives the same image."""
        asked = parse(prompt)
        finish = self.spec.finish
        for attribute, table in self.spec.conditional.items():  # style follows the PROMPT
            changes = table.get(str(getattr(asked, attribute)))
            if changes:
                finish = replace(finish, **changes)  # type: ignore[arg-type]
        scene = replace(asked, **self.spec.overrides)  # type: ignore[arg-type]
        rng = np.random.default_rng(stable_seed(self.spec.name, prompt, seed))
        image = render_scene(scene, self.spec.look, self.spec.size, rng)
        return apply_finish(image, finish, rng)


# zoo catalogues by name: "builtin" (tuned on) and "heldout" (frozen, evaluated at the end)
CATALOGUES = ("builtin", "heldout")
# the conditional twins of each catalogue: same images, opposite prompt-to-style behaviour
SWAPPED_PAIRS = {
    "builtin": (("daynight-warm", "daynight-cool"),),
    "heldout": (("setting-rose", "setting-teal"),),
}


@lru_cache(maxsize=2)
def load_zoo(catalogue: str = "builtin") -> dict[str, ZooModel]:
    if catalogue == "heldout":
        from gmi.zoo.heldout import heldout_models

        return {m.name: ZooModel(m) for m in heldout_models()}
    if catalogue != "builtin":
        raise ValueError(f"unknown zoo {catalogue!r}; valid: {', '.join(CATALOGUES)}")
    return {m.name: ZooModel(m) for m in builtin_models()}


def as_upload(image: Image.Image, seed: int) -> Image.Image:
    """What a user uploads: another size and aspect ratio, re-encoded as JPEG (quality 80-95)."""
    return Image.open(io.BytesIO(upload_bytes(image, seed))).convert("RGB")


def upload_bytes(image: Image.Image, seed: int) -> bytes:
    """The JPEG file of `as_upload` (crop to another aspect ratio, resize, quality 80-95)."""
    rng = np.random.default_rng(stable_seed("upload", seed))
    w, h = image.size
    crop = float(rng.uniform(0.85, 1.0))
    aspect = float(rng.uniform(0.75, 1.33))
    cw = int(w * crop * min(1.0, aspect))
    ch = int(h * crop * min(1.0, 1 / aspect))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((left, top, left + cw, top + ch))
    scale = float(rng.uniform(0.75, 1.6))
    image = image.resize(
        (max(32, int(cw * scale)), max(32, int(ch * scale))), Image.Resampling.BICUBIC
    )
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(80, 96)))
    return buffer.getvalue()


__all__ = [
    "CATALOGUES",
    "SPEC_PROMPT_SET",
    "SWAPPED_PAIRS",
    "TEST_PROMPT_SET",
    "ZooModel",
    "as_upload",
    "load_prompt_set",
    "load_zoo",
    "stable_seed",
    "upload_bytes",
]
