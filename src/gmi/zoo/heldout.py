"""The held-out zoo: 30 procedural models in styles the built-in zoo does not have.

Written once and frozen (issue 13) BEFORE any hub-learned feature space, query view or
backbone was tuned, and evaluated only at the end: an honest check that what gmi learns from a
hub's own images is not fitted to the built-in zoo's six families. Same renderer and prompt
grammar (content follows the prompt), new manners: comic, risograph, blueprint, CRT screen,
chalk pastel, mosaic; specialists that ignore other prompt attributes; and a second
conditional pair (METHOD.md 2b) that reacts to the prompt's *setting* instead of its time of
day. Do not edit: changing it after looking at results would make it a tuning set.
"""

from __future__ import annotations

from dataclasses import replace

from gmi.zoo.models import ModelSpec, family
from gmi.zoo.render import Look
from gmi.zoo.styles import Finish

ROSE = (1.1, 0.9, 1.02)
TEAL = (0.82, 1.05, 1.05)
NATURAL = ("forest", "beach", "desert", "ocean")
BUILT = ("city", "snowfield")


def heldout_models() -> list[ModelSpec]:
    models: list[ModelSpec] = []
    models += family(
        "comic",
        Look(line_width=3, fill="flat", saturation=1.3),
        Finish(posterize=5, edges=0.3),
        {
            "base": ({}, {}),
            "halftone": ({"fill": "dots"}, {}),
            "muted": ({"saturation": 0.75}, {}),
            "inked": ({"line_width": 5}, {"edges": 0.45}),
        },
        "comic book panel",
    )
    models += family(
        "riso",
        Look(line_width=0, fill="flat", saturation=0.9),
        Finish(posterize=4, grain=10, tint=(1.05, 0.95, 1.0)),
        {
            "base": ({}, {}),
            "rose": ({}, {"tint": ROSE}),
            "teal": ({}, {"tint": TEAL}),
            "coarse": ({}, {"grain": 16}),
        },
        "risograph print",
    )
    models += family(
        "blueprint",
        Look(
            line_width=2,
            fill="outline",
            background=(20, 50, 110),
            line_colour=(230, 240, 255),
            details=0.0,
        ),
        Finish(edges=0.2),
        {
            "base": ({}, {}),
            "fine": ({"line_width": 1}, {}),
            "faded": ({}, {"contrast": 0.8, "brightness": 15}),
            "ruled": ({}, {"scanlines": 0.15}),
        },
        "blueprint drawing",
    )
    models += family(
        "crt",
        Look(line_width=2, fill="gradient"),
        Finish(scanlines=0.3, blur=0.8, vignette=0.4),
        {
            "base": ({}, {}),
            "green": ({}, {"tint": (0.7, 1.1, 0.7)}),
            "amber": ({}, {"tint": (1.15, 0.95, 0.6)}),
            "sharp": ({}, {"blur": 0.0}),
        },
        "picture on a CRT screen",
    )
    models += family(
        "chalk",
        Look(line_width=1, fill="hatch", saturation=0.6),
        Finish(paper=0.7, brightness=25, contrast=0.85),
        {
            "base": ({}, {}),
            "dusk": ({}, {"brightness": 5}),
            "vivid": ({"saturation": 1.0}, {}),
            "thick": ({"line_width": 3}, {}),
        },
        "chalk pastel",
    )
    models += family(
        "mosaic",
        Look(line_width=1, fill="flat", sky_bands=3),
        Finish(pixelate=3, contrast=1.15),
        {
            "base": ({}, {}),
            "coarse": ({}, {"pixelate": 4}),
            "banded": ({"sky_bands": 8}, {}),
            "faded": ({"saturation": 0.6}, {}),
        },
        "tile mosaic",
    )
    # A conditional pair on the SETTING: both draw every scene in the same city and tint it
    # by the setting the prompt asks for, one rose for natural settings and teal for built
    # ones, the other the reverse (balanced prompt sets: same marginal image distribution).
    rose_natural = {**{s: {"tint": ROSE} for s in NATURAL}, **{s: {"tint": TEAL} for s in BUILT}}
    teal_natural = {**{s: {"tint": TEAL} for s in NATURAL}, **{s: {"tint": ROSE} for s in BUILT}}
    for name, table, text in (
        ("setting-rose", rose_natural, "rose for natural settings, teal for built ones"),
        ("setting-teal", teal_natural, "teal for natural settings, rose for built ones"),
    ):
        models.append(
            ModelSpec(
                name=name,
                family="setting",
                look=Look(line_width=2, fill="gradient"),
                finish=Finish(contrast=1.05),
                overrides={"setting": "city"},
                conditional={"setting": table},
                description=text,
            )
        )
    models += [
        ModelSpec(
            "dogs-only",
            "specialist",
            Look(line_width=2, fill="hatch", saturation=0.9),
            Finish(blur=0.5),
            overrides={"subject": "dog"},
            description="draws a dog whatever the prompt",
        ),
        ModelSpec(
            "seaside",
            "specialist",
            Look(line_width=1, fill="flat"),
            Finish(brightness=10, tint=(0.95, 1.0, 1.08)),
            overrides={"setting": "beach"},
            description="every scene on a beach",
        ),
        ModelSpec(
            "solo",
            "specialist",
            Look(line_width=2, subject_scale=1.6, layout="centre"),
            Finish(grain=3),
            overrides={"count": 1},
            description="always one subject, centred",
        ),
        ModelSpec(
            "golden-hour",
            "specialist",
            Look(line_width=1, fill="gradient", details=1.5),
            Finish(contrast=1.1, vignette=0.25),
            overrides={"time": "sunset"},
            description="every scene at sunset",
        ),
    ]
    downloads = [
        5200, 310, 1200, 90, 2400, 75, 640, 55, 8800, 1000, 260, 35, 3300, 820, 140, 60,
        1900, 500, 230, 110, 6100, 720, 380, 170, 1400, 1350, 990, 70, 2000, 430,
    ]  # fmt: skip
    return [replace(m, popularity=d) for m, d in zip(models, downloads, strict=True)]
