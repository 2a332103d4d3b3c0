"""Draw a Scene as a picture: sky by time of day, ground by setting, subjects by the prompt.

The drawing takes a `Look` (line width, fill mode, composition, palette) from the model; the
post-processing in gmi.zoo.styles then gives each model its finish (grain, blur, tint, ...).
Everything random comes from one seeded generator, so (model, prompt, seed) fixes the image.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from gmi.zoo.prompts import Scene

COLOUR_RGB = {
    "red": (214, 40, 40),
    "orange": (247, 127, 0),
    "yellow": (252, 205, 40),
    "green": (60, 160, 70),
    "blue": (40, 90, 200),
    "purple": (130, 60, 170),
    "pink": (240, 120, 170),
    "white": (240, 240, 235),
}
SKY = {  # (top, bottom) of the sky gradient
    "morning": ((150, 200, 240), (250, 210, 190)),
    "noon": ((70, 140, 230), (170, 210, 245)),
    "sunset": ((90, 60, 140), (250, 140, 60)),
    "night": ((10, 15, 45), (40, 50, 90)),
}
GROUND = {
    "forest": (40, 100, 45),
    "city": (110, 110, 115),
    "beach": (230, 210, 150),
    "desert": (220, 160, 90),
    "snowfield": (235, 240, 250),
    "ocean": (30, 90, 160),
}
NIGHT_DIM = 0.55


@dataclass(frozen=True)
class Look:
    """How a model draws (not what): the prompt decides content, the Look decides manner."""

    line_width: int = 2
    line_colour: tuple[int, int, int] = (20, 20, 20)
    fill: str = "flat"  # flat | gradient | hatch | outline | dots
    subject_scale: float = 1.0
    horizon: float = 0.62  # fraction of height where the ground starts
    layout: str = "random"  # random | row | centre
    saturation: float = 1.0
    hue_shift: float = 0.0  # in turns (0..1)
    sky_bands: int = 0  # 0 = smooth gradient, else number of flat bands
    details: float = 1.0  # density of background details (stars, clouds, buildings, trees)
    background: tuple[int, int, int] | None = None  # a fixed backdrop replaces sky and ground


def _adjust(rgb: tuple[int, int, int], look: Look, jitter: float = 0.0) -> tuple[int, int, int]:
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    h = (h + look.hue_shift + jitter) % 1.0
    s = min(1.0, s * look.saturation)
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return (int(r * 255), int(g * 255), int(b * 255))


def _mix(a: tuple[int, ...], b: tuple[int, ...], t: float) -> tuple[int, int, int]:
    mixed = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return tuple(mixed)  # type: ignore[return-value]


def _background(scene: Scene, look: Look, size: int, rng: np.random.Generator) -> Image.Image:
    if look.background is not None:
        return Image.new("RGB", (size, size), look.background)
    top, bottom = (_adjust(c, look) for c in SKY[scene.time])
    horizon = int(size * look.horizon)
    t = np.linspace(0.0, 1.0, horizon)[:, None]
    if look.sky_bands:
        t = np.floor(t * look.sky_bands) / max(look.sky_bands - 1, 1)
    sky = np.asarray(top, float) * (1 - t) + np.asarray(bottom, float) * t
    array = np.zeros((size, size, 3), dtype=np.float64)
    array[:horizon] = sky[:, None, :]
    ground = np.asarray(_adjust(GROUND[scene.setting], look), dtype=np.float64)
    if scene.time == "night":
        ground = ground * NIGHT_DIM
    shade = np.linspace(1.0, 0.8, size - horizon)[:, None, None]
    array[horizon:] = ground[None, None, :] * shade
    image = Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    n_details = round(look.details * 6)
    if scene.time == "night":
        for _ in range(n_details * 4):
            x, y = rng.integers(0, size), rng.integers(0, horizon)
            draw.point((int(x), int(y)), fill=(255, 255, 230))
        mx, my = int(size * rng.uniform(0.6, 0.85)), int(horizon * rng.uniform(0.15, 0.35))
        draw.ellipse((mx - 12, my - 12, mx + 12, my + 12), fill=(245, 240, 200))
    else:
        sx, sy = int(size * rng.uniform(0.1, 0.9)), int(horizon * rng.uniform(0.1, 0.4))
        sun = (255, 240, 150) if scene.time != "sunset" else (255, 120, 60)
        draw.ellipse((sx - 14, sy - 14, sx + 14, sy + 14), fill=_adjust(sun, look))
        for _ in range(n_details // 2):
            cx, cy = int(rng.integers(0, size)), int(rng.integers(5, max(horizon // 2, 6)))
            for k in range(3):
                draw.ellipse(
                    (cx - 18 + k * 12, cy - 8, cx - 2 + k * 12, cy + 8), fill=(250, 250, 250)
                )
    _setting_details(draw, scene, look, size, horizon, n_details, rng)
    return image


def _setting_details(
    draw: ImageDraw.ImageDraw,
    scene: Scene,
    look: Look,
    size: int,
    horizon: int,
    n: int,
    rng: np.random.Generator,
) -> None:
    dim = NIGHT_DIM if scene.time == "night" else 1.0

    def c(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
        return tuple(int(v * dim) for v in _adjust(rgb, look))  # type: ignore[return-value]

    for _ in range(n):
        x = int(rng.integers(0, size))
        if scene.setting == "forest":
            h = int(rng.integers(20, 40))
            draw.polygon(
                [(x, horizon - h), (x - 10, horizon + 2), (x + 10, horizon + 2)],
                fill=c((20, 80, 30)),
            )
        elif scene.setting == "city":
            w, h = int(rng.integers(12, 26)), int(rng.integers(25, 70))
            draw.rectangle((x, horizon - h, x + w, horizon), fill=c((70, 70, 85)))
        elif scene.setting == "beach":
            y = horizon + int(rng.integers(0, 10))
            draw.line((0, y, size, y), fill=c((60, 140, 200)), width=2)
        elif scene.setting == "desert":
            draw.ellipse((x - 30, horizon - 10, x + 30, horizon + 14), fill=c((200, 140, 70)))
        elif scene.setting == "snowfield":
            draw.polygon(
                [(x, horizon - 30), (x - 25, horizon), (x + 25, horizon)], fill=c((200, 210, 230))
            )
        else:  # ocean
            y = int(rng.integers(horizon + 4, size))
            draw.arc((x - 12, y - 6, x + 12, y + 6), 180, 360, fill=c((200, 230, 250)), width=2)


def _fill_shape(
    draw: ImageDraw.ImageDraw,
    kind: str,
    box_or_points: object,
    colour: tuple[int, int, int],
    look: Look,
) -> None:
    """Draw one primitive ('ellipse' | 'rectangle' | 'polygon') in the model's fill manner."""
    outline = look.line_colour if look.line_width > 0 else None
    fill: tuple[int, int, int] | None = colour
    if look.fill == "outline":
        fill = None
        outline = colour
    width = max(look.line_width, 2 if look.fill == "outline" else 0)
    getattr(draw, kind)(box_or_points, fill=fill, outline=outline, width=width)
    if look.fill in ("hatch", "dots", "gradient"):
        if kind == "polygon":
            xs = [p[0] for p in box_or_points]  # type: ignore[union-attr]
            ys = [p[1] for p in box_or_points]  # type: ignore[union-attr]
            x0, y0, x1, y1 = min(xs), min(ys), max(xs), max(ys)
        else:
            x0, y0, x1, y1 = box_or_points  # type: ignore[misc]
        x0, y0, x1, y1 = int(x0), int(y0), int(x1), int(y1)
        dark = _mix(colour, (0, 0, 0), 0.45)
        light = _mix(colour, (255, 255, 255), 0.45)
        if look.fill == "hatch":
            for x in range(x0, x1, 5):
                draw.line((x, y0 + 2, x + (y1 - y0) // 3, y1 - 2), fill=dark, width=1)
        elif look.fill == "dots":
            for y in range(y0 + 3, y1 - 2, 6):
                for x in range(x0 + 3, x1 - 2, 6):
                    draw.point((x, y), fill=light)
        else:  # gradient: a highlight band on the upper part
            h = max((y1 - y0) // 3, 1)
            draw.rectangle(
                (x0 + (x1 - x0) // 4, y0 + h // 2, x0 + (x1 - x0) // 2, y0 + h), fill=light
            )


def _draw_subject(
    draw: ImageDraw.ImageDraw,
    subject: str,
    cx: float,
    cy: float,
    s: float,
    colour: tuple[int, int, int],
    look: Look,
) -> None:
    """One subject, centred at (cx, cy) with radius-like size s (cy is its base line)."""

    def box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (cx + x0 * s, cy + y0 * s, cx + x1 * s, cy + y1 * s)

    def pts(*p: tuple[float, float]) -> list[tuple[float, float]]:
        return [(cx + x * s, cy + y * s) for x, y in p]

    f = lambda kind, shape, col=colour: _fill_shape(draw, kind, shape, col, look)  # noqa: E731
    brown, grey, black = (110, 70, 40), (150, 150, 160), (30, 30, 30)
    if subject == "cat":
        f("ellipse", box(-0.8, -1.0, 0.8, 0.0))
        f("ellipse", box(-0.5, -1.8, 0.5, -0.9))
        f("polygon", pts((-0.5, -1.5), (-0.4, -2.1), (-0.15, -1.75)))
        f("polygon", pts((0.5, -1.5), (0.4, -2.1), (0.15, -1.75)))
    elif subject == "dog":
        f("ellipse", box(-1.0, -0.9, 0.8, -0.1))
        f("ellipse", box(0.4, -1.6, 1.2, -0.8))
        f("rectangle", box(0.4, -1.5, 0.6, -1.0), brown)
        for x in (-0.8, -0.4, 0.2, 0.5):
            f("rectangle", box(x, -0.3, x + 0.15, 0.0))
    elif subject == "bird":
        cy -= 1.2 * s
        f("ellipse", box(-0.8, -0.4, 0.6, 0.4))
        f("ellipse", box(0.3, -0.7, 0.9, -0.1))
        f("polygon", pts((0.9, -0.45), (1.3, -0.35), (0.9, -0.25)), (250, 180, 40))
        f("polygon", pts((-0.4, -0.1), (0.1, -0.9), (0.2, -0.1)))
    elif subject == "fish":
        cy -= 0.6 * s
        f("ellipse", box(-0.9, -0.45, 0.7, 0.45))
        f("polygon", pts((-0.8, 0.0), (-1.4, -0.5), (-1.4, 0.5)))
    elif subject == "house":
        f("rectangle", box(-0.9, -1.2, 0.9, 0.0))
        f("polygon", pts((-1.1, -1.2), (0.0, -2.1), (1.1, -1.2)), _mix(colour, black, 0.35))
        f("rectangle", box(-0.2, -0.6, 0.2, 0.0), brown)
    elif subject == "tree":
        f("rectangle", box(-0.15, -0.9, 0.15, 0.0), brown)
        f("ellipse", box(-0.8, -2.2, 0.8, -0.7))
    elif subject == "car":
        f("rectangle", box(-1.2, -0.8, 1.2, -0.2))
        f("rectangle", box(-0.6, -1.3, 0.6, -0.8))
        for x in (-0.7, 0.7):
            f("ellipse", box(x - 0.3, -0.45, x + 0.3, 0.15), black)
    elif subject == "boat":
        f("polygon", pts((-1.2, -0.6), (1.2, -0.6), (0.8, 0.0), (-0.8, 0.0)))
        f("rectangle", box(-0.05, -2.0, 0.05, -0.6), brown)
        f("polygon", pts((0.1, -1.9), (0.1, -0.7), (1.0, -0.7)), (245, 245, 240))
    elif subject == "flower":
        f("rectangle", box(-0.06, -1.2, 0.06, 0.0), (40, 130, 50))
        for k in range(5):
            a = 2 * math.pi * k / 5
            px, py = 0.35 * math.cos(a), -1.5 + 0.35 * math.sin(a)
            f("ellipse", box(px - 0.28, py - 0.28, px + 0.28, py + 0.28))
        f("ellipse", box(-0.18, -1.68, 0.18, -1.32), (250, 220, 60))
    elif subject == "mountain":
        f("polygon", pts((-1.6, 0.0), (0.0, -2.2), (1.6, 0.0)))
        f("polygon", pts((-0.45, -1.6), (0.0, -2.2), (0.45, -1.6)), (250, 250, 250))
    elif subject == "robot":
        f("rectangle", box(-0.6, -1.3, 0.6, -0.2))
        f("rectangle", box(-0.4, -1.9, 0.4, -1.35), grey)
        f("rectangle", box(-0.5, -0.2, -0.2, 0.0), grey)
        f("rectangle", box(0.2, -0.2, 0.5, 0.0), grey)
        f("ellipse", box(-0.25, -1.75, -0.05, -1.55), (250, 60, 60))
        f("ellipse", box(0.05, -1.75, 0.25, -1.55), (250, 60, 60))
    else:  # castle
        f("rectangle", box(-1.0, -1.2, 1.0, 0.0))
        for x in (-1.2, 0.7):
            f("rectangle", box(x, -1.9, x + 0.5, 0.0))
        f("rectangle", box(-0.25, -0.6, 0.25, 0.0), (60, 40, 30))


def render_scene(scene: Scene, look: Look, size: int, rng: np.random.Generator) -> Image.Image:
    """Background + `scene.count` subjects placed by the model's layout. Returns RGB size x size."""
    image = _background(scene, look, size, rng)
    draw = ImageDraw.Draw(image)
    horizon = size * look.horizon
    n = scene.count
    base = size * 0.11 * look.subject_scale / (1 + 0.25 * (n - 1))
    colour = _adjust(COLOUR_RGB[scene.colour], look, jitter=float(rng.normal(0, 0.015)))
    if scene.time == "night":
        colour = _mix(colour, (0, 0, 0), 0.3)
    for k in range(n):
        s = base * float(rng.uniform(0.85, 1.15))
        if look.layout == "centre":
            cx = size * (0.5 + (k - (n - 1) / 2) * 0.28)
            cy = horizon + (size - horizon) * 0.45
        elif look.layout == "row":
            cx = size * (k + 1) / (n + 1)
            cy = horizon + (size - horizon) * 0.3
        else:
            cx = size * ((k + 0.5) / n + float(rng.uniform(-0.12, 0.12)) / n)
            cy = horizon + (size - horizon) * float(rng.uniform(0.2, 0.85))
        cx += float(rng.normal(0, size * 0.02))
        _draw_subject(draw, scene.subject, cx, cy, s, colour, look)
    return image
