"""Measure the choices the engine's defaults rest on, on the built-in zoo (offline encoder).

Compares image feature sets (pooled head vs block statistics), interrogators (none / labels /
retrieval / the true prompt as an upper bound), gamma rules, spec sizes K and prompt
temperatures, with user-style queries (JPEG, other sizes). Prints markdown tables.

    .venv/bin/python benchmarks/choose_defaults.py [--queries-per-model 12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from tqdm import tqdm

from gmi.encoders import efficientnet, text_minilm
from gmi.encoders.base import l2_normalise
from gmi.encoders.offline import FEATURE_SETS, features_from_backbone
from gmi.interrogators.labels import imagenet_classes
from gmi.spec.kernels import median_heuristic_gamma
from gmi.spec.scoring import SpecStack, score_queries
from gmi.spec.specification import build_specification
from gmi.zoo import as_upload, load_zoo
from gmi.zoo.export import query_upload, spec_images


def topk(dist: np.ndarray, truth: np.ndarray, k: int) -> float:
    ranks = (dist < dist[np.arange(len(truth)), truth][:, None]).sum(axis=1)
    return float((ranks < k).mean())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries-per-model", type=int, default=12)
    args = parser.parse_args()
    started = time.perf_counter()
    zoo = list(load_zoo())
    spec_out, prompts = [], None
    for name in tqdm(zoo, desc="spec images"):
        images, prompts = spec_images(name)
        spec_out.append(efficientnet.run_backbone(images))
    q_images, q_truth, q_prompts = [], [], []
    n_test = 48
    for m, name in enumerate(zoo):
        for k in range(args.queries_per_model):
            data, prompt = query_upload(name, (m * args.queries_per_model + k) % n_test)
            import io

            from PIL import Image

            q_images.append(Image.open(io.BytesIO(data)).convert("RGB"))
            q_truth.append(m)
            q_prompts.append(prompt)
    _ = as_upload
    q_out = efficientnet.run_backbone(q_images)
    truth = np.array(q_truth)
    spec_q = text_minilm.encode_texts(list(prompts))
    true_q = text_minilm.encode_texts(q_prompts)
    classes = imagenet_classes()
    label_text = [
        "a picture of " + ", ".join(classes[i] for i in row)
        for row in np.argsort(-q_out.logits, axis=1)[:, :3]
    ]
    labels_q = text_minilm.encode_texts(label_text)
    print(
        f"data ready in {time.perf_counter() - started:.0f}s: "
        f"{len(zoo)} models, {len(truth)} queries\n"
    )

    def evaluate(
        feature_set: str,
        gamma_rule: str = "first",
        n_points: int | None = None,
        tau: float = 0.1,
        gamma_scale: float = 1.0,
    ) -> dict[str, float]:
        feats = [features_from_backbone(o, feature_set) for o in spec_out]
        qf = features_from_backbone(q_out, feature_set)
        if gamma_rule == "first":
            gamma = median_heuristic_gamma(feats[0])
        else:
            gamma = median_heuristic_gamma(np.concatenate(feats))
        gamma *= gamma_scale
        specs = [
            build_specification(
                f, spec_q, list(prompts), encoder="x", gamma=gamma, n_points=n_points
            )
            for f in feats
        ]
        stack = SpecStack.from_specs(zoo, specs)
        pairs = np.concatenate(feats)
        pair_q = np.concatenate([spec_q] * len(zoo))
        sims = l2_normalise(qf) @ l2_normalise(pairs).T
        near = np.argsort(-sims, axis=1)[:, :8]
        w = np.exp((np.take_along_axis(sims, near, 1) - sims.max(1, keepdims=True)) / 0.02)
        retr_q = l2_normalise((w[..., None] * pair_q[near]).sum(1))
        res = {}
        for method, qp in (
            ("rkme", None),
            ("labels", labels_q),
            ("retrieval", retr_q),
            ("oracle", true_q),
        ):
            d = score_queries(stack, qf, None, qp, tau)
            res[method] = (topk(d, truth, 1), topk(d, truth, 4))
        model_of_pair = np.repeat(np.arange(len(zoo)), len(prompts))
        knn = np.full((len(truth), len(zoo)), np.inf)
        dist_pairs = 2 - 2 * sims
        for m in range(len(zoo)):
            knn[:, m] = dist_pairs[:, model_of_pair == m].min(axis=1)
        res["knn"] = (topk(knn, truth, 1), topk(knn, truth, 4))
        return res

    def row(label: str, res: dict) -> str:
        return (
            f"| {label} | "
            + " | ".join(
                f"{res[m][0]:.3f} / {res[m][1]:.3f}"
                for m in ("rkme", "knn", "labels", "retrieval", "oracle")
            )
            + " |"
        )

    header = (
        "| {} | rkme | knn | weighted-labels | weighted-retrieval | weighted-oracle |\n"
        "|---|---|---|---|---|---|"
    )
    print("## Feature sets (top-1 / top-4; K = N, gamma = median of first model, tau = 0.1)\n")
    print(header.format("features"))
    for fs in FEATURE_SETS:
        if fs != "default" and not FEATURE_SETS[fs][2]:  # palette sets: feature_space.py
            print(row(fs, evaluate(fs)))
    print("\n## Gamma rule and scale (default features)\n")
    print(header.format("gamma"))
    for rule in ("first", "pooled"):
        for scale in (0.1, 0.3, 1.0, 3.0, 10.0):
            print(row(f"{rule} x{scale}", evaluate("default", rule, gamma_scale=scale)))
    print("\n## Spec points K (default features)\n")
    print(header.format("K"))
    for k in (8, 16, 32, None):
        print(row(str(k or "N=48"), evaluate("default", n_points=k)))
    print("\n## Prompt temperature tau (default features)\n")
    print(header.format("tau"))
    for tau in (0.02, 0.05, 0.1, 0.3):
        print(row(str(tau), evaluate("default", tau=tau)))
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
