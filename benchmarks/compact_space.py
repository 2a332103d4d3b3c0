"""How many directions the compact learned space needs, and what bfloat16 points cost: top-10
agreement with the float64 reference in the FULL whitened space, top-1 hit rate and exact
latency, for several r and both storages, on one synthetic hub.

    .venv/bin/python benchmarks/compact_space.py [--models 10000] [--images 48]
        [--queries 200] [--dims 32 64 128 256] [--json]

The hub is scale.py's (real zoo features: model i = zoo model i mod 32 with its own style
offset and per-image noise; queries are real held-out uploads of that zoo model, same offset,
fresh noise), packed in memory; every space is fitted on its first 2,048 models as ann.py
fits it. The reference is the float64 plain formula (backend "reference") on the points in
the full whitened space, batched 32 queries per pass; each row's `agreement` is the share of
queries whose fast top-10 (in order) equals it, `top10_overlap` the mean overlap. Prints one
JSON object per configuration with --json (full width first).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from scale import Synthetic, _rss_mb, zoo_features
from synthetic_hub import space_of, synthetic_arrays

from gmi.encoders import DEFAULT_ENCODER
from gmi.search import ranking
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings
from gmi.spec.kernels import default_gamma


def compare(fast, reference, arrays, names) -> dict:
    """Agreement (same top 10 in order), mean top-10 overlap and top-1 hit rate."""
    pairs = list(zip(fast, reference, strict=True))
    return {
        "agreement": float(np.mean([list(a) == list(b) for a, b in pairs])),
        "top10_overlap": float(np.mean([len(set(a) & set(b)) / 10 for a, b in pairs])),
        "top1_hit_rate": float(
            np.mean([arrays.names[int(f[0])] == n for f, n in zip(fast, names, strict=True)])
        ),
    }


def top10(arrays, features, prompts, tau, backend: str, batch: int = 32) -> list[np.ndarray]:
    out = []
    for s in range(0, len(features), batch):
        rows = list(range(s, min(s + batch, len(features))))
        weights = PointWeights.from_prompts(prompts[rows], len(rows), tau)
        d = ranking.distances(
            arrays, features[rows], weights, [[i] for i in range(len(rows))], backend=backend
        )
        out += [ranking.top_k(row, 10) for row in d]
    return out


def single_ms(arrays, features, prompts, tau, n: int = 20) -> float:
    times = []
    top10(arrays, features[:1], prompts[:1], tau, "numpy")  # warm-up
    for q in range(min(n, len(features))):
        t0 = time.perf_counter()
        top10(arrays, features[[q]], prompts[[q]], tau, "numpy")
        times.append(1000 * (time.perf_counter() - t0))
    return round(float(np.median(times)), 2)


def measure(args: argparse.Namespace) -> list[dict]:
    zoo = zoo_features(Path(args.cache).expanduser(), DEFAULT_ENCODER)
    synthetic = Synthetic(zoo, args.images, DEFAULT_ENCODER)
    tau = HubSettings().tau
    raw = synthetic_arrays(synthetic, args.models, args.images, default_gamma(zoo["spec"][0]))
    rng = np.random.default_rng(1)
    targets = rng.choice(args.models, args.queries, replace=args.queries > args.models)
    pairs = [synthetic.query(int(i), j) for j, i in enumerate(targets)]
    features = np.stack([f for f, _ in pairs]).astype(np.float32)
    prompts = np.stack([p for _, p in pairs])
    names = [f"synthetic/m{int(t):07d}" for t in targets]
    full = raw.in_space(space_of(raw, args.images, dims=0))
    print(f"{args.models} models; float64 reference in the full space...", file=sys.stderr)
    t0 = time.perf_counter()
    reference = top10(full, features, prompts, tau, "reference")
    print(f"reference: {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    rows = []
    for dims in [0, *args.dims]:
        arrays = full if dims == 0 else raw.in_space(space_of(raw, args.images, dims=dims))
        fast = top10(arrays, features, prompts, tau, "numpy")
        row = {
            "models": args.models,
            "images_per_model": args.images,
            "dims": int(arrays.dim),
            "dtype": "bfloat16" if dims else "float32",
            **compare(fast, reference, arrays, names),
            "reference_top1_hit_rate": float(
                np.mean([full.names[int(r[0])] == n for r, n in zip(reference, names, strict=True)])
            ),
            "p50_ms": single_ms(arrays, features, prompts, tau),
            "points_mb": round(len(arrays.points) * arrays.dim * (2 if dims else 4) / 2**20, 1),
            "rss_mb": _rss_mb(),
        }
        rows.append(row)
        print(json.dumps(row), file=sys.stderr)
        if dims and args.float32:  # the same space, float32 points: what bfloat16 costs
            space = space_of(raw, args.images, dims=dims)
            from dataclasses import replace

            arrays = raw.in_space(replace(space, storage="float32"))
            fast = top10(arrays, features, prompts, tau, "numpy")
            extra = dict(row, dtype="float32", p50_ms=single_ms(arrays, features, prompts, tau))
            extra.update(compare(fast, reference, arrays, names))
            extra["points_mb"] = row["points_mb"] * 2
            rows.append(extra)
            print(json.dumps(extra), file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=10000)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dims", type=int, nargs="+", default=[32, 64, 128, 256])
    parser.add_argument(
        "--float32", action="store_true", help="also each compact space with float32 points"
    )
    parser.add_argument("--cache", default=os.environ.get("GMI_SCALE_CACHE", "~/.cache/gmi/scale"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = measure(args)
    for row in rows:
        print(json.dumps(row) if args.json else "  ".join(f"{k}={v}" for k, v in row.items()))


if __name__ == "__main__":
    main()
