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
from functools import lru_cache
from pathlib import Path

import numpy as np

from gmi.search.arrays import PackedArrays
from gmi.search.backends import local_numpy, torch_backend
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


def distances(
    arrays: PackedArrays,
    features: np.ndarray,
    weights: PointWeights,
    groups: Sequence[Sequence[int]],
    *,
    scoring: str = "local",
    combine: str = "mean",
    backend: str = "auto",
    device: str = "auto",
    searcher: Searcher = EXACT,
) -> np.ndarray:
    """Distances [G, S] of each requirement (group of query images) to every slot; +inf for
    slots that are dead, skipped or not among the searcher's candidates. `features` are as
    the encoder gave them: projected here when the hub has a learned space."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}")
    rule = scoring_rule(scoring)
    features = arrays.to_space(features)  # the points' space (a no-op without a learned one)
    out = np.full((len(groups), arrays.n_slots), np.inf)
    candidates = searcher.candidates(arrays, features)
    live = (
        arrays.live_slots if candidates is None else np.intersect1d(candidates, arrays.live_slots)
    )
    if live.size == 0:
        return out
    fast = rule.has_fast and backend != "reference" and combine in ("mean", "joint")
    if fast:
        where = resolve_device(device)
        use_torch = backend == "torch" or (backend == "auto" and where == "cuda")
        lo, hi = int(live.min()), int(live.max()) + 1
        if use_torch:
            per_image = torch_backend(arrays, where).distances(
                arrays, (lo, hi), features, weights, rule.sharpness
            )
        else:
            per_image = local_numpy(arrays, (lo, hi), features, weights, rule.sharpness)
        keep = live - lo
        for g, group in enumerate(groups):
            out[g, live] = per_image[list(group)][:, keep].mean(axis=0)
        return out
    out[:, live] = rule.reference(arrays, live, features, weights, groups, combine)
    return out


def top_k(row: np.ndarray, k: int) -> np.ndarray:
    """The k smallest finite entries of one row of distances, best first (ties by slot)."""
    finite = np.flatnonzero(np.isfinite(row))
    if finite.size > k:
        part = np.argpartition(row[finite], k - 1)[:k]
        finite = finite[part]
    return finite[np.lexsort((finite, row[finite]))]
