"""Front-ends that write one flat JSON object of parameters, each told apart by its keys:

stability-matrix  PNG `parameters-json`: {PositivePrompt, NegativePrompt, ModelName,
                  ModelHash (sha256), ...} (beside A1111 text in `parameters` and `smproj`)
tensorart         PNG `generation_data`: {prompt, negativePrompt, baseModel: {modelFileName,
                  hash (sha256)}, models / loras: [...]} (NULs appended; a ComfyUI graph
                  in `prompt` beside it)
easydiffusion     PNG chunks `prompt` (text), `negative_prompt`, `use_stable_diffusion_model`,
                  or the same keys in one JSON object (JPEG EXIF UserComment)
hf-space          Gradio + diffusers Spaces, PNG `parameters` / EXIF UserComment: {prompt,
                  negative_prompt, Model, "Model hash", resolution, guidance_scale, ...}
"""

from __future__ import annotations

from gmi.metadata.containers import Entries
from gmi.metadata.jsontext import as_dict, load_json, text_field
from gmi.metadata.record import Embedded, ModelRef, found, model_ref

NAMES = ("stability-matrix", "tensorart", "easydiffusion", "hf-space")
PLACES = ("png:parameters", "exif:UserComment", "jpeg:comment")
# keys that make a flat JSON object with a prompt a set of generation parameters
GENERATION_KEYS = {
    "negative_prompt", "seed", "steps", "num_inference_steps", "guidance_scale", "cfg_scale",
    "Model", "model", "sampler", "resolution", "width", "height", "scheduler",
}  # fmt: skip


def read(entries: Entries) -> Embedded | None:
    for reader in (_stability_matrix, _tensorart, _easydiffusion, _hf_space):
        result = reader(entries)
        if result is not None:
            return result
    return None


def _stability_matrix(entries: Entries) -> Embedded | None:
    data = load_json(entries.get("png:parameters-json"))
    if not isinstance(data, dict):
        return None
    model = model_ref(data.get("ModelName"), [str(data.get("ModelHash", ""))])
    return found(
        "stability-matrix",
        "png:parameters-json",
        text_field(data, "PositivePrompt"),
        text_field(data, "NegativePrompt"),
        [model],
    )


def _tensorart(entries: Entries) -> Embedded | None:
    data = load_json(entries.get("png:generation_data"))
    if not isinstance(data, dict):
        return None
    base = as_dict(data.get("baseModel"))
    models: list[ModelRef | None] = [
        model_ref(
            text_field(base, "modelFileName", "modelName", "name"), [str(base.get("hash", ""))]
        )
    ]
    loras: list[ModelRef | None] = []
    for key in ("models", "loras", "loraModels"):
        for item in data.get(key) or []:
            item = as_dict(item)
            kind = str(item.get("type", item.get("modelType", "lora"))).lower()
            ref = model_ref(
                text_field(item, "modelFileName", "modelName", "name"),
                [str(item.get("hash", ""))],
                "lora" if "lora" in kind or key != "models" else "other",
                item.get("weight"),
            )
            (loras if ref is not None and ref.role == "lora" else models).append(ref)
    return found(
        "tensorart",
        "png:generation_data",
        text_field(data, "prompt"),
        text_field(data, "negativePrompt", "negative_prompt"),
        models,
        loras,
    )


def _easydiffusion(entries: Entries) -> Embedded | None:
    if "png:use_stable_diffusion_model" in entries.texts:
        data = {
            k: entries.get(f"png:{k}")
            for k in ("prompt", "negative_prompt", "use_stable_diffusion_model")
        }
        container = "png:prompt"
    else:
        data, container = {}, ""
        for key in PLACES:
            document = load_json(entries.get(key))
            if isinstance(document, dict) and "use_stable_diffusion_model" in document:
                data, container = document, key
                break
    if not data or isinstance(load_json(data.get("prompt")), dict):
        return None
    model = model_ref(data.get("use_stable_diffusion_model"))
    return found(
        "easydiffusion",
        container,
        text_field(data, "prompt"),
        text_field(data, "negative_prompt"),
        [model],
    )


def _hf_space(entries: Entries) -> Embedded | None:
    for key in PLACES:
        data = load_json(entries.get(key))
        if not isinstance(data, dict) or not isinstance(data.get("prompt"), str):
            continue
        if len(GENERATION_KEYS & data.keys()) < 1:
            continue
        name = text_field(data, "Model", "model", "model_id", "base_model")
        model = model_ref(name, [str(data.get("Model hash", data.get("model_hash", "")))])
        return found("hf-space", key, data["prompt"], text_field(data, "negative_prompt"), [model])
    return None
