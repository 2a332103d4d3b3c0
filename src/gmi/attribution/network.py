"""The attribution network: a few plain convolutions from full-resolution pixels, summarised
by per-channel mean and standard deviation at every stage (the style statistics that the
frozen backbone's features are made of, here learned for this hub's models).

Why full resolution first: the models a frozen feature confuses differ in strokes one or two
pixels wide and in grain; the first convolution sees every pixel (stride 1), later stages
halve the resolution. Why statistics and not a flattened map: an image's style is the same
everywhere in it, so the embedding must not depend on where things are, nor on image size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise

import torch
from torch import nn


@dataclass(frozen=True)
class NetworkConfig:
    """The architecture, stored with the weights (a loaded network is built from it)."""

    widths: tuple[int, ...] = (32, 48, 64, 96, 128)  # each stage halves the resolution
    embedding_dim: int = 128
    canonical_side: int = 160  # images are resized so their shorter side is this many pixels

    def to_json(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}

    @classmethod
    def from_json(cls, data: dict) -> NetworkConfig:
        return cls(
            widths=tuple(int(w) for w in data["widths"]),
            embedding_dim=int(data["embedding_dim"]),
            canonical_side=int(data["canonical_side"]),
        )


def _stage(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=2, padding=(kernel - 1) // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


def channel_statistics(x: torch.Tensor) -> torch.Tensor:
    """[n, c, h, w] (non-negative) -> [n, 2c]: the logarithms of every channel's mean and
    standard deviation. Logarithms because a style shows in RATIOS: a glow's colour is the
    mean of a "pink edge" channel over the mean of an "edge" channel, whatever the number of
    edges in the picture; a linear head on log-statistics can form such ratios, on plain
    means it cannot."""
    n, c, h, w = x.shape
    # a free view in the channels-last layout the network runs in: one pass over the map
    pixels = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
    var, mean = torch.var_mean(pixels, dim=1, unbiased=False)
    std = (var.float() + 1e-6).sqrt()
    return torch.log(torch.cat([mean.float(), std], dim=1) + 1e-3)


class AttributionNet(nn.Module):
    """Image batch [n, 3, h, w] (values scaled to about -1..1) -> [n, embedding_dim]
    L2-normalised embeddings."""

    def __init__(self, config: NetworkConfig) -> None:
        super().__init__()
        self.config = config
        widths = config.widths
        # the first stage's 4x4 windows at stride 2 read every pixel once at full resolution
        stages = [_stage(3, widths[0], 4)]
        stages += [_stage(a, b, 3) for a, b in pairwise(widths)]
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(2 * sum(widths), config.embedding_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        statistics = []
        for stage in self.stages:
            x = stage(x)
            statistics.append(channel_statistics(x))
        embedding = self.head(torch.cat(statistics, dim=1))
        return nn.functional.normalize(embedding, dim=1)
