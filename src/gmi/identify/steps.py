"""The steps of one identification, each a function a test can call alone.

    check_query -> decode -> read_metadata -> encode -> query_prompts -> interrogate
    -> point_weights -> exact_matches -> rank -> results

gmi.identify.pipeline runs them in this order; the Hub only supplies the components (index,
encoder, interrogator, searcher) and the query.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from gmi.encoders import Encoder
from gmi.encoders.base import Encoded
from gmi.errors import CorruptSpecError, InvalidInputError
from gmi.identify.results import Match
from gmi.imagefolder import MAX_PROMPT_CHARS
from gmi.images import open_image
from gmi.interrogators.base import Interrogator, prompt_embeddings
from gmi.metadata import Embedded, read_embedded
from gmi.metadata.matching import NamedModels
from gmi.registry.packed.index import PackedIndex
from gmi.search import ranking
from gmi.search.weights import PointWeights
from gmi.spec.calibration import Calibration


def check_query(images: Sequence[object], top: int, prompt: str | None) -> None:
    """Refuse a query that cannot be answered, before any image is read."""
    if not images:
        raise InvalidInputError("give at least one image to identify")
    if top < 1:
        raise InvalidInputError("--top must be at least 1")
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise InvalidInputError(f"prompt longer than {MAX_PROMPT_CHARS} characters")


def decode(images: Sequence[str | Path | Image.Image]) -> tuple[list[str], list[Image.Image]]:
    """(a label per image: its path, or image[i] for one given decoded; the decoded images)."""
    labels = [
        str(im) if not isinstance(im, Image.Image) else f"image[{i}]" for i, im in enumerate(images)
    ]
    decoded = [im if isinstance(im, Image.Image) else open_image(im) for im in images]
    return labels, decoded


def read_metadata(decoded: list[Image.Image], labels: list[str]) -> list[Embedded]:
    """What each image's own metadata says (generation prompt, checkpoint, provenance)."""
    return [read_embedded(im, label) for im, label in zip(decoded, labels, strict=True)]


def encode(
    encoder: Encoder, decoded: list[Image.Image], features: np.ndarray | Encoded | None
) -> np.ndarray:
    """The encoder features [n, d], unless the caller already has them (the service encodes
    concurrent requests in one batch: gmi.server.batcher). Features another encoder made (the
    hub was re-encoded since) are not used: the images are encoded again."""
    if isinstance(features, Encoded):
        features = features.features if features.encoder == encoder.name else None
    if features is None:
        return encoder.encode_images(decoded)
    if len(features) != len(decoded):
        raise ValueError("one feature row per image is needed")
    return features


def query_prompts(stated: str | None, embedded: list[Embedded]) -> tuple[list[str], list[str]]:
    """Per image: the known prompt text (or "" to be interrogated) and its source."""
    texts, sources = [], []
    for found in embedded:
        if stated is not None:
            texts.append(stated)
            sources.append("stated")
        elif found.prompt:
            texts.append(found.prompt)
            sources.append("embedded")
        else:
            texts.append("")
            sources.append("interrogated")
    return texts, sources


def interrogate(
    asker: Interrogator,
    decoded: list[Image.Image],
    features: np.ndarray,
    encoder: Encoder,
    index: PackedIndex,
    texts: list[str],
    sources: list[str],
) -> tuple[list[int], np.ndarray | None]:
    """Guess the prompts of the images whose prompt is unknown (their text is filled into
    `texts`). Returns which images were guessed and their prompt embeddings (None when none
    was asked or the interrogator gives no prompt)."""
    guessed = [i for i, source in enumerate(sources) if source == "interrogated"]
    if not guessed:
        return guessed, None
    asked = asker.interrogate([decoded[i] for i in guessed], features[guessed], encoder, index)
    for i, answer in zip(guessed, asked, strict=True):
        texts[i] = answer.text
    return guessed, (prompt_embeddings(asked, encoder) if asked else None)


