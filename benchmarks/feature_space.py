"""Feature, view and hub-learned-space study (issue 13): what separates a hub's models.

Three splits, never tuned on the test queries:

- `val`   (tuning): each built-in model's spec is its first 40 spec images; the queries are 16
          uploads of the 8 held-out spec prompts (new seeds, cropped, resized, JPEG).
- `test`  the benchmark's queries (held-out test prompts, as `gmi bench`), with all 48 spec
          images; plus leave-model-out and leave-family-out fits of the space, and a growth
          check (space fitted on the first half of the models, the rest added after).
- the same `test` protocol on the frozen held-out zoo (`--zoo heldout`), run once at the end.

Scoring here is the prompt-agnostic core of gmi's methods on features [n, d]: nearest
neighbour (`knn`, plain reverse image search) and uniform kernel density (`kde`, gmi's local
rule without prompt weights) at the registry's gamma (2x the median heuristic of the first
model, sharpness 10). `gmi bench --space whiten` runs the full methods with prompts.

    .venv/bin/python benchmarks/feature_space.py --split val
    .venv/bin/python benchmarks/feature_space.py --split test [--zoo heldout] [--json]

Features are cached per (zoo, encoder) in ~/.cache/gmi/feature_space/ (float32 .npy).
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gmi.augment import jpeg_round_trip
from gmi.bench.metrics import paired_difference, true_ranks
from gmi.encoders import load_encoder
from gmi.spec.kernels import default_gamma, squared_distances
from gmi.spec.scoring import LOCAL_SHARPNESS
from gmi.spec.space import DEFAULT_SHRINKAGE, ScatterStatistics, whitening
from gmi.zoo import load_prompt_set, load_zoo, stable_seed, upload_bytes
from gmi.zoo.export import query_upload, spec_images

CACHE = Path.home() / ".cache" / "gmi" / "feature_space"
VAL_PROMPTS = range(40, 48)  # spec prompts held out of the validation split's specs
N_QUERIES = 16


def images(catalogue: str) -> dict[str, list]:
    zoo = load_zoo(catalogue)
    spec_prompts = load_prompt_set("spec-prompts-v1")
    n_test = len(load_prompt_set("test-prompts-v1"))
    out: dict[str, list] = {"spec": [], "val": [], "test": []}
    for index, name in enumerate(zoo):
        spec, _ = spec_images(name, catalogue=catalogue)
        out["spec"] += [jpeg_round_trip(im) for im in spec]  # as gmi encodes spec images
        for k in range(N_QUERIES):
            prompt, seed = spec_prompts[VAL_PROMPTS[k % 8]], 2_000_000 + k
            image = zoo[name].generate(prompt, seed=seed)
            data = upload_bytes(image, stable_seed("val", name, seed))
            out["val"].append(Image.open(io.BytesIO(data)).convert("RGB"))
            data, _ = query_upload(name, (index * N_QUERIES + k) % n_test, catalogue)
            out["test"].append(Image.open(io.BytesIO(data)).convert("RGB"))
    return out


def features(catalogue: str, encoder: str) -> dict[str, np.ndarray]:
    path = CACHE / f"{catalogue}-{encoder.replace(':', '_')}"
    if not (path / "test.npy").exists():
        started = time.perf_counter()
        enc = load_encoder(encoder)
        path.mkdir(parents=True, exist_ok=True)
        for split, ims in images(catalogue).items():
            np.save(path / f"{split}.npy", enc.encode_images(ims))
        print(f"encoded {catalogue} with {encoder} in {time.perf_counter() - started:.0f}s")
    return {s: np.load(path / f"{s}.npy").astype(np.float64) for s in ("spec", "val", "test")}


def kde_distance(d2: np.ndarray, gamma: float, count: int) -> np.ndarray:
    """-log of the mean kernel over `count` points per row (rows of squared distances, +inf
    for points left out): gmi's local rule with uniform weights."""
    s = -gamma * d2
    peak = s.max(axis=1, keepdims=True)
    return -(peak[:, 0] + np.log(np.exp(s - peak).sum(axis=1) / count))


def scores(spec: np.ndarray, labels: np.ndarray, queries: np.ndarray, n: int) -> dict:
    """Distances [queries, models] for knn and kde (lower = better)."""
    d2 = squared_distances(queries, spec)
    gamma = LOCAL_SHARPNESS * default_gamma(spec[labels == 0])
    knn = np.stack([d2[:, labels == m].min(axis=1) for m in range(n)], axis=1)
    kde = [kde_distance(d2[:, labels == m], gamma, int((labels == m).sum())) for m in range(n)]
    return {"knn": knn, "kde": np.stack(kde, axis=1)}


