"""Compact learned spaces and bfloat16 points: the top-r whitened directions keep the
distances that matter, bfloat16 rows decode to what was stored, and the scan over them
ranks as the float64 reference over the same (decoded) points does."""

from __future__ import annotations

import numpy as np
import pytest

from gmi.search import bf16, ranking
from gmi.search.arrays import PackedArrays
from gmi.search.backends import local_numpy
from gmi.search.bf16 import Bf16Rows
from gmi.search.weights import PointWeights
from gmi.spec.space import ScatterStatistics, fit_space_of, whitening
from gmi.spec.specification import build_specification

D, E = 24, 6


def _models(seed: int, m: int, n: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    # most between-model variation in 4 directions, a small spread in the rest, big offset
    styles = rng.normal(size=(m, 4)) @ rng.normal(size=(4, D)) + 30.0
    return [(s + 0.3 * rng.normal(size=(n, D))).astype(np.float32) for s in styles]


def test_bf16_rounds_to_nearest_even_and_decodes_exactly():
    values = np.array([1.0, 1.00390625, 1.01171875, -3.5, 1e-3, 0.0], np.float32)
    bits = bf16.encode(values)
    # 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0);
    # 1 + 3 * 2^-8 goes up to 1 + 2^-6 (even)
    np.testing.assert_array_equal(bf16.decode(bits)[:3], [1.0, 1.0, 1.015625])
    x = np.random.default_rng(0).normal(size=(1000, 8)).astype(np.float32) * 10
    rows = Bf16Rows.of(x)
    assert rows.shape == (1000, 8) and len(rows) == 1000 and rows.dtype == np.float32
    assert np.all(np.abs(rows[:] - x) <= np.abs(x) * 2.0**-8)
    np.testing.assert_array_equal(rows[np.array([5, 2])], np.asarray(rows)[[5, 2]])
    with pytest.raises(ValueError, match="uint16"):
        Bf16Rows(np.zeros((2, 2), np.float32))


def test_a_full_width_space_keeps_every_distance_and_a_compact_one_the_big_ones():
    models = _models(0, 10)
    full = fit_space_of(models)
    compact = fit_space_of(models, dims=4)
    assert full.dims == D and compact.dims == 4
    x = np.concatenate(models)
    # centring on the hub mean: distances as the plain whitening gives them, norms small
    plain = x.astype(np.float64) @ whitening(ScatterStatistics.of(models))
    got = full.project(x).astype(np.float64)
    pairwise = lambda a: ((a[:, None] - a[None]) ** 2).sum(-1)  # noqa: E731
    np.testing.assert_allclose(pairwise(got), pairwise(plain), rtol=1e-4, atol=1e-3)
    assert np.abs(got.mean(0)).max() < 1e-3 < np.abs(plain.mean(0)).max()
    # 4 directions carry the between-model differences: distances between model means kept
    means = np.stack([m.mean(0) for m in models])
    kept = pairwise(compact.project(means).astype(np.float64))
    all_ = pairwise(full.project(means).astype(np.float64))
    assert np.all(kept <= all_ + 1e-3) and kept.sum() > 0.95 * all_.sum()
    # same gamma as the full space (the kernel width of the whitened hub)
    assert compact.gamma == pytest.approx(full.gamma)
    # deterministic: the same statistics give the same matrix, signs included
    np.testing.assert_array_equal(fit_space_of(models, dims=4).matrix, compact.matrix)


def test_the_bf16_scan_ranks_the_top_k_as_float32_does():
    # between-model spread far above the within-model one: |z.c| >> a close match's distance,
    # the bfloat16 product's rounding (2^-9 |z.c|) alone would reorder neighbours; the band
    # of models within its bound of the k-th is scored again in float32
    models = _models(1, 40)
    prompts = np.eye(E, dtype=np.float32)[np.arange(12) % E]
    texts = [f"p{i}" for i in range(12)]
    specs = [build_specification(z, prompts, texts, encoder="x", gamma=0.3) for z in models]
    space = fit_space_of(models, dims=8, storage="bfloat16")
    arrays = PackedArrays.from_specs([f"m{i}" for i in range(40)], specs).in_space(space)
    assert isinstance(arrays.points, Bf16Rows) and arrays.dim == 8
    rng = np.random.default_rng(2)
    queries = np.stack([m[0] + 0.1 * rng.normal(size=D) for m in models]).astype(np.float32)
    weights = PointWeights.from_prompts(prompts[np.arange(40) % E], 40, 5.0)
    groups = [[i] for i in range(40)]
    ref = ranking.distances(arrays, queries, weights, groups, backend="reference")
    for backend in ("numpy", "torch"):
        fast = ranking.distances(arrays, queries, weights, groups, backend=backend, k=5)
        for a, b in zip(fast, ref, strict=True):
            top = ranking.top_k(b, 5)
            np.testing.assert_array_equal(ranking.top_k(a, 5), top)
            np.testing.assert_allclose(a[top], b[top], rtol=1e-4, atol=1e-4)
        # the rest is within the scan's bound, not float32's: close, not equal
        np.testing.assert_allclose(fast, ref, rtol=0.05, atol=1.0)
    # groups of several images: each group's band is scored with its own images only
    pairs = [[i, (i + 7) % 40] for i in range(0, 40, 3)]
    ref = ranking.distances(arrays, queries, weights, pairs, backend="reference")
    fast = ranking.distances(arrays, queries, weights, pairs, backend="numpy", k=5)
    for a, b in zip(fast, ref, strict=True):
        top = ranking.top_k(b, 5)
        np.testing.assert_array_equal(ranking.top_k(a, 5), top)
        np.testing.assert_allclose(a[top], b[top], rtol=1e-4, atol=1e-4)
    # the raw scan alone (no band) does reorder here: the band is what makes it right
    plain = local_numpy(arrays, (0, 40), arrays.to_space(queries), weights, 1.0)
    exact = local_numpy(
        arrays.subset(np.arange(40)), (0, 40), arrays.to_space(queries), weights, 1.0
    )
    assert np.abs(plain - exact).max() > 1e-3
    # a shortlist's subset is decoded: a rerank scores its few models in float32
    sub = arrays.subset(np.array([3, 7]))
    assert isinstance(sub.points, np.ndarray) and sub.points.dtype == np.float32
    np.testing.assert_array_equal(sub.points[:12], np.asarray(arrays.points)[36:48])
