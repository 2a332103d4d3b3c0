"""The compared methods. Each turns the encoded benchmark into distances [groups, models]
(lower = better), on the same queries:

    popularity              a fixed ranking by downloads, ignoring the image (today's hubs)
    rkme-pixels             baseline RKME (uniform weights) on 32x32 raw pixels
    rkme                    baseline RKME on encoder features
    knn                     the model of the nearest spec image (reverse image search)
    weighted-oracle         weighted RKME given the TRUE prompt (an upper bound)
    weighted-<interrogator> the proposal, for every registered interrogator but `none`

Methods are registered in METHODS by name; each is a pure function of the context.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
from tqdm import tqdm

from gmi.bench.data import BenchData
from gmi.encoders import Encoder, load_encoder
from gmi.hub import encode_images_with_progress
from gmi.index import HubIndex
from gmi.interrogators import DEFAULT_INTERROGATOR, INTERROGATORS, load_interrogator
from gmi.spec.kernels import default_gamma, squared_distances
from gmi.spec.scoring import DEFAULT_TAU, score_requirements
from gmi.spec.specification import build_specification


@dataclass
class BenchContext:
    """The benchmark encoded once; specs are rebuilt per gamma factor (cheap, K = N)."""

    data: BenchData
    encoder_name: str
    groups: list[list[int]]
    tau: float = DEFAULT_TAU
    progress: bool = True
    _stacks: dict[tuple[str, float], HubIndex] = field(default_factory=dict)

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
        spec = [encode_images_with_progress(encoder, m.images, m.name, False) for m in models]
        queries = encoder.encode_images(self.data.query_images)
        return spec, queries

    @cached_property
    def features(self) -> tuple[list[np.ndarray], np.ndarray]:
        return self._features(self.encoder)

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

    def base_gamma(self, pixels: bool = False) -> float:
        spec, _ = self.pixel_features if pixels else self.features
        return default_gamma(spec[0])  # as a registry: fixed by its first model

    def index(self, gamma_factor: float = 1.0, pixels: bool = False) -> HubIndex:
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
            self._stacks[key] = HubIndex.from_specs(self.data.names, specs)
        return self._stacks[key]

    def query_features(self, pixels: bool = False) -> np.ndarray:
        return (self.pixel_features if pixels else self.features)[1]

    @cached_property
    def _interrogations(self) -> dict[str, np.ndarray]:
        return {}

    def interrogated_prompts(self, name: str) -> np.ndarray:
        """Prompt embeddings [T, e] from a registered interrogator (real plug-in code)."""
        if name not in self._interrogations:
            asker = load_interrogator(name)
            index = self.index()
            asked = asker.interrogate(
                self.data.query_images, self.query_features(), self.encoder, index
            )
            rows: list[np.ndarray | None] = [a.embedding for a in asked]
            missing = [i for i, r in enumerate(rows) if r is None]
            if missing:
                encoded = self.encoder.encode_texts([asked[i].text for i in missing])
                for i, e in zip(missing, encoded, strict=True):
                    rows[i] = e
            self._interrogations[name] = np.stack(rows)  # type: ignore[arg-type]
        return self._interrogations[name]


Method = Callable[[BenchContext, float], np.ndarray]


def popularity(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    pop = np.array([m.popularity for m in ctx.data.models], dtype=np.float64)
    # most downloads first; ties by name, so the ranking is fixed and image-blind
    order = np.lexsort((np.array(ctx.data.names), -pop))
    rank = np.empty(len(pop))
    rank[order] = np.arange(len(pop))
    return np.tile(rank, (len(ctx.groups), 1))


def rkme_pixels(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    index = ctx.index(gamma_factor, pixels=True)
    return score_requirements(index.stack, ctx.query_features(pixels=True), ctx.groups)


def rkme(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    return score_requirements(ctx.index(gamma_factor).stack, ctx.query_features(), ctx.groups)


def knn(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    """Per image, the squared distance to each model's nearest spec image; a group averages."""
    index = ctx.index()
    d2 = squared_distances(ctx.query_features(), index.pair_features)  # [T, P]
    starts = np.flatnonzero(np.r_[True, np.diff(index.pair_model) != 0])
    per_model = np.minimum.reduceat(d2, starts, axis=1)  # pairs are stored model by model
    return np.stack([per_model[g].mean(axis=0) for g in ctx.groups])


def _weighted(
    ctx: BenchContext, prompts: np.ndarray, gamma_factor: float, combine: str = "mean"
) -> np.ndarray:
    stack = ctx.index(gamma_factor).stack
    return score_requirements(stack, ctx.query_features(), ctx.groups, prompts, ctx.tau, combine)


def weighted_joint(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    """The default proposal, but several images scored as ONE distribution with one prompt."""
    return _weighted(ctx, ctx.interrogated_prompts(DEFAULT_INTERROGATOR), gamma_factor, "joint")


def weighted_oracle(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
    return _weighted(ctx, ctx.true_prompt_embeddings, gamma_factor)


def weighted_by(interrogator: str) -> Method:
    def method(ctx: BenchContext, gamma_factor: float = 1.0) -> np.ndarray:
        return _weighted(ctx, ctx.interrogated_prompts(interrogator), gamma_factor)

    method.__doc__ = f"weighted RKME with the {interrogator!r} interrogator"
    return method


METHODS: dict[str, Method] = {
    "popularity": popularity,
    "rkme-pixels": rkme_pixels,
    "rkme": rkme,
    "knn": knn,
    "weighted-oracle": weighted_oracle,
    **{f"weighted-{name}": weighted_by(name) for name in INTERROGATORS if name != "none"},
    f"weighted-{DEFAULT_INTERROGATOR}-joint": weighted_joint,
}
