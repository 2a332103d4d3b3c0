"""Upload-robust specifications: encode spec images the way users' images arrive.

Spec images are clean PNGs straight from the generator; users upload JPEGs. JPEG re-compression
shifts low-level statistics (exactly what style features measure), so a query and its own
model's spec images drift apart. Encoding the spec images after a JPEG round trip (quality 85)
puts both on the same side of that shift. Measured in docs/benchmark.md ("Ablation"):
encoding the JPEG view only beat encoding clean and JPEG views together.
"""

from __future__ import annotations

import io

from PIL import Image

AUGMENTS = ("none", "jpeg")
DEFAULT_AUGMENT = "jpeg"
JPEG_QUALITY = 85


def jpeg_round_trip(image: Image.Image, quality: int = JPEG_QUALITY) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def spec_views(images: list[Image.Image], augment: str) -> list[Image.Image]:
    """The images a spec is built from: as generated, or as they would be uploaded."""
    if augment == "none":
        return list(images)
    if augment == "jpeg":
        return [jpeg_round_trip(im) for im in images]
    raise ValueError(f"unknown augment {augment!r}; valid: {', '.join(AUGMENTS)}")
