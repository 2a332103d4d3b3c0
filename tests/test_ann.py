"""The approximate searcher (FAISS) behind the searcher seam: shortlist + exact rerank must give
the exact ranking's top k, certified, for a sequence of distinct queries in one process; the
index beside a registry follows submits and removals, and a stale or damaged one is detected
and rebuilt, never used."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_gmi
from gmi.search import ann, faiss_index, ranking
from gmi.search.arrays import PackedArrays
from gmi.search.weights import PointWeights
from gmi.spec.specification import build_specification


def clustered_arrays(models: int = 400, points: int = 8, dim: int = 24, seed: int = 0):
    """Models as tight clouds around their own centres (families of 4 share a base)."""
    rng = np.random.default_rng(seed)
    bases = rng.normal(size=(models // 4, dim))
    centres = np.repeat(bases, 4, axis=0) + 0.35 * rng.normal(size=(models, dim))
    specs = []
    for m in range(models):
        z = (centres[m] + 0.25 * rng.normal(size=(points, dim))).astype(np.float32)
        q = rng.normal(size=(points, 6)).astype(np.float32)
        specs.append(
            build_specification(z, q, [f"p{j}" for j in range(points)], encoder="t", gamma=0.5)
        )
    arrays = PackedArrays.from_specs([f"m{i}" for i in range(models)], specs)
    return arrays, centres, rng


def compare(arrays, features, groups, weights, k=10):
    exact = ranking.distances(arrays, features, weights, groups, device="cpu")
    report: dict = {}
    approx = ranking.distances(
        arrays, features, weights, groups, device="cpu", searcher=ann.ANN, k=k, report=report
    )
    assert report["searcher"] == "ann" and report["certified"] is True
    for g in range(len(groups)):
        want, got = ranking.top_k(exact[g], k), ranking.top_k(approx[g], k)
        assert want.tolist() == got.tolist()
        np.testing.assert_allclose(approx[g, got], exact[g, want], rtol=1e-5)
    return report


@pytest.mark.parametrize("index", ["flat", "ivf-flat", "ivf-sq8", "pca+ivf-sq8"])
def test_shortlist_gives_the_exact_top_k_for_each_of_many_queries(monkeypatch, index):
    arrays, centres, rng = clustered_arrays()
    if index != "flat":  # an inverted file probed in full: the IVF code path
        monkeypatch.setattr(faiss_index, "FLAT_MAX_ROWS", 100)
        monkeypatch.setattr(faiss_index, "NPROBE", 10**6)
        monkeypatch.setattr(faiss_index, "LIST_CODEC", "Flat" if index == "ivf-flat" else "SQ8")
    if index == "pca+ivf-sq8":  # projected distances are lower bounds: still certified
        monkeypatch.setattr(faiss_index, "PCA_DIM", 8)
    monkeypatch.setattr(ranking, "INITIAL_POINTS", 16)  # small: several rounds get exercised
    targets = rng.choice(len(centres), 12, replace=False)
    features = (centres[targets] + 0.25 * rng.normal(size=(12, centres.shape[1]))).astype(
        np.float32
    )
    rounds = []
    for q in range(12):  # one warm process, distinct queries one after another
        prompts = rng.normal(size=(1, 6)).astype(np.float32)
        weights = PointWeights.from_prompts(prompts, 1, 0.1)
        rounds.append(compare(arrays, features[[q]], [[0]], weights)["rounds"])
    assert max(rounds) > 1  # a shortlist too small to certify was widened
    built = arrays.device_copies["ann"]
    kinds = {"flat": "flat", "ivf-flat": "ivf", "ivf-sq8": "ivf", "pca+ivf-sq8": "pca8,ivf"}
    assert built.kind.startswith(kinds[index])
    assert built.kind.endswith({"flat": "flat", "ivf-flat": ",flat"}.get(index, ",sq8"))
    # exact lists measure the points; 8-bit lists their reconstructions, within `error`
    assert (built.error == 0) == (index in ("flat", "ivf-flat"))
    # several images as one requirement, and several requirements at once
    compare(arrays, features[:6], [[0, 1, 2], [3, 4, 5]], PointWeights.uniform(6))


def test_rkme_shortlist_is_reported_as_heuristic():
    arrays, centres, _ = clustered_arrays(models=40)
    features = centres[:2].astype(np.float32)
    report: dict = {}
    ranking.distances(
        arrays,
        features,
        PointWeights.uniform(2),
        [[0], [1]],
        scoring="rkme",
        searcher=ann.ANN,
        report=report,
    )
    assert report["certified"] is False or report["candidates"] == 40


def test_dead_slots_and_rows_beyond_a_snapshot_are_never_candidates():
    arrays, centres, _ = clustered_arrays(models=40)
    target = 7
    alive = np.ones(40, bool)
    alive[target] = False
    dead = dataclasses.replace(arrays, alive=alive, device_copies={})
    found = ann.ANN.shortlist(dead, centres[[target]].astype(np.float32), 64)
    assert target not in found.slots and found.slots.size > 0
    d = ranking.distances(
        dead, centres[[target]].astype(np.float32), PointWeights.uniform(1), [[0]], searcher=ann.ANN
    )
    assert not np.isfinite(d[0, target])


# -- beside a registry -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ann_home(tmp_path_factory, pristine_hub):
    from conftest import hub_copy

    return hub_copy(pristine_hub, tmp_path_factory.mktemp("ann") / "hub", searcher="ann")


def ranking_of(results):
    return [[m.model for m in r.results] for r in results]


def test_registry_ann_matches_exact_and_follows_submit_and_remove(
    ann_home, submissions, query_images, tmp_path
):
    import shutil

    from gmi.hub import Hub

    home = tmp_path / "hub"
    shutil.copytree(ann_home, home)
    hub = Hub(home)
    assert hub.settings().searcher == "ann"
    queries = [query_images[m] for m in ("flat-base", "ink-base", "photo-base", "neon-base")]
    ann.ANN.events.clear()
    got = hub.identify(queries, top=3)
    assert ranking_of(got) == ranking_of(hub.identify(queries, top=3, exact=True))
    assert all(r.search["certified"] for r in got)
    assert ann.ANN.events == ["rebuilt: index missing"]  # first query built and saved it
    assert len(ann.stored_files(home)) == 1
    assert [r.to_json()["search"]["searcher"] for r in got] == ["ann"] * 4

    # a submit in the same process: the new model's rows join the index, no rebuild
    hub.submit_folder("neon-base", submissions["neon-base"], progress=False)
    got = hub.identify([query_images["neon-base"]], top=4)
    assert got[0].results[0].model == "neon-base"
    assert ann.ANN.events == ["rebuilt: index missing"]
    # a removal: a tombstone, never a candidate
    hub.remove("ink-base")
    got = hub.identify(queries, top=3)
    assert "ink-base" not in {m for r in ranking_of(got) for m in r}
    assert ranking_of(got) == ranking_of(hub.identify(queries, top=3, exact=True))

    # another process opens the saved index (or rebuilds it if it moved on), same answers
    script = (
        "import sys, json; from gmi.hub import Hub; from gmi.search import ann\n"
        "r = Hub(sys.argv[1]).identify(sys.argv[2:], top=3)\n"
        "print(json.dumps([[m.model for m in x.results] for x in r] + [ann.ANN.events]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(home), *map(str, queries)],
        capture_output=True,
        text=True,
        check=True,
    )
    *rankings, events = json.loads(out.stdout)
    assert rankings == ranking_of(got)
    assert events in (["loaded"], ["rebuilt: index missing"])


def test_stale_or_damaged_index_is_detected_and_rebuilt(ann_home, query_images, tmp_path):
    import shutil

    from gmi.hub import Hub

    home = tmp_path / "hub"
    shutil.copytree(ann_home, home)
    hub = Hub(home)
    query = [query_images["photo-base"]]
    want = ranking_of(hub.identify(query, top=3, exact=True))
    hub.search_index(rebuild=True)
    [(path, generation, *_)] = ann.stored_files(home)

    # damaged bytes: `gmi check` says so, a fresh process does not use it
    path.write_bytes(b"not a faiss index")
    check = run_gmi("check", home=home)
    assert check.returncode == 1 and "ann index: unreadable" in check.stdout
    fresh = ann.AnnSearcher()
    built, why = ann.load(home, hub.index().arrays)
    assert built is None and why.startswith("unreadable")
    from gmi.registry.check import check_registry

    repaired = check_registry(hub.registry(), repair=True)
    assert repaired.consistent and "rebuilt the ann index" in repaired.repaired

    # an index of other rows under this generation's name: its rows are not at their ids
    [(path, *_)] = ann.stored_files(home)
    other, _, _ = clustered_arrays(models=8, points=12, dim=hub.index().arrays.dim)
    built = ann.build(other.points, generation)
    path.unlink()
    ann.save(home, built)
    assert "not at their own ids" in ann.load(home, hub.index().arrays)[1]
    fresh.index_for(hub.index().arrays)
    assert fresh.events and fresh.events[0].startswith("rebuilt: index rows")
    # an index of another generation: stale
    for f, *_ in ann.stored_files(home):
        f.rename(f.with_name("0123abcd-" + f.name.split("-", 1)[1]))
    assert ann.load(home, hub.index().arrays)[1] == "of another generation (stale)"
    assert ranking_of(Hub(home).identify(query, top=3)) == want


def test_cli_init_searcher_identify_exact_and_index_commands(ann_home, tmp_path, query_images):
    import shutil

    created = run_gmi("init", "--searcher", "ann", home=tmp_path / "new")
    assert created.returncode == 0 and "searcher: ann" in created.stdout
    home = tmp_path / "hub"
    shutil.copytree(ann_home, home)

    def run(*args):
        done = run_gmi(*args, home=home)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    image = str(query_images["ink-base"])
    shortlisted = json.loads(run("identify", image, "--json"))[0]
    exact = json.loads(run("identify", image, "--json", "--exact"))[0]
    assert [m["model"] for m in shortlisted["results"]] == [m["model"] for m in exact["results"]]
    assert shortlisted["search"]["certified"] is True and "search" not in exact
    status = json.loads(run("index", "status", "--json"))
    assert status["searcher"] == "ann" and status["index"] == "flat" and status["problems"] == []
    assert json.loads(run("index", "rebuild", "--json"))["indexed_rows"] == status["points"]
    bad = run_gmi("init", "--searcher", "milvusx", home=home)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_service_with_the_ann_searcher_answers_each_query_as_the_exact_scan(
    ann_home, query_images, tmp_path
):
    """Distinct queries one after another through a real `gmi serve` on an ann registry."""
    import shutil

    import httpx
    from test_server import running_server

    from gmi.hub import Hub

    home = tmp_path / "hub"
    shutil.copytree(ann_home, home)
    names = ("photo-base", "flat-base", "neon-base", "ink-base", "photo-base")
    want = [ranking_of(Hub(home).identify([query_images[m]], top=3, exact=True))[0] for m in names]
    with running_server(home) as base:
        got = []
        for m in names:
            files = [("images", ("q.jpg", query_images[m].read_bytes(), "image/jpeg"))]
            response = httpx.post(
                f"{base}/api/identify", files=files, data={"top": "3"}, timeout=60
            )
            assert response.status_code == 200, response.text
            [entry] = response.json()
            assert entry["search"]["searcher"] == "ann" and entry["search"]["certified"]
            got.append([r["model"] for r in entry["results"]])
    assert got == want


def test_slots_asked_for_are_scored_even_when_not_shortlisted():
    """A model the image names by checkpoint hash is ranked whatever the shortlist holds."""
    arrays, centres, _ = clustered_arrays()
    feature = centres[[3]].astype(np.float32)
    far = int(np.argmax(((centres - centres[3]) ** 2).sum(axis=1)))
    weights = PointWeights.uniform(1)
    plain = ranking.distances(arrays, feature, weights, [[0]], searcher=ann.ANN, k=5)
    assert not np.isfinite(plain[0, far])
    asked = ranking.distances(arrays, feature, weights, [[0]], searcher=ann.ANN, k=5, always=[far])
    exact = ranking.distances(arrays, feature, weights, [[0]])
    np.testing.assert_allclose(asked[0, far], exact[0, far], rtol=1e-5)


def test_quantised_lists_are_within_their_recorded_error_of_every_point(monkeypatch):
    """What the certificate over 8-bit lists rests on: every distance the index reports is
    within `error` (as a distance) of the point's own, for points it returns (the searcher
    turns them into lower bounds and lowers the radius by it)."""
    arrays, centres, rng = clustered_arrays(models=200)
    monkeypatch.setattr(faiss_index, "LIST_CODEC", "SQ8")
    monkeypatch.setattr(faiss_index, "FLAT_MAX_ROWS", 100)
    built = faiss_index.build(np.asarray(arrays.points), "g")
    assert built.kind.endswith(",sq8") and 0 < built.error < 1.0
    queries = (centres[:20] + 0.3 * rng.normal(size=(20, centres.shape[1]))).astype(np.float32)
    d2, ids, _ = built.search(queries, 50)
    points = np.asarray(arrays.points, dtype=np.float64)
    exact = ((points[ids] - queries[:, None, :].astype(np.float64)) ** 2).sum(-1)
    gap = np.abs(np.sqrt(np.maximum(d2, 0)) - np.sqrt(exact))
    assert gap.max() <= built.error
    assert gap.max() > 0  # the lists are approximate: without the error the bound would lie


def test_a_saved_quantised_index_keeps_its_error(monkeypatch, tmp_path):
    """The error travels in the file name (one rename with the index), rounded up: a reopened
    8-bit index certifies as the one that was built."""
    arrays, _, _ = clustered_arrays(models=200)
    monkeypatch.setattr(faiss_index, "FLAT_MAX_ROWS", 100)
    arrays = dataclasses.replace(arrays, origin=(str(tmp_path), "gen1"), device_copies={})
    built = faiss_index.build(np.asarray(arrays.points), "gen1")
    ann.save(tmp_path, built)
    [(_, generation, rows, trained, error)] = ann.stored_files(tmp_path)
    assert (generation, rows, trained) == ("gen1", len(arrays.points), len(arrays.points))
    assert built.error <= error <= built.error + ann.ERROR_UNIT
    loaded, why = ann.load(tmp_path, arrays)
    assert why == "ok" and loaded.error == error and loaded.kind == built.kind


def test_summaries_give_each_models_expected_distance_and_grow_with_the_rows():
    """E||z - c||^2 over a model's points = ||z - mean||^2 + spread, exactly: the estimate the
    approximate rerank orders by. Extending by new models equals summarising at once."""
    from gmi.search.summaries import ModelSummaries

    arrays, _, rng = clustered_arrays(models=40)
    offsets = np.asarray(arrays.point_offsets)
    part = arrays.subset(np.arange(15))  # the first 15 models: the hub before it grew
    grown = ModelSummaries(arrays.dim)
    grown.extend(part)
    grown.extend(arrays)
    whole = ModelSummaries(arrays.dim)
    whole.extend(arrays)
    np.testing.assert_allclose(grown.means, whole.means)
    np.testing.assert_allclose(grown.spread, whole.spread)
    z = rng.normal(size=(3, arrays.dim)).astype(np.float32)
    slots = np.array([0, 7, 39])
    got = whole.expected2(z, slots)
    points = np.asarray(arrays.points, dtype=np.float64)
    for c, slot in enumerate(slots):
        rows = points[offsets[slot] : offsets[slot + 1]]
        want = ((z[:, None, :].astype(np.float64) - rows[None]) ** 2).sum(-1).mean(axis=1)
        np.testing.assert_allclose(got[:, c], want, rtol=1e-5)


def test_above_the_fallback_size_the_shortlist_answers_alone_with_exact_scores(monkeypatch):
    """A big hub (here: the threshold lowered) never falls back to the exact scan: the budget
    of models of least estimated distance is scored exactly, the answer says whether it is
    certified, and it finds the exact top 10 on clustered models."""
    arrays, centres, rng = clustered_arrays(models=400)
    monkeypatch.setattr(faiss_index, "FLAT_MAX_ROWS", 100)
    monkeypatch.setattr(ranking, "EXACT_FALLBACK_MAX_POINTS", 100)
    monkeypatch.setattr(ranking, "RERANK_BUDGET", 40)
    monkeypatch.setattr(ranking, "RERANK_SHARE", 0)
    monkeypatch.setattr(ranking, "INITIAL_POINTS", 64)
    hits = []
    for _ in range(10):
        target = int(rng.integers(len(centres)))
        z = (centres[[target]] + 0.25 * rng.normal(size=(1, centres.shape[1]))).astype(np.float32)
        weights = PointWeights.from_prompts(rng.normal(size=(1, 6)).astype(np.float32), 1, 0.1)
        exact = ranking.distances(arrays, z, weights, [[0]], device="cpu")
        report: dict = {}
        approx = ranking.distances(
            arrays, z, weights, [[0]], device="cpu", searcher=ann.ANN, k=10, report=report
        )
        assert "fallback" not in report and report["rounds"] == 1
        assert report["scored"] <= 40 and report["certified"] in (True, False)
        assert report["budget"] == 40
        scored = np.isfinite(approx[0])
        np.testing.assert_allclose(approx[0, scored], exact[0, scored], rtol=1e-5)
        want, got = ranking.top_k(exact[0], 10), ranking.top_k(approx[0], 10)
        hits.append(len(set(want.tolist()) & set(got.tolist())) / 10)
    assert np.mean(hits) >= 0.9


def test_the_rerank_budget_grows_with_the_candidates():
    """At least RERANK_BUDGET, one in RERANK_SHARE of many candidates (docs/scale.md measures
    the recall of each)."""
    assert ranking.rerank_budget(100) == ranking.RERANK_BUDGET == 256
    assert ranking.rerank_budget(9_200) == 9_200 // ranking.RERANK_SHARE == 1_150
