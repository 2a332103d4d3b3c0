"""The hub-learned space (gmi.spec.space) and how the packed index keeps it: the statistics
are exact, the whitening whitens, a registry refits on doubling and re-projects every row,
rows appended between refits are projected with the current space, `gmi check` sees damaged
projected rows, and registries from before the space keep ranking as encoded."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from conftest import run_gmi
from gmi.registry import packed
from gmi.registry.store import Registry
from gmi.search import bf16, ranking
from gmi.search.arrays import PackedArrays, space_points
from gmi.search.bf16 import Bf16Rows
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings
from gmi.spec.space import (
    DEFAULT_SPACE_DIMS,
    FittedSpace,
    ScatterStatistics,
    fit_space_of,
    whitening,
)
from gmi.spec.specification import build_specification

D, E = 16, 8


def _models(seed: int, m: int, n: int = 10) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    nuisance = rng.normal(size=(D, D)) * 0.2  # shared within-model variation, as content
    return [
        (rng.normal(size=D) + rng.normal(size=(n, D)) @ nuisance).astype(np.float32)
        for _ in range(m)
    ]


def test_statistics_are_exact_and_additive():
    models = _models(0, 5)
    stats = ScatterStatistics.of(models)
    centred = [x.astype(np.float64) - x.astype(np.float64).mean(0) for x in models]
    direct = sum(c.T @ c for c in centred) / sum(map(len, models))
    np.testing.assert_allclose(stats.within(), direct, atol=1e-10)
    one_by_one = ScatterStatistics.empty(D)
    for x in models:
        one_by_one = one_by_one.add(x)
    np.testing.assert_allclose(one_by_one.second, stats.second, atol=1e-9)
    np.testing.assert_allclose(one_by_one.between, stats.between, atol=1e-9)
    halves = ScatterStatistics.of(models[:2]).merge(ScatterStatistics.of(models[2:]))
    np.testing.assert_allclose(halves.within(), stats.within(), atol=1e-10)
    removed = stats.subtract(models[-1])
    np.testing.assert_allclose(removed.within(), ScatterStatistics.of(models[:-1]).within(), 1e-9)


def test_whitening_makes_the_shrunk_within_model_scatter_the_identity():
    stats = ScatterStatistics.of(_models(1, 6))
    w = whitening(stats, shrinkage=0.5)
    within = stats.within()
    shrunk = within + 0.5 * np.trace(within) / D * np.eye(D)
    np.testing.assert_allclose(w @ shrunk @ w, np.eye(D), atol=1e-8)
    np.testing.assert_allclose(w, w.T, atol=1e-12)


def test_a_fitted_space_round_trips_and_knows_when_to_refit():
    fitted = fit_space_of(_models(2, 4))
    again = FittedSpace.from_tensors(fitted.to_tensors())
    np.testing.assert_array_equal(again.matrix, fitted.matrix)
    assert (again.gamma, again.models) == (fitted.gamma, 4) and fitted.gamma > 0
    assert not fitted.due(7) and fitted.due(8)
    with pytest.raises(ValueError, match="two images"):
        fit_space_of([np.zeros((1, D), np.float32)])


def test_the_ranking_core_projects_queries_into_the_points_space():
    models = _models(3, 6)
    prompts = np.eye(E, dtype=np.float32)[np.arange(len(models[0])) % E]
    texts = [f"p{i}" for i in range(len(models[0]))]
    specs = [build_specification(z, prompts, texts, encoder="x", gamma=0.3) for z in models]
    arrays = PackedArrays.from_specs([f"m{i}" for i in range(6)], specs)
    fitted = fit_space_of(models)
    inside = arrays.in_space(fitted)
    queries = (models[2][:3] + 0.01).astype(np.float32)
    weights, groups = PointWeights.uniform(3), [[0], [1], [2]]
    got = ranking.distances(inside, queries, weights, groups, backend="numpy")
    # the same distances from the plain float64 formula on projected features
    plain = PackedArrays.from_specs(
        [f"m{i}" for i in range(6)],
        [
            build_specification(fitted.project(z), prompts, texts, encoder="x", gamma=fitted.gamma)
            for z in models
        ],
    )
    want = ranking.distances(plain, fitted.project(queries), weights, groups, backend="reference")
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert (got.argmin(axis=1) == 2).all()


SETTINGS = HubSettings(
    encoder="synthetic", gamma=0.5, image_dim=D, prompt_dim=E, interrogator="hub", space="whiten"
)


def _spec(z: np.ndarray):
    prompts = np.eye(E, dtype=np.float32)[np.arange(len(z)) % E]
    texts = [f"prompt {i % E}" for i in range(len(z))]
    return build_specification(z, prompts, texts, encoder="synthetic", gamma=0.5)


def _space(registry: Registry) -> FittedSpace | None:
    with registry._connect() as db:
        generation = packed.read_state(db).generation
    return packed.read_space(registry.home / packed.PACKED_DIR / generation)


def test_a_registry_refits_on_doubling_and_projects_every_row(tmp_path):
    registry = Registry(tmp_path / "hub")
    registry.set_settings(SETTINGS.to_strings())
    models = _models(4, 9)
    fitted_on = []
    for i, z in enumerate(models):
        registry.add(f"m{i}", _spec(z))
        packed.sync(registry.packed_source(), SETTINGS)
        space = _space(registry)
        fitted_on.append(space.models if space is not None else None)
    # 10 images < 16 dimensions: ranked as encoded; then fits at 2 models, refits at 4 and 8
    assert fitted_on == [None, 2, 2, 4, 4, 4, 4, 8, 8]
    index = packed.open_index(registry.packed_source(), SETTINGS)
    space = _space(registry)
    # rows appended after the fit (m8) were projected with it, like the refitted ones
    stored, _ = space_points(space, np.concatenate(models))
    np.testing.assert_array_equal(np.asarray(index.arrays.points), np.asarray(stored))
    assert isinstance(index.arrays.points, Bf16Rows)  # a new registry's storage (SETTINGS)
    np.testing.assert_allclose(  # bfloat16: 8 bits of mantissa
        np.asarray(index.arrays.points), space.project(np.concatenate(models)), rtol=1e-2, atol=1e-2
    )
    np.testing.assert_array_equal(index.arrays.space.matrix, space.matrix)
    assert index.arrays.gamma == space.gamma
    # pair features stay as encoded (the interrogators read them)
    np.testing.assert_array_equal(index.arrays.pair_features, np.concatenate(models))
    assert packed.check_packed(registry.packed_source(), SETTINGS) == []
    registry.remove("m3")  # a removal does not refit
    packed.sync(registry.packed_source(), SETTINGS)
    assert _space(registry).models == 8
    assert packed.check_packed(registry.packed_source(), SETTINGS) == []


def test_check_finds_damaged_projected_rows(tmp_path):
    registry = Registry(tmp_path / "hub")
    registry.set_settings(SETTINGS.to_strings())
    for i, z in enumerate(_models(5, 3)):
        registry.add(f"m{i}", _spec(z))
    packed.sync(registry.packed_source(), SETTINGS)
    with registry._connect() as db:
        generation = packed.read_state(db).generation
    path = tmp_path / "hub" / packed.PACKED_DIR / generation / "space_points.bf16"
    data = bytearray(path.read_bytes())
    data[2:4] = bf16.encode(np.array([99.0], np.float32)).tobytes()
    path.write_bytes(bytes(data))
    found = packed.check_packed(registry.packed_source(), SETTINGS)
    assert any("differ from its spec file" in p for p in found)
    repaired = run_gmi("check", "--repair", "--json", home=tmp_path / "hub")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert packed.check_packed(registry.packed_source(), SETTINGS) == []


def _registry_from_before(home, setting: str, version: int) -> Registry:
    """A registry as a gmi before migration `version + 1` left it: without `setting`."""
    registry = Registry(home)
    registry.set_settings({k: v for k, v in SETTINGS.to_strings().items() if k != setting})
    db = sqlite3.connect(registry.db_path)
    db.execute(f"PRAGMA user_version = {version}")
    db.commit()
    db.close()
    return Registry(home)


def test_registries_from_before_the_space_keep_ranking_as_encoded(tmp_path):
    reopened = _registry_from_before(tmp_path / "hub", "space", 4)
    assert reopened.settings()["space"] == "identity"
    fresh = Registry(tmp_path / "new")
    fresh.set_settings(HubSettings(encoder="synthetic").to_strings())
    assert fresh.settings()["space"] == "whiten"  # a new registry learns its space


def test_registries_from_before_compact_spaces_keep_a_full_float32_space(tmp_path):
    reopened = _registry_from_before(tmp_path / "hub", "space_dims", 5)
    assert reopened.settings()["space_dims"] == "0"
    settings = HubSettings.from_strings(reopened.settings())
    for i, z in enumerate(_models(6, 3)):
        reopened.add(f"m{i}", _spec(z))
    packed.sync(reopened.packed_source(), settings)
    space = _space(reopened)
    assert space.storage == "float32" and space.dims == D
    index = packed.open_index(reopened.packed_source(), settings)
    assert isinstance(index.arrays.points, np.ndarray)
    fresh = Registry(tmp_path / "new")
    fresh.set_settings(HubSettings(encoder="synthetic").to_strings())
    assert int(fresh.settings()["space_dims"]) == DEFAULT_SPACE_DIMS
