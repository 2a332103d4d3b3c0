"""The offline default encoder: EfficientNet-Lite0 features + all-MiniLM-L6-v2 prompts.

Generators differ mostly in *style*, and a classifier's pooled last layer is mostly *content*.
So the image feature can combine channel mean/std of intermediate blocks (style statistics,
as in style transfer's Gram/AdaIN statistics) with the pooled head feature. Each group is
L2-normalised and the groups are averaged (concatenated / sqrt(groups)), so every group weighs
the same whatever its width. Which groups win was measured on the demo zoo
(docs/architecture.md, "Choosing the image feature"); variants stay selectable by name:

    offline                 the measured default (see FEATURE_SETS["default"])
    offline:pooled          pooled last-layer feature only (content)
    offline:style           early + middle block statistics only
    offline:style+pooled    both
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from gmi.encoders import efficientnet, text_minilm
from gmi.encoders.base import Encoder, l2_normalise
from gmi.errors import UnknownPluginError

# feature set -> tapped blocks (style statistics) and whether the pooled head is included
FEATURE_SETS: dict[str, tuple[tuple[int, ...], bool]] = {
    "pooled": ((), True),
    "early": ((0, 2, 4), False),
    "style": ((0, 2, 4, 7, 10), False),
    "style+pooled": ((0, 2, 4, 7, 10), True),
    "deep": ((10, 14), True),
}
FEATURE_SETS["default"] = FEATURE_SETS["style"]


def features_from_backbone(out: efficientnet.BackboneOutput, feature_set: str) -> np.ndarray:
    """Assemble one feature set from a backbone pass (lets a benchmark try every set at once)."""
    taps, use_pooled = FEATURE_SETS[feature_set]
    groups = [l2_normalise(out.taps[i]) for i in taps]
    if use_pooled:
        groups.append(l2_normalise(out.pooled))
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
        taps, use_pooled = FEATURE_SETS[self.feature_set]
        # only the blocks this feature set reads: the default stops after block 10 of 16
        out = efficientnet.run_backbone(images, taps=taps, head=use_pooled, device=self.device)
        return features_from_backbone(out, self.feature_set)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return text_minilm.encode_texts(texts, device=self.device)


def create(argument: str | None, device: str = "cpu") -> OfflineEncoder:
    return OfflineEncoder(argument or "default", device=device)
