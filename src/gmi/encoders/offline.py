"""The offline encoder: EfficientNet-Lite0 features + all-MiniLM-L6-v2 prompts.

Generators differ mostly in *style*, and a classifier's pooled last layer is mostly *content*.
So the image feature can combine channel mean/std of intermediate blocks (style statistics,
as in style transfer's Gram/AdaIN statistics), the pooled head feature and a colour histogram
(gmi.encoders.palette). Each group is L2-normalised and the groups are averaged (concatenated
/ sqrt(groups)), so every group weighs the same whatever its width. Which groups win was
measured (docs/architecture.md, "Choosing the image feature"; docs/benchmark.md, "Beyond
nearest neighbours"); variants stay selectable by name:

    offline:style+palette   gmi's default (the `offline` preset): block statistics + palette
    offline                 block statistics only (= offline:style; registries made before
                            the palette group keep working under this name)
    offline:pooled          pooled last-layer feature only (content)
    offline:style+pooled    block statistics + pooled head
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gmi.encoders import efficientnet, text_minilm
from gmi.encoders.base import Encoder, l2_normalise
from gmi.encoders.palette import palette_histograms
from gmi.errors import UnknownPluginError

STYLE_TAPS = (0, 2, 4, 7, 10)
# feature set -> (tapped blocks for style statistics, pooled head?, colour histogram?)
FEATURE_SETS: dict[str, tuple[tuple[int, ...], bool, bool]] = {
    "pooled": ((), True, False),
    "early": ((0, 2, 4), False, False),
    "style": (STYLE_TAPS, False, False),
    "style+pooled": (STYLE_TAPS, True, False),
    "style+palette": (STYLE_TAPS, False, True),
    "deep": ((10, 14), True, False),
}
FEATURE_SETS["default"] = FEATURE_SETS["style"]  # the bare name `offline`, kept as it was
DEFAULT_FEATURE_SET = "style+palette"  # what new registries use (gmi.presets)


def features_from_backbone(
    out: efficientnet.BackboneOutput, feature_set: str, palette: np.ndarray | None = None
) -> np.ndarray:
    """Assemble one feature set from a backbone pass (lets a benchmark try every set at once);
    `palette` holds the images' colour histograms when the set uses them."""
    taps, use_pooled, use_palette = FEATURE_SETS[feature_set]
    groups = [l2_normalise(out.taps[i]) for i in taps]
    if use_pooled:
        groups.append(l2_normalise(out.pooled))
    if use_palette:
        if palette is None:
            raise ValueError(f"feature set {feature_set!r} needs the images' colour histograms")
        groups.append(l2_normalise(palette))
    return (np.concatenate(groups, axis=1) / np.sqrt(len(groups))).astype(np.float32)


class OfflineEncoder(Encoder):
    def __init__(self, feature_set: str = "default", device: str = "cpu") -> None:
        if feature_set not in FEATURE_SETS:
            valid = ", ".join(sorted(FEATURE_SETS))
            raise UnknownPluginError(f"unknown offline feature set {feature_set!r}; valid: {valid}")
        self.feature_set = feature_set
        self.device = device
        self.name = "offline" if feature_set == "default" else f"offline:{feature_set}"

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        taps, use_pooled, use_palette = FEATURE_SETS[self.feature_set]
        # only the blocks this feature set reads: the default stops after block 10 of 16
        out = efficientnet.run_backbone(images, taps=taps, head=use_pooled, device=self.device)
        palette = palette_histograms(images) if use_palette else None
        return features_from_backbone(out, self.feature_set, palette)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return text_minilm.encode_texts(texts, device=self.device)


def create(argument: str | None, device: str = "cpu", home: str | None = None) -> OfflineEncoder:
    return OfflineEncoder(argument or "default", device=device)
