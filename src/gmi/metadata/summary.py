"""A person's view of an image's metadata: the writer, the checkpoint(s) and LoRAs in a few
short lines, never the raw document (`gmi identify`; the web page does the same in app.js)."""

from __future__ import annotations

from gmi.metadata.record import Embedded, ModelRef

WRITER_LABELS = {
    "a1111": "AUTOMATIC1111", "forge": "Forge", "forge-neo": "Forge Neo", "sdnext": "SD.Next",
    "comfyui": "ComfyUI", "swarmui": "SwarmUI", "invokeai": "InvokeAI", "novelai": "NovelAI",
    "fooocus": "Fooocus", "ruined-fooocus": "Ruined Fooocus", "civitai": "Civitai",
    "stability-matrix": "Stability Matrix", "tensorart": "TensorArt",
    "easydiffusion": "Easy Diffusion", "hf-space": "Hugging Face Space",
}  # fmt: skip


def describe_embedded(meta: Embedded) -> list[str]:
    """What the image's metadata says, in a few short lines (never the raw document)."""
    lines = []
    if meta.writer:
        made = [_reference(m) for m in meta.models if m.role in ("checkpoint", "refiner")]
        lines.append(
            f"{WRITER_LABELS.get(meta.writer, meta.writer)} metadata"
            + (f": made with {', '.join(made)}" if made else "")
        )
        if meta.loras:
            shown = [_reference(m) for m in meta.loras[:6]]
            more = f" and {len(meta.loras) - 6} more" if len(meta.loras) > 6 else ""
            lines.append(f"LoRAs / add-ons: {', '.join(shown)}{more}")
    if meta.provenance:
        p = meta.provenance
        if p.get("read"):
            ai = "AI-generated, " if p.get("ai_generated") else ""
            lines.append(f"Content Credentials (C2PA): {ai}made by {p.get('claim_generator')}")
        else:
            lines.append(f"Content Credentials (C2PA) present, not read: {p.get('reason')}")
    return lines


def _reference(ref: ModelRef) -> str:
    hashes = ref.to_json()["hashes"]
    shown = next(iter(hashes.items()), None)
    name = ref.name or "(unnamed)"
    weight = f":{ref.weight:g}" if ref.weight is not None else ""
    return f"{name}{weight}" + (f" [{shown[0]} {shown[1][:16]}]" if shown else "")
