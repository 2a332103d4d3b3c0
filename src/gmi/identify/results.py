"""What identification answers: one ranked model (Match) and the ranking for one requirement
(Identification), with the `gmi identify --json` contract (docs/identify-output.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gmi.metadata import Embedded


@dataclass(frozen=True)
class Match:
    """One ranked model. score: display score in [0, 1], higher is better, calibrated on the
    hub's own images (gmi.spec.calibration); distance: the raw distance, lower is better.
    close_match: within the range of the hub's genuine matches. exact_match: the image names
    this model's checkpoint by a hash or AIR in its embedded generation metadata; named_match:
    by file name only (gmi.metadata.matching)."""

    rank: int
    model: str
    score: float
    distance: float
    close_match: bool = False
    exact_match: bool = False
    named_match: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "model": self.model,
            "score": round(self.score, 4),
            "distance": round(self.distance, 6),
            "close_match": self.close_match,
            "exact_match": self.exact_match,
            **({"named_match": True} if self.named_match else {}),
        }


PROMPT_SOURCES = ("interrogated", "stated", "embedded")


@dataclass
class Identification:
    """The ranking for one requirement (one image, or several with together=True).

    prompt_source: "stated" (the user gave it), "embedded" (every image carried its generation
    prompt) or "interrogated" (guessed from the pixels, for at least one image).
    close_match: whether any listed model is a close match; False means "none of these models
    makes images like this".
    """

    images: list[str]
    prompt: str
    results: list[Match]
    timings: dict[str, float] = field(default_factory=dict)
    features: np.ndarray | None = field(default=None, repr=False)  # the group's query features
    prompt_source: str = "interrogated"
    close_match: bool = False
    embedded: list[Embedded] = field(default_factory=list)  # one per image
    warnings: list[str] = field(default_factory=list)
    # how the candidates were found (gmi.search.ranking's report): searcher, certified, ...
    search: dict[str, Any] = field(default_factory=dict)
    # LoRAs / other checkpoints the images name that the hub holds (gmi.metadata.matching)
    resources: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The `gmi identify --json` contract (docs/identify-output.md)."""
        single = len(self.images) == 1
        entry: dict[str, Any] = {"image": self.images[0] if single else self.images}
        entry["prompt"] = self.prompt
        entry["prompt_source"] = self.prompt_source
        entry["close_match"] = self.close_match
        entry["results"] = [m.to_json() for m in self.results]
        if self.resources:
            entry["resources"] = list(self.resources)
        if any(e.source for e in self.embedded):
            found = [e.to_json() if e.source else None for e in self.embedded]
            entry["embedded"] = found[0] if single else found
        if any(e.provenance for e in self.embedded):
            credentials = [e.provenance for e in self.embedded]
            entry["provenance"] = credentials[0] if single else credentials
        if self.warnings:
            entry["warnings"] = list(self.warnings)
        if self.search.get("searcher", "exact") != "exact":
            entry["search"] = dict(self.search)
        return entry
