"""The compared methods. Each turns the encoded benchmark into distances [groups, models]
(lower = better), on the same queries:

    popularity              a fixed ranking by downloads, ignoring the image (today's hubs)
    rkme-pixels             baseline RKME (uniform weights) on 32x32 raw pixels
    rkme                    baseline RKME on encoder features
    knn                     the model of the nearest spec image (reverse image search)
    knn-space               the same in the hub-learned space (`--space whiten`)
    kde                     uniform kernel density with a narrow kernel (a soft kNN)
    weighted-<source>       the paper's weighted RKME, prompts from <source>
    local-<source>          prompt-weighted kernel density (gmi's default scoring)
    <source>: an interrogator (labels, retrieval, hub), `oracle` (the true prompt, text
    embedding kernel, an upper bound of the paper's form) or `stated` (the true prompt as the
    user states it with `gmi identify --prompt`, through the learned visual prompt kernel)

Methods are registered in METHODS by name; each is a pure function of the context.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
from tqdm import tqdm

from gmi.augment import DEFAULT_AUGMENT, spec_views
from gmi.bench.data import BenchData
from gmi.encoders import Encoder, load_encoder
from gmi.encoders.batches import encode_in_batches
from gmi.interrogators import DEFAULT_INTERROGATOR, INTERROGATORS, load_interrogator
from gmi.interrogators.base import prompt_embeddings
from gmi.registry.packed.index import PackedIndex
from gmi.search import ranking
from gmi.search.rules import padded, padded_weights
from gmi.search.weights import PointWeights
from gmi.spec.kernels import default_gamma, squared_distances
from gmi.spec.scoring import DEFAULT_SCORING, DEFAULT_TAU, keep_top, score_requirements
from gmi.spec.space import SPACES, FittedSpace, enough_images, fit_space_of, storage_of
from gmi.spec.specification import build_specification


@dataclass
class BenchContext:
    """The benchmark encoded once; specs are rebuilt per gamma factor (cheap, K = N)."""

    data: BenchData
    encoder_name: str
    groups: list[list[int]]
    tau: float = DEFAULT_TAU
    augment: str = DEFAULT_AUGMENT
    progress: bool = True
    space: str = "identity"  # or "whiten": the hub-learned space (gmi.spec.space)
    space_dims: int = 0  # directions it keeps (0 = all); > 0 stores points as bfloat16
    _stacks: dict[tuple[str, float], PackedIndex] = field(default_factory=dict)

    def with_groups(self, groups: list[list[int]]) -> BenchContext:
        """The same encoded benchmark with other requirements (caches are shared, not copied)."""
        other = copy.copy(self)
        other.groups = groups
        return other

    @cached_property
    def encoder(self) -> Encoder:
        return load_encoder(self.encoder_name)

    def _features(self, encoder: Encoder) -> tuple[list[np.ndarray], np.ndarray]:
        models = tqdm(
            self.data.models,
            desc=f"encoding spec images ({encoder.name})",
            unit="model",
            disable=not self.progress,
            leave=False,
        )
        spec = [
            encode_in_batches(encoder, spec_views(m.images, self.augment), m.name, False)
            for m in models
        ]
        queries = encoder.encode_images(self.data.query_images)
        return spec, queries

    @cached_property
    def features(self) -> tuple[list[np.ndarray], np.ndarray]:
        return self._features(self.encoder)

    @cached_property
    def fitted_space(self) -> FittedSpace | None:
        """The hub-learned space, fitted as a registry fits it: on the spec images only
        (labels = models), never on a query."""
        if self.space == "identity":
            return None
        if self.space != "whiten":
            raise ValueError(f"unknown space {self.space!r}; valid: {', '.join(SPACES)}")
        spec = self.features[0]
        if not enough_images(sum(len(z) for z in spec), spec[0].shape[1]):
            return None  # as a registry this small would: ranked as encoded
        return fit_space_of(spec, dims=self.space_dims, storage=storage_of(self.space_dims))

    @cached_property
    def pixel_features(self) -> tuple[list[np.ndarray], np.ndarray]:
        return self._features(load_encoder("pixels"))

    @cached_property
    def spec_prompt_embeddings(self) -> list[np.ndarray]:
        texts = sorted({p for m in self.data.models for p in m.prompts})
        table = dict(zip(texts, self.encoder.encode_texts(texts), strict=True))
        return [np.stack([table[p] for p in m.prompts]) for m in self.data.models]

    @cached_property
    def true_prompt_embeddings(self) -> np.ndarray:
        return self.encoder.encode_texts(self.data.query_prompts)

    def stated_prompt_weights(self, index: PackedIndex) -> PointWeights:
        """Each query's true prompt, stated by its user, via the hub's visual prompt kernel."""
        visuals = index.prompt_to_visual.predict(self.true_prompt_embeddings)
        kinds = ["visual"] * len(visuals)
        return PointWeights(kinds, visuals=visuals, text_visuals=index.text_visuals, tau=self.tau)

    def base_gamma(self, pixels: bool = False) -> float:
        spec, _ = self.pixel_features if pixels else self.features
        return default_gamma(spec[0])  # as a registry: fixed by its first model

    def index(self, gamma_factor: float = 1.0, pixels: bool = False) -> PackedIndex:
        key = ("pixels" if pixels else "main", gamma_factor)
        if key not in self._stacks:
            spec, _ = self.pixel_features if pixels else self.features
            gamma = self.base_gamma(pixels) * gamma_factor
            q = (
                self.spec_prompt_embeddings
                if not pixels
                else [np.zeros((len(m.prompts), 1), np.float32) + 1 for m in self.data.models]
            )
            specs = [
                build_specification(z, qm, m.prompts, encoder=self.encoder_name, gamma=gamma)
                for z, qm, m in zip(spec, q, self.data.models, strict=True)
            ]
            index = PackedIndex.from_specs(self.data.names, specs)
            if not pixels and self.fitted_space is not None:  # points as a registry packs them
                fitted = self.fitted_space
                fitted = replace(fitted, gamma=fitted.gamma * gamma_factor)
                index = replace(index, arrays=index.arrays.in_space(fitted))
            self._stacks[key] = index
        return self._stacks[key]

    def query_features(self, pixels: bool = False) -> np.ndarray:
        return (self.pixel_features if pixels else self.features)[1]

    @cached_property
    def _interrogations(self) -> dict[str, tuple[list[str], np.ndarray]]:
        return {}

    def interrogated(self, name: str) -> tuple[list[str], np.ndarray]:
        """Texts and prompt embeddings [T, e] from a registered interrogator (its real code)."""
        if name not in self._interrogations:
            asked = load_interrogator(name).interrogate(
                self.data.query_images, self.query_features(), self.encoder, self.index()
            )
            embeddings = prompt_embeddings(asked, self.encoder)
            if embeddings is None:
                raise ValueError(f"interrogator {name!r} gives no prompt to weight with")
            self._interrogations[name] = ([a.text for a in asked], embeddings)
        return self._interrogations[name]

    def interrogated_prompts(self, name: str) -> np.ndarray:
        return self.interrogated(name)[1]


Method = Callable[[BenchContext, float], np.ndarray]


def popularity(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    pop = np.array([m.popularity for m in ctx.data.models], dtype=np.float64)
    # most downloads first; ties by name, so the ranking is fixed and image-blind
    order = np.lexsort((np.array(ctx.data.names), -pop))
    rank = np.empty(len(pop))
    rank[order] = np.arange(len(pop))
    return np.tile(rank, (len(ctx.groups), 1))


def _ranked(
    ctx: BenchContext,
    index: PackedIndex,
    features: np.ndarray,
    weights: PointWeights | None = None,
    scoring: str = "rkme",
    combine: str = "mean",
) -> np.ndarray:
    """Distances [groups, models] through the ranking core that `gmi identify` uses."""
    weights = (weights or PointWeights.uniform(len(features))).for_rule(
        ctx.groups, scoring, combine
    )
    return ranking.distances(
        index.arrays, features, weights, ctx.groups, scoring=scoring, combine=combine
    )


def rkme_pixels(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    index = ctx.index(gamma_factor, pixels=True)
    return _ranked(ctx, index, ctx.query_features(pixels=True))


def rkme(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    return _ranked(ctx, ctx.index(gamma_factor), ctx.query_features())


def knn(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    """Per image, the squared distance to each model's nearest spec image; a group averages."""
    arrays = ctx.index().arrays
    d2 = squared_distances(ctx.query_features(), arrays.pair_features)  # [T, P]
    starts = arrays.pair_offsets[:-1]  # pairs are stored model by model
    per_model = np.minimum.reduceat(d2, starts, axis=1)
    return np.stack([per_model[g].mean(axis=0) for g in ctx.groups])


