"""`gmi bench`: quick mode end to end (real encoder, real interrogators), the directory zoo,
and the metrics."""

import csv
import json

import numpy as np
import pytest

from conftest import run_gmi
from gmi.bench import metrics
from gmi.bench.runner import make_groups


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    result = run_gmi("bench", "--quick", "--json", "--quiet", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout), out


def test_quick_bench_results_shape(quick_results):
    results, out = quick_results
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["settings"].keys() == results["settings"].keys() == {"1", "4"}
    methods = results["settings"]["1"]["methods"]
    assert {
        "popularity",
        "rkme-pixels",
        "rkme",
        "knn",
        "weighted-oracle",
        "weighted-labels",
        "weighted-retrieval",
        "weighted-hub",
        "local-hub",
        "weighted-stated",
    } <= set(methods)
    assert set(results["settings"]["1"]["paired_top1"]) >= {"local-hub - knn"}
    assert set(results["interrogation"]) == {"labels", "retrieval", "hub"}
    for r in methods.values():
        assert 0 <= r["top1"] <= r["top2"] <= r["top3"] <= r["top4"] <= 1
        lo, hi = r["top1_ci95"]
        assert lo <= r["top1"] <= hi
        assert r["mean_rank"] >= 1
        assert set(r["per_family"]) == set(results["families"])
    assert results["settings"]["1"]["requirements"] == 64
    assert results["settings"]["4"]["requirements"] == 16
    assert len(results["gamma_sweep"]["factors"]) == 3
    for name in (
        "results.csv",
        "report.md",
        "topk-1.png",
        "topk-4.png",
        "gamma.png",
        "confusion.png",
    ):
        assert (out / name).stat().st_size > 0
    with open(out / "results.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * len(methods)
    assert (out / "gamma.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_bench_swapped_pair(quick_results):
    """The prompt-agnostic baseline is at chance on the swapped pair; the oracle prompt is not."""
    results, _ = quick_results
    methods = results["settings"]["1"]["methods"]
    pair = "daynight-warm|daynight-cool"
    rkme = methods["rkme"]["swapped_pairs"][pair]["pairwise"]
    oracle = methods["weighted-oracle"]["swapped_pairs"][pair]["pairwise"]
    stated = methods["weighted-stated"]["swapped_pairs"][pair]["pairwise"]
    assert 0.35 <= rkme <= 0.65
    assert oracle > rkme + 0.1  # the paper's text-embedding prompt kernel separates a little
    assert stated >= 0.9  # the learned visual prompt kernel separates them
    # image-blind baseline is far below the image-based ones
    assert methods["popularity"]["top1"] < methods["rkme"]["top1"] - 0.3


def test_bench_on_exported_zoo_directory(tmp_path):
    zoo_dir = tmp_path / "zoo"
    exported = run_gmi("zoo", "export", str(zoo_dir), "--models", "3", "--quiet")
    assert exported.returncode == 0, exported.stderr
    manifest = json.loads((zoo_dir / "manifest.json").read_text())
    assert len(manifest["models"]) == 3 and len(manifest["queries"]) == 36
    assert (zoo_dir / manifest["queries"][0]["image"]).read_bytes()[:2] == b"\xff\xd8"  # JPEG
    result = run_gmi(
        "bench",
        "--zoo",
        str(zoo_dir),
        "--methods",
        "rkme",
        "knn",
        "--images-per-query",
        "1",
        "--json",
        "--quiet",
        "--out",
        str(tmp_path / "o"),
    )
    assert result.returncode == 0, result.stderr
    results = json.loads(result.stdout)
    assert results["models"] == [m["name"] for m in manifest["models"]]
    assert set(results["settings"]["1"]["methods"]) == {"rkme", "knn"}
    bad = run_gmi("bench", "--zoo", str(tmp_path), "--quiet", "--out", str(tmp_path / "o2"))
    assert bad.returncode == 2 and "manifest.json" in bad.stderr
    unknown = run_gmi("bench", "--methods", "magic", "--quiet", "--out", str(tmp_path / "o3"))
    assert unknown.returncode == 2 and "unknown methods" in unknown.stderr


def test_ranks_topk_and_ties():
    d = np.array([[0.1, 0.2, 0.3], [0.5, 0.5, 0.1], [0.3, 0.2, 0.1]])
    truth = np.array([0, 0, 0])
    ranks = metrics.true_ranks(d, truth)
    assert ranks.tolist() == [1, 3, 3]  # a tie counts against the true model
    s = metrics.summarise(ranks)
    assert (
        s["top1"] == pytest.approx(1 / 3)
        and s["top4"] == 1.0
        and s["mean_rank"] == pytest.approx(7 / 3)
    )
    assert metrics.confusion(d, truth, 3).tolist() == [[1, 0, 2], [0, 0, 0], [0, 0, 0]]
    lo, hi = metrics.bootstrap_interval(np.array([1.0] * 80 + [0.0] * 20))
    assert lo < 0.8 < hi and hi - lo < 0.25


def test_swapped_pair_metric_and_groups():
    d = np.array([[0.1, 0.2], [0.3, 0.3]])
    out = metrics.swapped_pair_accuracy(d, np.array([0, 1]), ["a", "b"], ("a", "b"))
    assert out["pairwise"] == pytest.approx(0.75)
    assert make_groups([0, 0, 0, 0, 0, 1, 1, 1, 1], 4) == [[0, 1, 2, 3], [5, 6, 7, 8]]


def test_validation_split_learned_space_and_heldout_zoo(tmp_path):
    """The tuning split never uses the test prompts; the learned space adds knn-space; the
    frozen held-out zoo runs through the same protocol with its own conditional pair."""
    methods = ["knn", "knn-space", "local-hub"]
    val = run_gmi(
        "bench", "--quick", "--split", "val", "--space", "whiten", "--images-per-query", "1",
        "--queries-per-model", "4", "--methods", *methods, "--json", "--quiet",
        "--out", str(tmp_path / "val"),
    )  # fmt: skip
    assert val.returncode == 0, val.stderr
    results = json.loads(val.stdout)
    assert (results["split"], results["space"], results["zoo"]) == ("val", "whiten", "builtin-val")
    assert set(results["settings"]["1"]["methods"]) == set(methods)
    assert "local-hub - knn-space" in results["settings"]["1"]["paired_top1"]
    held = run_gmi(
        "bench", "--quick", "--zoo", "heldout", "--images-per-query", "1", "--methods", "knn",
        "--queries-per-model", "4", "--json", "--quiet", "--out", str(tmp_path / "heldout"),
    )  # fmt: skip
    assert held.returncode == 0, held.stderr
    results = json.loads(held.stdout)
    assert results["zoo"] == "heldout" and "comic-base" in results["models"]
    pairs = results["settings"]["1"]["methods"]["knn"]["swapped_pairs"]
    assert set(pairs) == {"setting-rose|setting-teal"}
    assert results["settings"]["1"]["methods"]["knn"]["top1"] > 0.5  # far above chance (1/8)
    bad = run_gmi("bench", "--zoo", str(tmp_path), "--split", "val", "--quiet")
    assert bad.returncode == 2 and "--split val" in bad.stderr
