"""AUTOMATIC1111's parameters text, which most front-ends write or copy:

    <prompt, possibly several lines, <lora:name:0.8> tags inside>
    Negative prompt: <negative prompt, possibly several lines>
    Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1, Size: 512x512, Model hash: 6ce0161689,
    Model: v1-5-pruned-emaonly, Lora hashes: "add_detail: 7c6bad76eb54", Version: v1.10.1

Where: PNG `parameters` (tEXt, iTXt or zTXt, before or after IDAT), EXIF UserComment for
JPEG/WebP, or hidden in the alpha channel (stealth pnginfo). The same text comes from Forge
(`Version: f2...`), Forge Neo (`Version: neo`), SD.Next (`App: SD.Next`), Civitai's generator
(`Civitai resources: [...]`, `Hashes: {...}`), Fooocus's A1111 scheme (`Version: Fooocus`),
ComfyUI savers (`Version: ComfyUI`) and Stability Matrix (with its `smproj` chunk): one parser,
the writer told apart by those fields.

Settings values are `key: value` pairs separated by commas; a value holding commas is quoted
(JSON string) or is a JSON list/object (Civitai's), which may span lines.
"""

from __future__ import annotations

import re
from typing import Any

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import load_json, looks_structured
from gmi.metadata.record import Embedded, ModelRef, found, model_ref
from gmi.model_hash import ModelId, identity_of

NAMES = ("a1111", "forge", "forge-neo", "sdnext", "civitai", "fooocus", "comfyui")
MAX_TEXT_CHARS = 64 * 1024  # an A1111 parameters block is a few KB
# where each container may hold the text, and whether prose alone (no settings) counts there
PLACES = (("png:parameters", True), ("stealth", True), ("exif:UserComment", False))
_SETTINGS_START = re.compile(r"(?:^|\n)[ \t]*Steps: *\d+", re.MULTILINE)
_KEY = re.compile(r"\s*([A-Za-z][\w \-/().+]{0,60}?):\s*")
_EXTRA_NETWORK = re.compile(r"<(lora|lyco|locon|hypernet):([^:<>]+)(?::([-\d.]+))?[^<>]*>", re.I)
_REFINER = re.compile(r"^(.*?)\s*\[([0-9a-fA-F]{8,64})\]$")


class TooLong(ValueError):
    pass


def read(entries: Entries) -> Embedded | None:
    for key, prose_ok in PLACES:
        text = entries.get(key)
        if text is None or looks_structured(text):
            continue
        if len(text) > MAX_TEXT_CHARS:
            raise TooLong(f"embedded {key!r} is longer than {MAX_TEXT_CHARS} characters")
        result = parse_a1111(text, key, prose_ok=prose_ok)
        if result is not None:
            if "png:smproj" in entries.texts:
                return Embedded(**{**result.__dict__, "writer": "stability-matrix"})
            return result
    return None


def parse_a1111(text: str, container: str = "png:parameters", *, prose_ok: bool = True):
    """The record of one parameters text, or None when it is not one (prose is taken as a
    prompt only where `prose_ok`: a `parameters` chunk, never a camera's UserComment)."""
    text = text.replace("\r\n", "\n").strip()
    starts = list(_SETTINGS_START.finditer(text))
    settings: dict[str, Any] = {}
    head = text
    if starts:
        start = starts[-1].start()
        candidate = parse_settings(text[start:].strip())
        if len(candidate) >= 2:
            settings, head = candidate, text[:start]
    prompt, negative, marked = split_negative(head)
    if not settings and not marked and not prose_ok:
        return None
    if prompt is None and not settings:
        return None
    result = found(
        _writer(settings),
        container,
        prompt,
        negative,
        models=_checkpoints(settings),
        loras=_loras(prompt or "", settings),
    )
    stated = settings.get("Model hash")
    if isinstance(stated, str) and stated and identity_of(stated) is None:
        return result.with_warnings(
            [f"embedded model hash {stated[:80]!r} is not hexadecimal; ignored"]
        )
    return result


def split_negative(head: str) -> tuple[str | None, str | None, bool]:
    """(prompt, negative prompt, whether a "Negative prompt:" line was there)."""
    lines = head.strip().split("\n")
    for i, line in enumerate(lines):
        if line.startswith("Negative prompt:"):
            negative = "\n".join([line.removeprefix("Negative prompt:"), *lines[i + 1 :]])
            return "\n".join(lines[:i]).strip() or None, negative.strip() or None, True
    return head.strip() or None, None, False


def parse_settings(text: str) -> dict[str, Any]:
    """`Key: value, Key: "quoted, value", Key: [json], ...` -> {key: value}."""
    out: dict[str, Any] = {}
    pos = 0
    while pos < len(text):
        match = _KEY.match(text, pos)
        if not match:
            comma = text.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        key, pos = match.group(1).strip(), match.end()
        value, pos = _value(text, pos)
        out.setdefault(key, value)
        while pos < len(text) and text[pos] in ", \n\t":
            pos += 1
    return out


