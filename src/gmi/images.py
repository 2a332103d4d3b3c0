"""Safe image loading: every image gmi reads goes through here.

Rejects what is not an image or is too large BEFORE decoding the pixels (the declared size is
checked against MAX_PIXELS, so a small file declaring a huge canvas, a decompression bomb, is
refused), then normalises what is valid: EXIF orientation applied, first frame of an
animation, palette / alpha / CMYK / 16-bit converted to 8-bit RGB (alpha over white).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gmi.errors import InvalidInputError
from gmi.metadata import ENTRIES_KEY, GENERATION_KEYS
from gmi.metadata.containers import PNG_SIGNATURE, read_entries, strip_png_text
from gmi.metadata.stealth import read_stealth

MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; far above any generated image
MAX_SIDE = 20_000  # a 1 x 100,000 strip is no picture (and no JPEG can hold it)
# Larger images are decoded at reduced scale where the format allows (JPEG) and shrunk to this
# many pixels at once: the encoders look at 224-260 px, and 8 uploads of 6000 x 6000 would
# otherwise hold ~0.9 GB of pixels at the same time.
WORKING_PIXELS = 2048 * 2048
MAX_FILE_BYTES = 50 * 1024 * 1024
IMAGE_SUFFIXES = {
    ".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".avif", ".heic", ".heif",
}  # fmt: skip
# ISO-BMFF brands of HEIF images (phone photos); AVIF ("avif", "avis") Pillow reads itself
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def open_image(source: str | Path | bytes, label: str | None = None) -> Image.Image:
    """Decode an image file (path or bytes) into an RGB PIL image, or raise InvalidInputError."""
    label = label or (str(source) if not isinstance(source, bytes) else "upload")
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InvalidInputError(f"{label}: no such image file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise InvalidInputError(f"{label}: file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        data = path.read_bytes()
    if not data:
        raise InvalidInputError(f"{label}: empty file, not an image")
    if data[4:8] == b"ftyp" and data[8:12] in HEIF_BRANDS:
        _enable_heif(label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = _open(data)
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise InvalidInputError(
                    f"{label}: {width}x{height} pixels is more than the {MAX_PIXELS:,} allowed"
                )
            if max(width, height) > MAX_SIDE:
                raise InvalidInputError(
                    f"{label}: {width}x{height} pixels; a side longer than {MAX_SIDE:,} is refused"
                )
            image.seek(0)
            if width * height > WORKING_PIXELS and image.format == "JPEG":
                image.draft("RGB", _within(image.size))  # JPEG decodes at 1/2 .. 1/8 scale
            image = _load(image, data)
            entries = read_entries(data, image)
            if not any(k in entries.texts for k in GENERATION_KEYS):
                # hidden in pixel low bits: read before any resize or alpha compositing
                entries.add("stealth", read_stealth(image))
            if image.width * image.height > WORKING_PIXELS:
                image.thumbnail(_within(image.size), Image.Resampling.LANCZOS)
            image = ImageOps.exif_transpose(image)
    except InvalidInputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidInputError(
            f"{label}: image declares more pixels than the {MAX_PIXELS:,} allowed"
        ) from exc
    except UnidentifiedImageError as exc:
        raise InvalidInputError(
            f"{label}: not a readable image (unknown format or not an image)"
        ) from exc
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InvalidInputError(
            f"{label}: not a readable image ({type(exc).__name__}: {exc})"
        ) from exc
    if image.width < 1 or image.height < 1:
        raise InvalidInputError(f"{label}: image has no pixels")
    rgb = to_rgb(image)
    rgb.info[ENTRIES_KEY] = entries  # conversions drop info; gmi.metadata reads it from here
    return rgb


def _enable_heif(label: str) -> None:
    """HEIC / HEIF decoding comes from the optional pillow-heif (gmi[heif])."""
    try:
        from pillow_heif import register_heif_opener
    except ImportError as exc:
        raise InvalidInputError(
            f"{label}: a HEIC/HEIF image; install the 'heif' extra (pip install 'gmi[heif]', "
            "pillow-heif) to read it, or convert it to JPEG"
        ) from exc
    register_heif_opener()


def _open(data: bytes) -> Image.Image:
    """PIL's image (header only); a PNG whose text chunks PIL refuses (a zTXt inflating past
    its 1 MB cap: a big ComfyUI workflow) is opened without them: metadata never makes an
    image unreadable (gmi.metadata.containers reads the chunks itself, with its own limits)."""
    try:
        return Image.open(io.BytesIO(data))
    except ValueError as exc:
        if not _text_refused(data, exc):
            raise
    return Image.open(io.BytesIO(strip_png_text(data)))


def _load(image: Image.Image, data: bytes) -> Image.Image:
    """The pixels; text chunks after IDAT that PIL refuses are dropped as in _open."""
    try:
        image.load()
        return image
    except ValueError as exc:
        if not _text_refused(data, exc):
            raise
    image = Image.open(io.BytesIO(strip_png_text(data)))
    image.load()
    return image


def _text_refused(data: bytes, exc: ValueError) -> bool:
    return data.startswith(PNG_SIGNATURE) and "too large" in str(exc).lower()


def _to_srgb(image: Image.Image) -> Image.Image:
    profile = image.info.get("icc_profile")
    if not profile or image.mode not in ("RGB", "CMYK", "L"):
        return image
    try:
        from PIL import ImageCms

        source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
        srgb = ImageCms.createProfile("sRGB")
        converted = ImageCms.profileToProfile(image, source, srgb, outputMode="RGB")
    except Exception:  # a broken profile: the plain conversion below
        return image
    return converted if converted is not None else image


def _within(size: tuple[int, int]) -> tuple[int, int]:
    """The size, scaled down to WORKING_PIXELS pixels (aspect kept)."""
    scale = (WORKING_PIXELS / (size[0] * size[1])) ** 0.5
    return max(1, int(size[0] * scale)), max(1, int(size[1] * scale))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit sRGB; an embedded ICC profile (CMYK print files, Display P3 phone photos) is
    converted to sRGB, transparency composited over white, 16-bit/float scaled to 0..255."""
    image = _to_srgb(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / peak * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")
