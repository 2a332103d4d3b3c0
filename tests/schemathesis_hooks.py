"""schemathesis hooks for gmi's API: what the schema declares but JSON Schema cannot generate.

The OpenAPI schema says an `images` / `files` part is an image (`encoding.contentType`) and an
`archive` part is a zip; random bytes are neither, so schemathesis is told how to make real
ones (its documented custom-media-type mechanism). Everything else is generated from the
schema alone. Loaded by tests/test_openapi_schemathesis.py via SCHEMATHESIS_HOOKS.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import schemathesis
from hypothesis import strategies as st
from PIL import Image


def _image(seed: int, fmt: str) -> bytes:
    rng = np.random.default_rng(seed)
    size = (int(rng.integers(24, 96)), int(rng.integers(24, 96)))
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def _imagefolder_zip(seed: int, count: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        lines = []
        for i in range(count):
            zf.writestr(f"{i:04d}.png", _image(seed * 100 + i, "PNG"))
            lines.append(json.dumps({"file_name": f"{i:04d}.png", "text": f"prompt {i}"}))
        zf.writestr("metadata.jsonl", "\n".join(lines) + "\n")
    return buffer.getvalue()


SEEDS = st.integers(0, 10_000)
png_images = st.lists(SEEDS.map(lambda s: _image(s, "PNG")), min_size=1, max_size=3)
jpeg_images = st.lists(SEEDS.map(lambda s: _image(s, "JPEG")), min_size=1, max_size=3)
imagefolder_zips = st.builds(_imagefolder_zip, SEEDS, st.integers(2, 4))

schemathesis.openapi.media_type("image/png", png_images)
schemathesis.openapi.media_type("image/jpeg", jpeg_images)
schemathesis.openapi.media_type("application/zip", imagefolder_zips)
