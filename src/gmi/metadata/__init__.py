"""Generation metadata that image front-ends embed in the files they save.

    containers   the texts of a file (PNG chunks, EXIF, XMP, JPEG comments), from its bytes
    stealth      A1111 / NovelAI parameters hidden in pixel low bits
    writers/     one reader per front-end family, tried in order (writers.READERS)
    c2pa         Content Credentials (C2PA) manifests of closed generators
    record       what was found: writer, prompt, negative prompt, checkpoints, LoRAs

`read_embedded(image)` is what identification calls; `gmi.images.open_image` reads the file's
containers while it has the bytes and leaves them on the decoded image.
"""

from __future__ import annotations

from PIL import Image

from gmi.metadata.containers import Entries, add_info
from gmi.metadata.record import Embedded
from gmi.metadata.writers import READERS, WRITERS

ENTRIES_KEY = "gmi.metadata"  # where open_image leaves a file's Entries in the image's info
# texts that, when present and read by no reader, mean the image had metadata gmi could not
# read: a warning (and never a prompt)
GENERATION_KEYS = (
    "png:parameters", "png:prompt", "png:workflow", "png:Comment", "png:Dream",
    "png:sd-metadata", "png:invokeai_metadata", "png:generation_data", "png:parameters-json",
    "exif:UserComment", "stealth",
)  # fmt: skip

__all__ = ["WRITERS", "Embedded", "entries_of", "read_embedded"]


def entries_of(image: Image.Image) -> Entries:
    """The containers' texts: those open_image read from the file, else the decoder's info
    (an image a caller built or opened with PIL)."""
    entries = image.info.get(ENTRIES_KEY)
    if isinstance(entries, Entries):
        return entries
    made = Entries()
    add_info({k: v for k, v in image.info.items() if k != ENTRIES_KEY}, made)
    return made


def read_embedded(image: Image.Image, label: str = "image") -> Embedded:
    """What the image says about its own generation; an empty record (with warnings) when it
    says nothing gmi can read. Never raises: metadata never fails an identification."""
    entries = entries_of(image)
    warnings = [f"{label}: {w}" for w in entries.warnings]
    provenance = _provenance(entries, warnings, label)
    for _name, reader in READERS:
        try:
            result = reader(entries)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as exc:
            warnings.append(f"{label}: {exc}")
            continue
        if result is not None and (result.prompt or result.models):
            return _finish(result, warnings, provenance)
    unread = [k for k in GENERATION_KEYS if k in entries.texts]
    if unread and not any(unread[0].split(":", 1)[-1] in w for w in warnings):
        warnings.append(
            f"{label}: embedded {unread[0].split(':', 1)[-1]!r} metadata is not a format gmi "
            "reads; ignored (the prompt is interrogated)"
        )
    return Embedded(warnings=warnings, provenance=provenance)


def _finish(result: Embedded, warnings: list[str], provenance: dict | None) -> Embedded:
    if provenance is not None:
        result = Embedded(**{**result.__dict__, "provenance": provenance})
    return result.with_warnings(warnings)


def _provenance(entries: Entries, warnings: list[str], label: str) -> dict | None:
    if entries.c2pa is None and "c2pa" not in (entries.get("xmp") or ""):
        return None
    from gmi.metadata.c2pa import read_provenance

    return read_provenance(entries, warnings, label)
