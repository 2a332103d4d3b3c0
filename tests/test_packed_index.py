"""The packed index and the ranking core: fast paths equal the float64 reference, the packed
arrays equal the spec files through submits, removes, replaces, crashes and compaction, and
the incrementally updated learned parts equal a refit from scratch."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from conftest import SMALL_ZOO, build_hub, run_gmi
from gmi.hub import Hub
from gmi.registry import packed
from gmi.registry.store import Registry
from gmi.search import ranking
from gmi.search.arrays import PackedArrays
from gmi.search.backends import local_numpy, torch_backend
from gmi.search.rules import SCORING_RULES
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings
from gmi.spec.ridge import RidgeModel, RidgeStatistics
from gmi.spec.scoring import SpecStack, score_requirements
from gmi.spec.specification import build_specification

D, E = 24, 12
TEXTS = [f"prompt {i}" for i in range(10)]


def _spec(rng: np.random.Generator, n: int, gamma: float = 0.5, n_points: int | None = None):
    centre = rng.normal(size=D)
    z = (centre + 0.6 * rng.normal(size=(n, D))).astype(np.float32)
    chosen = [TEXTS[i % len(TEXTS)] for i in rng.permutation(n)]
    table = np.random.default_rng(7).normal(size=(len(TEXTS), E)).astype(np.float32)
    q = table[[TEXTS.index(t) for t in chosen]]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return build_specification(z, q, chosen, encoder="synthetic", gamma=gamma, n_points=n_points)


def _specs(seed: int = 0, m: int = 9):
    rng = np.random.default_rng(seed)
    specs = [_spec(rng, int(rng.integers(5, 14))) for _ in range(m - 1)]
    specs.append(_spec(rng, 12, n_points=5))  # a reduced set: points are not images
    return [f"m{i}" for i in range(m)], specs


def _weights(kind: str, arrays: PackedArrays, t: int, rng: np.random.Generator) -> PointWeights:
    if kind == "uniform":
        return PointWeights.uniform(t)
    if kind == "prompt":
        return PointWeights.from_prompts(rng.normal(size=(t, E)), t, tau=0.1)
    text_visuals = rng.normal(size=(len(arrays.texts), D))
    return PointWeights(["visual"] * t, visuals=rng.normal(size=(t, D)), text_visuals=text_visuals)


@pytest.mark.parametrize("kind", ["uniform", "prompt", "visual"])
def test_fast_backends_equal_the_float64_reference(kind):
    rng = np.random.default_rng(1)
    names, specs = _specs()
    arrays = PackedArrays.from_specs(names, specs)
    queries = rng.normal(size=(6, D)).astype(np.float32) + specs[2].points[0]
    weights = _weights(kind, arrays, len(queries), rng)
    groups = [[i] for i in range(len(queries))]
    reference = ranking.distances(arrays, queries, weights, groups, backend="reference")
    fast = ranking.distances(arrays, queries, weights, groups, backend="numpy")
    on_torch = ranking.distances(arrays, queries, weights, groups, backend="torch", device="cpu")
    for other in (fast, on_torch):
        np.testing.assert_allclose(other, reference, rtol=1e-4, atol=1e-3)
        for g in range(len(queries)):
            assert list(ranking.top_k(other[g], 5)) == list(ranking.top_k(reference[g], 5))
    # chunks smaller than a model still give whole-model answers
    tiny = local_numpy(arrays, (0, arrays.n_slots), queries, weights, 10.0, chunk_points=3)
    np.testing.assert_allclose(tiny, fast, rtol=1e-5, atol=1e-4)
    chunked = torch_backend(arrays, "cpu").distances(
        arrays, (0, arrays.n_slots), queries, weights, 10.0, chunk_points=7
    )
    np.testing.assert_allclose(chunked, on_torch, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("scoring", ["local", "rkme"])
@pytest.mark.parametrize("combine", ["mean", "joint"])
def test_reference_rules_equal_the_plain_formulas(scoring, combine):
    """The packed reference path gives exactly what the padded SpecStack formulas give."""
    rng = np.random.default_rng(2)
    names, specs = _specs(3)
    arrays = PackedArrays.from_specs(names, specs)
    stack = SpecStack.from_specs(names, specs)
    queries = rng.normal(size=(4, D)).astype(np.float32)
    prompts = rng.normal(size=(4, E)).astype(np.float32)
    groups = [[0, 1], [2, 3]]
    weights = PointWeights.from_prompts(prompts, 4, tau=0.1)
    if combine == "joint" and scoring == "rkme":
        weights = weights.per_group(groups)
    got = SCORING_RULES[scoring].reference(
        arrays, arrays.live_slots, queries, weights, groups, combine
    )
    expected = score_requirements(stack, queries, groups, prompts, 0.1, combine, scoring)
    # equal up to the float32 prompt-cosine table (1e-7 on a cosine)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    again = SCORING_RULES[scoring].reference(
        arrays, arrays.live_slots, queries, weights, groups, combine
    )
    np.testing.assert_array_equal(again, got)  # cached Gram blocks give the same answer


def test_ridge_from_statistics_equals_a_refit():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 8)), rng.normal(size=(40, 3))
    extra = rng.normal(size=(6, 8))
    stats = RidgeStatistics.empty(8, 3).add(x[:25], y[:25]).add(x[25:], y[25:])
    stats = stats.add(extra, np.ones((6, 3))).subtract(extra, np.ones((6, 3)))
    solved, refit = stats.solve(), RidgeModel.fit(x, y)
    assert solved.penalty == pytest.approx(refit.penalty)
    np.testing.assert_allclose(solved.predict(x), refit.predict(x), atol=1e-9)


# -- the registry's packed index ---------------------------------------------------------
SETTINGS = HubSettings(
    encoder="synthetic", gamma=0.5, image_dim=D, prompt_dim=E, interrogator="hub"
)


def _registry(tmp_path, names, specs) -> Registry:
    registry = Registry(tmp_path / "hub")
    registry.set_settings(SETTINGS.to_strings())
    for name, spec in zip(names, specs, strict=True):
        registry.add(name, spec)
    packed.sync(registry.packed_source(), SETTINGS)
    return registry


def _live(registry: Registry):
    records = registry.list()
    return [r.name for r in records], [registry.load_spec(r) for r in records]


def _assert_matches_specs(registry: Registry) -> packed.PackedIndex:
    # syncs first if the registry moved on
    index = packed.open_index(registry.packed_source(), SETTINGS)
    assert packed.check_packed(registry.packed_source(), SETTINGS) == []
    names, specs = _live(registry)
    assert sorted(index.names) == names
    queries = np.random.default_rng(5).normal(size=(5, D)).astype(np.float32)
    weights = PointWeights.uniform(5)
    groups = [[i] for i in range(5)]
    got = ranking.distances(index.arrays, queries, weights, groups, backend="numpy")
    fresh = PackedArrays.from_specs(names, specs)
    with registry._connect() as db:
        space = packed.read_space(
            registry.home / packed.PACKED_DIR / packed.read_state(db).generation
        )
    if space is not None:  # the registry's incrementally projected rows = a fresh projection
        fresh = fresh.in_space(space)
    want = ranking.distances(fresh, queries, weights, groups, backend="reference")
    for g in range(5):
        ranked = [index.arrays.names[s] for s in ranking.top_k(got[g], 4)]
        assert ranked == [fresh.names[s] for s in ranking.top_k(want[g], 4)]
    return index


def test_packed_index_follows_submit_remove_replace(tmp_path):
    names, specs = _specs(4)
    registry = _registry(tmp_path, names[:6], specs[:6])
    first = _assert_matches_specs(registry)
    registry.remove("m1")
    registry.remove("m4")
    registry.add("m2", specs[7], replace=True)
    registry.add("m8", specs[8])
    packed.sync(registry.packed_source(), SETTINGS)
    index = _assert_matches_specs(registry)
    assert index.token != first.token
    assert (~index.arrays.alive).sum() == 3  # tombstones: m1, m4 and m2's old spec
    # the learned parts were updated incrementally: equal to a refit from scratch
    names, specs = _live(registry)
    pairs = np.concatenate([s.pair_features for s in specs])
    prompts = np.concatenate([s.pair_prompts for s in specs])
    refit = RidgeModel.fit(pairs, prompts)
    np.testing.assert_allclose(
        index.learned["image_to_prompt"].predict(pairs), refit.predict(pairs), atol=1e-7
    )
    stats = packed.statistics_of(index.arrays, index.arrays.live_slots, D, E)
    scratch = packed.learn(index.arrays, stats, SETTINGS)["calibration"]
    np.testing.assert_allclose(index.learned["calibration"].held_out, scratch.held_out, atol=1e-9)


def test_changes_made_behind_gmis_back_are_picked_up(tmp_path):
    names, specs = _specs(5)
    registry = _registry(tmp_path, names[:4], specs[:4])
    token = packed.state_token(registry.packed_source())
    with sqlite3.connect(registry.db_path) as db:  # any change to `models`, by anyone
        db.execute("DELETE FROM models WHERE name = 'm0'")
    assert packed.state_token(registry.packed_source()) == ""  # the trigger recorded it
    index = _assert_matches_specs(registry)
    assert "m0" not in index.names and index.token != token


def test_rows_of_an_uncommitted_write_are_overwritten(tmp_path):
    names, specs = _specs(6)
    registry = _registry(tmp_path, names[:3], specs[:3])
    state = packed.state_token(registry.packed_source())
    with registry._connect() as db:
        generation = packed.read_state(db).generation
    points = tmp_path / "hub" / packed.PACKED_DIR / generation / "points.f4"
    with open(points, "ab") as f:  # what a writer killed before its commit leaves behind
        f.write(np.full((50, D), np.nan, np.float32).tobytes())
    # nothing committed: nothing changed
    assert packed.state_token(registry.packed_source()) == state
    registry.add("m5", specs[5])
    packed.sync(registry.packed_source(), SETTINGS)
    index = _assert_matches_specs(registry)
    assert np.isfinite(np.asarray(index.arrays.points)).all()


def test_compaction_drops_dead_rows_and_keeps_answers(tmp_path, monkeypatch):
    monkeypatch.setattr(packed.maintenance, "COMPACT_MIN_DEAD_POINTS", 10)
    names, specs = _specs(7)
    registry = _registry(tmp_path, names, specs)
    with registry._connect() as db:
        before = packed.read_state(db).generation
    for name in names[:6]:
        registry.remove(name)
    packed.sync(registry.packed_source(), SETTINGS)
    with registry._connect() as db:
        after = packed.read_state(db).generation
    assert after != before and not (tmp_path / "hub" / packed.PACKED_DIR / before).exists()
    index = _assert_matches_specs(registry)
    assert index.arrays.alive.all() and index.arrays.n_slots == 3


def test_check_finds_and_repairs_a_damaged_packed_index(tmp_path):
    names, specs = _specs(8)
    registry = _registry(tmp_path, names[:3], specs[:3])
    with registry._connect() as db:
        generation = packed.read_state(db).generation
    path = tmp_path / "hub" / packed.PACKED_DIR / generation / "points.f4"
    data = bytearray(path.read_bytes())
    data[8:12] = np.float32(123.0).tobytes()
    path.write_bytes(bytes(data))
    report = run_gmi("check", "--json", home=tmp_path / "hub")
    assert report.returncode == 1 and "differ from its spec file" in report.stdout
    repaired = run_gmi("check", "--repair", "--json", home=tmp_path / "hub")
    assert repaired.returncode == 0 and "rebuilt the packed index" in repaired.stdout
    _assert_matches_specs(registry)


def test_a_warm_hub_sees_another_processes_writes(tmp_path, submissions, query_images):
    home = build_hub(tmp_path / "hub", submissions, SMALL_ZOO[:2])
    hub = Hub(home)
    [before] = hub.identify([query_images["photo-base"]], top=5)
    assert "photo-base" not in [m.model for m in before.results]
    added = run_gmi(
        "submit", "photo-base", "--images", str(submissions["photo-base"]), "--quiet", home=home
    )
    assert added.returncode == 0, added.stderr
    [after] = hub.identify([query_images["photo-base"]], top=5)
    assert after.results[0].model == "photo-base"
    removed = run_gmi("remove", "flat-base", home=home)
    assert removed.returncode == 0, removed.stderr
    [last] = hub.identify([query_images["flat-base"]], top=5)
    assert "flat-base" not in [m.model for m in last.results]
    fresh = json.loads(
        run_gmi("identify", str(query_images["flat-base"]), "--json", home=home).stdout
    )[0]
    assert [m.model for m in last.results] == [r["model"] for r in fresh["results"]]


def test_a_hub_works_on_any_store_it_is_given(tmp_path, submissions, query_images):
    """The Hub receives its store (gmi.registry.base.Store); the SQLite Registry is one."""
    from gmi.registry.base import Store

    home = build_hub(tmp_path / "hub", submissions, SMALL_ZOO[:2])
    store = Registry(home)
    assert isinstance(store, Store)
    hub = Hub(store=store)
    [found] = hub.identify([query_images["ink-base"]], top=2)
    assert found.results[0].model == "ink-base" and hub.home == home


def test_settings_are_one_validated_value(tmp_path):
    from gmi.errors import InvalidInputError

    settings = HubSettings.from_strings({"tau": "0.2", "gamma": "0.5", "image_dim": "8"})
    assert settings.tau == 0.2 and settings.image_dim == 8 and settings.scoring == "local"
    assert HubSettings.from_strings(settings.to_strings()) == settings
    with pytest.raises(AttributeError):
        settings.tau = 1.0  # type: ignore[misc]
    for bad in ({"scoring": "magic"}, {"tau": "-1"}, {"tau": "x"}, {"searcher": "faiss"}):
        with pytest.raises(InvalidInputError):
            HubSettings.from_strings(bad)


def test_a_running_server_sees_another_processes_writes(tmp_path, submissions, query_images):
    import httpx
    from test_server import running_server

    home = build_hub(tmp_path / "hub", submissions, SMALL_ZOO[:2])
    query = query_images["photo-base"]

    def top_models(base: str) -> list[str]:
        files = [("images", (query.name, query.read_bytes(), "image/jpeg"))]
        answer = httpx.post(f"{base}/api/identify", files=files, timeout=60)
        assert answer.status_code == 200, answer.text
        return [r["model"] for r in answer.json()[0]["results"]]

    with running_server(home) as base:
        assert "photo-base" not in top_models(base)
        added = run_gmi(
            "submit", "photo-base", "--images", str(submissions["photo-base"]), home=home
        )
        assert added.returncode == 0, added.stderr
        assert top_models(base)[0] == "photo-base"  # no restart
        assert int(httpx.get(f"{base}/api/models").headers["x-total-count"]) == 3
        assert run_gmi("remove", "photo-base", home=home).returncode == 0
        assert "photo-base" not in top_models(base)
