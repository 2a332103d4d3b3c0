"""Encoders map images and prompts to float32 vectors. Register a new one here, by name.

Each entry is 'module:factory'; the factory takes the optional argument after ':' in the name,
the device and the registry home (where an encoder trained on the hub keeps its weights;
encoders that read nothing there ignore it).
"""

from __future__ import annotations

from functools import lru_cache

from gmi.encoders.base import Encoder
from gmi.plugins import resolve, split_name

ENCODERS: dict[str, str] = {
    "offline": "gmi.encoders.offline:create",
    "pixels": "gmi.encoders.pixels:create",
    "clip": "gmi.encoders.clip:create",
    "open_clip": "gmi.encoders.open_clip_encoder:create",
    "trained": "gmi.encoders.trained:create",  # a hub-trained encoder (gmi train)
}

DEFAULT_ENCODER = "offline:style+palette"  # block statistics + colour histogram


@lru_cache(maxsize=8)
def load_encoder(
    name: str = DEFAULT_ENCODER, device: str = "cpu", home: str | None = None
) -> Encoder:
    """Load an encoder once per process, device and home (weights are read lazily by the
    encoder itself). device: "cpu" or "cuda" (gmi.search.ranking.resolve_device turns "auto"
    into one). A trained encoder's name holds its weights' digest, so the cache key names
    the very weights it loaded."""
    factory = resolve("encoder", ENCODERS, name)
    return factory(split_name(name)[1], device=device, home=home)


def available_encoders() -> list[str]:
    return sorted(ENCODERS)


__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "available_encoders", "load_encoder"]
