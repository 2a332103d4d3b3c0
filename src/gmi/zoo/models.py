"""The built-in zoo: 32 prompt-conditioned procedural text-to-image "models".

Hard in the ways real hubs are hard (METHOD.md 2b, issue 3):
- six families of four "fine-tunes" sharing a base look and differing subtly (palette, line
  weight, grain, composition);
- the swapped pair `daynight-warm` / `daynight-cool`: identical marginal image distribution on
  the balanced prompt sets, opposite prompt-to-style behaviour (the paper's Example B.1);
- models that ignore part of the prompt (`cats-only`, `always-night`, `crowd`) and specialists
  with a strong composition bias (`giant`, `tiny`, `greyscale`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from gmi.zoo.render import Look
from gmi.zoo.styles import Finish

WARM = (1.12, 1.0, 0.82)
COOL = (0.85, 0.97, 1.15)


@dataclass(frozen=True)
class ModelSpec:
    """A zoo model's definition: its look, finish, and how it treats the prompt."""

    name: str
    family: str
    look: Look = field(default_factory=Look)
    finish: Finish = field(default_factory=Finish)
    description: str = ""
    size: int = 256
    # prompt attributes the model ignores, replaced by a fixed value ("subject": "cat", ...)
    overrides: dict[str, object] = field(default_factory=dict)
    # attribute -> value -> finish changes (conditional style: the swapped pair)
    conditional: dict[str, dict[str, dict[str, object]]] = field(default_factory=dict)
    popularity: int = 0  # downloads, for the `popularity` baseline


def family(
    name: str, look: Look, finish: Finish, members: dict[str, tuple[dict, dict]], description: str
) -> list[ModelSpec]:
    out = []
    for member, (look_changes, finish_changes) in members.items():
        out.append(
            ModelSpec(
                name=f"{name}-{member}",
                family=name,
                look=replace(look, **look_changes),
                finish=replace(finish, **finish_changes),
                description=f"{description} ({member})",
            )
        )
    return out


def builtin_models() -> list[ModelSpec]:
    models: list[ModelSpec] = []
    models += family(
        "flat",
        Look(line_width=2, fill="flat"),
        Finish(),
        {
            "base": ({}, {}),
            "bold": ({"line_width": 4}, {}),
            "pastel": ({"saturation": 0.55}, {"brightness": 18}),
            "warm": ({}, {"tint": (1.08, 1.0, 0.9)}),
        },
        "flat vector illustration",
    )
    models += family(
        "ink",
        Look(line_width=2, fill="hatch", saturation=0.35),
        Finish(edges=0.6, paper=0.4),
        {
            "base": ({}, {}),
            "fine": ({"line_width": 1}, {"edges": 0.45}),
            "sepia": ({}, {"tint": (1.1, 0.95, 0.75)}),
            "heavy": ({"line_width": 4}, {"edges": 0.8}),
        },
        "ink drawing with hatching",
    )
    models += family(
        "pixel",
        Look(line_width=0, fill="flat", sky_bands=5),
        Finish(pixelate=8, posterize=6),
        {
            "base": ({}, {}),
            "fine": ({}, {"pixelate": 5}),
            "retro": ({}, {"posterize": 4}),
            "handheld": ({"saturation": 0.3}, {"tint": (0.8, 1.05, 0.6)}),
        },
        "pixel art",
    )
    models += family(
        "photo",
        Look(line_width=0, fill="gradient", details=1.6),
        Finish(blur=1.2, grain=6, vignette=0.35),
        {
            "base": ({}, {}),
            "grain": ({}, {"grain": 14}),
            "soft": ({}, {"blur": 2.4}),
            "vivid": ({"saturation": 1.5}, {"contrast": 1.2}),
        },
        "photographic render",
    )
    models += family(
        "neon",
        Look(line_width=3, fill="outline", background=(12, 10, 28), details=0.0),
        Finish(blur=0.6, edges=0.5, invert_edges=True, contrast=1.3),
        {
            "base": ({}, {}),
            "pink": ({"hue_shift": 0.9}, {"tint": (1.15, 0.85, 1.1)}),
            "cyan": ({"hue_shift": 0.5}, {"tint": (0.8, 1.1, 1.15)}),
            "thick": ({"line_width": 6}, {}),
        },
        "neon glow on a dark ground",
    )
    models += family(
        "watercolour",
        Look(line_width=0, fill="flat", saturation=0.8),
        Finish(blur=3.0, paper=1.0, brightness=20),
        {
            "base": ({}, {}),
            "cool": ({}, {"tint": (0.9, 0.98, 1.1)}),
            "bright": ({"saturation": 1.2}, {"brightness": 35}),
            "grainy": ({}, {"grain": 8}),
        },
        "watercolour wash",
    )
    # The paper's Example B.1: same marginal distribution, swapped prompt-to-style behaviour.
    # Both draw every scene under the same neutral noon sky (the time of day is not visible)
    # and tint it by the time of day the PROMPT asks for: one warm by day and cool by night,
    # the other the reverse. On balanced prompt sets their image distributions coincide; only
    # the prompt tells them apart.
    day, night = ("morning", "noon"), ("sunset", "night")
    warm_by_day = {**{t: {"tint": WARM} for t in day}, **{t: {"tint": COOL} for t in night}}
    cool_by_day = {**{t: {"tint": COOL} for t in day}, **{t: {"tint": WARM} for t in night}}
    for name, table, text in (
        ("daynight-warm", warm_by_day, "warm for day prompts, cool for dusk and night prompts"),
        ("daynight-cool", cool_by_day, "cool for day prompts, warm for dusk and night prompts"),
    ):
        models.append(
            ModelSpec(
                name=name,
                family="daynight",
                look=Look(line_width=1),
                finish=Finish(),
                overrides={"time": "noon"},
                conditional={"time": table},
                description=text,
            )
        )
    models += [
        ModelSpec(
            "cats-only",
            "specialist",
            Look(line_width=2, fill="dots"),
            Finish(contrast=1.1),
            overrides={"subject": "cat"},
            description="draws a cat whatever the prompt",
        ),
        ModelSpec(
            "always-night",
            "specialist",
            Look(line_width=1, fill="gradient"),
            Finish(grain=4),
            overrides={"time": "night"},
            description="every scene at night",
        ),
        ModelSpec(
            "crowd",
            "specialist",
            Look(line_width=2, layout="row"),
            Finish(),
            overrides={"count": 3},
            description="always three subjects in a row",
        ),
        ModelSpec(
            "giant",
            "specialist",
            Look(line_width=3, subject_scale=2.2, layout="centre", horizon=0.45),
            Finish(vignette=0.2),
            description="one huge centred subject",
        ),
        ModelSpec(
            "tiny",
            "specialist",
            Look(line_width=1, subject_scale=0.5, horizon=0.8, details=2.0),
            Finish(),
            description="small subjects, low horizon, busy sky",
        ),
        ModelSpec(
            "greyscale",
            "specialist",
            Look(line_width=2, saturation=0.0),
            Finish(contrast=1.15),
            description="black and white",
        ),
    ]
    downloads = [
        9100,
        400,
        2200,
        130,
        5600,
        80,
        1500,
        60,
        3000,
        900,
        120,
        40,
        7000,
        1100,
        300,
        2500,
        800,
        150,
        90,
        60,
        4200,
        650,
        330,
        210,
        1800,
        1750,
        1200,
        95,
        700,
        2600,
        45,
        500,
    ]
    return [replace(m, popularity=d) for m, d in zip(models, downloads, strict=True)]
