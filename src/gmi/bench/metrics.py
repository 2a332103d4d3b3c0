"""Metrics of the protocol: rank of the true model, top-k accuracy, mean rank, per family,
the swapped pair, and bootstrap 95% intervals (pure functions of a distance matrix)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TOP_K = (1, 2, 3, 4)


def true_ranks(distances: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of the true model per query; ties count against it (pessimistic)."""
    d = np.asarray(distances)
    own = d[np.arange(len(truth)), truth][:, None]
    better = (d < own).sum(axis=1)
    tied = (d == own).sum(axis=1) - 1
    return better + tied + 1


def summarise(ranks: np.ndarray) -> dict[str, float]:
    out = {f"top{k}": float((ranks <= k).mean()) for k in TOP_K}
    out["mean_rank"] = float(ranks.mean())
    return out


def bootstrap_interval(hits: np.ndarray, n_boot: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of 0/1 hits, resampling queries."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(hits), size=(n_boot, len(hits)))
    means = hits[idx].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def paired_difference(
    hits_a: np.ndarray, hits_b: np.ndarray, n_boot: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Mean of a - b over the same queries, with a 95% paired-bootstrap interval (the queries
    are resampled together, so both methods see the same resample)."""
    diff = np.asarray(hits_a, dtype=float) - np.asarray(hits_b, dtype=float)
    lo, hi = bootstrap_interval(diff, n_boot, seed)
    return {"difference": float(diff.mean()), "ci95_low": lo, "ci95_high": hi}


def per_family(ranks: np.ndarray, truth: np.ndarray, families: Sequence[str]) -> dict[str, dict]:
    fam = np.array(families)[truth]
    return {
        f: {"queries": int((fam == f).sum()), **summarise(ranks[fam == f])}
        for f in sorted(set(families))
    }


def swapped_pair_accuracy(
    distances: np.ndarray, truth: np.ndarray, names: Sequence[str], pair: tuple[str, str]
) -> dict[str, float]:
    """On queries of either twin: how often the true twin scores better than the other.

    0.5 is chance (what a prompt-agnostic method must get when marginals are equal).
    """
    a, b = (list(names).index(n) for n in pair)
    mask = np.isin(truth, [a, b])
    if not mask.any():
        return {"queries": 0}
    d, t = distances[mask], truth[mask]
    other = np.where(t == a, b, a)
    own_d, other_d = d[np.arange(len(t)), t], d[np.arange(len(t)), other]
    wins = (own_d < other_d) + 0.5 * (own_d == other_d)
    ranks = true_ranks(d, t)
    return {
        "queries": int(mask.sum()),
        "pairwise": float(wins.mean()),
        "top1": float((ranks == 1).mean()),
    }


def confusion(distances: np.ndarray, truth: np.ndarray, n_models: int) -> np.ndarray:
    """Counts [true model, top-1 model]."""
    out = np.zeros((n_models, n_models), dtype=np.int64)
    np.add.at(out, (truth, distances.argmin(axis=1)), 1)
    return out