def point_weights(
    index: PackedIndex,
    encoder: Encoder,
    texts: list[str],
    sources: list[str],
    guessed: list[int],
    guessed_prompts: np.ndarray | None,
    tau: float,
) -> PointWeights:
    """Per image: a known prompt (stated or embedded) through the hub's learned visual
    prompt kernel; a guessed one through the prompt kernel (uniform when the interrogator
    gives no prompt)."""
    n = len(texts)
    known = [i for i in range(n) if sources[i] != "interrogated"]
    kinds = ["uniform"] * n
    prompts = visuals = None
    if guessed_prompts is not None:
        prompts = np.zeros((n, guessed_prompts.shape[1]), dtype=np.float32)
        prompts[guessed] = guessed_prompts
        for i in guessed:
            kinds[i] = "prompt"
    text_visuals = None
    to_visual = index.prompt_to_visual if known else None
    if known and to_visual is not None:  # (None: unfitted, the known prompts weigh uniformly)
        distinct = list(dict.fromkeys(texts[i] for i in known))
        predicted = to_visual.predict(encoder.encode_texts(distinct))
        visuals = np.zeros((n, predicted.shape[1]))
        for i in known:
            visuals[i] = predicted[distinct.index(texts[i])]
            kinds[i] = "visual"
        text_visuals = index.text_visuals
    return PointWeights(kinds, prompts, visuals, text_visuals, tau=tau)


def groups_of(n: int, together: bool) -> list[list[int]]:
    """The requirements: every image alone, or all of them as one."""
    return [list(range(n))] if together else [[i] for i in range(n)]


def exact_matches(
    embedded: list[Embedded], find: Callable[[Embedded], NamedModels], index: PackedIndex
) -> tuple[list[NamedModels], set[str]]:
    """Per image, the registered models its metadata names; and the ranked ones named by
    checkpoint hash or file name (scored whatever the searcher shortlists)."""
    named = [find(e) if (e.models or e.loras) else NamedModels() for e in embedded]
    hashed = {n for found in named for n in (*found.exact, *found.named) if n in index.position}
    return named, hashed


def rank(
    index: PackedIndex,
    features: np.ndarray,
    weights: PointWeights,
    groups: list[list[int]],
    plan: ranking.RankPlan,
    report: dict,
) -> np.ndarray:
    """Distances [G, S] of every requirement to every slot (gmi.search.ranking)."""
    return ranking.distances(index.arrays, features, weights, groups, plan, report=report)


def calibration_of(index: PackedIndex, home: object) -> Calibration:
    calibration = index.learned.get("calibration")
    if not isinstance(calibration, Calibration):
        raise CorruptSpecError(f"{home}: the hub's calibration is missing")
    return calibration


def _slots(
    named: list[NamedModels], kind: str, position: dict[str, int], row: np.ndarray
) -> list[int]:
    """Slots of the models the images name (kind: exact / named / promoted), closest first."""
    wanted = {n for found in named for n in getattr(found, kind)}
    return sorted((position[n] for n in wanted if n in position), key=lambda m: row[m])


def matches(
    index: PackedIndex,
    row: np.ndarray,
    named: list[NamedModels],
    calibration: Calibration,
    top: int,
) -> list[Match]:
    """One requirement's top models: those its images name by checkpoint hash first (exact
    matches), then the models its metadata promotes, then by distance."""
    exact_here = _slots(named, "exact", index.position, row)
    by_name = _slots(named, "named", index.position, row)
    promoted = _slots(named, "promoted", index.position, row)
    first = [*exact_here, *(m for m in promoted if m not in exact_here)]
    ranked = ranking.top_k(row, top + len(first))
    order = [*first, *(m for m in ranked if m not in first)][:top]
    scores = calibration.score(row[order])
    close = calibration.close(row[order])
    return [
        Match(
            rank=r + 1,
            model=index.arrays.names[m],
            score=float(scores[r]),
            distance=float(row[m]),
            close_match=bool(close[r]) or m in exact_here,
            exact_match=m in exact_here,
            named_match=m in by_name,
        )
        for r, m in enumerate(order)
    ]


def prompt_source(stated: str | None, sources: set[str]) -> str:
    """A requirement's prompt source: stated, embedded (every image's own) or interrogated."""
    if stated is not None:
        return "stated"
    return "embedded" if sources == {"embedded"} else "interrogated"


def unique_resources(lists: Iterable[list[dict]]) -> list[dict]:
    """The resources (LoRAs, other checkpoints) the images name, each once, in order."""
    out: list[dict] = []
    for resources in lists:
        out.extend(r for r in resources if r not in out)
    return out


def skipped_warnings(index: PackedIndex) -> list[str]:
    return [
        f"model {name!r}: {why}; left out of the ranking (see gmi check)"
        for name, why in index.skipped.items()
    ]
