"""Two-stage identification at hub scale: an ANN shortlist over every spec point, then the
exact local rule on the shortlisted models only (gmi.search.ranking, searcher `ann`).

    .venv/bin/python benchmarks/ann.py --models N [--searcher ann|milvus] [--images K]
        [--queries Q] [--nprobe P ...] [--encoder NAME] [--space identity|whiten]
        [--codec SQ8|Flat|PQ32] [--max-lists L] [--points-dir DIR] [--json]

Without --encoder / --space it measures what a new registry uses (DEFAULT_ENCODER, and the
points in the hub-learned space fitted on the first 2,048 models); "config" in each row says
what ran.

The synthetic hub is scale.py's (real zoo features: model i = zoo model i mod 32 shifted by its
own random style offset, plus per-image noise; its queries are real held-out uploads of that
zoo model with the same offset), built here straight into packed arrays in memory (no
registry: this measures the search, scale.py measures the registry). Prompt weights come from
the queries' own prompts, as the interrogator would give them.

For each query (one at a time): the searcher's shortlist, the exact rerank and the top-10
(`p50_ms`, `p95_ms` include all three); `recall_at_10` = overlap with the exact ranking's top
10 (all models scored, float32, same weights); `certified` = share of queries whose top 10 the
shortlist certificate proved (METHOD.md section 9; exact for an exact FAISS scan, and "up to
the index's recall" for an inverted file); `build_s` and `index_mb` of the index; `rss_mb`;
`exact_p50_ms` the exact scan of every model one query at a time (20 queries),
`exact_batch32_ms` per query in batches of 32.
`candidate_recall` = share of the exact top 10 among the shortlisted models (what the rerank
could reach). Prints ONE JSON object per (--nprobe, --rerank-budget) pair with --json (one
object when one of each is given); every row also goes to stderr as a JSON line as it is measured.

    .venv/bin/python benchmarks/ann.py --plot docs/performance/ann.png --from ROWS.jsonl ...

draws latency (p50, p95) against recall@10 from saved rows (several hub sizes, searchers).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scale import Synthetic, _rss_mb, config_of, zoo_features
from synthetic_hub import points_bytes, space_of, synthetic_arrays

from gmi.encoders import DEFAULT_ENCODER
from gmi.search import ann, faiss_index, ranking
from gmi.search.arrays import PackedArrays
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings
from gmi.spec.kernels import default_gamma
from gmi.spec.space import DEFAULT_SPACE, DEFAULT_SPACE_DIMS, SPACES


def exact_top10(arrays, features, prompts, tau, k=10, batch=32) -> list[np.ndarray]:
    """The exact ranking's top 10 per query (all models, batches of queries per pass)."""
    out = []
    for s in range(0, len(features), batch):
        rows = range(s, min(s + batch, len(features)))
        weights = PointWeights.from_prompts(prompts[list(rows)], len(rows), tau)
        d = ranking.distances(
            arrays, features[list(rows)], weights, [[i] for i in range(len(rows))], device="cpu"
        )
        out += [ranking.top_k(row, k) for row in d]
    return out


def index_size_mb(built: faiss_index.BuiltIndex) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "index.faiss"
        ann.faiss_module().write_index(built.index, str(path))
        return round(path.stat().st_size / 2**20, 1)


