"""HubIndex: everything identification needs from a registry, loaded once and held in memory.

The stacked specs (for vectorised scoring) plus every spec image's (feature, prompt) pair, which
the `retrieval` interrogator and the kNN baseline search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gmi.encoders.base import l2_normalise
from gmi.spec.calibration import Calibration, held_out_distances, sample_held_out
from gmi.spec.ridge import RidgeModel
from gmi.spec.scoring import DEFAULT_SCORING, DEFAULT_TAU, SpecStack, visual_prompt_weights
from gmi.spec.specification import Specification


@dataclass(frozen=True)
class HubIndex:
    stack: SpecStack
    pair_features: np.ndarray  # [P, d] float32, all models' spec images
    pair_prompts: np.ndarray  # [P, e] float32
    pair_texts: list[str]
    pair_model: np.ndarray  # [P] int: index into stack.names
    # what the hub learned from its pairs: "image_to_prompt" (the hub interrogator),
    # "prompt_to_visual" (the visual prompt kernel) and "calibration" (display scores and
    # close matches); see gmi.index.fit_learned
    learned: dict[str, RidgeModel | Calibration] = field(default_factory=dict, compare=False)
    # models of the registry left out of this index, with why (a damaged or incompatible spec):
    # one bad file must not take the hub down; `gmi check` names them too
    skipped: dict[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_specs(cls, names: Sequence[str], specs: Sequence[Specification]) -> HubIndex:
        stack = SpecStack.from_specs(names, specs)
        return cls(
            stack=stack,
            pair_features=np.concatenate([s.pair_features for s in specs]).astype(np.float32),
            pair_prompts=np.concatenate([s.pair_prompts for s in specs]).astype(np.float32),
            pair_texts=[t for s in specs for t in s.prompt_texts],
            pair_model=np.concatenate(
                [np.full(len(s.prompt_texts), i, dtype=np.int64) for i, s in enumerate(specs)]
            ),
        )

    @property
    def names(self) -> list[str]:
        return self.stack.names

    @cached_property
    def position(self) -> dict[str, int]:
        """Model name -> row in the stack (built once per index)."""
        return {name: i for i, name in enumerate(self.names)}

    @cached_property
    def unit_pair_features(self) -> np.ndarray:
        """pair_features with unit rows, computed once per index (queries compare by cosine)."""
        norms = np.linalg.norm(self.pair_features, axis=1, keepdims=True)
        return (self.pair_features / np.maximum(norms, 1e-12)).astype(np.float32)

    @cached_property
    def image_to_prompt(self) -> RidgeModel:
        """The `hub` interrogator's ridge model: the stored one, else fitted on these pairs."""
        model = self.learned.get("image_to_prompt")
        if isinstance(model, RidgeModel):
            return model
        return RidgeModel.fit(self.pair_features, self.pair_prompts)

    @cached_property
    def _standard_prompts(self) -> tuple[list[str], np.ndarray]:
        first: dict[str, int] = {}
        for i, text in enumerate(self.pair_texts):
            first.setdefault(text, i)
        rows = list(first.values())
        return list(first), self.pair_prompts[rows]

    def standard_prompts(self) -> tuple[list[str], np.ndarray]:
        """The distinct spec prompts and their embeddings [U, e] (for display names)."""
        return self._standard_prompts

    @cached_property
    def prompt_visuals(self) -> np.ndarray:
        """[U, d]: per distinct spec prompt, the mean image feature over every model that drew
        it: what the hub's models make of that prompt (the visual prompt kernel's space)."""
        texts, _ = self.standard_prompts()
        position = {t: i for i, t in enumerate(texts)}
        rows = np.array([position[t] for t in self.pair_texts])
        sums = np.zeros((len(texts), self.pair_features.shape[1]))
        np.add.at(sums, rows, self.pair_features.astype(np.float64))
        return (sums / np.bincount(rows, minlength=len(texts))[:, None]).astype(np.float32)

    @cached_property
    def point_visuals(self) -> np.ndarray:
        """[M, K, d]: each spec point's prompt in the visual space. With one point per image
        (the default) that is its prompt's mean feature; a reduced point, which stands for
        several prompts, uses its own position."""
        points = self.stack.points.copy()
        texts, _ = self.standard_prompts()
        position = {t: i for i, t in enumerate(texts)}
        offsets = np.r_[0, np.cumsum(np.bincount(self.pair_model, minlength=len(self.names)))]
        for m in range(len(self.names)):  # index assembly, once per registry state
            n_pairs = offsets[m + 1] - offsets[m]
            if int(self.stack.mask[m].sum()) == n_pairs:
                rows = [position[t] for t in self.pair_texts[offsets[m] : offsets[m + 1]]]
                points[m, :n_pairs] = self.prompt_visuals[rows]
        return points


def stated_prompt_weights(index: HubIndex, prompt_embeddings: np.ndarray) -> np.ndarray:
    """Point weights [G, M, K] for prompts a user states, through the visual prompt kernel."""
    model = index.learned.get("prompt_to_visual")
    if not isinstance(model, RidgeModel):
        _, standard = index.standard_prompts()
        model = RidgeModel.fit(standard, index.prompt_visuals)
    visual = model.predict(prompt_embeddings)
    return visual_prompt_weights(visual, index.point_visuals, index.stack.mask)


def fit_learned(
    index: HubIndex,
    *,
    scoring: str = DEFAULT_SCORING,
    tau: float = DEFAULT_TAU,
    interrogated: bool = True,
) -> dict[str, RidgeModel | Calibration]:
    """What a hub learns from its own pairs (refitted whenever its models change):

    image_to_prompt: image feature -> prompt embedding (the `hub` interrogator);
    prompt_to_visual: prompt embedding -> mean image feature of that prompt over the hub's
    models (the visual prompt kernel, used when a user states the prompt they will use);
    calibration: held-out genuine-match distances (gmi.spec.calibration), scored with the
    registry's scoring rule and tau, prompts from image_to_prompt (uniform weights when the
    registry's interrogator is `none`: interrogated=False).
    """
    _, prompt_embeddings = index.standard_prompts()
    image_to_prompt = RidgeModel.fit(index.pair_features, index.pair_prompts)
    rows = sample_held_out(index.pair_model, len(index.names))
    predict = (lambda x: l2_normalise(image_to_prompt.predict(x))) if interrogated else None
    held_out = held_out_distances(
        index.stack, index.pair_features, index.pair_model, rows, predict, tau, scoring
    )
    return {
        "image_to_prompt": image_to_prompt,
        "prompt_to_visual": RidgeModel.fit(prompt_embeddings, index.prompt_visuals),
        "calibration": Calibration(np.sort(held_out)),
    }
