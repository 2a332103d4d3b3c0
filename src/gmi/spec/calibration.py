"""Scores a person can read, and "no close match", calibrated on the hub's own images.

A raw distance (a negative log density for local scoring, a squared RKHS distance for the
paper's) has no fixed scale: it depends on the encoder, gamma, the hub's spread and the
scoring rule, so "0.002" says nothing. But the hub holds, for every model, images that the
model made itself. Each one, held out of its own model's specification (leave-one-out: with one
point per image, its own point is removed), is a query whose true model is known; its distance
to that model is what a genuine match looks like on this hub. Sorted, these held-out distances
are the calibration:

    score(d)   = fraction of held-out genuine matches whose distance is >= d
                 (1: as close as the closest genuine match; 0.5: like a typical one;
                 0: farther than every genuine match the hub has seen)
    close(d)   = d <= the CLOSE_QUANTILE quantile of the held-out distances

The map is monotone and the same for every model of a hub, so scores keep the ranking's order
and are comparable across queries. The false-alarm and miss rates of `close` are measured in
docs/benchmark.md ("No close match").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from gmi.spec.scoring import SpecStack, prompt_weights, score_requirements

# A query is a close match when its distance is within the range of 99.9% of the hub's own
# held-out images (measured: benchmarks/no_match.py, docs/benchmark.md).
CLOSE_QUANTILE = 0.999
MAX_HELD_OUT = 4096  # calibration queries per hub (sampled evenly over models), bounded cost
MIN_PER_MODEL = 4


@dataclass(frozen=True)
class Calibration:
    """Sorted held-out genuine-match distances of one hub, and what follows from them."""

    held_out: np.ndarray  # [n] float64, ascending
    close_quantile: float = CLOSE_QUANTILE

    @property
    def threshold(self) -> float:
        return float(np.quantile(self.held_out, self.close_quantile))

    def score(self, distance: np.ndarray) -> np.ndarray:
        """Display score in [0, 1], higher is better (see the module docstring)."""
        h = self.held_out
        if h.size == 1:
            return np.where(np.asarray(distance) <= h[0], 1.0, 0.0)
        survival = 1.0 - np.arange(h.size) / (h.size - 1)
        return np.interp(np.asarray(distance, dtype=np.float64), h, survival, left=1.0, right=0.0)

    def close(self, distance: np.ndarray) -> np.ndarray:
        return np.asarray(distance) <= self.threshold

    def arrays(self) -> dict[str, np.ndarray]:
        return {"held_out": self.held_out, "close_quantile": np.array([self.close_quantile])}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Calibration:
        held_out = np.asarray(arrays["held_out"], dtype=np.float64)
        if held_out.ndim != 1 or held_out.size == 0 or not np.all(np.isfinite(held_out)):
            raise ValueError("calibration: held-out distances must be a finite, non-empty list")
        return cls(np.sort(held_out), float(arrays["close_quantile"][0]))


def sample_held_out(pair_model: np.ndarray, n_models: int, seed: int = 0) -> np.ndarray:
    """Which spec pairs serve as held-out queries: evenly over models, at most MAX_HELD_OUT."""
    per_model = max(MIN_PER_MODEL, MAX_HELD_OUT // max(n_models, 1))
    rng = np.random.default_rng(seed)
    chosen = []
    for m in range(n_models):  # index assembly, once per registry state
        rows = np.flatnonzero(pair_model == m)
        if rows.size > per_model:
            rows = np.sort(rng.choice(rows, per_model, replace=False))
        chosen.append(rows)
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def held_out_distances(
    stack: SpecStack,
    pair_features: np.ndarray,
    pair_model: np.ndarray,
    rows: np.ndarray,
    predict_prompts: Callable[[np.ndarray], np.ndarray] | None,
    tau: float,
    scoring: str,
) -> np.ndarray:
    """Distance of each held-out spec image (rows) to its OWN model, scored exactly as
    identify scores a query (interrogated prompt weights, the registry's scoring rule), with
    the image's own point removed where points are images (K = N, the default).
    predict_prompts maps ROW indices (into pair_features) to the interrogated prompts, so a
    caller can predict all of them in one product."""
    out = np.empty(rows.size, dtype=np.float64)
    first_pair = np.r_[0, np.cumsum(np.bincount(pair_model, minlength=len(stack)))]
    for m in np.unique(pair_model[rows]):
        mine = np.flatnonzero(pair_model[rows] == m)
        queries = pair_features[rows[mine]]
        sub = SpecStack(
            [stack.names[m]],
            stack.points[m : m + 1],
            stack.beta[m : m + 1],
            stack.point_prompts[m : m + 1],
            stack.mask[m : m + 1],
            stack.gram[m : m + 1],
            stack.gamma,
        )
        prompts = None if predict_prompts is None else predict_prompts(rows[mine])
        shape = (mine.size, 1, sub.mask.shape[1])
        weights = np.array(np.broadcast_to(prompt_weights(prompts, sub, tau), shape))
        n_pairs = first_pair[m + 1] - first_pair[m]
        if int(sub.mask.sum()) == n_pairs and n_pairs > 1:  # point j is image j: leave it out
            own = rows[mine] - first_pair[m]
            weights[np.arange(mine.size), 0, own] = 0.0
            weights /= weights.sum(axis=2, keepdims=True)
        groups = [[t] for t in range(mine.size)]
        out[mine] = score_requirements(sub, queries, groups, None, tau, "mean", scoring, weights)[
            :, 0
        ]
    return out
