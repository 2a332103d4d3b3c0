"""PackedArrays: every model's specification in contiguous arrays, one row per spec point.

The padded [M, K, d] stack (gmi.spec.scoring.SpecStack) wastes memory when models have
different K and must be rebuilt whole when one model changes. Here model s owns the rows
point_offsets[s]:point_offsets[s + 1] of flat arrays; adding a model appends rows, removing one
marks its slot dead (a tombstone) until compaction. The arrays may be numpy memory maps of the
registry's packed files (gmi.registry.packed) or plain arrays built in memory (the benchmark):
the scoring code cannot tell them apart.

Prompt vectors are shared: points refer to rows of one prompt table (a hub's models mostly
draw the same prompt set), so a query compares its prompt with U distinct prompts, not with
every point.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from gmi.search.bf16 import Bf16Rows, take_rows
from gmi.spec.space import FittedSpace
from gmi.spec.specification import Specification


@dataclass(frozen=True, eq=False)
class PackedArrays:
    names: list[str]  # [S] one per slot, dead slots included
    alive: np.ndarray  # [S] bool: live and usable (dead or skipped slots are never ranked)
    point_offsets: np.ndarray  # [S + 1] int64
    points: np.ndarray | Bf16Rows  # [P, d] float32, or [P, r] bfloat16 in a compact space
    sq_norms: np.ndarray  # [P] float32, ||point||^2 precomputed
    beta: np.ndarray  # [P] float64 (RKME weights; <= 0 never happens for gmi's builder)
    point_prompt: np.ndarray  # [P] int32: row of `prompts`
    point_text: np.ndarray  # [P] int32: the text a point stands for (one point per image), or -1
    prompts: np.ndarray  # [U, e] float32 prompt table
    pair_offsets: np.ndarray  # [S + 1] int64
    pair_features: np.ndarray  # [N, d] float32 every spec image's feature
    pair_prompt: np.ndarray  # [N] int32: row of `prompts`
    pair_text: np.ndarray  # [N] int32: index into `texts`
    texts: list[str]
    gamma: float
    # the hub-learned space (gmi.spec.space) the points live in, or None (as encoded): the
    # ranking core projects query features with it; pair features always stay as encoded
    space: FittedSpace | None = None
    # what is derived from these (immutable) arrays and kept with them: copies on compute
    # devices (gmi.search.backends.torch_backend), Gram blocks (gmi.search.rules)
    device_copies: dict = field(default_factory=dict, compare=False, repr=False)
    # where the arrays live: (registry home, packed generation) for a registry's memory maps,
    # None in memory. A generation's committed rows never change (append-only, a new
    # generation on compaction), so (home, generation, rows) names their contents: what an
    # approximate searcher keys its index by (gmi.search.ann)
    origin: tuple[str, str] | None = None

    @classmethod
    def from_specs(cls, names: Sequence[str], specs: Sequence[Specification]) -> PackedArrays:
        """Pack specs in memory (the benchmark; tests). The registry packs the same way,
        incrementally, into files (gmi.registry.packed)."""
        builder = PackBuilder()
        for name, spec in zip(names, specs, strict=True):
            builder.add(name, spec)
        return builder.build(specs[0].gamma if specs else 1.0)

    def in_space(self, fitted: FittedSpace) -> PackedArrays:
        """These arrays with their points projected into a learned space (in memory: the
        benchmark, tests; the registry keeps projected rows in its packed files)."""
        points, sq_norms = space_points(fitted, np.asarray(self.points))
        return replace(
            self,
            points=points,
            sq_norms=sq_norms,
            gamma=fitted.gamma,
            space=fitted,
            device_copies={},
            origin=None,  # other rows than the registry's: no index of its may answer for them
        )

    def to_space(self, features: np.ndarray) -> np.ndarray:
        """Query features [n, d] as encoded -> where the points live."""
        features = np.asarray(features, dtype=np.float32)
        return features if self.space is None else self.space.project(features)

    def subset(self, slots: np.ndarray, points: bool = True) -> PackedArrays:
        """The point rows of `slots` only, as arrays of their own (slot i here = slots[i]):
        what the exact scorer reads for a searcher's shortlist. Prompt and text tables are
        shared; pair rows are left out (scoring does not read them). points=False leaves the
        vectors out too (width 0): the per-point weights without the cost of the vectors."""
        slots = np.asarray(slots, dtype=np.int64)
        starts, counts = self.point_offsets[slots], self.point_counts[slots]
        rows = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(
            int(counts.sum())
        )

        def take(values: np.ndarray) -> np.ndarray:
            return take_rows(values, rows)

        width = self.feature_dim if points else 0
        return replace(
            self,
            names=[self.names[s] for s in slots],
            alive=np.asarray(self.alive)[slots],
            point_offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
            points=take(self.points) if points else np.zeros((rows.size, 0), np.float32),
            sq_norms=take(self.sq_norms) if points else np.zeros(rows.size, np.float32),
            beta=take(self.beta),
            point_prompt=take(self.point_prompt),
            point_text=take(self.point_text),
            pair_offsets=np.zeros(len(slots) + 1, np.int64),
            pair_features=np.zeros((0, width), np.float32),
            pair_prompt=np.zeros(0, np.int32),
            pair_text=np.zeros(0, np.int32),
            device_copies={},
            origin=None,
        )

    # -- shapes --------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self.names)

    @property
    def dim(self) -> int:
        """Width of the points the scan reads (r in a compact space)."""
        return int(self.points.shape[1])

    @property
    def feature_dim(self) -> int:
        """Width of the features as encoded (pair features; the query before projection)."""
        return int(self.pair_features.shape[1])

    @cached_property
    def point_counts(self) -> np.ndarray:
        return np.diff(self.point_offsets)

    @cached_property
    def point_slot(self) -> np.ndarray:
        """[P] int32: which slot owns each point."""
        return np.repeat(np.arange(self.n_slots, dtype=np.int32), self.point_counts)

    @cached_property
    def pair_slot(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_slots, dtype=np.int32), np.diff(self.pair_offsets))

    @cached_property
    def slot_max_sq_norms(self) -> np.ndarray:
        """[S] float64: the largest squared norm of each slot's points (0 for an empty slot):
        what bounds the bfloat16 scan's error per model (gmi.search.bf16.distance_error)."""
        out = np.zeros(self.n_slots)
        counts = self.point_counts
        present = np.flatnonzero(counts > 0)
        if present.size:
            norms = np.asarray(self.sq_norms, dtype=np.float64)
            out[present] = np.maximum.reduceat(norms, self.point_offsets[present])
        return out

    @cached_property
    def live_slots(self) -> np.ndarray:
        return np.flatnonzero(self.alive & (self.point_counts > 0))

    def spec_arrays(self, slot: int) -> dict[str, np.ndarray]:
        """One slot's spec arrays (points, beta, point_prompts, pair_features, pair_prompts)."""
        p0, p1 = self.point_offsets[slot], self.point_offsets[slot + 1]
        q0, q1 = self.pair_offsets[slot], self.pair_offsets[slot + 1]
        return {
            "points": np.asarray(self.points[p0:p1]),
            "beta": np.asarray(self.beta[p0:p1]),
            "point_prompts": np.asarray(self.prompts[self.point_prompt[p0:p1]]),
            "pair_features": np.asarray(self.pair_features[q0:q1]),
            "pair_prompts": np.asarray(self.prompts[self.pair_prompt[q0:q1]]),
            "pair_texts": np.asarray(self.pair_text[q0:q1]),
        }


