"""The zoo's prompt grammar: '<count> <colour> <subject>(s) in <setting> at <time>'.

Content follows the prompt (what is drawn, how many, which colour, where, when); style follows
the model. `parse` reads any text back into a Scene (unknown words are ignored), so a zoo model
can render a user's free-form prompt too. The standard spec and test prompt sets are versioned
data files (data/spec-prompts-v1.txt, data/test-prompts-v1.txt), generated once by
`make_prompt_sets` and disjoint by construction.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

SUBJECTS = (
    "cat",
    "dog",
    "bird",
    "fish",
    "house",
    "tree",
    "car",
    "boat",
    "flower",
    "mountain",
    "robot",
    "castle",
)
COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "white")
COUNTS = ("one", "two", "three")
SETTINGS = ("forest", "city", "beach", "desert", "snowfield", "ocean")
TIMES = ("morning", "noon", "sunset", "night")
_PLURAL = {"fish": "fish", "boat": "boats"}

SPEC_PROMPT_SET = "spec-prompts-v1"
TEST_PROMPT_SET = "test-prompts-v1"


@dataclass(frozen=True)
class Scene:
    subject: str = "cat"
    colour: str = "red"
    count: int = 1
    setting: str = "forest"
    time: str = "noon"

    def prompt(self) -> str:
        noun = self.subject if self.count == 1 else _PLURAL.get(self.subject, self.subject + "s")
        article = "an" if self.setting[0] in "aeiou" else "a"
        count = COUNTS[self.count - 1]
        return f"{count} {self.colour} {noun} in {article} {self.setting} at {self.time}"


def parse(prompt: str) -> Scene:
    """Read a Scene out of free text; each attribute keeps its default when not mentioned."""
    words = re.findall(r"[a-z]+", prompt.lower())
    found: dict[str, object] = {}
    for word in words:
        singular = word[:-1] if word.endswith("s") and word[:-1] in SUBJECTS else word
        if singular in SUBJECTS and "subject" not in found:
            found["subject"] = singular
        elif word in COLOURS and "colour" not in found:
            found["colour"] = word
        elif word in COUNTS and "count" not in found:
            found["count"] = COUNTS.index(word) + 1
        elif word in SETTINGS and "setting" not in found:
            found["setting"] = word
        elif word in TIMES and "time" not in found:
            found["time"] = word
    return Scene(**found)  # type: ignore[arg-type]


def make_prompt_sets(
    n_spec: int = 48, n_test: int = 48, seed: int = 2024
) -> tuple[list[str], list[str]]:
    """Balanced, disjoint spec and test prompts: every time of day and setting appears equally
    often in each set (the swapped pair's marginals must match), subjects and colours cycle."""
    rng = random.Random(seed)
    scenes: set[Scene] = set()
    out: list[list[str]] = []
    for n in (n_spec, n_test):
        prompts = []
        for i in range(n):
            while True:
                scene = Scene(
                    subject=SUBJECTS[(i * 5 + rng.randrange(12)) % 12],
                    colour=COLOURS[rng.randrange(len(COLOURS))],
                    count=1 + rng.randrange(3),
                    setting=SETTINGS[i % len(SETTINGS)],
                    time=TIMES[(i // len(SETTINGS)) % len(TIMES)],
                )
                if scene not in scenes:
                    scenes.add(scene)
                    break
            prompts.append(scene.prompt())
        out.append(prompts)
    return out[0], out[1]


@lru_cache(maxsize=4)
def load_prompt_set(name: str = SPEC_PROMPT_SET) -> tuple[str, ...]:
    text = resources.files("gmi.zoo").joinpath(f"data/{name}.txt").read_text(encoding="utf-8")
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )
