"""SwarmUI: one JSON document, `sui_image_params` (prompt, negativeprompt, model, loras,
loraweights, refinermodel, ...), `sui_models` ([{name, param, hash: "0x<sha256>"}]) and
`sui_extra_data`.

Where: PNG `parameters`; JPEG/WebP EXIF UserComment.
"""

from __future__ import annotations

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import as_dict, load_json, text_field
from gmi.metadata.record import Embedded, ModelRef, found, model_ref
from gmi.model_hash import file_stem

NAMES = ("swarmui",)
PLACES = ("png:parameters", "exif:UserComment", "stealth", "jpeg:comment")
ROLES = {"model": "checkpoint", "refinermodel": "refiner", "loras": "lora", "used_loras": "lora"}


def read(entries: Entries) -> Embedded | None:
    for key in PLACES:
        document = load_json(entries.get(key))
        if not isinstance(document, dict):
            continue
        if "parameters" in document and "sui_image_params" not in document:
            document = as_dict(document["parameters"])
        params = document.get("sui_image_params")
        if isinstance(params, dict):
            return _parse(document, params, key)
    return None


def _parse(document: dict, params: dict, container: str) -> Embedded:
    listed = [m for m in document.get("sui_models") or [] if isinstance(m, dict)]
    hashes = {
        (str(m.get("param", "")).lower(), file_stem(str(m.get("name", "")))): m.get("hash")
        for m in listed
    }

    def ref(name: object, param: str, weight: object = None) -> ModelRef | None:
        role = ROLES.get(param, "other")
        value = hashes.get((param, file_stem(str(name))))
        if value is None and param == "loras":
            value = hashes.get(("used_loras", file_stem(str(name))))
        return model_ref(name, [value] if isinstance(value, str) else [], role, weight)

    models = [ref(params.get("model"), "model"), ref(params.get("refinermodel"), "refinermodel")]
    names = params.get("loras") if isinstance(params.get("loras"), list) else []
    weights = params.get("loraweights") if isinstance(params.get("loraweights"), list) else []
    loras = [
        ref(n, "loras", weights[i] if i < len(weights) else None)
        for i, n in enumerate(names[:64])
        if isinstance(n, str)
    ]
    for m in listed:  # listed models the parameters do not name (older SwarmUI)
        param = str(m.get("param", "")).lower()
        target = loras if ROLES.get(param) == "lora" else models
        if not any(
            r and r.name and file_stem(r.name) == file_stem(str(m.get("name")))
            for r in models + loras
        ):
            target.append(ref(m.get("name"), param))
    return found(
        "swarmui",
        container,
        text_field(params, "prompt"),
        text_field(params, "negativeprompt", "negative_prompt"),
        [m for m in models if m is None or m.role != "other" or m.ids],
        loras,
    )