def space_points(
    space: FittedSpace, points: np.ndarray
) -> tuple[np.ndarray | Bf16Rows, np.ndarray]:
    """Points [n, d] as encoded -> as a learned space stores them: projected (centred, r
    wide), in its storage type, with the squared norms of the STORED values (float64 sums
    kept in float32), so that ||z - c||^2 >= 0 holds for the point the scan reads."""
    projected = space.project(points)
    stored = Bf16Rows.of(projected) if space.storage == "bfloat16" else projected
    values = np.asarray(stored, dtype=np.float64)
    return stored, np.einsum("pd,pd->p", values, values).astype(np.float32)


def spec_rows(spec: Specification) -> dict[str, np.ndarray]:
    """A spec's rows in packed form (before prompt/text ids are assigned)."""
    points = np.ascontiguousarray(spec.points, dtype=np.float32)
    return {
        "points": points,
        "sq_norms": np.einsum("pd,pd->p", points, points).astype(np.float32),
        "beta": np.asarray(spec.beta, dtype=np.float64),
        "pair_features": np.ascontiguousarray(spec.pair_features, dtype=np.float32),
    }


def points_are_images(spec: Specification) -> bool:
    """One point per image (gmi's default): point j IS image j, so it stands for its prompt."""
    return spec.n_points == spec.pair_features.shape[0] and np.array_equal(
        spec.points, spec.pair_features
    )


