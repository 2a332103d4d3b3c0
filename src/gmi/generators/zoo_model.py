"""`zoo:<name>`: a built-in procedural zoo model as a generator (same interface as diffusers)."""

from __future__ import annotations

from PIL import Image

from gmi.errors import InvalidInputError


class ZooGenerator:
    def __init__(self, name: str) -> None:
        from gmi.zoo import load_zoo

        if name not in load_zoo():
            raise InvalidInputError(f"no zoo model {name!r}; see `gmi zoo export`")
        self.model = load_zoo()[name]
        self.name = f"zoo:{name}"

    def generate(self, prompts: list[str], seeds: list[int]) -> list[Image.Image]:
        return [self.model.generate(p, s) for p, s in zip(prompts, seeds, strict=True)]


def create(argument: str | None, **options: object) -> ZooGenerator:
    return ZooGenerator(argument or "flat-base")
