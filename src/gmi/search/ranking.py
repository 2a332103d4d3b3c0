"""THE ranking core: query -> distances to every candidate model -> top k.

The Hub (CLI, Python API), the HTTP service and the benchmarks all rank through `distances`
and `top_k`, so a speed-up or a fix lands everywhere at once. The parts are seams:

    searcher   which models to score (gmi.search.searchers; exact = all live models)
    rule       how to score one model (gmi.search.rules, by name: local, rkme)
    backend    where the arithmetic runs: "numpy" (float32, CPU), "torch" (CUDA when present,
               float16 points there; or the CPU), "reference" (float64, the plain formulas),
               "auto" (torch on CUDA when a GPU is present, else numpy)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.backends import local_numpy, torch_backend
from gmi.search.bf16 import Bf16Rows, distance_error
from gmi.search.bounds import CandidatePoints
from gmi.search.rules import scoring_rule
from gmi.search.searchers import EXACT, Searcher
from gmi.search.weights import PointWeights

BACKENDS = ("auto", "numpy", "torch", "reference")
DEVICES = ("auto", "cpu", "cuda")


@lru_cache(maxsize=1)
def cuda_available() -> bool:
    """Whether torch can use a CUDA GPU. Without an NVIDIA driver on the machine the answer
    is no, found without importing torch (a second saved on every CPU-only command)."""
    if not any(Path(p).exists() for p in ("/proc/driver/nvidia/version", "/dev/nvidiactl")):
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a dependency
        return False


def resolve_device(device: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; 'cuda' without one is an error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise ValueError("--device cuda: no CUDA GPU is usable here (torch sees none)")
    return device


INITIAL_POINTS = 1024  # nearest points asked of an approximate searcher at first, per image,
POINTS_PER_INITIAL = 400  # or one per this many indexed points, if more (denser hubs need a
#                           wider first look to certify: 4096 at 10^5 models x 16, measured)
MAX_POINTS = 16_384  # beyond this many, an uncertified shortlist falls back to the exact scan
# ... on hubs of up to this many points (the exact scan costs <= ~70 ms there at r = 128,
# bfloat16). Above, an exact scan per uncertified query is what an index is there to avoid
# (1.1-1.7 s at 10^6 models): one shortlist, its rerank_budget() models of least ESTIMATED distance
# scored exactly (gmi.search.summaries), and the answer reported `certified: false` (its
# recall is measured: benchmarks/ann.py, docs/scale.md)
EXACT_FALLBACK_MAX_POINTS = 1 << 21
# the models scored exactly there: at least RERANK_BUDGET, and one in RERANK_SHARE of the
# candidates (0: the floor only): the estimate misorders more among more candidates. Measured
# (benchmarks/ann.py, docs/scale.md): 10^5 models, ~4,200 candidates, 256 -> recall@10 0.998,
# 512 -> 1.000 (+1 ms); 10^6, ~9,200 candidates, 512 -> 0.894, 1,024 -> 0.934 (+4 ms)
RERANK_BUDGET = 256
RERANK_SHARE = 8


def rerank_budget(candidates: int) -> int:
    """How many of an uncertified big-hub shortlist's `candidates` are scored exactly."""
    share = candidates // RERANK_SHARE if RERANK_SHARE else 0
    return max(RERANK_BUDGET, share)