def own_distances(points: np.ndarray, queries: np.ndarray | None, gamma: float) -> np.ndarray:
    """Local (kde) distance to one model: of `queries`, or of each point with itself left out
    (the calibration's held-out genuine matches)."""
    if queries is None:
        d2 = squared_distances(points, points)
        np.fill_diagonal(d2, np.inf)
        return kde_distance(d2, LOCAL_SHARPNESS * gamma, len(points) - 1)
    return kde_distance(squared_distances(queries, points), LOCAL_SHARPNESS * gamma, len(points))


def in_space(spec, labels, queries, n, fit_models, shrinkage):
    """Spec and queries whitened by the scatter of `fit_models` only."""
    stats = ScatterStatistics.of([spec[labels == m] for m in fit_models])
    w = whitening(stats, shrinkage)
    return spec @ w, queries @ w


def ranks_of(distances: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return true_ranks(distances, truth)


def group_ranks(distances: np.ndarray, truth: np.ndarray, size: int) -> np.ndarray:
    """Requirements of `size` consecutive queries of one model, distances averaged."""
    groups = [
        np.arange(s, s + size)
        for m in np.unique(truth)
        for s in range(np.flatnonzero(truth == m)[0], np.flatnonzero(truth == m)[-1] + 1, size)
    ]
    d = np.stack([distances[g].mean(axis=0) for g in groups])
    return true_ranks(d, np.array([truth[g[0]] for g in groups]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--zoo", choices=("builtin", "heldout"), default="builtin")
    parser.add_argument("--encoders", nargs="+", default=["offline", "offline:style+palette"])
    parser.add_argument("--shrinkage", nargs="+", type=float, default=[0.3, 1.0, 3.0, 10.0])
    parser.add_argument(
        "--calibration",
        action="store_true",
        help="only: the no-close-match miss rate and top-1 per shrinkage (the last encoder)",
    )
    parser.add_argument(
        "--classifier",
        action="store_true",
        help="also a logistic-regression classifier on the same features (needs scikit-learn)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.zoo == "heldout" and args.split == "val":
        parser.error("the held-out zoo is evaluated on its test queries only")
    zoo = load_zoo(args.zoo)
    families = [m.spec.family for m in zoo.values()]
    n = len(zoo)
    rows: dict[str, dict] = {}
    hits: dict[str, np.ndarray] = {}
    for encoder in args.encoders:
        f = features(args.zoo, encoder)
        labels = np.repeat(np.arange(n), 48)
        keep = np.tile(np.arange(48) < (40 if args.split == "val" else 48), n)
        spec, labels = f["spec"][keep], labels[keep]
        queries = f[args.split]
        truth = np.repeat(np.arange(n), N_QUERIES)
        settings = [("identity", None, None)]
        settings += [(f"whiten {a}", a, "all") for a in args.shrinkage]
        if args.split == "test":
            settings += [
                (f"whiten {DEFAULT_SHRINKAGE} leave-model-out", DEFAULT_SHRINKAGE, "model"),
                (f"whiten {DEFAULT_SHRINKAGE} leave-family-out", DEFAULT_SHRINKAGE, "family"),
                (f"whiten {DEFAULT_SHRINKAGE} first half only", DEFAULT_SHRINKAGE, "half"),
            ]
        for label, shrinkage, fit in settings:
            if fit is None:
                dist = scores(spec, labels, queries, n)
            elif fit in ("all", "half"):
                models = range(n) if fit == "all" else range(n // 2)
                z, q = in_space(spec, labels, queries, n, models, shrinkage)
                dist = scores(z, labels, q, n)
            else:  # each model's queries ranked in a space fitted without it (or its family)
                dist = {k: np.zeros((len(truth), n)) for k in ("knn", "kde")}
                held = {m: [m] for m in range(n)}
                if fit == "family":
                    held = {
                        m: [j for j in range(n) if families[j] == families[m]] for m in range(n)
                    }
                for m in range(n):
                    others = [j for j in range(n) if j not in held[m]]
                    rows_m = truth == m
                    z, q = in_space(spec, labels, queries[rows_m], n, others, shrinkage)
                    for k, v in scores(z, labels, q, n).items():
                        dist[k][rows_m] = v
            for method, d in dist.items():
                key = f"{encoder} | {label} | {method}"
                r1 = ranks_of(d, truth)
                r4 = group_ranks(d, truth, 4)
                hits[key] = r1 == 1
                rows[key] = {
                    "top1": float((r1 == 1).mean()),
                    "top4": float((r1 <= 4).mean()),
                    "four_images_top1": float((r4 == 1).mean()),
                }
    if args.calibration:  # does "no close match" stay honest in the space? (val only)
        from gmi.spec.calibration import CLOSE_QUANTILE
        from gmi.spec.kernels import median_heuristic_gamma
        from gmi.spec.space import fit_space

        f = features(args.zoo, args.encoders[-1])
        labels = np.repeat(np.arange(n), 48)
        keep = np.tile(np.arange(48) < (40 if args.split == "val" else 48), n)
        spec, labels = f["spec"][keep], labels[keep]
        queries, truth = f[args.split], np.repeat(np.arange(n), N_QUERIES)
        print(f"\n{args.encoders[-1]}: genuine queries beyond the q{CLOSE_QUANTILE} of held-out")
        print("spec images (leave-one-out, kde), by shrinkage\n")
        print("| space | miss | kde top-1 | knn top-1 |\n|---|---|---|---|")
        for shrinkage in [None, *args.shrinkage]:
            if shrinkage is None:
                z, q = spec, queries
                gamma = 2 * median_heuristic_gamma(spec[labels == 0])
            else:
                stats = ScatterStatistics.of([spec[labels == m] for m in range(n)])
                space = fit_space(stats, spec, n, shrinkage)
                z, q, gamma = space.project(spec), space.project(queries), space.gamma
            held = np.concatenate([own_distances(z[labels == m], None, gamma) for m in range(n)])
            genuine = np.concatenate(
                [own_distances(z[labels == m], q[truth == m], gamma) for m in range(n)]
            )
            miss = float((genuine > np.quantile(held, CLOSE_QUANTILE)).mean())
            d = scores(np.asarray(z, np.float64), labels, np.asarray(q, np.float64), n)
            top = {k: float((v.argmin(axis=1) == truth).mean()) for k, v in d.items()}
            label = "as encoded" if shrinkage is None else f"whiten {shrinkage}"
            print(f"| {label} | {miss:.3f} | {top['kde']:.3f} | {top['knn']:.3f} |")
        return
    if args.classifier:  # an upper-bound check: a trained classifier on the same features
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        for encoder in args.encoders:
            f = features(args.zoo, encoder)
            labels = np.repeat(np.arange(n), 48)
            keep = np.tile(np.arange(48) < (40 if args.split == "val" else 48), n)
            scaler = StandardScaler().fit(f["spec"][keep])
            model = LogisticRegression(C=1.0, max_iter=2000)
            model.fit(scaler.transform(f["spec"][keep]), labels[keep])
            proba = model.predict_proba(scaler.transform(f[args.split]))
            truth = np.repeat(np.arange(n), N_QUERIES)
            r1 = ranks_of(-proba, truth)
            key = f"{encoder} | (classifier) | logistic regression"
            hits[key] = r1 == 1
            rows[key] = {
                "top1": float((r1 == 1).mean()),
                "top4": float((r1 <= 4).mean()),
                "four_images_top1": float((group_ranks(-np.log(proba), truth, 4) == 1).mean()),
            }
    baseline = f"{args.encoders[0]} | identity | knn"
    for key in rows:
        if key != baseline:
            rows[key]["vs_knn"] = paired_difference(hits[key], hits[baseline])
    if args.json:
        print(json.dumps({"zoo": args.zoo, "split": args.split, "rows": rows}, indent=1))
        return
    print(f"\n{args.zoo} zoo, {args.split} split ({len(truth)} queries, {n} models)\n")
    print("| features | space | scoring | top-1 | top-4 | 4 images top-1 | top-1 - knn [95%] |")
    print("|---|---|---|---|---|---|---|")
    for key, r in rows.items():
        diff = r.get("vs_knn")
        cell = (
            f"{diff['difference']:+.3f} [{diff['ci95_low']:+.3f}, {diff['ci95_high']:+.3f}]"
            if diff
            else "(baseline)"
        )
        print(
            f"| {key} | {r['top1']:.3f} | {r['top4']:.3f} | {r['four_images_top1']:.3f} | {cell} |"
        )


if __name__ == "__main__":
    main()
