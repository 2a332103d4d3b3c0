"""Views of an image: what an upload does to it, and the canonical size the network sees.

A user's image is not the generator's PNG: it was cropped to another aspect ratio, resized
and re-encoded as JPEG. The network is trained on such views of the spec images so that its
embedding of an upload lands where the model's own images do. The ranges are wider than the
zoo's upload simulation (gmi.zoo.upload_bytes) on purpose: they are a guess about the world,
not the benchmark's rule.

Canonical size: every image is resized so its shorter side is `side` pixels before the
network sees it, so a stroke's width is measured relative to the picture, which a resize of
the whole image keeps (a native-resolution crop would not: an upload at 1.6x has strokes 1.6x
wider).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

CROP_RANGE = (0.8, 1.0)  # fraction of each side an upload keeps
ASPECT_RANGE = (0.75, 1.33)
SCALE_RANGE = (0.6, 1.7)
JPEG_QUALITY_RANGE = (70, 97)
PLAIN_PROBABILITY = 0.15  # some uploads are PNG/WebP-lossless: no JPEG round trip


def upload_view(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random upload of `image`: cropped, resized, usually JPEG re-encoded."""
    image = image.convert("RGB")
    w, h = image.size
    crop = rng.uniform(*CROP_RANGE)
    aspect = rng.uniform(*ASPECT_RANGE)
    cw = max(16, int(w * crop * min(1.0, aspect)))
    ch = max(16, int(h * crop * min(1.0, 1.0 / aspect)))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    image = image.crop((left, top, left + cw, top + ch))
    scale = rng.uniform(*SCALE_RANGE)
    image = image.resize(
        (max(32, int(cw * scale)), max(32, int(ch * scale))), Image.Resampling.BICUBIC
    )
    if rng.random() < PLAIN_PROBABILITY:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(rng.integers(*JPEG_QUALITY_RANGE)))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def canonical(image: Image.Image, side: int) -> Image.Image:
    """Resized so the shorter side is `side` (aspect kept)."""
    image = image.convert("RGB")
    w, h = image.size
    scale = side / min(w, h)
    size = (max(side, round(w * scale)), max(side, round(h * scale)))
    return image if size == (w, h) else image.resize(size, Image.Resampling.BICUBIC)


def centre_square(image: Image.Image, side: int) -> Image.Image:
    """The canonical image's centre square (images of any aspect ratio batch together)."""
    image = canonical(image, side)
    w, h = image.size
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def to_array(images: list[Image.Image]) -> np.ndarray:
    """[n, 3, s, s] float32 scaled to -1..1 (images of one size)."""
    stacked = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    return (stacked.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2)
