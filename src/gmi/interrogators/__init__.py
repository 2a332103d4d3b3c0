"""Interrogators turn the user's image into a prompt (text and/or prompt embedding).

Register a new one here, by name ('module:factory'; the factory takes the argument after ':').
"""

from __future__ import annotations

from functools import lru_cache

from gmi.interrogators.base import Interrogation, Interrogator
from gmi.plugins import resolve, split_name

INTERROGATORS: dict[str, str] = {
    "none": "gmi.interrogators.none:create",
    "labels": "gmi.interrogators.labels:create",
    "retrieval": "gmi.interrogators.retrieval:create",
    "hub": "gmi.interrogators.hub:create",
    "blip": "gmi.interrogators.blip:create",
    "clip-interrogator": "gmi.interrogators.clip_interrogator:create",
}

# Chosen by measurement on the benchmark zoo (docs/benchmark.md, "Ablation").
DEFAULT_INTERROGATOR = "hub"


@lru_cache(maxsize=8)
def load_interrogator(name: str = DEFAULT_INTERROGATOR, device: str = "cpu") -> Interrogator:
    factory = resolve("interrogator", INTERROGATORS, name)
    return factory(split_name(name)[1], device=device)


def available_interrogators() -> list[str]:
    return sorted(INTERROGATORS)


__all__ = [
    "DEFAULT_INTERROGATOR",
    "INTERROGATORS",
    "Interrogation",
    "Interrogator",
    "available_interrogators",
    "load_interrogator",
]