def measure(args: argparse.Namespace) -> list[dict]:
    cache = Path(args.cache).expanduser()
    zoo = zoo_features(cache, args.encoder)
    synthetic = Synthetic(zoo, args.images, args.encoder)
    tau = HubSettings().tau
    gamma = default_gamma(zoo["spec"][0])
    t0 = time.perf_counter()
    space = None
    if args.space == "whiten":  # as a registry packs them: the points in the hub's space,
        # fitted on the first 2,048 models
        first = synthetic_arrays(synthetic, min(args.models, 2048), args.images, gamma)
        space = space_of(first, args.images, dims=args.space_dims)
        del first
    folder = Path(args.points_dir).expanduser() if args.points_dir else None
    arrays = synthetic_arrays(synthetic, args.models, args.images, gamma, space, folder)
    made_s = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    targets = rng.choice(args.models, args.queries, replace=args.queries > args.models)
    pairs = [synthetic.query(int(i), j) for j, i in enumerate(targets)]
    features = np.stack([f for f, _ in pairs]).astype(np.float32)
    prompts = np.stack([p for _, p in pairs])
    print(f"hub of {args.models} models built in {made_s:.0f}s; exact ranking...", file=sys.stderr)
    t0 = time.perf_counter()
    exact = exact_top10(arrays, features, prompts, tau)
    exact_ms = 1000 * (time.perf_counter() - t0) / len(features)
    single = []  # the exact scan one query at a time (what a query costs without the index)
    for q in range(min(len(features), 20)):
        t0 = time.perf_counter()
        exact_top10(arrays, features[[q]], prompts[[q]], tau)
        single.append(1000 * (time.perf_counter() - t0))

    faiss_index.PCA_DIM = args.pca
    faiss_index.PROBE_FACTOR = args.probe_factor
    faiss_index.LIST_CODEC = args.codec
    faiss_index.MAX_LISTS = args.max_lists
    searcher = load(args)
    t0 = time.perf_counter()
    built = searcher.prepare(arrays)
    build_s = getattr(searcher, "build_s", time.perf_counter() - t0)
    size_mb = searcher.size_mb(built)
    results = []
    for q in range(len(features)):  # warm, as a serving process is: summaries built, the
        # index's and the touched points' pages in memory (the first setting paid for them)
        weights = PointWeights.from_prompts(prompts[[q]], 1, tau)
        ranking.distances(arrays, features[[q]], weights, [[0]], searcher=searcher, k=10)
    sweep = [
        (nprobe, budget, most)
        for most in args.max_points
        for nprobe in args.nprobe
        for budget in args.rerank_budget
    ]
    for nprobe, budget, most in sweep:
        faiss_index.NPROBE, ranking.MAX_POINTS = nprobe, most
        if budget is not None:  # a fixed budget (the default: the ranking's own rule)
            ranking.RERANK_BUDGET, ranking.RERANK_SHARE = budget, 0
        row = run_queries(args, arrays, searcher, features, prompts, exact, tau)
        row.update(
            nprobe=nprobe,
            max_points=most,
            exact_p50_ms=round(float(np.median(single)), 1),
            exact_batch32_ms=round(exact_ms, 1),
            build_s=round(build_s, 2),
            index_mb=size_mb,
            index=built.kind if hasattr(built, "kind") else args.searcher,
        )
        results.append(row)
        print(json.dumps(results[-1]), file=sys.stderr)
    return results


