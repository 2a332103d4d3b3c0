"""A model's finish: post-processing applied to the drawn scene (numpy, deterministic per seed).

These are the knobs in which fine-tunes of one family differ subtly: tint (colour temperature),
contrast, grain, blur, posterisation, pixelation, vignette, paper texture, scan lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter


@dataclass(frozen=True)
class Finish:
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # per-channel gain
    contrast: float = 1.0
    brightness: float = 0.0  # added, in 0..255 units
    grain: float = 0.0  # std of per-pixel noise, 0..255 units
    blur: float = 0.0  # Gaussian radius in pixels
    posterize: int = 0  # levels per channel, 0 = off
    pixelate: int = 0  # block size, 0 = off
    vignette: float = 0.0  # 0..1 darkening at the corners
    paper: float = 0.0  # amplitude of a low-frequency paper texture
    scanlines: float = 0.0  # darkening of every other row
    edges: float = 0.0  # blend of an edge map (ink / glow looks)
    invert_edges: bool = False  # glow: bright edges on dark ground

    def then(self, **changes: object) -> Finish:
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]


def apply_finish(image: Image.Image, finish: Finish, rng: np.random.Generator) -> Image.Image:
    if finish.blur > 0:
        image = image.filter(ImageFilter.GaussianBlur(finish.blur))
    if finish.pixelate > 1:
        w, h = image.size
        small = image.resize(
            (max(1, w // finish.pixelate), max(1, h // finish.pixelate)), Image.Resampling.BOX
        )
        image = small.resize((w, h), Image.Resampling.NEAREST)
    x = np.asarray(image, dtype=np.float32)
    if finish.edges > 0:
        gray = x.mean(axis=2)
        gx = np.abs(np.diff(gray, axis=1, prepend=gray[:, :1]))
        gy = np.abs(np.diff(gray, axis=0, prepend=gray[:1]))
        edge = np.clip((gx + gy) * 3.0, 0, 255)[..., None]
        if finish.invert_edges:
            x = x * (1 - finish.edges) * 0.35 + edge * finish.edges * (x / 255.0 + 0.6)
        else:
            x = x * (1 - finish.edges) + (255.0 - edge) * finish.edges * (x / 255.0 * 0.3 + 0.7)
    x = (x - 128.0) * finish.contrast + 128.0 + finish.brightness
    x = x * np.asarray(finish.tint, dtype=np.float32)[None, None, :]
    h, w = x.shape[:2]
    if finish.paper > 0:
        coarse = rng.normal(0, 1, size=(h // 16 + 2, w // 16 + 2)).astype(np.float32)
        texture = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
        x = x + finish.paper * texture[..., None] * 20.0
    if finish.scanlines > 0:
        x[::2] *= 1.0 - finish.scanlines
    if finish.vignette > 0:
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        r = np.sqrt(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2) / np.sqrt(2)
        x = x * (1.0 - finish.vignette * r[..., None] ** 2)
    if finish.grain > 0:
        x = x + rng.normal(0, finish.grain, size=x.shape).astype(np.float32)
    x = np.clip(x, 0, 255)
    if finish.posterize > 1:
        step = 255.0 / (finish.posterize - 1)
        x = np.round(x / step) * step
    return Image.fromarray(x.astype(np.uint8))
