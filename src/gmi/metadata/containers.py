"""The text an image file carries, read from its bytes: the containers, not what they mean.

Front-ends hide generation metadata in many places, and a reader that trusts a decoder's idea
of them misses some (PIL drops a PNG's text chunks after IDAT unless the pixels are loaded,
refuses a zTXt that inflates past 1 MB, decodes UTF-8 tEXt as Latin-1). So the bytes are walked
here, defensively:

    PNG     tEXt / zTXt / iTXt anywhere in the file (also after IDAT), eXIf, caBX (C2PA)
    JPEG    APP1 Exif, APP1 XMP, COM, APP11 JUMBF (C2PA)
    WebP    EXIF, XMP, C2PA chunks
    EXIF    UserComment (charset prefix UNICODE / ASCII / none, UTF-16 of either byte order),
            ImageDescription, Make, Software, XPComment (from any of the above, or PIL's info
            for other formats: TIFF, AVIF, HEIF, GIF)

Each entry is a `container:key` -> text pair ("png:parameters", "exif:UserComment"). Sizes are
capped, inflation is bounded, and anything malformed is a warning: metadata never fails an
identification.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from PIL import Image

MAX_ENTRY_BYTES = 4 * 1024 * 1024  # a big ComfyUI workflow is ~0.5 MB of JSON
MAX_TOTAL_BYTES = 16 * 1024 * 1024  # all entries of one file together, after inflating
MAX_ENTRIES = 256
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXIF_IFD = 0x8769
EXIF_TAGS = {0x010E: "ImageDescription", 0x010F: "Make", 0x0131: "Software", 0x9C9C: "XPComment"}
USER_COMMENT = 0x9286


@dataclass
class Entries:
    """The texts found in one file, in file order, and the problems met reading them."""

    texts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    c2pa: bytes | None = None  # the raw JUMBF manifest store, when one is embedded
    file: bytes | None = None  # the file's bytes, kept only when it carries C2PA (its reader)
    mime: str = ""
    _total: int = 0

    def get(self, key: str) -> str | None:
        return self.texts.get(key)

    def add(self, key: str, text: str | None) -> None:
        if text is None or key in self.texts:
            return
        text = text.strip("\x00")
        if not text.strip():
            return
        if len(self.texts) >= MAX_ENTRIES or self._total + len(text) > MAX_TOTAL_BYTES:
            self.warnings.append(f"metadata entry {key!r} past the size limits; ignored")
            return
        self._total += len(text)
        self.texts[key] = text


def read_entries(data: bytes, image: Image.Image | None = None) -> Entries:
    """Every metadata text of an image file (its bytes; `image`, the decoded file, supplies
    EXIF for formats not walked here)."""
    entries = Entries()
    try:
        if data.startswith(PNG_SIGNATURE):
            entries.mime = "image/png"
            _walk_png(data, entries)
        elif data.startswith(b"\xff\xd8"):
            entries.mime = "image/jpeg"
            _walk_jpeg(data, entries)
        elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            entries.mime = "image/webp"
            _walk_webp(data, entries)
        elif image is not None:
            entries.mime = Image.MIME.get(str(image.format), "")
            add_info(image.info, entries)
            if b"c2pa" in data[:65536] and b"jumb" in data[:65536]:
                entries.c2pa = b""  # a BMFF (AVIF/HEIF) manifest box: the reader finds it
    except (ValueError, IndexError, struct.error) as exc:
        entries.warnings.append(f"malformed metadata container ({exc}); the rest ignored")
    if entries.c2pa is not None:
        entries.file = data
    return entries


def add_info(info: dict, entries: Entries) -> None:
    """Text and EXIF from a decoder's `info` (a PIL image the caller made or opened)."""
    for key, value in info.items():
        if key == "exif" and isinstance(value, bytes | bytearray):
            add_exif(bytes(value), entries)
        elif key == "xmp" and isinstance(value, bytes | bytearray):
            entries.add("xmp", bytes(value)[:MAX_ENTRY_BYTES].decode("utf-8", "replace"))
        elif isinstance(value, str) and len(value) <= MAX_ENTRY_BYTES:
            entries.add(f"png:{key}", repair_utf8(value))
        elif isinstance(value, bytes) and len(value) <= MAX_ENTRY_BYTES and key != "icc_profile":
            entries.add(f"png:{key}", decode_text(value))


# -- PNG --------------------------------------------------------------------------------------
def _walk_png(data: bytes, entries: Entries) -> None:
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if len(body) < length:
            entries.warnings.append(f"truncated PNG {kind.decode('latin-1')!r} chunk; ignored")
            return
        if kind == b"IEND":
            return
        if kind in (b"tEXt", b"zTXt", b"iTXt"):
            _png_text(kind, body, entries)
        elif kind == b"eXIf":
            add_exif(body, entries)
        elif kind == b"caBX":
            entries.c2pa = (entries.c2pa or b"") + body


def strip_png_text(data: bytes) -> bytes:
    """The PNG without its text chunks (for a decoder that refuses one)."""
    out = [data[: len(PNG_SIGNATURE)]]
    offset = len(PNG_SIGNATURE)
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if kind not in (b"tEXt", b"zTXt", b"iTXt"):
            out.append(data[offset : offset + 12 + length])
        offset += 12 + length
    return b"".join(out)


def _png_text(kind: bytes, body: bytes, entries: Entries) -> None:
    keyword, sep, rest = body.partition(b"\x00")
    name = keyword.decode("latin-1")
    if not sep or not 0 < len(keyword) < 80:
        entries.warnings.append(f"malformed PNG {kind.decode()} chunk; ignored")
        return
    if kind == b"tEXt":
        entries.add(f"png:{name}", _capped(name, rest, entries))
        return
    if kind == b"zTXt":
        entries.add(f"png:{name}", _capped(name, _inflate(name, rest[1:], entries), entries))
        return
    if len(rest) < 2:
        return
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    raw = _inflate(name, text, entries) if compressed else text
    entries.add(f"png:{name}", _capped(name, raw, entries))


