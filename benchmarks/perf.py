"""Speed of the engine on this machine (numbers for the closing note and docs/architecture.md).

    .venv/bin/python benchmarks/perf.py [--models 1000] [--repeats 20]

Measures (1) submit time for one 48-image imagefolder, cold (models load) and warm; (2) identify
latency for one image with models loaded, split into encode / interrogate / score; (3) scoring
one query against M synthetic registered models (K = 48 points each, offline-encoder sizes):
the plain float64 formulas of gmi.spec.scoring (uniform and prompt-weighted RKME, local
scoring; the reference) and the ranking core that identify uses (`core_*`: the fast float32
local path, and the chunked float64 RKME), plus building the padded stack once. Hub-size
curves: benchmarks/scale.py and scale_curve.py (docs/performance.md).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from gmi.hub import Hub
from gmi.imagefolder import write_imagefolder
from gmi.search import ranking
from gmi.search.arrays import PackedArrays
from gmi.search.weights import PointWeights
from gmi.spec.scoring import SpecStack, score_local, score_queries
from gmi.spec.specification import Specification
from gmi.zoo.export import query_upload, spec_images


def _median_ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 2)


def measure_submit_and_identify(repeats: int) -> dict:
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("flat-base", "ink-base", "photo-base"):
            images, prompts = spec_images(name)
            write_imagefolder(root / "in" / name, images, prompts)
        hub = Hub(root / "hub")
        t0 = time.perf_counter()
        hub.submit_folder("flat-base", root / "in" / "flat-base", progress=False)
        out["submit_48_cold_s"] = round(time.perf_counter() - t0, 2)
        warm = []
        for name in ("ink-base", "photo-base"):
            t0 = time.perf_counter()
            hub.submit_folder(name, root / "in" / name, progress=False)
            warm.append(time.perf_counter() - t0)
        out["submit_48_warm_s"] = round(statistics.mean(warm), 2)
        query = root / "q.jpg"
        query.write_bytes(query_upload("ink-base", 0)[0])
        hub.identify([query])  # warm-up
        parts: dict[str, list[float]] = {"encode_s": [], "interrogate_s": [], "score_s": []}
        total = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            [result] = hub.identify([query])
            total.append(time.perf_counter() - t0)
            for key in parts:
                parts[key].append(result.timings[key])
        out["identify_ms"] = {k.replace("_s", ""): _median_ms(v) for k, v in parts.items()}
        out["identify_ms"]["total_incl_decode"] = _median_ms(total)
    return out


def synthetic_specs(m: int, k: int = 48, d: int = 544, e: int = 384) -> list[Specification]:
    rng = np.random.default_rng(0)
    specs = []
    for _ in range(m):
        pts = rng.normal(size=(k, d)).astype(np.float32)
        pts /= np.linalg.norm(pts, axis=1, keepdims=True)
        q = rng.normal(size=(k, e)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        specs.append(
            Specification(
                points=pts,
                beta=np.full(k, 1 / k),
                point_prompts=q,
                pair_features=pts,
                pair_prompts=q,
                prompt_texts=[""] * k,
                gamma=1.0,
                encoder="synthetic",
                prompt_set="x",
            )
        )
    return specs


def measure_scoring(m: int, repeats: int) -> dict:
    specs = synthetic_specs(m)
    t0 = time.perf_counter()
    stack = SpecStack.from_specs([f"m{i}" for i in range(m)], specs)
    build = time.perf_counter() - t0
    rng = np.random.default_rng(1)
    z = rng.normal(size=(1, 544)).astype(np.float32)
    z /= np.linalg.norm(z)
    q = rng.normal(size=(1, 384)).astype(np.float32)
    names = [f"m{i}" for i in range(m)]
    arrays = PackedArrays.from_specs(names, specs)  # what the ranking core scores
    weights = PointWeights.from_prompts(q, 1, 0.1)
    timings: dict[str, list[float]] = {
        "uniform": [],
        "weighted": [],
        "local_weighted": [],
        "core_local_weighted": [],
        "core_rkme_weighted": [],
    }
    for _ in range(repeats):
        t0 = time.perf_counter()
        ranking.top_k(ranking.distances(arrays, z, weights, [[0]], scoring="local")[0], 10)
        timings["core_local_weighted"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        ranking.top_k(ranking.distances(arrays, z, weights, [[0]], scoring="rkme")[0], 10)
        timings["core_rkme_weighted"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score_queries(stack, z)
        timings["uniform"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score_queries(stack, z, None, q)
        timings["weighted"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        score_local(stack, z, q)
        timings["local_weighted"].append(time.perf_counter() - t0)
    return {
        "models": m,
        "points_per_model": 48,
        "stack_build_s": round(build, 2),
        "score_one_query_ms": {k: _median_ms(v) for k, v in timings.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--models", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    report = {
        "submit_identify": measure_submit_and_identify(args.repeats),
        "scoring": measure_scoring(args.models, args.repeats),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
