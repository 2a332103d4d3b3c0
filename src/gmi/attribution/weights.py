"""Trained weights as hub state: one safetensors file, named by the digest of its bytes.

    HOME/encoders/<digest>.safetensors   the network's tensors + a JSON header: format,
                                         architecture, training settings and report, the
                                         base encoder whose features it joins, their mix

The encoder a registry uses after `gmi train` is `trained:<digest>` (gmi.encoders.trained):
the name IS the version, so every spec records which weights built it (Specification.encoder),
a registry's settings name the file it needs, `gmi check` verifies the file against its name,
and a process's encoder cache (keyed by name) can never hand out other weights under it.
Data, not code: no pickle; loading builds the architecture from the JSON and copies tensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import save as save_arrays

from gmi.attribution.network import AttributionNet, NetworkConfig
from gmi.errors import CorruptRegistryError
from gmi.registry.atomic import atomic_write
from gmi.safetensors_io import load_bytes_with_metadata

WEIGHTS_DIR = "encoders"
FORMAT = "gmi-attribution/1"
DIGEST_CHARS = 16
ENCODER_PREFIX = "trained:"


@dataclass(frozen=True)
class TrainedWeights:
    """A trained network with what it needs to be used: its base encoder and their mix."""

    network: AttributionNet
    base_encoder: str  # the frozen encoder whose features the embedding is joined to
    share: float  # the embedding's share of a feature row's squared length (base: 1 - share)
    info: dict[str, Any]  # training settings and report, for people (`gmi info`, docs)

    def to_bytes(self) -> bytes:
        header = {
            "format": FORMAT,
            "network": self.network.config.to_json(),
            "base_encoder": self.base_encoder,
            "share": repr(self.share),
            "info": self.info,
        }
        # contiguous: a channels-last weight's numpy view has other strides than its bytes
        arrays = {
            k: np.ascontiguousarray(v.detach().cpu().numpy())
            for k, v in self.network.state_dict().items()
        }
        return save_arrays(arrays, metadata={"gmi": json.dumps(header, sort_keys=True)})

    @classmethod
    def from_bytes(cls, data: bytes, label: str) -> TrainedWeights:
        try:
            arrays, metadata = load_bytes_with_metadata(data)
            header = json.loads(metadata["gmi"])
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}, expected {FORMAT!r}")
            network = AttributionNet(NetworkConfig.from_json(header["network"]))
            network.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
        except (SafetensorError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise CorruptRegistryError(f"{label}: not usable trained weights ({exc})") from exc
        network.eval()
        return cls(network, header["base_encoder"], float(header["share"]), header["info"])


def digest_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:DIGEST_CHARS]


def weights_path(home: str | Path, digest: str) -> Path:
    return Path(home) / WEIGHTS_DIR / f"{digest}.safetensors"


def save_weights(home: str | Path, weights: TrainedWeights) -> str:
    """Write the weights into the hub (atomically) and return the encoder name for them."""
    data = weights.to_bytes()
    digest = digest_of(data)
    path = weights_path(home, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)
    return ENCODER_PREFIX + digest


def read_weights(path: Path, digest: str | None) -> TrainedWeights:
    """Load weights from `path`; with a digest, the file must be the one it names."""
    label = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CorruptRegistryError(
            f"{label}: the trained encoder's weights are missing ({exc.strerror or exc}); "
            "restore the file or run gmi train again"
        ) from exc
    if digest is not None and digest_of(data) != digest:
        raise CorruptRegistryError(
            f"{label}: the trained encoder's weights do not match their name (damaged); "
            "restore the file or run gmi train again"
        )
    return TrainedWeights.from_bytes(data, label)


def problem_with(home: str | Path, encoder: str) -> str | None:
    """Why a registry's trained encoder cannot be loaded (`gmi check`), or None (also for
    encoders that keep nothing in the hub)."""
    if not encoder.startswith(ENCODER_PREFIX):
        return None
    digest = encoder[len(ENCODER_PREFIX) :]
    try:
        read_weights(weights_path(home, digest), digest)
    except CorruptRegistryError as exc:
        return str(exc)
    return None


TRAINED_WITH = "hub_models"  # info key: {model name: its inputs digest} when it was trained


def models_since_training(home: str | Path, encoder: str, records: list) -> list[str]:
    """The registered models a hub's trained encoder was trained without (submitted or
    replaced after `gmi train`): they are identified less well than the models it saw
    (docs/training.md, leave-model-out), until the hub trains again. Empty for encoders that
    were not trained on the hub, or whose weights do not say (then there is nothing to tell)."""
    if not encoder.startswith(ENCODER_PREFIX) or problem_with(home, encoder):
        return []
    digest = encoder[len(ENCODER_PREFIX) :]
    seen = read_weights(weights_path(home, digest), digest).info.get(TRAINED_WITH)
    if not isinstance(seen, dict):
        return []
    return [r.name for r in records if r.name not in seen or seen[r.name] != r.extra.get("inputs")]


def to_device(network: torch.nn.Module, device: str) -> torch.nn.Module:
    return network.to(device).to(memory_format=torch.channels_last)
