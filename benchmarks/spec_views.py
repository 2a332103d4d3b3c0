"""Spec-side views (issue 13, step 2): do spec images encoded as cropped uploads help?

Uploads are cropped to another aspect ratio and so arrive zoomed in relative to the spec
images; the remaining validation errors look like that (thin-line models drawn as their
thick-line siblings). This script encodes every spec image once more as a random crop (side
fraction in [lo, 1], aspect 3:4..4:3, then the JPEG round trip gmi's default applies) and
scores the validation queries (benchmarks/feature_space.py's split) against specs built from
the JPEG views (gmi's default), the crop views, or both (twice the points per model).

    .venv/bin/python benchmarks/spec_views.py [--split val|test] [--zoo builtin|heldout]

Crop-view features are cached beside feature_space.py's in ~/.cache/gmi/feature_space/.
"""

from __future__ import annotations

import argparse

import feature_space as fs
import numpy as np
from PIL import Image

from gmi.augment import jpeg_round_trip
from gmi.bench.metrics import true_ranks
from gmi.encoders import load_encoder
from gmi.spec.space import DEFAULT_SHRINKAGE
from gmi.zoo import load_zoo, stable_seed
from gmi.zoo.export import spec_images

ENCODER = "offline:style+palette"
CROPS = (0.85, 0.7)


def crop_view(image: Image.Image, seed: int, smallest: float) -> Image.Image:
    rng = np.random.default_rng(seed)
    w, h = image.size
    side, aspect = rng.uniform(smallest, 1.0), rng.uniform(0.75, 1.33)
    cw, ch = int(w * side * min(1, aspect)), int(h * side * min(1, 1 / aspect))
    left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    return jpeg_round_trip(image.crop((left, top, left + cw, top + ch)))


def crop_features(catalogue: str, smallest: float) -> np.ndarray:
    path = fs.CACHE / f"{catalogue}-{ENCODER.replace(':', '_')}" / f"spec-crop{smallest}.npy"
    if not path.exists():
        clean = [im for name in load_zoo(catalogue) for im in spec_images(name, None, catalogue)[0]]
        views = [crop_view(im, stable_seed("spec-view", i), smallest) for i, im in enumerate(clean)]
        np.save(path, load_encoder(ENCODER).encode_images(views))
    return np.load(path).astype(np.float64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--split", choices=("val", "test"), default="val")
    parser.add_argument("--zoo", choices=("builtin", "heldout"), default="builtin")
    args = parser.parse_args()
    n = len(load_zoo(args.zoo))
    per_model = 40 if args.split == "val" else 48
    f = fs.features(args.zoo, ENCODER)
    views = {"jpeg": f["spec"], **{f"crop{c}": crop_features(args.zoo, c) for c in CROPS}}
    views.update({f"jpeg+crop{c}": None for c in CROPS})
    queries, truth = f[args.split], np.repeat(np.arange(n), fs.N_QUERIES)
    print(f"\n{args.zoo} zoo, {args.split} split, top-1 (4 images)\n")
    print("| spec views | knn identity | kde identity | knn whiten | kde whiten |")
    print("|---|---|---|---|---|")
    for name in views:
        parts = [views[p].reshape(n, 48, -1)[:, :per_model] for p in name.split("+")]
        spec = np.concatenate(parts, axis=1)
        labels = np.repeat(np.arange(n), spec.shape[1])
        spec = spec.reshape(len(labels), -1)
        cells = []
        for whiten in (False, True):
            z, q = (spec, queries)
            if whiten:
                z, q = fs.in_space(spec, labels, queries, n, range(n), DEFAULT_SHRINKAGE)
            for d in fs.scores(z, labels, q, n).values():
                top1 = (true_ranks(d, truth) == 1).mean()
                four = (fs.group_ranks(d, truth, 4) == 1).mean()
                cells.append(f"{top1:.3f} ({four:.3f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
