"""Query-side prompt weights of spec points, as unnormalised log-weights.

The weighted RKME and local scoring weight model m's point j by w_mj proportional to a prompt
kernel between the query's prompt and the point's (METHOD.md section 3). Both rules normalise
over each model's points themselves, so a query only has to say, per point, the log of an
unnormalised weight. The kernels depend on the point only through its prompt (a row of the
packed prompt table, or the text it was drawn for), so a query computes ONE small table over
the distinct prompts and every point gathers from it: no [T, P, e] product.

Per image, one of:
    uniform    no prompt (the prompt-agnostic baseline): all zeros
    prompt     an embedding q (interrogated): cos(q, prompt of the point) / tau
    visual     a predicted visual vector v (a stated or embedded prompt, through the hub's
               learned visual prompt kernel): -||v - mean feature of the point's text||^2 / T
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.spec.scoring import DEFAULT_TAU, VISUAL_TEMPERATURE, group_prompts

KINDS = ("uniform", "prompt", "visual")


@dataclass(frozen=True)
class PointWeights:
    """How the points of every model are weighted for each query image (rows)."""

    kinds: list[str]  # [T]
    prompts: np.ndarray | None = None  # [T, e] rows of "prompt" images
    visuals: np.ndarray | None = None  # [T, d] rows of "visual" images
    text_visuals: np.ndarray | None = None  # [texts, d] the hub's visual prompt space
    tau: float = DEFAULT_TAU
    temperature: float = VISUAL_TEMPERATURE

    @classmethod
    def uniform(cls, n_images: int) -> PointWeights:
        return cls(["uniform"] * n_images)

    @classmethod
    def from_prompts(cls, prompts: np.ndarray | None, n_images: int, tau: float) -> PointWeights:
        if prompts is None:
            return cls.uniform(n_images)
        return cls(["prompt"] * n_images, prompts=np.asarray(prompts), tau=tau)

    def select(self, rows: Sequence[int]) -> PointWeights:
        """The weights of these image rows only (a group scored on its own)."""
        rows = list(rows)
        prompts = None if self.prompts is None else np.asarray(self.prompts)[rows]
        visuals = None if self.visuals is None else np.asarray(self.visuals)[rows]
        kinds = [self.kinds[i] for i in rows]
        return PointWeights(kinds, prompts, visuals, self.text_visuals, self.tau, self.temperature)

    def for_rule(self, groups: Sequence[Sequence[int]], scoring: str, combine: str) -> PointWeights:
        """The weights as the scoring rule reads them: one row per group for the joint RKME
        (per_group), one per image otherwise."""
        return self.per_group(groups) if combine == "joint" and scoring == "rkme" else self

    def per_group(self, groups: Sequence[Sequence[int]]) -> PointWeights:
        """One row per group, for the joint RKME: the group's prompt embeddings averaged and
        renormalised (METHOD.md's single-embedding reading), or its visual vectors averaged."""
        kinds = [self.kinds[g[0]] for g in groups]
        prompts = visuals = None
        if self.prompts is not None:
            prompts = group_prompts(np.asarray(self.prompts), groups)
        if self.visuals is not None:
            visuals = np.stack([np.asarray(self.visuals)[list(g)].mean(axis=0) for g in groups])
        return PointWeights(kinds, prompts, visuals, self.text_visuals, self.tau, self.temperature)

    def tables(self, arrays: PackedArrays) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Per image: log-weights over the prompt table [T, U] and over the texts [T, texts],
        computed once per query (the small part; points gather from them)."""
        rows_p = [i for i, k in enumerate(self.kinds) if k == "prompt"]
        rows_v = [i for i, k in enumerate(self.kinds) if k == "visual"]
        prompt_table = visual_table = None
        if rows_p:
            q = np.asarray(self.prompts, dtype=np.float64)[rows_p]
            q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
            # point prompts are unit vectors by construction (gmi.spec.specification); one
            # float32 product over the table (no float64 copy of it per query), then float64
            cos = (q.astype(np.float32) @ np.asarray(arrays.prompts).T).astype(np.float64)
            prompt_table = np.zeros((len(self.kinds), cos.shape[1]))
            prompt_table[rows_p] = cos / self.tau
        if rows_v:
            v = np.asarray(self.visuals, dtype=np.float64)[rows_v]
            tv = np.asarray(self.text_visuals, dtype=np.float64)
            d2 = (v**2).sum(1)[:, None] + (tv**2).sum(1)[None] - 2.0 * v @ tv.T
            visual_table = np.zeros((len(self.kinds), tv.shape[0]))
            visual_table[rows_v] = -np.maximum(d2, 0.0) / self.temperature
        return prompt_table, visual_table

    def point_logits(
        self,
        arrays: PackedArrays,
        tables: tuple[np.ndarray | None, np.ndarray | None],
        p0: int,
        p1: int,
    ) -> np.ndarray:
        """[T, p1 - p0] float64 log-weights of the points p0:p1 (before per-model norming)."""
        prompt_table, visual_table = tables
        out = np.zeros((len(self.kinds), p1 - p0))
        if prompt_table is not None:
            out += prompt_table[:, arrays.point_prompt[p0:p1]]
        if visual_table is not None:
            texts = np.asarray(arrays.point_text[p0:p1])
            known = texts >= 0
            out[:, known] += visual_table[:, texts[known]]
            if not known.all():  # a reduced point stands for itself in the visual space
                rows = [i for i, k in enumerate(self.kinds) if k == "visual"]
                own = np.asarray(arrays.points[p0:p1][~known], dtype=np.float64)
                v = np.asarray(self.visuals, dtype=np.float64)[rows]
                d2 = ((v[:, None, :] - own[None]) ** 2).sum(-1)
                block = np.zeros((len(self.kinds), own.shape[0]))
                block[rows] = -d2 / self.temperature
                out[:, ~known] += block
        return out
