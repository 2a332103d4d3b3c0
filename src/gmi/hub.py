"""The pipeline: submit (images -> specification -> registry) and identify (image -> ranking).

`Hub` is the Python API; the CLI and (later) the HTTP service are thin shells over it.

    hub = Hub("~/my-hub")
    hub.submit_folder("my-model", "generated/")           # imagefolder: images + metadata.jsonl
    [result] = hub.identify(["query.jpg"], top=5)
    result.results[0].model
"""

from __future__ import annotations

import io
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from gmi.augment import AUGMENTS, DEFAULT_AUGMENT, spec_views
from gmi.encoders import DEFAULT_ENCODER, Encoder, load_encoder
from gmi.encoders.base import l2_normalise
from gmi.errors import ConflictError, InvalidInputError, NotFoundError
from gmi.imagefolder import MAX_PROMPT_CHARS, load_imagefolder
from gmi.images import open_image
from gmi.index import HubIndex, fit_learned, stated_prompt_weights
from gmi.interrogators import DEFAULT_INTERROGATOR, load_interrogator
from gmi.interrogators.base import prompt_embeddings
from gmi.registry.store import ModelRecord, Registry, default_home, state_key, validate_name
from gmi.spec.kernels import default_gamma
from gmi.spec.scoring import (
    DEFAULT_SCORING,
    DEFAULT_TAU,
    SCORINGS,
    distance_to_score,
    score_requirements,
)
from gmi.spec.specification import Specification, build_specification

ENCODE_BATCH = 16
THUMBNAIL_SIDE = 160


def thumbnail_bytes(image: Image.Image) -> bytes:
    """A small JPEG of a spec image, kept so people can see what a model makes."""
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


@dataclass(frozen=True)
class Match:
    rank: int
    model: str
    score: float
    distance: float


@dataclass
class Identification:
    """The ranking for one requirement (one image, or several with together=True)."""

    images: list[str]
    prompt: str
    results: list[Match]
    timings: dict[str, float] = field(default_factory=dict)
    features: np.ndarray | None = field(default=None, repr=False)  # the group's query features

    def to_json(self) -> dict[str, Any]:
        """The `gmi identify --json` contract: image, prompt, results[rank, model, score]."""
        entry: dict[str, Any] = {"image": self.images[0] if len(self.images) == 1 else self.images}
        entry["prompt"] = self.prompt
        entry["results"] = [
            {
                "rank": m.rank,
                "model": m.model,
                "score": round(m.score, 6),
                "distance": round(m.distance, 6),
            } for m in self.results
        ]
        return entry


def encode_images_with_progress(
    encoder: Encoder, images: Sequence[Image.Image], desc: str, progress: bool = True
) -> np.ndarray:
    """Encode in batches, with a progress bar on stderr when there is more than one batch."""
    chunks = []
    starts = range(0, len(images), ENCODE_BATCH)
    bar = tqdm(
        starts, desc=desc, unit="batch", disable=not progress or len(starts) < 2, leave=False
    )
    for start in bar:
        chunks.append(encoder.encode_images(list(images[start : start + ENCODE_BATCH])))
    return np.concatenate(chunks) if chunks else np.zeros((0, 0), dtype=np.float32)


