"""The spec images a registry keeps: each model's images as an imagefolder of its own.

Why keep them: a hub whose encoder changes (a new release, `gmi train`) must re-encode every
model, and without the images that means asking every developer to submit again. The kept
folder is `images/<spec id>/` beside the spec file (gmi.registry.files), in the imagefolder
layout (`NNNN.<ext>` + metadata.jsonl), so `gmi reencode` reads it with the one imagefolder
reader and a person can re-submit it as it is.

What is kept (the registry setting `keep_images`):

    original  the bytes as submitted (generated images as lossless PNG): re-encoding gives
              the very features a fresh submit would (the default)
    jpeg      a bounded copy: at most JPEG_SIDE pixels on the longer side, JPEG quality
              JPEG_QUALITY (about 1/5 of a PNG's size; features move slightly)
    none      nothing (the model cannot be re-encoded; gmi reencode says so)
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

from PIL import Image

KEEP_IMAGES = ("original", "jpeg", "none")
DEFAULT_KEEP_IMAGES = "original"
JPEG_SIDE = 1024
JPEG_QUALITY = 95
# suffixes a kept original may have (what gmi.images opens); anything else is kept as PNG
KEPT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif")

KeptFiles = list[tuple[str, bytes]]  # (file name inside the folder, bytes)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def bounded_jpeg(image: Image.Image) -> bytes:
    """The `jpeg` policy's copy of one image."""
    copy = image.convert("RGB")
    copy.thumbnail((JPEG_SIDE, JPEG_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    copy.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def kept_files(
    policy: str,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    originals: Sequence[tuple[str, bytes] | None] | None = None,
) -> KeptFiles:
    """The files of a model's kept folder under `policy`. originals: per image, the submitted
    file's (suffix, bytes) where there is one (None: the image was made in memory and is
    kept as PNG)."""
    if policy not in KEEP_IMAGES:
        raise ValueError(f"unknown keep_images {policy!r}; valid: {', '.join(KEEP_IMAGES)}")
    if policy == "none":
        return []
    files: KeptFiles = []
    rows = []
    for index, image in enumerate(images):
        original = originals[index] if originals is not None else None
        if policy == "jpeg":
            suffix, data = ".jpg", bounded_jpeg(image)
        elif original is not None and original[0].lower() in KEPT_SUFFIXES:
            suffix, data = original[0].lower(), original[1]
        else:
            suffix, data = ".png", png_bytes(image)
        name = f"{index:04d}{suffix}"
        files.append((name, data))
        rows.append(json.dumps({"file_name": name, "text": prompts[index]}, ensure_ascii=False))
    files.append(("metadata.jsonl", ("\n".join(rows) + "\n").encode("utf-8")))
    return files


def kept_summary(files: KeptFiles, policy: str) -> dict[str, object]:
    """What a record says of its kept images (`gmi info`, `gmi models --json`)."""
    return {
        "images": sum(1 for name, _ in files if name != "metadata.jsonl"),
        "bytes": sum(len(data) for _, data in files),
        "policy": policy,
    }