def _inflate(name: str, data: bytes, entries: Entries) -> bytes | None:
    """zlib data inflated to at most MAX_ENTRY_BYTES (a zip bomb stops there)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_ENTRY_BYTES + 1)
    except zlib.error:
        entries.warnings.append(f"metadata {name!r}: compressed text is corrupt; ignored")
        return None
    if len(out) > MAX_ENTRY_BYTES:
        entries.warnings.append(
            f"metadata {name!r} inflates past {MAX_ENTRY_BYTES // 2**20} MiB; ignored"
        )
        return None
    return out


def _capped(name: str, raw: bytes | None, entries: Entries) -> str | None:
    if raw is None:
        return None
    if len(raw) > MAX_ENTRY_BYTES:
        entries.warnings.append(f"metadata {name!r} is larger than the limit; ignored")
        return None
    return decode_text(raw)


def decode_text(raw: bytes) -> str:
    """UTF-8 when the bytes are valid UTF-8 (tools write it into Latin-1 tEXt chunks: Stability
    Matrix, TensorArt), else Latin-1 as the PNG specification says."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def repair_utf8(text: str) -> str:
    """Undo UTF-8 read as Latin-1 ("Ã©" for "é"), which decoders produce from such chunks."""
    if text.isascii() or any(ord(c) > 255 for c in text):
        return text
    try:
        return text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return text


# -- JPEG / WebP ------------------------------------------------------------------------------
def _walk_jpeg(data: bytes, entries: Entries) -> None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return
        marker = data[offset + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            offset += 1 if marker == 0xFF else 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan: no metadata segments past it
            return
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        body = data[offset + 4 : offset + 2 + length]
        offset += 2 + length
        if marker == 0xE1 and body.startswith(b"Exif\x00"):
            add_exif(body[6:], entries)
        elif marker == 0xE1 and body.startswith(b"http://ns.adobe.com/xap/1.0/\x00"):
            entries.add("xmp", decode_text(body[29:]))
        elif marker == 0xFE:
            entries.add("jpeg:comment", decode_text(body))
        elif marker == 0xEB and body[:2] == b"JP":  # JUMBF box segments: C2PA
            entries.c2pa = (entries.c2pa or b"") + body


def _walk_webp(data: bytes, entries: Entries) -> None:
    offset = 12
    while offset + 8 <= len(data):
        kind = data[offset : offset + 4]
        (length,) = struct.unpack("<I", data[offset + 4 : offset + 8])
        body = data[offset + 8 : offset + 8 + length]
        offset += 8 + length + (length & 1)
        if kind == b"EXIF":
            add_exif(body[6:] if body.startswith(b"Exif\x00") else body, entries)
        elif kind == b"XMP ":
            entries.add("xmp", decode_text(body))
        elif kind == b"C2PA":
            entries.c2pa = (entries.c2pa or b"") + body


# -- EXIF -------------------------------------------------------------------------------------
def add_exif(tiff: bytes, entries: Entries) -> None:
    """The text tags of an EXIF block (TIFF structure, either byte order)."""
    if len(tiff) > MAX_TOTAL_BYTES:
        entries.warnings.append("EXIF block larger than the limit; ignored")
        return
    try:
        exif = Image.Exif()
        exif.load(tiff)
        comment = exif.get_ifd(EXIF_IFD).get(USER_COMMENT)
        tags = {name: exif.get(tag) for tag, name in EXIF_TAGS.items()}
    except Exception:
        entries.warnings.append("unreadable EXIF block; ignored")
        return
    if comment is not None:
        entries.add("exif:UserComment", _exif_text(comment, user_comment=True))
    for name, value in tags.items():
        if value is not None:
            entries.add(f"exif:{name}", _exif_text(value, utf16le=name == "XPComment"))


def _exif_text(value: object, *, user_comment: bool = False, utf16le: bool = False) -> str | None:
    if isinstance(value, str):
        return repair_utf8(value)
    if isinstance(value, tuple):  # XP* tags as a tuple of bytes
        try:
            value = bytes(value)
        except (TypeError, ValueError):
            return None
    if not isinstance(value, bytes | bytearray):
        return None
    raw = bytes(value)[:MAX_ENTRY_BYTES]
    if utf16le:
        return raw.decode("utf-16-le", "replace")
    return decode_user_comment(raw) if user_comment else decode_text(raw)


def decode_user_comment(data: bytes) -> str:
    """EXIF UserComment: 8 bytes naming the charset, then the text. "UNICODE" is UTF-16 whose
    byte order is not recorded (A1111 writes big-endian, others little-endian): it is taken from
    a BOM or from which side the zero bytes of ASCII-heavy text are on. Some tools write
    UTF-8 after "UNICODE", and ComfyUI's savers write JSON with no prefix at all."""
    prefix, body = data[:8], data[8:]
    if prefix.startswith(b"UNICODE"):
        if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return body.decode("utf-16", errors="replace")
        if body and 0 not in body:
            return decode_text(body)
        even_zeros = body[0::2].count(0)
        odd_zeros = body[1::2].count(0)
        encoding = "utf-16-be" if even_zeros >= odd_zeros else "utf-16-le"
        return body.decode(encoding, errors="replace")
    if prefix.startswith(b"ASCII") or prefix == b"\x00" * 8 or prefix.startswith(b"JIS"):
        return decode_text(body)
    return decode_text(data)
