"""The Python API: a Hub is a registry (any `Store`) plus the components its settings name.

    hub = Hub("~/my-hub")
    hub.submit_folder("my-model", "generated/")           # imagefolder: images + metadata.jsonl
    [result] = hub.identify(["query.jpg"], top=5)
    result.results[0].model

A thin facade: the submit write path is gmi.submit.write, identification is the pipeline of
named steps in gmi.identify, the packed index is gmi.registry.packed; the Hub holds the store,
the settings and the one snapshot of the index this process ranks with.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gmi.encoders import Encoder, load_encoder
from gmi.encoders.base import Encoded
from gmi.encoders.batches import encode_in_batches
from gmi.errors import InvalidInputError, NotFoundError, SearchEngineError, already_exists
from gmi.identify.duplicates import CANDIDATES, NearDuplicate, find_near_duplicate
from gmi.identify.evidence import evidence as model_evidence
from gmi.identify.pipeline import Components, IdentifyRequest
from gmi.identify.pipeline import identify as run_identify
from gmi.identify.results import PROMPT_SOURCES, Identification, Match
from gmi.identify.similar import SimilarModel, similar_models
from gmi.interrogators import load_interrogator
from gmi.metadata import Embedded
from gmi.metadata.matching import NamedModels, named_models
from gmi.model_hash import parse_model_id
from gmi.registry.base import Store
from gmi.registry.create import create_registry
from gmi.registry.packed.index import PackedIndex
from gmi.registry.snapshot import IndexSnapshots
from gmi.registry.store import ModelRecord, Registry, default_home
from gmi.registry.stores import open_store
from gmi.registry.validation import validate_name
from gmi.search import ranking
from gmi.search.searchers import EXACT, Searcher, registry_searcher
from gmi.settings import REQUESTABLE, HubSettings
from gmi.spec.specification import Specification
from gmi.submit.kept import kept_files
from gmi.submit.manifest import ManifestEntry
from gmi.submit.prepare import (
    Job,
    PreparedModel,
    encode_specification,
    prepare_entry,
    thumbnail_bytes,
)
from gmi.submit.write import SpecWrite, SpecWriter

__all__ = ["PROMPT_SOURCES", "Hub", "Identification", "Match"]


class Hub:
    """A registry (any `Store`) plus the models (encoder, interrogator) its settings name.

    requested settings (keywords in gmi.settings.REQUESTABLE): used when the registry is
    created (first submit); afterwards the registry's own settings rule, and asking for another
    encoder is refused (features of two encoders are not comparable). The interrogator can be
    overridden per identify call. device: where encoders and scoring run ("auto": CUDA when
    present). backend: gmi.search.ranking.BACKENDS. store: a Store, or a postgresql:// URL.

    Thread-safe for identification: the index is an immutable snapshot swapped under a small
    lock when the registry changes (in this process or any other); scoring runs unlocked.
    """

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        device: str = "auto",
        backend: str = "auto",
        store: Store | str | None = None,
        **requested: Any,
    ) -> None:
        unknown = sorted(set(requested) - set(REQUESTABLE))
        if unknown:
            raise TypeError(f"Hub() got an unexpected keyword argument {unknown[0]!r}")
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.store_url: str | None = None
        if isinstance(store, str):  # a postgresql:// URL: catalogue there, files in home
            self.store_url = store
            store = open_store(self.home, store)
        if store is not None:
            self.home = store.home
        self._requested = {key: requested.get(key) for key in REQUESTABLE}
        if backend not in ranking.BACKENDS:
            raise InvalidInputError(f"backend must be one of {', '.join(ranking.BACKENDS)}")
        if device not in ranking.DEVICES:
            raise InvalidInputError(f"device must be one of {', '.join(ranking.DEVICES)}")
        self.device = device
        self.backend = backend
        self._registry: Store | None = store
        self._snapshots = IndexSnapshots()
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
            self._registry = open_store(self.home, create=create)
        return self._registry

    def settings(self) -> HubSettings:
        """The registry's settings, or the requested/default ones for a registry not yet made."""
        stored = self.registry().settings() if self.exists() else {}
        return HubSettings.resolve(stored, self._requested, self.home)

    def init(self) -> HubSettings:
        """Create the registry and fix its settings (the first submit does this implicitly)."""
        return create_registry(
            self.settings(), self.compute_device, lambda: self.registry(create=True), self._searcher
        )

    @property
    def encoder(self) -> Encoder:
        return load_encoder(self.settings().encoder, self.compute_device, str(self.home))

    def encode(self, images: Sequence[Image.Image]) -> Encoded:
        """Encoder features [n, d] of decoded images, in batches, named by their encoder (an
        identify given them re-encodes if the hub switched encoders meanwhile)."""
        encoder = self.encoder
        features = encode_in_batches(encoder, list(images), "encoding", False, fixed_shape=False)
        return Encoded(features, encoder.name)

    # -- submitting stage (the write itself: gmi.submit.write) -----------------------------
    @property
    def writer(self) -> SpecWriter:
        """The submit write path into this hub's registry (what submit-many uses)."""
        return SpecWriter(self.home, lambda create: self.registry(create=create), self.settings)

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
        return self.writer.store_prepared(entry, prepared, digest, replace=replace)

    def submit_generated(
        self,
        name: str,
        generator: object,
        prompts: list[str],
        *,
        images_per_prompt: int = 1,
        keep_images: str | Path | None = None,
        progress: bool = True,
        **submit: Any,
    ) -> tuple[ModelRecord, int]:
        """Run a generator over a prompt set (resumable, images kept as an imagefolder), then
        submit_images(**submit). Returns the record and how many images were new."""
        from gmi.generators.submission import generate_imagefolder
        from gmi.submit.prepare import default_generated_folder

        validate_name(name)
        if not submit.get("replace") and self.exists() and self.registry().exists(name):
            raise already_exists(name)
        folder = Path(keep_images) if keep_images else default_generated_folder(self.home, name)
        maker = f"{type(generator).__module__}.{type(generator).__qualname__}"
        images, used_prompts, generated = generate_imagefolder(
            generator, prompts, folder, images_per_prompt, progress=progress,
            maker=f"{maker}:{getattr(generator, 'name', '')}",
        )  # fmt: skip
        record = self.submit_images(name, images, used_prompts, progress=progress, **submit)
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
            name, images, prompts, settings, self.compute_device, progress=progress,
            home=str(self.home),
        )  # fmt: skip
        write = SpecWrite(
            thumbnails=[thumbnail_bytes(im) for im in images],
            description=description,
            replace=replace,
            model_hashes=model_hashes,
            extra=extra,
            kept=kept_files(settings.keep_images, images, prompts),
        )
        return self.writer.store(name, spec, write)

    # -- identification stage ------------------------------------------------------------
    def index(self) -> PackedIndex:
        """The packed index of the registry's current state (gmi.registry.snapshot: checked
        with one small read per call, reopened only when the state changed)."""
        if not self.exists():
            raise NotFoundError(f"{self.home}: no gmi registry here (submit a model first)")
        return self._snapshots.current(self.registry(), self._fixed_settings, self.home)

    def _fixed_settings(self) -> HubSettings:
        return self.writer.fixed_settings()

    @property
    def loaded_index(self) -> PackedIndex | None:
        """The index as last loaded in this process (no reload): for health probes."""
        return self._snapshots.loaded

    @property
    def index_error(self) -> str | None:
        """Why the last index open failed, if it did."""
        return self._snapshots.error

    def identify(
        self,
        images: Sequence[str | Path | Image.Image],
        *,
        top: int = 5,
        together: bool = False,
        interrogator: str | None = None,
        prompt: str | None = None,
        features: np.ndarray | Encoded | None = None,
        exact: bool = False,
    ) -> list[Identification]:
        """Rank all models for each image (or for all images as one requirement): the steps
        of gmi.identify.pipeline.identify (where the prompt and exact-match rules are told).

        interrogator: overrides the registry's for this call. features: these images' encoder
        features when the caller already has them (gmi.server.batcher). exact: score every
        model, whatever the registry's searcher (`gmi identify --exact`)."""
        request = IdentifyRequest(images, top, together, prompt, features, exact)
        try:
            out = run_identify(request, lambda: self._components(interrogator, exact))
        except SearchEngineError as exc:
            self.search_error = str(exc)
            raise
        self.search_error = None
        return out

    def _components(self, interrogator: str | None, exact: bool) -> Components:
        """What identification runs with: the index snapshot and the models settings name."""
        index = self.index()
        settings = self.settings()
        encoder = index.encoder or settings.encoder  # the rows' own: see PackedIndex.encoder
        return Components(
            index=index,
            settings=settings,
            encoder=load_encoder(encoder, self.compute_device, str(self.home)),
            interrogator=load_interrogator(
                interrogator or settings.interrogator, self.compute_device
            ),
            searcher=EXACT if exact else self._searcher(settings),
            named_models=self._named_models,
            backend=self.backend,
            device=self.compute_device,
            home=self.home,
        )

    def similar(self, name: str, *, top: int = 5, exact: bool = False) -> list[SimilarModel]:
        """The models whose images are most like `name`'s own (gmi.identify.similar)."""
        settings = self.settings()
        searcher = EXACT if exact else self._searcher(settings)
        plan = ranking.RankPlan(backend=self.backend, device=self.compute_device, searcher=searcher)
        return similar_models(self.index(), settings, plan, self.home, name, top)

    def near_duplicate(self, name: str) -> NearDuplicate | None:
        """Whether registered model `name` copies another (gmi.identify.duplicates)."""
        similar = lambda: [m.model for m in self.similar(name, top=CANDIDATES)]  # noqa: E731
        return find_near_duplicate(self.registry(), self.index, name, similar)

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
        searcher = self._searcher(settings)
        if rebuild and not searcher.indexed:
            raise InvalidInputError(
                f"registry {self.home} uses the {searcher.name} searcher: there is no index "
                "to rebuild"
            )
        if rebuild:
            started = time.perf_counter()
            searcher.rebuild(arrays)
            out["rebuilt_s"] = round(time.perf_counter() - started, 3)
        out.update(searcher.status(arrays))
        return out

    def _searcher(self, settings: HubSettings) -> Searcher:
        """The registry's searcher (`gmi init --searcher`)."""
        return registry_searcher(settings.searcher, settings.milvus_uri, self.home)

    def _named_models(self, found: Embedded) -> NamedModels:
        """The registered models this image's metadata names (gmi.metadata.matching)."""
        registry = self.registry()
        return named_models(found, registry.models_with_keys, registry.model_hashes)

    def evidence(self, result: Identification, per_model: int = 3) -> dict[str, list[dict]]:
        """Why each listed model ranked where it did: its spec images most similar to the
        query (index into the model's example images, prompt, cosine similarity). Reads only
        the listed models' rows."""
        return model_evidence(self.index(), result, per_model)

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
        self.writer.sync()  # the packed index in step after this process changed the models
