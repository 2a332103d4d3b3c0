"""Ablation of the hub-trained encoder on the validation split (the numbers behind its
settings, docs/benchmark.md "A hub-trained encoder"): the network is trained in memory and
three features are compared with the ranking core `gmi bench` uses, in the registry default's
learned space:

    base     the default frozen features (offline:style+palette)
    trained  the trained embedding alone
    concat   both, joined as the `trained:` encoder joins them

    python benchmarks/attribution_ablation.py --steps 1200 --side 160 --lr 2e-3

Prints top-1/top-4 per feature and method at 1 and 4 images per query (JSON on stdout), and
the joined feature's per-model top-1 on stderr. Validation split only: never the test queries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from gmi.attribution.network import NetworkConfig
from gmi.attribution.training import DEFAULT_SHARE, TrainingConfig, TrainingSet, train_network
from gmi.attribution.views import centre_square, to_array
from gmi.augment import spec_views
from gmi.bench import metrics
from gmi.bench.data import builtin_data
from gmi.bench.methods import METHODS, BenchContext
from gmi.bench.runner import make_groups
from gmi.encoders import DEFAULT_ENCODER, load_encoder
from gmi.encoders.batches import encode_in_batches


@torch.inference_mode()
def embed(net: torch.nn.Module, images: list, side: int) -> np.ndarray:
    out = []
    for start in range(0, len(images), 32):
        batch = [centre_square(im, side) for im in images[start : start + 32]]
        out.append(net(torch.from_numpy(to_array(batch))).numpy())
    return np.concatenate(out)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", default="builtin")
    p.add_argument("--steps", type=int, default=TrainingConfig.steps)
    p.add_argument("--side", type=int, default=NetworkConfig.canonical_side)
    p.add_argument("--views", type=int, default=TrainingConfig.views_per_image)
    p.add_argument("--widths", default=",".join(map(str, NetworkConfig.widths)))
    p.add_argument("--margin", type=float, default=TrainingConfig.margin)
    p.add_argument("--lr", type=float, default=TrainingConfig.learning_rate)
    return p.parse_args()


def main() -> None:
    args = parse()
    torch.set_num_threads(2)
    data = builtin_data(catalogue=args.zoo, split="val", progress=False)
    network = NetworkConfig(
        widths=tuple(int(w) for w in args.widths.split(",")), canonical_side=args.side
    )
    config = TrainingConfig(
        steps=args.steps, views_per_image=args.views, margin=args.margin, learning_rate=args.lr
    )
    trained = train_network(TrainingSet.in_memory([m.images for m in data.models]), network, config)
    print(json.dumps(trained.report.__dict__), file=sys.stderr)
    started = time.perf_counter()
    net = trained.network
    spec_trained = [embed(net, spec_views(m.images, "jpeg"), args.side) for m in data.models]
    q_trained = embed(net, data.query_images, args.side)
    print(f"embedded in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    base = load_encoder(DEFAULT_ENCODER)
    spec_base = [
        encode_in_batches(base, spec_views(m.images, "jpeg"), m.name, False) for m in data.models
    ]
    q_base = base.encode_images(data.query_images)
    share = DEFAULT_SHARE

    def joined(b: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.concatenate([b * np.sqrt(1 - share), t * np.sqrt(share)], 1).astype(np.float32)

    results = {}
    for label, combine in (
        ("base", lambda b, t: b),
        ("trained", lambda b, t: t),
        ("concat", joined),
    ):
        spec = [combine(b, t) for b, t in zip(spec_base, spec_trained, strict=True)]
        queries = combine(q_base, q_trained)
        for size in (1, 4):
            groups = make_groups(data.query_models, size)
            ctx = BenchContext(data, DEFAULT_ENCODER, groups, space="whiten", space_dims=128,
                               progress=False)  # fmt: skip
            ctx.__dict__["features"] = (spec, queries)  # the cached property, precomputed
            truth = np.array([data.query_models[g[0]] for g in ctx.groups])
            for method in ("local-hub", "knn-space"):
                ranks = metrics.true_ranks(METHODS[method](ctx, 1.0), truth)
                summary = metrics.summarise(ranks)
                key = f"{label}/{method}/{size}"
                results[key] = (round(summary["top1"], 3), round(summary["top4"], 3))
                if (label, size, method) == ("concat", 1, "local-hub"):
                    per = {
                        data.names[m]: round(float((ranks[truth == m] == 1).mean()), 2)
                        for m in range(len(data.names))
                    }
                    print(json.dumps(per), file=sys.stderr)
    print(json.dumps(results, indent=0))


if __name__ == "__main__":
    main()
