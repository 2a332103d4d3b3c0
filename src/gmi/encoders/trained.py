"""`trained:<digest>`: the hub-trained attribution encoder (`gmi train`, gmi.attribution).

A feature row is the base encoder's row (the frozen block statistics and palette a registry
used before training) joined with the trained network's embedding, each scaled so the row
keeps unit length and the embedding has its trained `share` of it. Joined, not replaced:
measured on the zoo, the frozen features still carry what the small network does not learn
in minutes of CPU training (docs/benchmark.md, "A hub-trained encoder").

The weights live in the registry home (`HOME/encoders/<digest>.safetensors`, found through
the `home` the Hub passes); `trained:/path/to/file.safetensors` loads a file directly (a
benchmark's weights). Prompts are encoded by the base encoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from gmi.attribution.views import centre_square, to_array
from gmi.attribution.weights import read_weights, to_device, weights_path
from gmi.encoders.base import Encoder, l2_normalise
from gmi.errors import InvalidInputError


class TrainedEncoder(Encoder):
    def __init__(self, argument: str, device: str = "cpu", home: str | None = None) -> None:
        from gmi.encoders import load_encoder

        if "/" in argument or argument.endswith(".safetensors"):
            weights = read_weights(Path(argument), None)
        elif home is None:
            raise InvalidInputError(f"encoder trained:{argument} needs its registry's home")
        else:
            weights = read_weights(weights_path(home, argument), argument)
        self.name = f"trained:{argument}"
        self.device = device
        self.network = to_device(weights.network, device)
        self.side = weights.network.config.canonical_side
        self.base = load_encoder(weights.base_encoder, device, home)
        self.share = weights.share

    @torch.inference_mode()
    def embed(self, images: list[Image.Image]) -> np.ndarray:
        """The trained embeddings [n, e] (float32; the network runs in float32 so the same
        image gives the same bytes wherever a fixed batch shape is used)."""
        x = torch.from_numpy(to_array([centre_square(im, self.side) for im in images]))
        x = x.to(self.device).contiguous(memory_format=torch.channels_last)
        return self.network(x).float().cpu().numpy()

    def encode_images(self, images: list[Image.Image]) -> np.ndarray:
        base = self.base.encode_images(images)
        joined = np.concatenate(
            [base * np.sqrt(1.0 - self.share), self.embed(images) * np.sqrt(self.share)], axis=1
        )
        return l2_normalise(joined)

    def encode_texts(self, texts: list[str]) -> np.ndarray:
        return self.base.encode_texts(texts)


def create(argument: str | None, device: str = "cpu", home: str | None = None) -> TrainedEncoder:
    if not argument:
        raise InvalidInputError("encoder trained:<digest> names its weights (see gmi train)")
    return TrainedEncoder(argument, device=device, home=home)
