"""Generators: text-to-image models the hub can run itself to build a model's specification.

Register a new one here, by name ('module:factory'; the factory takes the argument after ':').
A generator implements `generate(prompts, seeds) -> list[PIL.Image]`.
"""

from __future__ import annotations

from gmi.plugins import resolve, split_name

GENERATORS: dict[str, str] = {
    "diffusers": "gmi.generators.diffusers_pipeline:create",
    "zoo": "gmi.generators.zoo_model:create",
}


def load_generator(name: str, **options: object) -> object:
    factory = resolve("generator", GENERATORS, name)
    return factory(split_name(name)[1], **options)


def available_generators() -> list[str]:
    return sorted(GENERATORS)