def knn_space(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    """Nearest spec image in the hub's space (the points: one per image by default)."""
    arrays = ctx.index().arrays
    d2 = squared_distances(
        arrays.to_space(ctx.query_features()), np.asarray(arrays.points, dtype=np.float32)
    )
    per_model = np.minimum.reduceat(d2, arrays.point_offsets[:-1], axis=1)
    return np.stack([per_model[g].mean(axis=0) for g in ctx.groups])


def kde(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    """Uniform-weight kernel density with a narrow kernel: a soft kNN (prompt-agnostic)."""
    return _ranked(ctx, ctx.index(gamma_factor), ctx.query_features(), scoring="local")


def scored_with(scoring: str, source: str, combine: str = "mean", top: int | None = None) -> Method:
    """A prompt-weighted method: `scoring` is "rkme" (the paper's weighted RKME) or "local"
    (weighted kernel density); `source` is where the prompt comes from: an interrogator's
    name, "oracle" (the true prompt, text-embedding kernel as in the paper) or "stated" (the
    true prompt as a user would state it, through the hub's learned visual prompt kernel).
    top: keep only each model's `top` heaviest points (an ablation outside the core)."""

    def method(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
        index = ctx.index(gamma_factor)
        features = ctx.query_features()
        if source == "oracle":
            weights = PointWeights.from_prompts(ctx.true_prompt_embeddings, len(features), ctx.tau)
        elif source == "stated":
            weights = ctx.stated_prompt_weights(index)
        else:
            prompts = ctx.interrogated_prompts(source)
            weights = PointWeights.from_prompts(prompts, len(features), ctx.tau)
        if top is None:
            return _ranked(ctx, index, features, weights, scoring, combine)
        slots = index.arrays.live_slots
        stack, cells = padded(index.arrays, slots, gram=True)
        w = keep_top(
            padded_weights(weights, weights.tables(index.arrays), index.arrays, cells), top
        )
        return score_requirements(stack, features, ctx.groups, None, ctx.tau, combine, scoring, w)

    method.__doc__ = f"{scoring} scoring with {source!r} prompts ({combine})"
    return method


# interrogators that run on any machine; others (blip:..., clip-interrogator) are named on
# the command line as weighted-<name> / local-<name> and built by resolve_method
BUILTIN_INTERROGATORS = ("labels", "retrieval", "hub")
_SOURCES = [*BUILTIN_INTERROGATORS, "oracle", "stated"]
METHODS: dict[str, Method] = {
    "popularity": popularity,
    "rkme-pixels": rkme_pixels,
    "rkme": rkme,
    "knn": knn,
    "knn-space": knn_space,
    "kde": kde,
    **{f"weighted-{src}": scored_with("rkme", src) for src in _SOURCES},
    **{f"local-{src}": scored_with("local", src) for src in _SOURCES},
    "weighted-retrieval-joint": scored_with("rkme", "retrieval", combine="joint"),
    "weighted-top8-hub": scored_with("rkme", "hub", top=8),
}


def resolve_method(name: str) -> Method:
    """A registered method, or weighted-<interrogator> / local-<interrogator> for any
    interrogator name (e.g. `weighted-clip-interrogator` on a machine with the weights)."""
    if name in METHODS:
        return METHODS[name]
    for prefix, scoring in (("weighted-", "rkme"), ("local-", "local")):
        source = name[len(prefix) :]
        if name.startswith(prefix) and source.split(":")[0] in INTERROGATORS:
            return scored_with(scoring, source)
    raise KeyError(name)


DEFAULT_METHOD = f"{DEFAULT_SCORING}-{DEFAULT_INTERROGATOR}"  # what `gmi identify` does
PAPER_METHOD = "weighted-retrieval"  # the paper's proposal with gmi's best image-only prompt