def _value(text: str, pos: int) -> tuple[Any, int]:
    if pos < len(text) and text[pos] in '"[{':
        end = _closing(text, pos)
        if end > pos:
            raw = text[pos : end + 1]
            parsed = load_json(raw) if raw[0] in "[{" else load_json(f"[{raw}]")
            if isinstance(parsed, list) and raw[0] == '"':
                parsed = parsed[0] if parsed else ""
            return (parsed if parsed is not None else raw.strip('"')), end + 1
    comma = text.find(",", pos)
    end = len(text) if comma < 0 else comma
    return text[pos:end].strip(), end


def _closing(text: str, pos: int) -> int:
    """Index of the quote/bracket closing the one at `pos` (strings respected), or -1."""
    opener = text[pos]
    if opener == '"':
        i = pos + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                return i
            i += 1
        return -1
    depth, i, in_string = 0, pos, False
    while i < len(text):
        char = text[i]
        if in_string:
            if char == "\\":
                i += 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _writer(settings: dict[str, Any]) -> str:
    version = str(settings.get("Version", ""))
    if "Civitai resources" in settings or "Civitai metadata" in settings:
        return "civitai"
    if str(settings.get("App", "")).replace(" ", "").lower() == "sd.next":
        return "sdnext"
    if version.startswith("neo"):
        return "forge-neo"
    if re.match(r"f\d", version) or version.startswith("classic"):
        return "forge"
    if version.lower().startswith("fooocus"):
        return "fooocus"
    if version == "ComfyUI":
        return "comfyui"
    return "a1111"


def _checkpoints(settings: dict[str, Any]) -> list[ModelRef | None]:
    """The checkpoint (`Model`, `Model hash`, Civitai's `Hashes.model` and its first
    checkpoint resource: the same file), a `Refiner: name [hash]`, other checkpoints listed."""
    hashes = settings.get("Hashes") if isinstance(settings.get("Hashes"), dict) else {}
    main = model_ref(
        settings.get("Model"), [str(settings.get("Model hash", "")), str(hashes.get("model", ""))]
    )
    others: list[ModelRef | None] = []
    first = True
    for resource in _civitai_resources(settings):
        if str(resource.get("type", "")).lower() != "checkpoint":
            continue
        ref = civitai_resource(resource, "checkpoint")
        if ref is None:
            continue
        if first:  # the first checkpoint resource is the `Model` itself
            main = ref if main is None else ModelRef(main.name or ref.name, main.ids + ref.ids)
            first = False
        else:
            others.append(ModelRef(ref.name, ref.ids, "other", ref.weight))
    refiner = settings.get("Refiner")
    if isinstance(refiner, str) and refiner:
        match = _REFINER.match(refiner.strip())
        name, value = (match.group(1), match.group(2)) if match else (refiner, "")
        others.insert(0, model_ref(name, [value], role="refiner"))
    return [main, *others]


def _civitai_resources(settings: dict[str, Any]) -> list[dict]:
    resources = settings.get("Civitai resources")
    return [r for r in resources if isinstance(r, dict)] if isinstance(resources, list) else []


def civitai_resource(resource: dict, role: str) -> ModelRef | None:
    """A Civitai resource entry: AIR when written, else the model version id."""
    ids: list[Any] = []
    if isinstance(resource.get("air"), str):
        ids.append(resource["air"])
    version = resource.get("modelVersionId")
    if isinstance(version, int | str) and str(version).isdigit():
        ids.append(ModelId("civitai_version", str(version)))
    if isinstance(resource.get("hash"), str):
        ids.append(resource["hash"])
    name = resource.get("modelName") or resource.get("name")
    weight = resource.get("weight", resource.get("strength"))
    return model_ref(name, ids, role=role, weight=weight)


def _loras(prompt: str, settings: dict[str, Any]) -> list[ModelRef | None]:
    """<lora:name:w> tags, with `Lora hashes` / `Hashes` ("lora:name") / Civitai resources."""
    known = _lora_hashes(settings)
    refs: list[ModelRef | None] = []
    for kind, name, weight in _EXTRA_NETWORK.findall(prompt):
        role = "hypernetwork" if kind.lower() == "hypernet" else "lora"
        _, value = known.pop(name.strip().lower(), ("", ""))
        refs.append(model_ref(name.strip(), [value], role, weight))
    for name, value in known.values():  # hashed but not tagged (e.g. applied by a node)
        refs.append(model_ref(name, [value], "lora"))
    for resource in _civitai_resources(settings):
        kind = str(resource.get("type", "")).lower()
        if kind in ("lora", "locon", "lycoris", "dora"):
            refs.append(civitai_resource(resource, "lora"))
    return refs


def _lora_hashes(settings: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """lower-case name -> (name as written, hash)."""
    out: dict[str, tuple[str, str]] = {}
    listed = settings.get("Lora hashes")
    if isinstance(listed, str):
        for pair in listed.split(","):
            name, _, value = pair.rpartition(":")
            if name.strip():
                out[name.strip().lower()] = (name.strip(), value.strip())
    hashes = settings.get("Hashes")
    if isinstance(hashes, dict):
        for key, value in hashes.items():
            if str(key).lower().startswith("lora:") and isinstance(value, str):
                name = str(key)[5:].strip()
                out.setdefault(name.lower(), (name, value))
    return out
