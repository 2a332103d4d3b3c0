"""Fooocus and Ruined Fooocus: one JSON document of parameters.

Fooocus         PNG `parameters` + `fooocus_scheme: fooocus` (JPEG/WebP: EXIF UserComment):
                {prompt, negative_prompt, base_model, base_model_hash (AutoV2), refiner_model,
                loras: [[name, weight, hash], ...], version: "Fooocus v2..."}
                (its A1111 scheme is A1111 text: gmi.metadata.writers.a1111)
Ruined Fooocus  PNG `parameters`: {software: "RuinedFooocus", Prompt, Negative,
                base_model_name, base_model_hash (sha256), loras: [{name, weight}]}
"""

from __future__ import annotations

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import load_json, text_field
from gmi.metadata.record import Embedded, ModelRef, found, model_ref

NAMES = ("fooocus", "ruined-fooocus")
PLACES = ("png:parameters", "exif:UserComment", "jpeg:comment")


def read(entries: Entries) -> Embedded | None:
    for key in PLACES:
        document = load_json(entries.get(key))
        if not isinstance(document, dict):
            continue
        if document.get("software") == "RuinedFooocus" or "base_model_name" in document:
            return _ruined(document, key)
        if "base_model" in document and ("prompt" in document or "full_prompt" in document):
            return _fooocus(document, key)
    return None


def _fooocus(document: dict, container: str) -> Embedded:
    models = [
        model_ref(document.get("base_model"), [str(document.get("base_model_hash", ""))]),
        model_ref(
            document.get("refiner_model"),
            [str(document.get("refiner_model_hash", ""))],
            role="refiner",
        ),
    ]
    prompt = text_field(document, "prompt")
    if prompt is None and isinstance(document.get("full_prompt"), list):
        prompt = next((p for p in document["full_prompt"] if isinstance(p, str)), None)
    return found(
        "fooocus",
        container,
        prompt,
        text_field(document, "negative_prompt"),
        models,
        lora_list(document.get("loras")),
    )


def _ruined(document: dict, container: str) -> Embedded:
    model = model_ref(
        text_field(document, "base_model_name", "base_model"),
        [str(document.get("base_model_hash", ""))],
    )
    return found(
        "ruined-fooocus",
        container,
        text_field(document, "Prompt", "prompt"),
        text_field(document, "Negative", "negative_prompt"),
        [model],
        lora_list(document.get("loras")),
    )


def lora_list(value: object) -> list[ModelRef | None]:
    """[[name, weight, hash?]], [{name, weight, hash?}] or ["name : weight"] -> references."""
    out: list[ModelRef | None] = []
    for item in value[:64] if isinstance(value, list) else []:
        if isinstance(item, list | tuple) and item:
            name = item[0]
            weight = item[1] if len(item) > 1 else None
            hashes = [h for h in item[2:] if isinstance(h, str)]
            out.append(model_ref(name, hashes, "lora", weight))
        elif isinstance(item, dict):
            hashes = [item.get("hash")] if isinstance(item.get("hash"), str) else []
            out.append(model_ref(item.get("name"), hashes, "lora", item.get("weight")))
        elif isinstance(item, str):
            name, _, weight = item.rpartition(" : ")
            out.append(model_ref(name or item, [], "lora", weight or None))
    return out
