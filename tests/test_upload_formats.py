"""What phones and editors upload: HEIC/HEIF, AVIF, animated WebP/GIF, 16-bit PNG, CMYK and
ICC-tagged JPEG. Each is identified (decoded to 8-bit sRGB) or refused with one line."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageCms

from conftest import hub_copy, run_gmi
from gmi.errors import InvalidInputError
from gmi.images import open_image
from gmi.zoo.export import query_upload


def _zoo_image(model: str = "ink-base", index: int = 2) -> Image.Image:
    raw, _ = query_upload(model, index)
    return Image.open(io.BytesIO(raw)).convert("RGB")


def _saved(image: Image.Image, fmt: str, **kwargs) -> bytes:
    if fmt == "HEIF":
        from pillow_heif import register_heif_opener

        register_heif_opener()
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def uploads() -> dict[str, bytes]:
    image = _zoo_image()
    frames = [image, Image.new("RGB", image.size, (255, 0, 0))]
    deep = (np.asarray(image.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return {
        "photo.heic": _saved(image, "HEIF", quality=90),
        "photo.avif": _saved(image, "AVIF", quality=90),
        "anim.webp": _saved(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "anim.gif": _saved(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "deep.png": _saved(Image.fromarray(deep), "PNG"),
        "print.jpg": _saved(image.convert("CMYK"), "JPEG", quality=92),
        "tagged.jpg": _saved(image, "JPEG", quality=92, icc_profile=srgb),
    }


def test_every_upload_kind_decodes_to_rgb():
    reference = np.asarray(_zoo_image(), dtype=np.float64)
    for name, data in uploads().items():
        image = open_image(data, name)
        assert image.mode == "RGB" and image.size == (reference.shape[1], reference.shape[0])
        if name != "deep.png":  # the others keep the colours (first frame of an animation)
            error = np.abs(np.asarray(image, dtype=np.float64) - reference).mean()
            assert error < 25, (name, error)


def test_uploads_are_identified_by_the_cli(tmp_path, pristine_hub):
    home = hub_copy(pristine_hub, tmp_path / "hub")
    paths = []
    for name, data in uploads().items():
        (tmp_path / name).write_bytes(data)
        paths.append(str(tmp_path / name))
    done = run_gmi("identify", *paths, "--json", "--top", "1", home=home)
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert len(entries) == len(paths)
    colour = [e for e in entries if not e["image"].endswith("deep.png")]
    assert sum(e["results"][0]["model"] == "ink-base" for e in colour) >= len(colour) - 1


def test_heic_without_the_extra_is_one_line(tmp_path):
    path = tmp_path / "photo.heic"
    path.write_bytes(uploads()["photo.heic"])
    code = (
        "import sys; sys.modules['pillow_heif'] = None\n"
        "from gmi.images import open_image\n"
        f"open_image({str(path)!r})"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "install the 'heif' extra" in done.stderr


def test_a_truncated_avif_is_refused_with_one_line():
    data = uploads()["photo.avif"]
    with pytest.raises(InvalidInputError, match="not a readable image"):
        open_image(data[: len(data) // 2], "half.avif")