def run_queries(args, arrays, searcher, features, prompts, exact, tau) -> dict:
    """One setting's figures: each query alone through the searcher and the rerank.
    `candidate_recall`: share of the exact top 10 among the shortlist's candidates (what
    any ordering of them could reach)."""
    times, recall, certified, rounds, candidates, reach, budgets = [], [], [], [], [], [], []
    profile = cProfile.Profile() if args.profile else None
    for q in range(len(features)):
        if profile is not None and q == 0:
            profile.enable()
        weights = PointWeights.from_prompts(prompts[[q]], 1, tau)
        report: dict = {}
        t0 = time.perf_counter()
        d = ranking.distances(
            arrays, features[[q]], weights, [[0]], searcher=searcher, k=10, report=report
        )
        top = ranking.top_k(d[0], 10)
        times.append(time.perf_counter() - t0)
        recall.append(len(set(top.tolist()) & set(exact[q].tolist())) / 10)
        certified.append(bool(report.get("certified")) and "fallback" not in report)
        rounds.append(report.get("rounds", 0))
        candidates.append(report.get("candidates", 0))
        if report.get("budget") is not None:
            budgets.append(report["budget"])
        if args.searcher == "ann":
            points = report.get("points", ranking.initial_points(len(arrays.points)))
            shortlist = searcher.shortlist(arrays, arrays.to_space(features[[q]]), points)
            reach.append(len(set(shortlist.slots.tolist()) & set(exact[q].tolist())) / 10)
    if profile is not None:
        profile.disable()
        pstats.Stats(profile, stream=sys.stderr).sort_stats("tottime").print_stats(20)
    p50, p95 = np.percentile(np.array(times) * 1000, [50, 95])
    return {
        "models": args.models,
        "searcher": args.searcher,
        "images_per_model": args.images,
        "points": len(arrays.points),
        "dim": int(arrays.dim),
        "probe_factor": args.probe_factor,
        "queries": len(features),
        "p50_ms": round(float(p50), 2),
        "p95_ms": round(float(p95), 2),
        "recall_at_10": round(float(np.mean(recall)), 4),
        "candidate_recall": round(float(np.mean(reach)), 4) if reach else None,
        "certified": round(float(np.mean(certified)), 3),
        "mean_rounds": round(float(np.mean(rounds)), 2),
        "mean_candidates": round(float(np.mean(candidates)), 1),
        "points_mb": round(points_bytes(arrays) / 2**20, 1),
        "rss_mb": _rss_mb(),
        "rss_anon_mb": _rss_mb("RssAnon"),
        "rerank_budget": round(float(np.mean(budgets)), 1) if budgets else None,
        "config": config_of(args.encoder, args.space, arrays),
    }


class _Faiss:
    """The embedded searcher, as the registry uses it (index kept on the arrays object); the
    built index is cached in --cache (a 10^5 hub takes minutes to index), and build_s is the
    time of the build that made it."""

    def __init__(self, cache: Path | None = None) -> None:
        self.searcher = ann.AnnSearcher()
        self.name = "ann"
        self.cache = cache

    def prepare(self, arrays: PackedArrays):
        if self.cache is None:
            return self.searcher.index_for(arrays)
        path = self.cache.with_suffix(".faiss")
        timing = self.cache.with_suffix(".json")
        if path.exists() and timing.exists():
            index = ann.faiss_module().read_index(str(path))
            saved = json.loads(timing.read_text())
            built = faiss_index.BuiltIndex(
                index, "", index.ntotal, saved["trained_rows"], error=saved.get("error", 0.0)
            )
            arrays.device_copies["ann"] = built
            self.build_s = json.loads(timing.read_text())["build_s"]
            return built
        t0 = time.perf_counter()
        built = self.searcher.index_for(arrays)
        self.build_s = time.perf_counter() - t0
        ann.faiss_module().write_index(built.index, str(path))
        saved = {"build_s": self.build_s, "trained_rows": built.trained_rows, "error": built.error}
        timing.write_text(json.dumps(saved))
        return built

    def size_mb(self, built) -> float:
        return index_size_mb(built)

    def shortlist(self, arrays, features, n, estimate=False):
        return self.searcher.shortlist(arrays, features, n, estimate)


def load(args: argparse.Namespace):
    if args.searcher == "ann":
        name = (
            f"ann-{args.models}-{args.images}-{args.encoder.replace(':', '_')}-pca{args.pca}"
            f"-{args.space}{args.space_dims}-{args.codec}-{args.max_lists}"
        )
        return _Faiss(Path(args.cache).expanduser() / name if args.cache_index else None)
    from gmi.search.milvus import MilvusBench

    return MilvusBench(args.milvus_uri or str(Path(tempfile.mkdtemp()) / "bench.db"))


