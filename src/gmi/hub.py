"""The pipeline: submit (images -> specification -> registry) and identify (image -> ranking).

`Hub` is the Python API; the CLI and (later) the HTTP service are thin shells over it.

    hub = Hub("~/my-hub")
    hub.submit_folder("my-model", "generated/")           # imagefolder: images + metadata.jsonl
    [result] = hub.identify(["query.jpg"], top=5)
    result.results[0].model
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmi.encoders import Encoder, load_encoder
from gmi.encoders.base import l2_normalise
from gmi.encoders.batches import encode_in_batches
from gmi.errors import (
    ConflictError,
    CorruptSpecError,
    GmiError,
    InvalidInputError,
    NotFoundError,
    SearchEngineError,
    already_exists,
)
from gmi.imagefolder import MAX_PROMPT_CHARS
from gmi.images import open_image
from gmi.interrogators import load_interrogator
from gmi.interrogators.base import prompt_embeddings
from gmi.metadata import Embedded, read_embedded
from gmi.metadata.matching import NamedModels, named_models
from gmi.model_hash import parse_model_id
from gmi.registry.base import Store
from gmi.registry.packed.index import PackedIndex
from gmi.registry.store import (
    ModelRecord,
    Registry,
    default_home,
    validate_name,
)
from gmi.search import ranking
from gmi.search.searchers import EXACT, Searcher, load_searcher
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings
from gmi.spec.calibration import Calibration
from gmi.spec.specification import Specification
from gmi.submit.manifest import ManifestEntry
from gmi.submit.prepare import (
    Job,
    PreparedModel,
    encode_specification,
    prepare_entry,
    rebuild_with_gamma,
    thumbnail_bytes,
)


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


def _slots(
    named: list[NamedModels], kind: str, position: dict[str, int], row: np.ndarray
) -> list[int]:
    """Slots of the models the images name (kind: exact / named / promoted), closest first."""
    wanted = {n for found in named for n in getattr(found, kind)}
    return sorted((position[n] for n in wanted if n in position), key=lambda m: row[m])


def _unique_resources(lists: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for resources in lists:
        out.extend(r for r in resources if r not in out)
    return out


class Hub:
    """A registry (any `Store`) plus the models (encoder, interrogator) its settings name.

    encoder / interrogator: used when the registry is created (first submit); afterwards the
    registry's own settings rule, and asking for another encoder is refused (features of two
    encoders are not comparable). The interrogator can be overridden per identify call.
    device: where encoders and scoring run ("auto": CUDA when present). backend: the ranking
    core's arithmetic (gmi.search.ranking.BACKENDS).

    Thread-safe for identification: the index is an immutable snapshot swapped under a small
    lock when the registry changes (in this process or any other); scoring runs unlocked.
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
        space: str | None = None,
        searcher: str | None = None,
        milvus_uri: str | None = None,
        device: str = "auto",
        backend: str = "auto",
        store: Store | str | None = None,
    ) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.store_url: str | None = None
        if isinstance(store, str):  # a postgresql:// URL: catalogue there, files in home
            from gmi.registry.postgres import open_store

            self.store_url = store
            store = open_store(store, self.home)
        if store is not None:
            self.home = store.home
        self._requested = {
            "encoder": encoder,
            "interrogator": interrogator,
            "n_points": n_points,
            "gamma": gamma,
            "tau": tau,
            "combine": combine,
            "augment": augment,
            "scoring": scoring,
            "space": space,
            "searcher": searcher,
            "milvus_uri": milvus_uri,
        }
        if backend not in ranking.BACKENDS:
            raise InvalidInputError(f"backend must be one of {', '.join(ranking.BACKENDS)}")
        if device not in ranking.DEVICES:
            raise InvalidInputError(f"device must be one of {', '.join(ranking.DEVICES)}")
        self.device = device
        self.backend = backend
        self._registry: Store | None = store
        self._index: PackedIndex | None = None
        self._index_lock = threading.Lock()
        self.index_error: str | None = None  # why the last index build failed, if it did
        self.search_error: str | None = None  # why the last search failed (until one works)

    @cached_property
    def compute_device(self) -> str:
        """Where encoders, interrogators and the ranking core run: "cpu" or "cuda"."""
        try:
            return ranking.resolve_device(self.device)
        except ValueError as exc:
            raise InvalidInputError(str(exc)) from exc

    # -- registry and settings ---------------------------------------------------------
    def exists(self) -> bool:
        if self._registry is not None and not isinstance(self._registry, Registry):
            return True
        if self.home.exists() and not self.home.is_dir():
            raise InvalidInputError(f"{self.home}: the registry home is a file, not a directory")
        return (self.home / "registry.db").exists()

    def registry(self, *, create: bool = False) -> Store:
        if self._registry is None:
            self._registry = Registry(self.home, create=create)
        return self._registry

    def settings(self) -> HubSettings:
        """The registry's settings, or the requested/default ones for a registry not yet made."""
        stored = self.registry().settings() if self.exists() else {}
        wanted = {k: v for k, v in self._requested.items() if v is not None}
        if stored.get("encoder") and "encoder" in wanted and wanted["encoder"] != stored["encoder"]:
            raise ConflictError(
                f"registry {self.home} uses encoder {stored['encoder']!r}, not "
                f"{wanted['encoder']!r}; specs of different encoders cannot be compared "
                "(use another --home)"
            )
        # the stored value of a setting wins over a requested one (fixed at creation)
        requested = HubSettings.from_strings({k: str(v) for k, v in wanted.items()})
        return HubSettings.from_strings({**requested.to_strings(), **stored})

    def init(self) -> HubSettings:
        """Create the registry and fix its settings (the first submit does this implicitly)."""
        settings = self.settings()
        load_encoder(
            settings.encoder, self.compute_device
        )  # fail on an unknown name before creating anything
        load_interrogator(settings.interrogator)
        if settings.milvus_uri and settings.searcher != "milvus":
            raise InvalidInputError("--milvus-uri is for --searcher milvus")
        # No URI: Milvus Lite in the registry's own folder, found from the home each time (a
        # relative --home, another working directory or a copied hub never points elsewhere).
        # A Milvus Lite file given relative to here is stored absolute, for the same reason.
        lite = settings.searcher == "milvus" and not str(settings.milvus_uri).startswith(
            ("http://", "https://", "tcp://")
        )
        if lite and settings.milvus_uri:
            settings = settings.with_values(milvus_uri=str(Path(settings.milvus_uri).resolve()))
        if settings.searcher == "milvus" and not lite:  # reachable? before anything is made
            self._searcher(settings).client()
        registry = self.registry(create=True)
        if lite:  # Milvus Lite's file may live in the registry's folder, made just now
            self._searcher(settings).client()
        stored = registry.set_settings(settings.to_strings())
        return HubSettings.from_strings(stored)

    @property
    def encoder(self) -> Encoder:
        return load_encoder(self.settings().encoder, self.compute_device)

    def encode(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Encoder features [n, d] of decoded images, in batches."""
        return encode_in_batches(self.encoder, list(images), "encoding", False, fixed_shape=False)

    # -- submitting stage --------------------------------------------------------------
    def submit_folder(
        self,
        name: str,
        folder: str | Path,
        *,
        description: str | None = None,
        replace: bool = False,
        progress: bool = True,
        model_hashes: list[str] | None = None,
    ) -> ModelRecord:
        """Submit a model from an imagefolder (its generated images + metadata.jsonl or .csv;
        for a folder with splits, the train split, recorded as the record's extra "split")."""
        entry = ManifestEntry(
            name,
            images=Path(folder),
            description=description,
            model_hashes=tuple(model_hashes or ()),
        )
        return self.submit_entry(entry, replace=replace, progress=progress)[0]

    def submit_entry(
        self, entry: ManifestEntry, *, replace: bool = False, progress: bool = True
    ) -> tuple[ModelRecord, int]:
        """Submit one manifest entry here, in this process: the work a `submit-many` task
        does (gmi.submit.prepare), then the registry write. The record keeps the digest of
        the entry's inputs (extra "inputs"), so `submit-many` skips it when nothing changed.
        Returns the record and how many images were newly generated."""
        if not replace and self.exists() and self.registry().exists(entry.name):
            raise already_exists(entry.name)
        # an imagefolder's digest is taken by the task, of the bytes it encodes
        digest = "" if entry.images is not None else entry.inputs_digest()
        job = Job(str(self.home), self.settings().to_strings(), self.compute_device, progress)
        prepared = prepare_entry(entry, job)
        return self.store_prepared(entry, prepared, digest, replace=replace), prepared.generated

    def store_prepared(
        self, entry: ManifestEntry, prepared: PreparedModel, digest: str, *, replace: bool
    ) -> ModelRecord:
        """Store a model prepared anywhere (a worker's bytes are checked like a file read)."""
        spec = Specification.from_bytes(prepared.spec, f"model {entry.name!r}")
        return self.store_spec(
            entry.name,
            spec,
            thumbnails=prepared.thumbnails,
            description=entry.description,
            replace=replace,
            model_hashes=prepared.model_hashes or None,
            extra={**prepared.extra, "inputs": prepared.inputs or digest},
        )

    def submit_generated(
        self,
        name: str,
        generator: object,
        prompts: list[str],
        *,
        images_per_prompt: int = 1,
        keep_images: str | Path | None = None,
        description: str | None = None,
        replace: bool = False,
        progress: bool = True,
        model_hashes: list[str] | None = None,
    ) -> tuple[ModelRecord, int]:
        """Run a generator over a prompt set (resumable, images kept as an imagefolder), then
        submit. Returns the record and how many images were newly generated."""
        from gmi.generators.submission import generate_imagefolder
        from gmi.submit.prepare import default_generated_folder

        validate_name(name)
        if not replace and self.exists() and self.registry().exists(name):
            raise already_exists(name)
        folder = Path(keep_images) if keep_images else default_generated_folder(self.home, name)
        maker = f"{type(generator).__module__}.{type(generator).__qualname__}"
        images, used_prompts, generated = generate_imagefolder(
            generator, prompts, folder, images_per_prompt, progress=progress,
            maker=f"{maker}:{getattr(generator, 'name', '')}",
        )  # fmt: skip
        record = self.submit_images(
            name,
            images,
            used_prompts,
            description=description,
            replace=replace,
            progress=progress,
            model_hashes=model_hashes,
        )
        return record, generated

    def submit_images(
        self,
        name: str,
        images: Sequence[Image.Image],
        prompts: Sequence[str],
        *,
        description: str | None = None,
        replace: bool = False,
        progress: bool = True,
        model_hashes: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """Encode a model's (image, prompt) pairs, build its spec and store it atomically.

        model_hashes: checkpoint hashes of the weights (AUTOMATIC1111 "Model hash" forms or a
        full sha256); an image that embeds one of them is reported as an exact match.
        description / model_hashes None keep the old ones on replace."""
        validate_name(name)
        for model_hash in model_hashes or []:
            parse_model_id(model_hash)  # refuse a bad identity before any encoding
        settings = self.settings()
        if not replace and self.exists() and self.registry().exists(name):
            raise already_exists(name)
        spec = encode_specification(
            name, images, prompts, settings, self.compute_device, progress=progress
        )
        return self.store_spec(
            name,
            spec,
            thumbnails=[thumbnail_bytes(im) for im in images],
            description=description,
            replace=replace,
            model_hashes=model_hashes,
            extra=extra,
        )

    def store_spec(
        self,
        name: str,
        spec: Specification,
        *,
        thumbnails: list[bytes],
        description: str | None = None,
        replace: bool = False,
        model_hashes: list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> ModelRecord:
        """The registry write of a submit: fix the registry's settings with the first model,
        refuse a spec they cannot compare, store atomically, bring the index in step."""
        settings = self.settings()
        registry = self.registry(create=True)
        # Fixed once, atomically: the first writer's values win and every other submit, even
        # one racing it into a new registry, reads them back and builds with them.
        stored = registry.set_settings(
            {
                **settings.to_strings(),
                "gamma": repr(spec.gamma),
                "image_dim": str(spec.points.shape[1]),
                "prompt_dim": str(spec.point_prompts.shape[1]),
            }
        )
        for key, ours in (
            ("encoder", spec.encoder),
            ("image_dim", str(spec.points.shape[1])),
            ("prompt_dim", str(spec.point_prompts.shape[1])),
        ):
            if stored.get(key, ours) != ours:
                raise ConflictError(
                    f"registry {self.home} has {key} {stored[key]!r}, this submission "
                    f"{ours!r}; specs that differ there cannot be compared"
                )
        if float(stored["gamma"]) != spec.gamma:  # another first submit fixed it before us
            spec = rebuild_with_gamma(spec, float(stored["gamma"]), settings.n_points)
        record = registry.add(
            name,
            spec,
            description=description,
            replace=replace,
            thumbnails=thumbnails,
            model_hashes=model_hashes,
            extra=extra,
        )
        self._sync()
        return record

    # -- identification stage ------------------------------------------------------------
    def index(self) -> PackedIndex:
        """The packed index of the registry's current state (gmi.registry.packed).

        Checked on every call with one small read of the registry's state, so writes made by
        other processes are picked up without a restart; reopened (memory maps, no spec file
        parsed) only when the state changed. A model whose spec is damaged, crafted or
        incompatible with the registry is left out and named in `skipped`; only a registry
        with no usable model at all is an error.
        """
        if not self.exists():
            raise NotFoundError(f"{self.home}: no gmi registry here (submit a model first)")
        registry = self.registry()
        token = registry.index_token()
        current = self._index
        if current is not None and token and current.token == token:
            return current
        with self._index_lock:
            if self._index is not None and token and self._index.token == token:
                return self._index
            settings = self._fixed_settings()
            index = registry.open_index(settings)
            if not index.names and not index.skipped:
                self._index, self.index_error = None, None
                raise NotFoundError(f"{self.home}: the registry has no models (submit one first)")
            if not index.names:
                reasons = "; ".join(f"model {n!r}: {w}" for n, w in index.skipped.items())
                self._index, self.index_error = None, f"no usable model ({reasons})"
                raise CorruptSpecError(f"{self.home}: no usable model ({reasons}); run gmi check")
            self._index = index
            self.index_error = None
            return index

    def _fixed_settings(self) -> HubSettings:
        """The settings, with the values a registry fixes at its first submit filled in from
        its models for registries made before gmi recorded them."""
        settings = self.settings()
        if settings.gamma is not None and settings.image_dim is not None:
            return settings
        registry = self.registry()
        for record in registry.list():
            try:
                spec = registry.load_spec(record)
            except CorruptSpecError:
                continue
            values = {
                "gamma": repr(spec.gamma),
                "image_dim": str(spec.points.shape[1]),
                "prompt_dim": str(spec.point_prompts.shape[1]),
            }
            if not registry.read_only:
                return HubSettings.from_strings(registry.set_settings(values))
            return HubSettings.from_strings({**values, **settings.to_strings()})
        return settings

    @property
    def loaded_index(self) -> PackedIndex | None:
        """The index as last loaded in this process (no reload): for health probes."""
        return self._index

    def identify(
        self,
        images: Sequence[str | Path | Image.Image],
        *,
        top: int = 5,
        together: bool = False,
        interrogator: str | None = None,
        prompt: str | None = None,
        features: np.ndarray | None = None,
        exact: bool = False,
    ) -> list[Identification]:
        """Rank all models for each image (or for all images as one requirement).

        features: these images' encoder features when the caller already has them (the
        service encodes concurrent requests in one batch: gmi.server.batcher).

        The prompt that weights the spec points comes, per image, from the first of: `prompt`
        (what the user will ask the model for, when they know it), the generation prompt the
        image itself embeds (SD front-ends' PNG/EXIF metadata, gmi.metadata), or the
        interrogator's guess. A stated or embedded prompt weights spec points through the
        hub's learned visual prompt kernel; this tells apart models that draw the same
        pictures for different prompts (the paper's Example B.1), which no image-only method
        can. An embedded checkpoint hash that a registered model carries puts that model
        first, marked exact_match.

        exact: score every model, whatever the registry's searcher (`gmi identify --exact`);
        otherwise an approximate searcher shortlists and the top `top` is certified where the
        scoring rule allows (gmi.search.ranking).
        """
        if not images:
            raise InvalidInputError("give at least one image to identify")
        if top < 1:
            raise InvalidInputError("--top must be at least 1")
        if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"prompt longer than {MAX_PROMPT_CHARS} characters")
        labels = [
            str(im) if not isinstance(im, Image.Image) else f"image[{i}]"
            for i, im in enumerate(images)
        ]
        decoded = [im if isinstance(im, Image.Image) else open_image(im) for im in images]
        embedded = [read_embedded(im, label) for im, label in zip(decoded, labels, strict=True)]
        index = self.index()
        settings = self.settings()
        encoder = load_encoder(settings.encoder, self.compute_device)
        asker = load_interrogator(interrogator or settings.interrogator, self.compute_device)

        t0 = time.perf_counter()
        if features is None:
            features = encoder.encode_images(decoded)
        elif len(features) != len(decoded):
            raise ValueError("one feature row per image is needed")
        t1 = time.perf_counter()
        texts, sources = self._query_prompts(prompt, embedded)
        guessed = [i for i, source in enumerate(sources) if source == "interrogated"]
        asked = (
            asker.interrogate([decoded[i] for i in guessed], features[guessed], encoder, index)
            if guessed
            else []
        )
        for i, answer in zip(guessed, asked, strict=True):
            texts[i] = answer.text
        guessed_prompts = prompt_embeddings(asked, encoder) if asked else None
        weights = self._point_weights(
            index, encoder, texts, sources, guessed, guessed_prompts, settings
        )
        t2 = time.perf_counter()
        groups = [list(range(len(decoded)))] if together else [[i] for i in range(len(decoded))]
        if settings.combine == "joint" and settings.scoring == "rkme":
            weights = weights.per_group(groups)
        named = [self._named_models(e) for e in embedded]
        hashed = {n for found in named for n in (*found.exact, *found.named) if n in index.position}
        search: dict[str, Any] = {}
        distances = self._ranked(
            ranking.distances,
            index.arrays,
            features,
            weights,
            groups,
            scoring=settings.scoring,
            combine=settings.combine,
            backend=self.backend,
            device=self.compute_device,
            searcher=EXACT if exact else self._searcher(settings),
            k=top + len(hashed),
            report=search,
            always=[index.position[n] for n in hashed],  # named by checkpoint hash: scored
        )
        t3 = time.perf_counter()

        timings = {"encode_s": t1 - t0, "interrogate_s": t2 - t1, "score_s": t3 - t2}
        calibration = index.learned.get("calibration")
        if not isinstance(calibration, Calibration):
            raise CorruptSpecError(f"{self.home}: the hub's calibration is missing")
        skipped = [
            f"model {name!r}: {why}; left out of the ranking (see gmi check)"
            for name, why in index.skipped.items()
        ]
        out = []
        for g, group in enumerate(groups):
            named_here = [named[i] for i in group]
            exact_here = _slots(named_here, "exact", index.position, distances[g])
            by_name = _slots(named_here, "named", index.position, distances[g])
            promoted = _slots(named_here, "promoted", index.position, distances[g])
            first = [*exact_here, *(m for m in promoted if m not in exact_here)]
            ranked = ranking.top_k(distances[g], top + len(first))
            order = [*first, *(m for m in ranked if m not in first)][:top]
            scores = calibration.score(distances[g, order])
            close = calibration.close(distances[g, order])
            matches = [
                Match(
                    rank=r + 1,
                    model=index.arrays.names[m],
                    score=float(scores[r]),
                    distance=float(distances[g, m]),
                    close_match=bool(close[r]) or m in exact_here,
                    exact_match=m in exact_here,
                    named_match=m in by_name,
                )
                for r, m in enumerate(order)
            ]
            group_sources = {sources[i] for i in group}
            source = (
                "stated"
                if prompt is not None
                else "embedded"
                if group_sources == {"embedded"}
                else "interrogated"
            )
            out.append(
                Identification(
                    images=[labels[i] for i in group],
                    prompt=" | ".join(dict.fromkeys(texts[i] for i in group)),
                    results=matches,
                    timings=timings,
                    features=features[group],
                    prompt_source=source,
                    close_match=any(m.close_match for m in matches),
                    embedded=[embedded[i] for i in group],
                    warnings=[w for i in group for w in embedded[i].warnings] + skipped,
                    search=search,
                    resources=_unique_resources(named[i].resources for i in group),
                )
            )
        return out

    @staticmethod
    def _query_prompts(stated: str | None, embedded: list[Embedded]) -> tuple[list[str], list[str]]:
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

    @staticmethod
    def _point_weights(
        index: PackedIndex,
        encoder: Encoder,
        texts: list[str],
        sources: list[str],
        guessed: list[int],
        guessed_prompts: np.ndarray | None,
        settings: HubSettings,
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
        return PointWeights(kinds, prompts, visuals, text_visuals, tau=settings.tau)

    def search_index(self, *, rebuild: bool = False) -> dict[str, Any]:
        """Which searcher the registry uses and the state of its index (`gmi index`);
        rebuild=True rebuilds the approximate searcher's index and saves it."""
        settings = self.settings()
        arrays = self.index().arrays
        out: dict[str, Any] = {
            "searcher": settings.searcher,
            "models": int(arrays.live_slots.size),
            "points": len(arrays.points),
            "dim": arrays.dim,
        }
        if settings.searcher == "ann":
            from gmi.search import ann

            if rebuild:
                started = time.perf_counter()
                built = ann.ANN.rebuild(arrays)
                out["rebuilt_s"] = round(time.perf_counter() - started, 3)
            else:
                built = ann.ANN.index_for(arrays)
            out.update(
                index=built.kind,
                indexed_rows=built.rows,
                saved_rows=built.saved_rows,
                files=[str(f[0]) for f in ann.stored_files(self.home)],
                problems=ann.check_index(arrays),
            )
        elif settings.searcher == "milvus":
            searcher = self._searcher(settings)
            started = time.perf_counter()
            rows = searcher.rebuild(arrays) if rebuild else searcher.sync(arrays)
            if rebuild:
                out["rebuilt_s"] = round(time.perf_counter() - started, 3)
            out.update(
                milvus_uri=searcher.uri,
                collection=searcher.collection(arrays),
                indexed_rows=rows,
                problems=searcher.check(arrays),
            )
        elif rebuild:
            raise InvalidInputError(
                f"registry {self.home} uses the exact searcher: there is no index to rebuild"
            )
        return out

    def _ranked(self, rank: Any, *args: Any, **kwargs: Any) -> Any:
        """Run the ranking, remembering a search engine's failure for /healthz."""
        try:
            out = rank(*args, **kwargs)
        except SearchEngineError as exc:
            self.search_error = str(exc)
            raise
        self.search_error = None
        return out

    def _searcher(self, settings: HubSettings) -> Searcher:
        """The registry's searcher (`gmi init --searcher`)."""
        if settings.searcher == "milvus" and not settings.milvus_uri:
            from gmi.search.milvus import default_uri

            return load_searcher("milvus", default_uri(self.home))
        return load_searcher(settings.searcher, settings.milvus_uri)

    def _named_models(self, found: Embedded) -> NamedModels:
        """The registered models this image's metadata names (gmi.metadata.matching)."""
        if not found.models and not found.loras:
            return NamedModels()
        registry = self.registry()
        return named_models(found, registry.models_with_keys, registry.model_hashes)

    def evidence(self, result: Identification, per_model: int = 3) -> dict[str, list[dict]]:
        """Why each listed model ranked where it did: its spec images most similar to the
        query (index into the model's example images, prompt, cosine similarity). Reads only
        the listed models' rows."""
        index = self.index()
        if result.features is None:
            return {}
        query = l2_normalise(result.features).mean(axis=0)
        out = {}
        for match in result.results:
            slot = index.position.get(match.model)
            if slot is None:
                continue
            rows = index.pair_rows(slot)
            features = l2_normalise(np.asarray(index.arrays.pair_features[rows[0] : rows[-1] + 1]))
            sims = features @ query
            best = np.argsort(-sims)[:per_model]
            out[match.model] = [
                {
                    "image": int(j),
                    "prompt": index.pair_text(int(rows[j])),
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
        self._sync()
        return record

    def _sync(self) -> None:
        """Bring the packed index and the learned parts in step after this process changed the
        models (O(the change), gmi.registry.packed), so the next identify, in any process,
        finds them ready. The write has already taken effect: nothing here may turn it into a
        reported failure (a reader syncs again, and `gmi check` reports problems)."""
        try:
            if self.registry().list_names(limit=1):
                self.registry().sync_index(self._fixed_settings())
        except (GmiError, OSError):
            pass
