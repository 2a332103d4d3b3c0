"""Image loading: what users upload, good and bad."""

import io

import numpy as np
import pytest
from PIL import Image

from conftest import declared_png
from gmi.errors import InvalidInputError
from gmi.images import MAX_PIXELS, open_image


def _png_bytes(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=kw.pop("format", "PNG"), **kw)
    return buf.getvalue()


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, I am text", "not a readable image"),
        (declared_png(50_000, 50_000), "allowed"),
    ],
)
def test_bad_bytes_are_refused(data, message):
    with pytest.raises(InvalidInputError, match=message):
        open_image(data)


def test_truncated_png_and_jpeg_are_refused():
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    for fmt in ("PNG", "JPEG"):
        data = _png_bytes(rgb, format=fmt)
        with pytest.raises(InvalidInputError):
            open_image(data[: len(data) // 2])


def test_missing_file(tmp_path):
    with pytest.raises(InvalidInputError, match="no such image file"):
        open_image(tmp_path / "nope.png")
    (tmp_path / "fake.png").write_text("not an image")
    with pytest.raises(InvalidInputError, match=r"fake.png"):
        open_image(tmp_path / "fake.png")


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P", "CMYK", "I;16", "L", "1"])
def test_modes_become_rgb(mode):
    base = Image.new("RGB", (20, 10), (200, 30, 30))
    image = base.convert(mode) if mode != "I;16" else Image.new("I;16", (20, 10), 40000)
    fmt = "TIFF" if mode in ("CMYK",) else "PNG"
    out = open_image(_png_bytes(image, format=fmt))
    assert out.mode == "RGB" and out.size == (20, 10)


def test_alpha_is_composited_over_white():
    transparent = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    assert open_image(_png_bytes(transparent)).getpixel((0, 0)) == (255, 255, 255)


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    out = open_image(_png_bytes(image, format="JPEG", exif=exif.tobytes()))
    assert out.size == (20, 40)


def test_animated_gif_uses_first_frame_and_webp_loads():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    out = open_image(buf.getvalue())
    assert out.getpixel((0, 0))[0] > 200
    assert open_image(_png_bytes(frames[1], format="WEBP", lossless=True)).getpixel((1, 1))[1] > 200


def test_tiny_and_wide_images_load():
    assert open_image(_png_bytes(Image.new("RGB", (1, 1)))).size == (1, 1)
    assert open_image(_png_bytes(Image.new("RGB", (4000, 3)))).size == (4000, 3)
    assert MAX_PIXELS >= 4096 * 4096