def plot(rows: list[dict], out: str) -> None:
    """p50 (dots) and p95 (ticks) latency against recall@10, one series per (searcher, hub)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    series: dict[tuple, list[dict]] = {}
    for row in rows:
        series.setdefault((row["searcher"], row["models"], row.get("index", "")), []).append(row)
    for (searcher, models, index), group in sorted(series.items()):
        group.sort(key=lambda r: r["recall_at_10"])
        kind = "Milvus Lite" if searcher == "milvus" else index
        label = f"{searcher} ({kind}), {models:,} models"
        line = ax.plot(
            [r["recall_at_10"] for r in group], [r["p50_ms"] for r in group], "o-", label=label
        )[0]
        ax.plot(
            [r["recall_at_10"] for r in group],
            [r["p95_ms"] for r in group],
            "_",
            color=line.get_color(),
            markersize=12,
        )
        seen = set()
        for r in group:  # label each distinct point of a sweep once
            key = (r["recall_at_10"], round(r["p50_ms"]))
            if r["searcher"] == "ann" and len(group) > 1 and key not in seen:
                seen.add(key)
                ax.annotate(
                    f"nprobe {r['nprobe']}",
                    (r["recall_at_10"], r["p50_ms"]),
                    textcoords="offset points",
                    xytext=(4, -10),
                    fontsize=7,
                )
        exact = group[0].get("exact_p50_ms")
        if exact:
            ax.axhline(exact, color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("recall@10 of the exact ranking")
    ax.set_ylabel("ms per query (dot p50, dash p95)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("ANN shortlist + exact rerank, 2-core CPU (dotted: exact scan p50)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plot", help="draw saved rows (--from) into this PNG and exit")
    parser.add_argument("--from", dest="rows", nargs="*", default=[], help="JSON-lines files")
    parser.add_argument("--models", type=int)
    parser.add_argument("--searcher", choices=("ann", "milvus"), default="ann")
    parser.add_argument("--milvus-uri", default=None)
    parser.add_argument("--images", type=int, default=16, help="spec images (points) per model")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[faiss_index.NPROBE])
    parser.add_argument(
        "--probe-factor",
        type=float,
        default=faiss_index.PROBE_FACTOR,
        help="probe lists holding this many times the points asked for (small: see nprobe's "
        "own effect, the recall curve)",
    )
    parser.add_argument(
        "--pca", type=int, default=faiss_index.PCA_DIM, help="index PCA dims (0: off)"
    )
    parser.add_argument(
        "--codec",
        default=faiss_index.LIST_CODEC,
        help="inverted lists' encoding: SQ8 (default), Flat, PQ32, ...",
    )
    parser.add_argument("--max-lists", type=int, default=faiss_index.MAX_LISTS)
    parser.add_argument(
        "--rerank-budget",
        type=int,
        nargs="+",
        default=[None],
        help="models scored exactly per uncertified shortlist on big hubs (default: the "
        "ranking's rule, gmi.search.ranking.rerank_budget; several: a curve)",
    )
    parser.add_argument(
        "--max-points",
        type=int,
        nargs="+",
        default=[ranking.MAX_POINTS],
        help="nearest points asked per image at most (several: a curve)",
    )
    parser.add_argument(
        "--points-dir",
        default=None,
        help="keep the generated point rows in this folder (memory-mapped; reused next run)",
    )
    parser.add_argument("--encoder", default=DEFAULT_ENCODER, help="default: the registry's")
    parser.add_argument(
        "--space", choices=SPACES, default=DEFAULT_SPACE, help="default: the registry's"
    )
    parser.add_argument(
        "--space-dims",
        type=int,
        default=DEFAULT_SPACE_DIMS,
        help="directions of the learned space (default: the registry's; 0 = all, float32)",
    )
    parser.add_argument("--cache", default=os.environ.get("GMI_SCALE_CACHE", "~/.cache/gmi/scale"))
    parser.add_argument(
        "--cache-index", action="store_true", help="keep the built FAISS index in --cache"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile of the queries (after the first), stderr"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.plot:
        rows = [
            json.loads(line)
            for path in args.rows
            for line in Path(path).read_text().splitlines()
            if line.startswith("{")
        ]
        plot(rows, args.plot)
        return
    if args.models is None:
        parser.error("--models is required (or --plot with --from)")
    results = measure(args)
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results))
    else:
        for row in results:
            print("  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
