"""A1111 "stealth pnginfo" (also NovelAI's): generation text hidden in pixel low bits.

Sites that strip text chunks keep the pixels, so an extension of AUTOMATIC1111 (and NovelAI)
hide the parameters there: the least significant bits of the alpha channel (one bit a pixel) or
of R, G and B (three), read column by column (down the first column, then the next), spell a
15-byte signature, a 32-bit big-endian payload length in bits, and the payload:

    stealth_pnginfo / stealth_pngcomp   alpha bits; plain UTF-8 / gzip
    stealth_rgbinfo / stealth_rgbcomp   RGB bits;   plain UTF-8 / gzip

Only the columns that hold the signature are looked at unless it is there, so an ordinary
image costs a few hundred pixels.
"""

from __future__ import annotations

import gzip
import zlib

import numpy as np
from PIL import Image

SIGNATURES = {
    b"stealth_pnginfo": ("alpha", False),
    b"stealth_pngcomp": ("alpha", True),
    b"stealth_rgbinfo": ("rgb", False),
    b"stealth_rgbcomp": ("rgb", True),
}
SIGNATURE_BITS = 15 * 8
MAX_PAYLOAD_BYTES = 1024 * 1024


def read_stealth(image: Image.Image) -> str | None:
    """The hidden text, or None (no signature, or a payload that does not decode)."""
    if image.mode not in ("RGBA", "RGB") or image.width * image.height < 200:
        return None
    for channel in ("alpha", "rgb") if image.mode == "RGBA" else ("rgb",):
        head = _bits(image, channel, SIGNATURE_BITS + 32)
        if head is None:
            continue
        signature = np.packbits(head[:SIGNATURE_BITS]).tobytes()
        if signature not in SIGNATURES or SIGNATURES[signature][0] != channel:
            continue
        length = int.from_bytes(np.packbits(head[SIGNATURE_BITS:]).tobytes(), "big")
        if length <= 0 or length % 8 or length // 8 > MAX_PAYLOAD_BYTES:
            return None
        bits = _bits(image, channel, SIGNATURE_BITS + 32 + length)
        if bits is None:
            return None
        payload = np.packbits(bits[SIGNATURE_BITS + 32 :]).tobytes()
        return _decode(payload, compressed=SIGNATURES[signature][1])
    return None


def _bits(image: Image.Image, channel: str, count: int) -> np.ndarray | None:
    """The first `count` hidden bits, from only the columns that hold them."""
    per_pixel = 1 if channel == "alpha" else 3
    pixels = -(-count // per_pixel)
    columns = -(-pixels // image.height)
    if columns > image.width:
        return None
    strip = np.asarray(image.crop((0, 0, columns, image.height)))
    planes = strip[..., 3:4] if channel == "alpha" else strip[..., :3]
    # column-major pixel order, channels in order within a pixel
    return (planes.transpose(1, 0, 2).reshape(-1) & 1)[:count].astype(np.uint8)


def _decode(payload: bytes, *, compressed: bool) -> str | None:
    try:
        if compressed:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip, bounded
            payload = inflater.decompress(payload, MAX_PAYLOAD_BYTES + 1)
            if len(payload) > MAX_PAYLOAD_BYTES:
                return None
        return payload.decode("utf-8")
    except (zlib.error, gzip.BadGzipFile, UnicodeDecodeError, EOFError):
        return None
