"""`gmi train`: train the attribution network on a hub's kept images, then re-encode the hub.

The training data is what the hub already holds: every model's kept spec images (gmi.submit
.kept), labelled by model. The weights become hub state (gmi.attribution.weights) and the
hub is re-encoded with `trained:<digest>` in one switch (gmi.submit.reencode): identification
uses the trained features from the next query on, and a model submitted later is encoded
with them like any other (the network never needs to have seen it). A hub never trained
works as before. Training again (after the hub grew) trains from scratch on today's models.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from gmi.attribution.network import NetworkConfig
from gmi.attribution.training import TrainingConfig, TrainingSet, train_network
from gmi.attribution.weights import (
    ENCODER_PREFIX,
    TRAINED_WITH,
    read_weights,
    save_weights,
    weights_path,
)
from gmi.errors import InvalidInputError
from gmi.imagefolder import read_imagefolder
from gmi.images import open_image
from gmi.submit.reencode import ReencodeResult, reencode, refuse_unkept

if TYPE_CHECKING:
    from gmi.hub import Hub
    from gmi.submit.executors import Executor


@dataclass
class TrainResult:
    encoder: str
    base_encoder: str
    models: int
    images: int
    train_s: float
    training: dict[str, Any]
    reencoded: ReencodeResult

    def to_json(self) -> dict[str, Any]:
        return {
            "encoder": self.encoder,
            "base_encoder": self.base_encoder,
            "models": self.models,
            "images": self.images,
            "train_s": round(self.train_s, 1),
            "training": self.training,
            "reencode": self.reencoded.to_json(),
        }


def base_encoder_of(hub: Hub, encoder: str) -> str:
    """The frozen encoder a new network joins: the registry's, or, when the registry already
    runs a trained encoder, the one that encoder was joined to."""
    if not encoder.startswith(ENCODER_PREFIX):
        return encoder
    digest = encoder[len(ENCODER_PREFIX) :]
    return read_weights(weights_path(hub.home, digest), digest).base_encoder


def hub_training_set(hub: Hub) -> tuple[TrainingSet, dict[str, str | None]]:
    """Every model's kept images, read lazily (the training keeps a bounded sample of views),
    and the models they are, by name and inputs digest (so a model submitted or replaced
    later is known as one the encoder never saw)."""
    store = hub.registry()
    records = store.list()
    if len(records) < 2:
        raise InvalidInputError("training needs a hub of at least 2 models")
    refuse_unkept(store, records, "trained on")
    paths = [
        [pair.path for pair in read_imagefolder(store.kept_dir(r.spec_file)).pairs] for r in records
    ]
    models = {r.name: r.extra.get("inputs") for r in records}
    return TrainingSet([len(p) for p in paths], lambda m, i: open_image(paths[m][i])), models


def train_hub(
    hub: Hub,
    config: TrainingConfig | None = None,
    executor: Executor | None = None,
    *,
    progress: bool = True,
) -> TrainResult:
    """Train on the hub's kept images, store the weights, re-encode the hub with them."""
    if not hub.exists():
        raise InvalidInputError(f"{hub.home}: no gmi registry here (submit a model first)")
    config = config or TrainingConfig()
    base = base_encoder_of(hub, hub.settings().encoder)
    data, models = hub_training_set(hub)
    started = time.perf_counter()
    trained = train_network(
        data, NetworkConfig(), config, device=hub.compute_device, progress=progress
    )
    train_s = time.perf_counter() - started
    weights = trained.weights(base)
    weights = replace(weights, info={**weights.info, TRAINED_WITH: models})
    encoder = save_weights(hub.home, weights)
    reencoded = reencode(hub, encoder, executor, progress=progress)
    return TrainResult(
        encoder=encoder,
        base_encoder=base,
        models=data.n_models,
        images=sum(data.counts),
        train_s=train_s,
        training={"config": config.to_json(), "report": asdict(trained.report)},
        reencoded=reencoded,
    )
