"""JSON inside metadata text, read defensively: bounded nesting, no exceptions out.

A document is parsed only when it is an object or array as a whole (after a `Prompt:` /
`Workflow:` label some savers put in front, and the NULs some writers append); anything else is
not JSON, which a reader must never mistake for a prompt.
"""

from __future__ import annotations

import json
import re
from typing import Any

_LABEL = re.compile(r"^\s*([A-Za-z][A-Za-z ]{0,20}):\s*(?=[{\[])")


def looks_structured(text: str) -> bool:
    """A JSON/XML document (or a labelled one), not prose a person wrote."""
    head = _LABEL.sub("", text, count=1).lstrip()
    return head[:1] in ("{", "[", "<")


def load_json(text: str | None) -> Any:
    """The parsed object or array, or None when the text is not one."""
    return parse_json(text)[0]


def parse_json(text: str | None) -> tuple[Any, str | None]:
    """(the parsed object or array, None) or (None, why not): "not JSON" for prose, "not valid
    JSON", "nested too deeply" (the C parser's own recursion guard: no scan of ours, so a
    0.5 MB workflow parses in a millisecond)."""
    if text is None:
        return None, "not JSON"
    body = _LABEL.sub("", text, count=1).strip().rstrip("\x00").strip()
    if body[:1] not in ("{", "["):
        return None, "not JSON"
    try:
        return json.loads(body), None
    except RecursionError:
        return None, "nested too deeply"
    except ValueError:
        return None, "not valid JSON"


def label_of(text: str) -> str | None:
    """The `Word:` label in front of a JSON document ("Prompt", "Workflow"), if any."""
    match = _LABEL.match(text)
    return match.group(1) if match else None


def as_dict(value: Any) -> dict:
    """A JSON object, or a JSON object serialised as a string inside one (NovelAI's Comment,
    Civitai's extraMetadata), or {}."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        loaded = load_json(value)
        return loaded if isinstance(loaded, dict) else {}
    return {}


def text_field(mapping: dict, *keys: str) -> str | None:
    """The first of `keys` whose value is a non-empty string."""
    for key in keys:
        value = mapping.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return None