class Hub:
    """A registry plus the models (encoder, interrogator) that its settings name.

    encoder / interrogator: used when the registry is created (first submit); afterwards the
    registry's own settings rule, and asking for another encoder is refused (features of two
    encoders are not comparable). The interrogator can be overridden per identify call.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        encoder: str | None = None,
        interrogator: str | None = None,
        n_points: int | None = None,
        gamma: float | None = None,
        tau: float | None = None,
        combine: str | None = None,
        augment: str | None = None,
        scoring: str | None = None,
    ) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self._requested = {
            "encoder": encoder,
            "interrogator": interrogator,
            "n_points": n_points,
            "gamma": gamma,
            "tau": tau,
            "combine": combine,
            "augment": augment,
            "scoring": scoring,
        }
        self._registry: Registry | None = None
        self._index: HubIndex | None = None
        self._index_key: tuple | None = None

    # -- registry and settings ---------------------------------------------------------
    def exists(self) -> bool:
        return (self.home / "registry.db").exists()

    def registry(self, *, create: bool = False) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.home, create=create)
        return self._registry

    def settings(self) -> dict[str, str]:
        """The registry's settings, or the requested/default ones for a registry not yet made."""
        stored = self.registry().settings() if self.exists() else {}
        wanted = self._requested
        encoder = wanted["encoder"] or DEFAULT_ENCODER
        if stored.get("encoder") and wanted["encoder"] and wanted["encoder"] != stored["encoder"]:
            raise ConflictError(
                f"registry {self.home} uses encoder {stored['encoder']!r}, not "
                f"{wanted['encoder']!r}; specs of different encoders cannot be compared "
                "(use another --home)"
            )
        merged = {
            "encoder": stored.get("encoder", encoder),
            "interrogator": stored.get(
                "interrogator", wanted["interrogator"] or DEFAULT_INTERROGATOR
            ),
            "tau": stored.get("tau", str(wanted["tau"] or DEFAULT_TAU)),
            "combine": stored.get("combine", wanted["combine"] or "mean"),
            "augment": stored.get("augment", wanted["augment"] or DEFAULT_AUGMENT),
            "scoring": stored.get("scoring", wanted["scoring"] or DEFAULT_SCORING),
        }
        if merged["augment"] not in AUGMENTS:
            raise InvalidInputError(f"augment must be one of {', '.join(AUGMENTS)}")
        if merged["scoring"] not in SCORINGS:
            raise InvalidInputError(f"scoring must be one of {', '.join(SCORINGS)}")
        if merged["combine"] not in ("mean", "joint"):
            raise InvalidInputError("combine must be 'mean' or 'joint'")
        for key in ("gamma", "n_points"):
            value = stored.get(key) or (str(wanted[key]) if wanted[key] else None)
            if value is not None:
                merged[key] = value
        return merged

    def init(self) -> dict[str, str]:
        """Create the registry and fix its settings (the first submit does this implicitly)."""
        settings = self.settings()
        load_encoder(settings["encoder"])  # fail on an unknown name before creating anything
        load_interrogator(settings["interrogator"])
        return self.registry(create=True).set_settings(settings)

    @property
    def encoder(self) -> Encoder:
        return load_encoder(self.settings()["encoder"])

    # -- submitting stage --------------------------------------------------------------
    def submit_folder(
        self,
        name: str,
        folder: str | Path,
        *,
        description: str = "",
        replace: bool = False,
        progress: bool = True,
    ) -> ModelRecord:
        """Submit a model from an imagefolder (its generated images + metadata.jsonl)."""
        validate_name(name)
        images, prompts = load_imagefolder(folder)
        return self.submit_images(
            name, images, prompts, description=description, replace=replace, progress=progress
        )

    def submit_generated(
        self,
        name: str,
        generator: object,
        prompts: list[str],
        *,
        images_per_prompt: int = 1,
        keep_images: str | Path | None = None,
        description: str = "",
        replace: bool = False,
        progress: bool = True,
    ) -> tuple[ModelRecord, int]:
        """Run a generator over a prompt set (resumable, images kept as an imagefolder), then
        submit. Returns the record and how many images were newly generated."""
        from gmi.generators.submission import generate_imagefolder

        validate_name(name)
        if not replace and self.exists() and self.registry().exists(name):
            raise ConflictError(f"model {name!r} already exists (use --replace to overwrite it)")
        folder = (
            Path(keep_images) if keep_images else self.home / "generated" / name.replace("/", "__")
        )
        images, used_prompts, generated = generate_imagefolder(
            generator, prompts, folder, images_per_prompt, progress=progress
        )
        record = self.submit_images(
            name, images, used_prompts, description=description, replace=replace, progress=progress
        )
        return record, generated

    def submit_images(
        self,
        name: str,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        description: str = "",
        replace: bool = False,
        progress: bool = True,
    ) -> ModelRecord:
        """Encode a model's (image, prompt) pairs, build its spec and store it atomically."""
        validate_name(name)
        if len(images) != len(prompts):
            raise InvalidInputError("each image needs exactly one prompt")
        if len(images) < 2:
            raise InvalidInputError("a specification needs at least 2 generated images")
        settings = self.settings()
        if not replace and self.exists() and self.registry().exists(name):
            raise ConflictError(f"model {name!r} already exists (use --replace to overwrite it)")
        encoder = load_encoder(settings["encoder"])
        views = spec_views(list(images), settings["augment"])
        features = encode_images_with_progress(encoder, views, f"encoding {name}", progress)
        prompt_embeddings = encoder.encode_texts(list(prompts))
        gamma = float(settings["gamma"]) if "gamma" in settings else default_gamma(features)
        n_points = int(settings["n_points"]) if "n_points" in settings else None
        spec = build_specification(
            features,
            prompt_embeddings,
            list(prompts),
            encoder=encoder.name,
            gamma=gamma,
            n_points=n_points,
        )
        registry = self.registry(create=True)
        registry.set_settings({**settings, "gamma": repr(gamma)})
        record = registry.add(
            name,
            spec,
            description=description,
            replace=replace,
            thumbnails=[thumbnail_bytes(im) for im in images],
        )
        self._refit()
        return record

    # -- identification stage ------------------------------------------------------------
    def index(self) -> HubIndex:
        """All specs, stacked; reloaded only when the registry's models change."""
        if not self.exists():
            raise NotFoundError(f"{self.home}: no gmi registry here (submit a model first)")
        records = self.registry().list()
        if not records:
            raise NotFoundError(f"{self.home}: the registry has no models (submit one first)")
        key = tuple((r.name, r.spec_sha256) for r in records)
        if self._index is None or self._index_key != key:
            specs = [self.registry().load_spec(r) for r in records]
            index = HubIndex.from_specs([r.name for r in records], specs)
            learned = self.registry().learned_models(state_key(key), lambda: fit_learned(index))
            self._index = replace(index, learned=learned)
            self._index_key = key
        return self._index

    def identify(
        self,
        images: Sequence[str | Path | Image.Image],
        *,
        top: int = 5,
        together: bool = False,
        interrogator: str | None = None,
        prompt: str | None = None,
    ) -> list[Identification]:
        """Rank all models for each image (or for all images as one requirement).

        prompt: what the user will ask the model for, when they know it. It replaces the
        interrogated prompt and weights spec points through the hub's learned visual prompt
        kernel; this is what tells apart models that draw the same pictures for different
        prompts (the paper's Example B.1), which no image-only method can.
        """
        if not images:
            raise InvalidInputError("give at least one image to identify")
        if top < 1:
            raise InvalidInputError("--top must be at least 1")
        labels = [
            str(im) if not isinstance(im, Image.Image) else f"image[{i}]"
            for i, im in enumerate(images)
        ]
        decoded = [im if isinstance(im, Image.Image) else open_image(im) for im in images]
        index = self.index()
        settings = self.settings()
        encoder = load_encoder(settings["encoder"])
        asker = load_interrogator(interrogator or settings["interrogator"])
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"prompt longer than {MAX_PROMPT_CHARS} characters")

        t0 = time.perf_counter()
        features = encoder.encode_images(decoded)
        t1 = time.perf_counter()
        weights = None
        if prompt is None:
            asked = asker.interrogate(decoded, features, encoder, index)
            query_prompts = prompt_embeddings(asked, encoder)
            shown = [a.text for a in asked]
        else:
            query_prompts, shown = None, [prompt] * len(decoded)
            weights = stated_prompt_weights(index, encoder.encode_texts([prompt]))
        t2 = time.perf_counter()
        groups = [list(range(len(decoded)))] if together else [[i] for i in range(len(decoded))]
        distances = score_requirements(
            index.stack,
            features,
            groups,
            query_prompts,
            float(settings["tau"]),
            settings["combine"],
            settings["scoring"],
            weights,
        )
        t3 = time.perf_counter()

        timings = {"encode_s": t1 - t0, "interrogate_s": t2 - t1, "score_s": t3 - t2}
        out = []
        for g, group in enumerate(groups):
            order = np.argsort(distances[g], kind="stable")[:top]
            scores = distance_to_score(distances[g], settings["scoring"])
            matches = [
                Match(
                    rank=r + 1,
                    model=index.names[m],
                    score=float(scores[m]),
                    distance=float(distances[g, m]),
                )
                for r, m in enumerate(order)
            ]
            text = " | ".join(dict.fromkeys(shown[i] for i in group))
            out.append(
                Identification([labels[i] for i in group], text, matches, timings, features[group])
            )
        return out

    def evidence(self, result: Identification, per_model: int = 3) -> dict[str, list[dict]]:
        """Why each listed model ranked where it did: its spec images most similar to the
        query (index into the model's example images, prompt, cosine similarity)."""
        index = self.index()
        if result.features is None:
            return {}
        query = l2_normalise(result.features).mean(axis=0)
        out = {}
        for match in result.results:
            m = index.names.index(match.model)
            rows = np.flatnonzero(index.pair_model == m)
            sims = index.unit_pair_features[rows] @ query
            best = np.argsort(-sims)[:per_model]
            out[match.model] = [
                {
                    "image": int(j),
                    "prompt": index.pair_texts[rows[j]],
                    "similarity": round(float(sims[j]), 4),
                }
                for j in best
            ]
        return out

    # -- catalogue -----------------------------------------------------------------------
    def models(self) -> list[ModelRecord]:
        return self.registry().list() if self.exists() else []

    def info(self, name: str) -> tuple[ModelRecord, Specification]:
        if not self.exists():
            raise NotFoundError(f"no model named {name!r} (the registry {self.home} is empty)")
        record = self.registry().get(name)
        return record, self.registry().load_spec(record)

    def remove(self, name: str) -> ModelRecord:
        if not self.exists():
            raise NotFoundError(f"no model named {name!r} (the registry {self.home} is empty)")
        record = self.registry().remove(name)
        self._refit()
        return record

    def _refit(self) -> None:
        """Refit the hub's learned parts (the `hub` interrogator) after the models changed, so
        that the next identify, in any process, finds them ready."""
        if self.registry().list():
            self.index()
