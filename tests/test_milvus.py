"""The Milvus searcher against a real engine: Milvus Lite (the embedded Milvus, a .db file URI),
through the same pymilvus client a Milvus server is reached with. And an unreachable Milvus:
one clear error line naming the URI, no registry made."""

from __future__ import annotations

import json
import shutil

import milvus_lite  # noqa: F401  (requirements.lock installs it: these tests never skip)
import numpy as np
import pytest

from conftest import SMALL_ZOO, hub_copy, run_gmi


@pytest.fixture(scope="module")
def milvus_home(tmp_path_factory, pristine_hub):
    home = tmp_path_factory.mktemp("milvus") / "hub"
    return hub_copy(pristine_hub, home, searcher="milvus", milvus_uri=str(home / "milvus.db"))


def models_of(results):
    return [[m.model for m in r.results] for r in results]


def test_milvus_lite_shortlist_matches_exact_through_submit_and_remove(
    milvus_home, submissions, query_images
):
    from gmi.hub import Hub
    from gmi.search.milvus import collection_prefix

    hub = Hub(milvus_home)
    queries = [query_images[m] for m in SMALL_ZOO]
    got = hub.identify(queries, top=3)
    assert models_of(got) == models_of(hub.identify(queries, top=3, exact=True))
    assert all(r.search["searcher"] == "milvus" and r.search["certified"] for r in got)

    hub.submit_folder("neon-base", submissions["neon-base"], progress=False)
    assert hub.identify([query_images["neon-base"]], top=2)[0].results[0].model == "neon-base"
    hub.remove("ink-base")
    got = hub.identify(queries, top=3)
    assert "ink-base" not in {m for r in models_of(got) for m in r}
    assert models_of(got) == models_of(hub.identify(queries, top=3, exact=True))

    status = hub.search_index()
    assert status["searcher"] == "milvus" and status["problems"] == []
    assert status["collection"].startswith(collection_prefix(str(milvus_home)))
    assert status["indexed_rows"] == status["points"]


def test_milvus_cli_status_check_and_exact(milvus_home, query_images, tmp_path):
    from gmi.registry.store import Registry

    home = tmp_path / "copy"
    # another registry on its own Milvus Lite data: Lite serves one process per file
    shutil.copytree(milvus_home, home, ignore=shutil.ignore_patterns("milvus.db"))
    Registry(home).set_settings({"milvus_uri": str(home / "milvus.db")}, overwrite=True)
    out = run_gmi("identify", str(query_images["photo-base"]), "--json", home=home)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["search"]["searcher"] == "milvus"
    status = run_gmi("index", "status", "--json", home=home)
    assert status.returncode == 0 and json.loads(status.stdout)["problems"] == []
    check = run_gmi("check", home=home)
    assert check.returncode == 0, check.stdout


def test_unreachable_milvus_is_one_line_and_makes_nothing(tmp_path):
    home = tmp_path / "never"
    done = run_gmi("init", "--searcher", "milvus", "--milvus-uri", "http://127.0.0.1:9", home=home)
    assert done.returncode == 8
    assert done.stderr.strip().count("\n") == 0 and "Traceback" not in done.stderr
    assert "http://127.0.0.1:9" in done.stderr
    assert not home.exists()
    bad = run_gmi("init", "--milvus-uri", str(tmp_path / "x.db"), home=tmp_path / "other")
    assert bad.returncode == 2 and "--milvus-uri is for --searcher milvus" in bad.stderr
    assert not (tmp_path / "other").exists()


def test_milvus_lite_file_held_by_another_process_is_one_line(milvus_home, query_images):
    from gmi.hub import Hub

    Hub(milvus_home).identify([query_images["flat-base"]])  # this process holds the file
    done = run_gmi("identify", str(query_images["flat-base"]), home=milvus_home)
    assert done.returncode == 8 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "one process per file" in done.stderr


def test_milvus_searcher_against_exact_on_many_points(tmp_path):
    """Many points, a sequence of distinct queries: the same top 10 as the exact scan."""
    from test_ann import clustered_arrays

    from gmi.search import ranking
    from gmi.search.milvus import MilvusSearcher
    from gmi.search.weights import PointWeights

    arrays, centres, rng = clustered_arrays(models=200)
    searcher = MilvusSearcher(str(tmp_path / "points.db"))
    for q in rng.choice(200, 6, replace=False):
        feature = (centres[[q]] + 0.25 * rng.normal(size=(1, centres.shape[1]))).astype(np.float32)
        weights = PointWeights.uniform(1)
        report: dict = {}
        got = ranking.distances(arrays, feature, weights, [[0]], searcher=searcher, report=report)
        want = ranking.distances(arrays, feature, weights, [[0]])
        assert report["certified"]
        assert ranking.top_k(got[0], 10).tolist() == ranking.top_k(want[0], 10).tolist()