def initial_points(total: int) -> int:
    """The first shortlist's size for a hub of `total` points: a power of two."""
    wanted = max(INITIAL_POINTS, total // POINTS_PER_INITIAL)
    return min(MAX_POINTS, 1 << (wanted - 1).bit_length())


@dataclass(frozen=True)
class RankPlan:
    """How to rank: the scoring rule and combination, where the arithmetic runs, which
    searcher shortlists, how many must be right (k) and which slots are always scored (e.g.
    models an image names by checkpoint hash)."""

    scoring: str = "local"
    combine: str = "mean"
    backend: str = "auto"
    device: str = "auto"
    searcher: Searcher = EXACT
    k: int = 10
    always: Sequence[int] = ()

    @property
    def fast(self) -> bool:
        """Whether the vectorised local kernel applies (not the float64 reference)."""
        return self.backend != "reference" and self.combine in ("mean", "joint")


@dataclass(frozen=True)
class Query:
    """The query side of one ranking: features [T, d] in the points' space, their point
    weights, and the requirements (groups of image rows) to rank for."""

    features: np.ndarray
    weights: PointWeights
    groups: Sequence[Sequence[int]]


def distances(
    arrays: PackedArrays,
    features: np.ndarray,
    weights: PointWeights,
    groups: Sequence[Sequence[int]],
    plan: RankPlan | None = None,
    *,
    report: dict | None = None,
    **options: Any,
) -> np.ndarray:
    """Distances [G, S] of each requirement (group of query images) to every slot; +inf for
    slots that are dead, skipped or not shortlisted. `features` are as the encoder gave them:
    projected here when the hub has a learned space. `plan` (or its fields as keywords:
    scoring, combine, backend, device, searcher, k, always) says how.

    With an approximate searcher only the shortlisted models are scored, and for the local
    rule the top `k` is certified (METHOD.md section 9): a model none of whose points is among
    image i's N nearest has d >= s*gamma*R_i^2, so a group's k-th best shortlisted distance at
    or below s*gamma*mean(R_i^2) cannot be beaten by any unlisted model. Not certified: N is
    quadrupled, up to MAX_POINTS, then every live model is scored; on hubs over
    EXACT_FALLBACK_MAX_POINTS points the shortlist's answer stands instead, reported
    certified false (an exact scan per query there is what the index avoids). `report` receives
    how it went: searcher, points asked, rounds, certified, candidates. Slots in `always`
    are scored whether shortlisted or not."""
    plan = replace(plan, **options) if plan is not None else RankPlan(**options)
    if plan.backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
    rule = scoring_rule(plan.scoring)
    # the points' space (a no-op without a learned one)
    query = Query(arrays.to_space(features), weights, groups)
    info = report if report is not None else {}
    info.update(searcher=plan.searcher.name, rounds=0, certified=None)
    if plan.searcher is not EXACT:
        shortlisted = _shortlisted(arrays, query, plan, rule, info)
        if shortlisted is not None:
            return _score_missing(arrays, shortlisted, query, plan, rule)
        info["certified"] = True  # the exact scan below
    return _exact(arrays, query, plan, rule)


def _shortlisted(arrays, query: Query, plan: RankPlan, rule, info: dict) -> np.ndarray | None:
    """Distances from the searcher's shortlists, widened until the top k is certified; None
    when the searcher declines or certification failed up to MAX_POINTS (scan everything)."""
    approximate = len(arrays.points) > EXACT_FALLBACK_MAX_POINTS
    n = initial_points(len(arrays.points))
    local = rule.name == "local" and plan.combine in ("mean", "joint")
    while True:
        found = plan.searcher.shortlist(arrays, query.features, n, estimate=approximate)
        if found is None:
            return None
        info.update(rounds=info["rounds"] + 1, points=n, candidates=int(found.slots.size))
        budget = rerank_budget(int(found.slots.size)) if approximate else None
        info["budget"] = budget
        out, complete = _rerank(arrays, found, query, plan, rule, local, budget)
        info["scored"] = int(np.isfinite(out).any(axis=0).sum())
        if not local:
            info["certified"] = found.exhaustive  # a heuristic shortlist for the RKME
            return out
        if found.exhaustive or (
            complete and _certified(out, found.radius2, query.groups, rule, arrays, plan.k)
        ):
            info["certified"] = True
            return out
        if approximate:
            info["certified"] = False
            return out
        if n >= MAX_POINTS:
            info["fallback"] = "exact scan"
            return None
        n *= 4


def _exact(arrays, query: Query, plan: RankPlan, rule) -> np.ndarray:
    """Every live slot scored: the fast kernel on numpy or torch, else the rule's reference."""
    out = np.full((len(query.groups), arrays.n_slots), np.inf)
    live = arrays.live_slots
    if live.size == 0:
        return out
    if rule.has_fast and plan.fast:
        where = resolve_device(plan.device)
        use_torch = plan.backend == "torch" or (plan.backend == "auto" and where == "cuda")
        lo, hi = int(live.min()), int(live.max()) + 1
        if use_torch:
            per_image = torch_backend(arrays, where).distances(
                arrays, (lo, hi), query.features, query.weights, rule.sharpness
            )
        else:
            per_image = local_numpy(arrays, (lo, hi), query.features, query.weights, rule.sharpness)
        keep = live - lo
        for g, group in enumerate(query.groups):
            out[g, live] = per_image[list(group)][:, keep].mean(axis=0)
        if isinstance(arrays.points, Bf16Rows):
            _rescore_band(arrays, out, query, plan, rule)
        return out
    out[:, live] = rule.reference(
        arrays, live, query.features, query.weights, query.groups, plan.combine
    )
    return out


def _rescore_band(arrays, out, query: Query, plan: RankPlan, rule) -> None:
    """bfloat16 points: the scan's distances lie within a known bound of float32's (
    gmi.search.bf16.distance_error, x s*gamma through the log-sum-exp); every slot that could
    be in a group's top k within that bound is scored again in float32 on its decoded rows,
    so the top k is float32's. The band is a few models beyond the k (benchmarks/
    compact_space.py reports it); in the worst case it is the hub, scored in float32.

    Each group's band is scored for that group's images only: a batch of 32 queries has 32
    mostly disjoint bands, and scoring their union for every image cost 32x the bands."""
    live = arrays.live_slots
    zz = np.einsum("td,td->t", query.features, query.features)
    bound = distance_error(zz, arrays.slot_max_sq_norms[live]) * rule.sharpness * arrays.gamma
    bound += 1e-6  # the float32 exponentials and sums of the log-sum-exp
    bands = np.zeros((len(query.groups), live.size), dtype=bool)
    for g, group in enumerate(query.groups):
        error = bound[list(group)].mean(axis=0)
        row = out[g, live]
        kth = _kth(row + error, min(plan.k, live.size))
        bands[g] = row - error <= kth
    chosen = bands.any(axis=0)
    if not chosen.any():
        return
    slots = live[chosen]
    union = arrays.subset(slots)  # decoded once, float32
    for g, group in enumerate(query.groups):
        columns = np.flatnonzero(bands[g, chosen])
        if columns.size:
            mine = union if columns.size == slots.size else union.subset(columns)
            alone = Query(
                query.features[list(group)], query.weights.select(group), [range(len(group))]
            )
            out[g, slots[columns]] = _score(mine, alone, plan, rule)[0]


def _score_missing(arrays, out, query: Query, plan: RankPlan, rule) -> np.ndarray:
    """`out` with the slots of `plan.always` that are still unscored (+inf) scored exactly."""
    wanted = np.asarray(sorted(set(plan.always)), dtype=np.int64)
    if wanted.size == 0:
        return out
    missing = wanted[~np.isfinite(out[:, wanted]).all(axis=0)]
    if missing.size:
        out[:, missing] = _score(arrays.subset(missing), query, plan, rule)
    return out


def _score(sub, query: Query, plan: RankPlan, rule) -> np.ndarray:
    """Distances [G, slots of `sub`] (a shortlist's own arrays), on the CPU."""
    if rule.has_fast and plan.fast:
        per_image = local_numpy(
            sub, (0, sub.n_slots), query.features, query.weights, rule.sharpness
        )
        return np.stack([per_image[list(group)].mean(axis=0) for group in query.groups])
    every = np.arange(sub.n_slots)
    return rule.reference(sub, every, query.features, query.weights, query.groups, plan.combine)


def _rerank(
    arrays, found, query: Query, plan: RankPlan, rule, local: bool, budget: int | None = None
) -> tuple[np.ndarray, bool]:
    """Exact distances [G, S] of the shortlisted slots that can still reach a top k, and
    whether every such slot was scored (False: `budget` models were scored and others could
    still have entered the top k).

    For the local rule each candidate's distance is first BOUNDED without reading its vectors
    (gmi.search.bounds: its found points at their found distances, the others at the image's
    radius, with the query's own point weights): candidates are scored exactly in order of
    that bound, a batch at a time, until every remaining bound exceeds each group's k-th best
    distance (those stay +inf: they cannot enter the top k). Other rules score every one."""
    out = np.full((len(query.groups), arrays.n_slots), np.inf)
    if found.slots.size == 0:
        return out, True
    if not local:
        out[:, found.slots] = _score(arrays.subset(found.slots), query, plan, rule)
        return out, True
    scale = rule.sharpness * arrays.gamma
    points = CandidatePoints(arrays, found, query.weights, query.groups, scale)
    bound = points.lower_bounds()
    bound = bound * (1.0 - 1e-5) - 1e-6  # FAISS's and numpy's float32 sums differ by a hair
    if budget is not None and found.expected2 is not None:  # unreturned points where expected
        estimate = points.estimates(np.maximum(found.expected2, found.radius2[:, None]))
        order = np.argsort(estimate.min(axis=0), kind="stable")
    else:
        order = np.argsort(bound.min(axis=0), kind="stable")
    batch = max(2 * plan.k, 16)  # the bounds are tight: most shortlists need one batch
    done, budget = 0, order.size if budget is None else budget
    while done < order.size:
        if done >= budget:
            return out, False
        chosen = order[done : min(done + batch, budget)]
        done += chosen.size
        batch *= 2
        slots = found.slots[chosen]
        out[:, slots] = _score(arrays.subset(slots), query, plan, rule)
        kth = np.array([_kth(row, plan.k) for row in out])  # [G], inf while fewer than k
        rest = order[done:]
        useful = (bound[:, rest] <= kth[:, None]).any(axis=0)
        if not useful.any():
            break
        order = np.r_[order[:done], rest[useful]]  # only what can still beat a k-th best
    return out, True


def _kth(row: np.ndarray, k: int) -> float:
    finite = row[np.isfinite(row)]
    return float(np.partition(finite, k - 1)[k - 1]) if finite.size >= k else np.inf


def _certified(out, radius2, groups, rule, arrays, k) -> bool:
    """Whether every group's top k among the shortlisted models is the hub's top k."""
    scale = rule.sharpness * arrays.gamma
    for g, group in enumerate(groups):
        bound = scale * float(np.mean(radius2[list(group)]))
        row = out[g][np.isfinite(out[g])]
        want = min(k, arrays.live_slots.size)
        if row.size < want:
            return False
        kth = np.partition(row, want - 1)[want - 1]
        if not kth <= bound * (1.0 - 1e-6):  # float32 scoring: a hair of margin
            return False
    return True


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """The k smallest finite entries of one row of distances, best first (ties by slot)."""
    finite = np.flatnonzero(np.isfinite(row))
    if finite.size > k:
        part = np.argpartition(row[finite], k - 1)[:k]
        finite = finite[part]
    return finite[np.lexsort((finite, row[finite]))]
