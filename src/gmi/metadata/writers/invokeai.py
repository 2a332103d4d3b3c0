"""InvokeAI, three generations:

    3.x - 5.x   PNG `invokeai_metadata`: JSON {positive_prompt, negative_prompt, model: {name |
                model_name, hash ("blake3:..." from 4.x), key, base}, loras: [{model | lora:
                {...}, weight}], refiner_model}
    2.x         PNG `sd-metadata`: JSON {model_weights, model_hash (sha256), image: {prompt:
                [{prompt: "positive [negative]"}]}}
    legacy      PNG `Dream`: "positive [negative]" -s 50 -S 42 ... (no model)

In the 2.x and legacy forms the negative prompt is written inside square brackets.
"""

from __future__ import annotations

import re

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import as_dict, load_json, text_field
from gmi.metadata.record import Embedded, ModelRef, found, model_ref

NAMES = ("invokeai",)
_BRACKETS = re.compile(r"\[([^\[\]]*)\]")
_DREAM = re.compile(r'^\s*"(.*?)"(?:\s+-\w+|\s*$)', re.S)


def read(entries: Entries) -> Embedded | None:
    meta = load_json(entries.get("png:invokeai_metadata"))
    if isinstance(meta, dict):
        return _modern(meta)
    legacy = load_json(entries.get("png:sd-metadata"))
    if isinstance(legacy, dict):
        return _sd_metadata(legacy)
    dream = entries.get("png:Dream")
    if dream:
        match = _DREAM.match(dream)
        if match:
            prompt, negative = split_brackets(match.group(1))
            return found("invokeai", "png:Dream", prompt, negative)
    return None


def _modern(meta: dict) -> Embedded:
    models = [_model(meta.get("model"), "checkpoint"), _model(meta.get("refiner_model"), "refiner")]
    loras = []
    for item in meta.get("loras") or []:
        if isinstance(item, dict):
            inner = item.get("model") or item.get("lora") or {}
            loras.append(_model(inner, "lora", item.get("weight")))
    prompt = text_field(meta, "positive_prompt", "prompt")
    negative = text_field(meta, "negative_prompt")
    return found("invokeai", "png:invokeai_metadata", prompt, negative, models, loras)


def _model(value: object, role: str, weight: object = None) -> ModelRef | None:
    info = as_dict(value)
    name = text_field(info, "name", "model_name")
    return model_ref(
        name, [info.get("hash")] if isinstance(info.get("hash"), str) else [], role, weight
    )


def _sd_metadata(meta: dict) -> Embedded:
    image = as_dict(meta.get("image"))
    prompts = image.get("prompt")
    text = None
    if isinstance(prompts, list) and prompts and isinstance(prompts[0], dict):
        text = text_field(prompts[0], "prompt")
    elif isinstance(prompts, str):
        text = prompts
    prompt, negative = split_brackets(text or "")
    model = model_ref(meta.get("model_weights"), [str(meta.get("model_hash", ""))])
    return found("invokeai", "png:sd-metadata", prompt, negative, [model])


def split_brackets(text: str) -> tuple[str, str | None]:
    """InvokeAI's "positive [negative]" -> (positive, negative)."""
    negatives = [m.strip() for m in _BRACKETS.findall(text) if m.strip()]
    positive = _BRACKETS.sub(" ", text)
    positive = re.sub(r"\s+", " ", positive).strip(" ,")
    return positive, ", ".join(negatives) or None
