"""Identification as a pipeline: what is asked (IdentifyRequest), what it runs with
(Components, handed in by the Hub, as diffusers' pipelines receive theirs), and `run`, the
named steps of gmi.identify.steps in order."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmi.encoders import Encoder
from gmi.encoders.base import Encoded
from gmi.identify import steps
from gmi.identify.results import Identification
from gmi.interrogators.base import Interrogator
from gmi.metadata import Embedded
from gmi.metadata.matching import NamedModels
from gmi.registry.packed.index import PackedIndex
from gmi.search.ranking import RankPlan
from gmi.search.shortlist import Searcher
from gmi.settings import HubSettings


@dataclass(frozen=True)
class IdentifyRequest:
    """One identify call: the images, how many models to list, whether the images are one
    requirement, a stated prompt, features already computed, and whether to score every
    model whatever the searcher (`--exact`)."""

    images: Sequence[str | Path | Image.Image]
    top: int = 5
    together: bool = False
    prompt: str | None = None
    features: np.ndarray | Encoded | None = None  # already computed (gmi.server.batcher)
    exact: bool = False


@dataclass(frozen=True)
class Components:
    """What identification runs with, for one registry state: its packed index and settings,
    the encoder, the interrogator, the searcher, how to find the models an image names, and
    where the ranking runs."""

    index: PackedIndex
    settings: HubSettings
    encoder: Encoder
    interrogator: Interrogator
    searcher: Searcher
    named_models: Callable[[Embedded], NamedModels]
    backend: str
    device: str
    home: Path


def identify(
    request: IdentifyRequest,
    prepare: Callable[[], Components],
) -> list[Identification]:
    """Rank the models for each requirement of `request`. `prepare` gives the components
    once the query is read (the index is opened after the images decode, so a bad image
    fails before any index work).

    The prompt that weights the spec points comes, per image, from the first of: the stated
    prompt (what the user will ask the model for, when they know it), the generation prompt
    the image itself embeds (SD front-ends' PNG/EXIF metadata, gmi.metadata), or the
    interrogator's guess. A stated or embedded prompt weights spec points through the hub's
    learned visual prompt kernel; this tells apart models that draw the same pictures for
    different prompts (the paper's Example B.1), which no image-only method can. An embedded
    checkpoint hash that a registered model carries puts that model first, marked
    exact_match. With an approximate searcher the top `top` is certified where the scoring
    rule allows (gmi.search.ranking)."""
    steps.check_query(request.images, request.top, request.prompt)
    labels, decoded = steps.decode(request.images)
    embedded = steps.read_metadata(decoded, labels)
    parts = prepare()
    index, settings = parts.index, parts.settings

    t0 = time.perf_counter()
    features = steps.encode(parts.encoder, decoded, request.features)
    t1 = time.perf_counter()
    texts, sources = steps.query_prompts(request.prompt, embedded)
    guessed, guessed_prompts = steps.interrogate(
        parts.interrogator, decoded, features, parts.encoder, index, texts, sources
    )
    weights = steps.point_weights(
        index, parts.encoder, texts, sources, guessed, guessed_prompts, settings.tau
    )
    t2 = time.perf_counter()
    groups = steps.groups_of(len(decoded), request.together)
    weights = weights.for_rule(groups, settings.scoring, settings.combine)
    named, hashed = steps.exact_matches(embedded, parts.named_models, index)
    search: dict[str, Any] = {}
    plan = RankPlan(
        scoring=settings.scoring,
        combine=settings.combine,
        backend=parts.backend,
        device=parts.device,
        searcher=parts.searcher,
        k=request.top + len(hashed),
        always=[index.position[n] for n in hashed],  # named by checkpoint hash: scored
    )
    distances = steps.rank(index, features, weights, groups, plan, search)
    t3 = time.perf_counter()

    timings = {"encode_s": t1 - t0, "interrogate_s": t2 - t1, "score_s": t3 - t2}
    calibration = steps.calibration_of(index, parts.home)
    skipped = steps.skipped_warnings(index)
    out = []
    for g, group in enumerate(groups):
        found = steps.matches(
            index, distances[g], [named[i] for i in group], calibration, request.top
        )
        out.append(
            Identification(
                images=[labels[i] for i in group],
                prompt=" | ".join(dict.fromkeys(texts[i] for i in group)),
                results=found,
                timings=timings,
                features=features[group],
                prompt_source=steps.prompt_source(request.prompt, {sources[i] for i in group}),
                close_match=any(m.close_match for m in found),
                embedded=[embedded[i] for i in group],
                warnings=[w for i in group for w in embedded[i].warnings] + skipped,
                search=search,
                resources=steps.unique_resources(named[i].resources for i in group),
            )
        )
    return out
