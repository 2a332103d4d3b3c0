"""The hub-trained attribution encoder against today's default, on the evaluation protocol.

Trains the network (gmi.attribution, the code `gmi train` runs) on a zoo's spec images, the
images a registry of that zoo keeps, then runs `gmi bench` with `trained:<weights>` and with
the default encoder on the same queries, and reports top-1 / top-4 with paired-bootstrap
differences. Leave-out runs train without some models (--exclude: model or family names) and
report those models' queries apart: what a model submitted after training gets.

    python benchmarks/attribution.py --split val --json            # tuning split
    python benchmarks/attribution.py --split val --exclude neon    # leave-family-out
    python benchmarks/attribution.py --zoo heldout --split test    # the final, once
    python benchmarks/attribution.py --split val --weights W --share 0.07 --no-baseline
                                    # W's network joined with another share (no training)

Nothing is tuned on --split test: it is run once, at the end, for the figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from gmi.attribution.network import NetworkConfig
from gmi.attribution.training import DEFAULT_SHARE, TrainingConfig, TrainingSet, train_network
from gmi.attribution.weights import read_weights
from gmi.bench import metrics
from gmi.bench.data import builtin_data
from gmi.bench.runner import run_bench
from gmi.encoders import DEFAULT_ENCODER


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", default="builtin", choices=("builtin", "heldout"))
    p.add_argument("--split", default="val", choices=("val", "test"))
    p.add_argument("--steps", type=int, default=TrainingConfig.steps)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", nargs="*", default=[], help="models or families left out")
    p.add_argument("--methods", nargs="*", default=["local-hub", "knn-space"])
    p.add_argument("--images-per-query", nargs="*", type=int, default=[1, 4])
    p.add_argument("--out", default="bench-out/attribution")
    p.add_argument("--no-baseline", action="store_true", help="skip the default encoder's run")
    p.add_argument("--share", type=float, default=DEFAULT_SHARE, help="the embedding's share")
    p.add_argument("--weights", type=Path, help="use this network (a weights file), no training")
    p.add_argument("--json", action="store_true")
    return p.parse_args()


def hits_by(results: dict, size: str, method: str) -> np.ndarray:
    return np.asarray(results["settings"][size]["methods"][method]["ranks"]) == 1


def main() -> None:
    args = parse()
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = builtin_data(catalogue=args.zoo, split=args.split, progress=False)
    left_out = [
        i for i, m in enumerate(data.models) if m.name in args.exclude or m.family in args.exclude
    ]
    kept = [i for i in range(len(data.models)) if i not in left_out]
    started = time.perf_counter()
    if args.weights:  # the network of an earlier run (its --exclude must be given again)
        joined = replace(read_weights(args.weights, None), share=args.share)
        report = joined.info["report"]
    else:
        trained = train_network(
            TrainingSet.in_memory([data.models[i].images for i in kept]),
            NetworkConfig(),
            TrainingConfig(steps=args.steps, seed=args.seed),
            progress=not args.json,
        )
        joined, report = trained.weights(DEFAULT_ENCODER, args.share), trained.report.__dict__
    train_s = time.perf_counter() - started
    weights = out / "weights.safetensors"
    weights.write_bytes(joined.to_bytes())
    common = dict(
        zoo=args.zoo, split=args.split, methods=args.methods,
        images_per_query=args.images_per_query, progress=False,
    )  # fmt: skip
    runs = {"trained": run_bench(encoder=f"trained:{weights}", out_dir=out / "trained", **common)}
    if not args.no_baseline:
        runs["default"] = run_bench(encoder=DEFAULT_ENCODER, out_dir=out / "default", **common)
    summary: dict = {
        "zoo": args.zoo,
        "split": args.split,
        "steps": args.steps,
        "seed": args.seed,
        "excluded": [data.models[i].name for i in left_out],
        "share": args.share,
        "weights_from": str(args.weights) if args.weights else None,
        "train_s": round(train_s, 1),
        "training": report,
        "results": {},
    }
    for size in map(str, args.images_per_query):
        truth = np.array([data.query_models[g] for g in range(len(data.query_models))])
        for method in args.methods:
            row: dict = {}
            for label, results in runs.items():
                entry = results["settings"][size]["methods"][method]
                row[label] = {"top1": entry["top1"], "top4": entry["top4"]}
                if left_out and size == "1":
                    held = np.isin(truth, left_out)
                    hits = hits_by(results, size, method)
                    row[label]["top1_left_out"] = float(hits[held].mean())
                    row[label]["top1_seen"] = float(hits[~held].mean())
            if "default" in runs:
                row["trained - default"] = metrics.paired_difference(
                    hits_by(runs["trained"], size, method), hits_by(runs["default"], size, method)
                )
            summary["results"][f"{method}@{size}"] = row
    (out / "summary.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    print(json.dumps(summary, indent=None if args.json else 1))
    print(f"training {train_s:.0f}s; results in {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
