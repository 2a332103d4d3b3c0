"""NovelAI (V1 to V4.5): `Software: NovelAI`, the prompt in `Description`, the model and an
internal hash in `Source` ("Stable Diffusion XL C1E1DE52", "NovelAI Diffusion V4.5 4BDE2A90"),
and a JSON `Comment` {prompt, uc (the negative), steps, ..., v4_prompt: {caption: {base_caption,
char_captions}}, v4_negative_prompt}.

Where: PNG text chunks; for WebP/JPEG one JSON document in EXIF UserComment holding those keys
(Comment as a JSON string); also hidden in the alpha channel (stealth, same JSON).
The hash in `Source` is NovelAI's own (no checkpoint file anyone can hold): reported, never
matched.
"""

from __future__ import annotations

import re

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import as_dict, load_json, text_field
from gmi.metadata.record import Embedded, ModelRef, found
from gmi.model_hash import ModelId

NAMES = ("novelai",)
_SOURCE = re.compile(r"^(.*?)\s+([0-9A-Fa-f]{8})$")


def read(entries: Entries) -> Embedded | None:
    fields = {k: entries.get(f"png:{k}") for k in ("Software", "Source", "Description", "Comment")}
    container = "png:Comment"
    if not _is_novelai(fields):
        fields, container = {}, ""
        for key in ("exif:UserComment", "stealth", "jpeg:comment"):
            document = load_json(entries.get(key))
            if isinstance(document, dict) and _is_novelai(document):
                fields, container = document, key
                break
    if not fields:
        return None
    comment = as_dict(fields.get("Comment"))
    v4 = as_dict(as_dict(comment.get("v4_prompt")).get("caption"))
    v4_negative = as_dict(as_dict(comment.get("v4_negative_prompt")).get("caption"))
    prompt = (
        text_field(v4, "base_caption")
        or text_field(comment, "prompt")
        or text_field(fields, "Description")
    )
    negative = text_field(v4_negative, "base_caption") or text_field(comment, "uc")
    source = fields.get("Source") if isinstance(fields.get("Source"), str) else ""
    match = _SOURCE.match(source.strip())
    name = match.group(1) if match else source or "NovelAI"
    ids = (ModelId("novelai", match.group(2).upper()),) if match else ()
    return found("novelai", container, prompt, negative, [ModelRef(name[:300], ids)])


def _is_novelai(fields: dict) -> bool:
    software = fields.get("Software")
    source = fields.get("Source")
    return (isinstance(software, str) and software.startswith("NovelAI")) or (
        isinstance(source, str) and source.startswith("NovelAI") and "Comment" in fields
    )