class PackBuilder:
    """Accumulate specs into PackedArrays in memory (prompt and text tables deduplicated)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.rows: dict[str, list[np.ndarray]] = {}
        self.prompt_ids: dict[bytes, int] = {}
        self.prompt_rows: list[np.ndarray] = []
        self.text_ids: dict[str, int] = {}

    def _prompt(self, vector: np.ndarray) -> int:
        key = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        if key not in self.prompt_ids:
            self.prompt_ids[key] = len(self.prompt_rows)
            self.prompt_rows.append(np.asarray(vector, dtype=np.float32))
        return self.prompt_ids[key]

    def add(self, name: str, spec: Specification) -> None:
        rows = spec_rows(spec)
        rows["point_prompt"] = np.array([self._prompt(v) for v in spec.point_prompts], np.int32)
        rows["pair_prompt"] = np.array([self._prompt(v) for v in spec.pair_prompts], np.int32)
        texts = np.array(
            [self.text_ids.setdefault(t, len(self.text_ids)) for t in spec.prompt_texts],
            np.int32,
        )
        rows["pair_text"] = texts
        rows["point_text"] = texts if points_are_images(spec) else np.full(spec.n_points, -1)
        for key, value in rows.items():
            self.rows.setdefault(key, []).append(value)
        self.names.append(name)

    def build(self, gamma: float) -> PackedArrays:
        def cat(key: str, dtype: type, width: int | None = None) -> np.ndarray:
            parts = self.rows.get(key, [])
            if parts:
                return np.ascontiguousarray(np.concatenate(parts), dtype=dtype)
            return np.zeros((0,) if width is None else (0, width), dtype=dtype)

        points = cat("points", np.float32, 0)
        counts = [len(p) for p in self.rows.get("points", [])]
        pair_counts = [len(p) for p in self.rows.get("pair_features", [])]
        e = self.prompt_rows[0].shape[0] if self.prompt_rows else 0
        return PackedArrays(
            names=list(self.names),
            alive=np.ones(len(self.names), dtype=bool),
            point_offsets=np.r_[0, np.cumsum(counts)].astype(np.int64),
            points=points,
            sq_norms=cat("sq_norms", np.float32),
            beta=cat("beta", np.float64),
            point_prompt=cat("point_prompt", np.int32),
            point_text=cat("point_text", np.int32),
            prompts=np.stack(self.prompt_rows)
            if self.prompt_rows
            else np.zeros((0, e), np.float32),
            pair_offsets=np.r_[0, np.cumsum(pair_counts)].astype(np.int64),
            pair_features=cat("pair_features", np.float32, points.shape[1] if counts else 0),
            pair_prompt=cat("pair_prompt", np.int32),
            pair_text=cat("pair_text", np.int32),
            texts=list(self.text_ids),
            gamma=float(gamma),
        )
