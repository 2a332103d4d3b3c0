"""What an image says about its own generation, as one immutable record for every writer.

A writer's reader (gmi.metadata.writers) fills it; identification reads the prompt from it and
looks its checkpoints and LoRAs up in the registry; `gmi identify --json` prints `to_json()`
(docs/identify-output.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from gmi.model_hash import ModelId, file_stem, identity_of

MAX_PROMPT_CHARS = 2000  # the same cap a stated prompt has (gmi.imagefolder)
MAX_NAME_CHARS = 300
MAX_REFERENCES = 64  # checkpoints or LoRAs listed per image; a real graph has a handful


@dataclass(frozen=True)
class ModelRef:
    """A checkpoint or an add-on (LoRA, LyCORIS, hypernetwork, embedding) the image names.

    role: "checkpoint" (made the image: a ComfyUI graph's first sampler's, else the only one),
    "refiner", "other" (another checkpoint of the graph), or the add-on's kind for a LoRA."""

    name: str | None
    ids: tuple[ModelId, ...] = ()
    role: str = "checkpoint"
    weight: float | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "role": self.role}
        out["hashes"] = {i.kind: i.value for i in self.ids if i.kind != "file"}
        if self.weight is not None:
            out["weight"] = self.weight
        return out

    def lookups(self) -> tuple[list[str], list[str]]:
        """(exact keys from hashes and AIRs, named keys from the file name) for the registry."""
        exact = [k for i in self.ids if i.exact for k in i.registry_keys()]
        named = ModelId("file", file_stem(self.name)).registry_keys() if self.name else []
        return exact, [k for k in named if k != "file:"]


def model_ref(
    name: Any, hashes: Any = (), role: str = "checkpoint", weight: Any = None
) -> ModelRef | None:
    """A reference from untrusted values: strings kept, hashes of no known form dropped; None
    when neither a name nor a hash is left. An AIR written as the name counts as its hash."""
    text = _clean_name(name)
    ids: list[ModelId] = []
    raw = [hashes] if isinstance(hashes, str) else list(hashes or ())
    if text and text.lower().startswith("urn:air:"):
        raw.append(text)
    for value in raw:
        if isinstance(value, ModelId):
            ids.append(value)
        elif isinstance(value, str) and (found := identity_of(value)) is not None:
            ids.append(found)
    if not text and not ids:
        return None
    return ModelRef(text, tuple(dict.fromkeys(ids)), role, _weight(weight))


def _clean_name(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip().strip("\x00").strip()
    if not text or text.lower() in ("none", "null", "default", "undefined"):
        return None
    return text[:MAX_NAME_CHARS]


def _weight(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if -1e6 < number < 1e6 else None


@dataclass(frozen=True)
class Embedded:
    """The generation metadata read from one image (all fields optional).

    writer: the front-end recognised (gmi.metadata.writers.WRITERS), "" when none was."""

    writer: str = ""
    prompt: str | None = None
    negative_prompt: str | None = None
    models: tuple[ModelRef, ...] = ()
    loras: tuple[ModelRef, ...] = ()
    container: str = ""  # where it was found: "png:parameters", "exif:UserComment", ...
    provenance: dict[str, Any] | None = None  # C2PA (gmi.metadata.c2pa)
    warnings: list[str] = field(default_factory=list)

    @property
    def source(self) -> str:
        """The writer (the name earlier versions gave this field)."""
        return self.writer

    @property
    def checkpoint(self) -> ModelRef | None:
        return self.models[0] if self.models else None

    @property
    def model(self) -> str | None:
        return self.checkpoint.name if self.checkpoint else None

    @property
    def model_hash(self) -> str | None:
        """The checkpoint's hex hash as written (AutoV2 where given), for older readers."""
        ids = self.checkpoint.ids if self.checkpoint else ()
        hexes = [i for i in ids if i.kind in ("autov2", "sha256", "autov3", "autov1")]
        return hexes[0].value if hexes else None

    def with_warnings(self, warnings: list[str]) -> Embedded:
        return replace(self, warnings=[*warnings, *self.warnings])

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"writer": self.writer, "source": self.writer}
        for key in ("prompt", "negative_prompt", "model", "model_hash"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["models"] = [m.to_json() for m in self.models]
        out["loras"] = [m.to_json() for m in self.loras]
        if self.container:
            out["container"] = self.container
        return out


def found(
    writer: str,
    container: str,
    prompt: Any,
    negative: Any = None,
    models: list[ModelRef | None] | tuple = (),
    loras: list[ModelRef | None] | tuple = (),
) -> Embedded:
    """A writer's result from untrusted values: texts trimmed and capped, empty ones None,
    references deduplicated and bounded."""
    return Embedded(
        writer=writer,
        prompt=cap_text(prompt),
        negative_prompt=cap_text(negative),
        models=_unique(models),
        loras=_unique(loras),
        container=container,
    )


def cap_text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    return text[:MAX_PROMPT_CHARS] or None


def _unique(refs: list[ModelRef | None] | tuple) -> tuple[ModelRef, ...]:
    seen: dict[tuple, ModelRef] = {}
    for ref in refs:
        if ref is not None:
            seen.setdefault((ref.name, ref.ids, ref.role), ref)
    return tuple(seen.values())[:MAX_REFERENCES]
