"""Training the attribution network on a hub's own images (labels = models).

First every image becomes a few random upload-like views (gmi.attribution.views) at the
network's canonical size, kept in memory as bytes (bounded: MAX_VIEWS in all, so a big hub
trains on a sample of its images). Each step draws a balanced batch of views (some models, a
few views of each, randomly mirrored) and pulls embeddings towards their model's learned
centre with a cosine-margin (CosFace) loss: an embedding is only "right" when it is closer to
its own model's centre than to any other by a margin, which is what ranking by distance needs.
The centres are thrown away after training: a model the network never saw is placed by its
images like any other.

Deterministic per seed on one machine and thread count: every random draw comes from one
numpy generator and torch's seeded generator, and the number of steps is fixed (not a
wall-clock budget), so the same hub and seed give the same weights. The step count does not
grow with the hub: training time is bounded whatever the hub's size.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from gmi.attribution.network import AttributionNet, NetworkConfig
from gmi.attribution.views import centre_square, upload_view
from gmi.attribution.weights import TrainedWeights

# the embedding's share of a joined feature row's squared length. Chosen on the validation
# split (docs/training.md: 1/56 .. 1/4 measured with the same networks): the learned space
# whitens the joined row, so the share decides how many of the kept directions are the
# embedding's; 1/28 was best for the models it saw and cost least for models it never saw
# (1/7, one group beside the offline encoder's six, cost 0.06 on those)
DEFAULT_SHARE = 1.0 / 28.0
MAX_VIEWS = 16_384  # views kept in memory for training (160 x 160 RGB: 1.2 GB)


@dataclass(frozen=True)
class TrainingConfig:
    # measured on the zoo's validation split (docs/benchmark.md): 600 -> 1200 steps lifted
    # the network's own nearest-centre accuracy 0.61 -> 0.71; 1800 steps take ~7 minutes
    # on 2 CPU cores in bfloat16
    steps: int = 1800
    models_per_batch: int = 16
    images_per_model: int = 4
    views_per_image: int = 6
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    margin: float = 0.1
    scale: float = 16.0
    seed: int = 0

    def to_json(self) -> dict:
        return asdict(self)


class TrainingSet:
    """The hub's images by model: `count(m)` images of model m, `load(m, i)` one of them
    (a registry reads them lazily from its kept images; a benchmark holds them in memory)."""

    def __init__(self, counts: Sequence[int], load: Callable[[int, int], Image.Image]) -> None:
        self.counts = list(counts)
        self.load = load

    @classmethod
    def in_memory(cls, images: Sequence[Sequence[Image.Image]]) -> TrainingSet:
        return cls([len(m) for m in images], lambda m, i: images[m][i])

    @property
    def n_models(self) -> int:
        return len(self.counts)


@dataclass
class TrainingReport:
    steps: int
    seconds: float
    final_loss: float
    final_accuracy: float  # training-batch accuracy against the centres (last 20 steps)
    models: int
    images: int


@dataclass
class ViewBank:
    """Upload-like views of the training images at the canonical size: uint8 [n, s, s, 3],
    their models [n] and, per model, the rows that are its views."""

    pixels: np.ndarray
    labels: np.ndarray
    rows: list[np.ndarray]


@dataclass
class Trained:
    """A trained network, its models' centres (diagnostics only: identification never uses
    them, so a model added after training is placed like any other) and the report."""

    network: AttributionNet
    centres: torch.Tensor
    report: TrainingReport
    config: TrainingConfig

    def weights(self, base_encoder: str, share: float = DEFAULT_SHARE) -> TrainedWeights:
        """The network as hub state, joined to `base_encoder`'s features."""
        info = {"training": self.config.to_json(), "report": asdict(self.report)}
        return TrainedWeights(self.network, base_encoder, share, info)


def view_bank(
    data: TrainingSet, config: TrainingConfig, side: int, rng: np.random.Generator, progress: bool
) -> ViewBank:
    """Random uploads of every model's images, at most MAX_VIEWS in all: on a big hub a
    sample of the models (at least 2 views each, so each step still has pairs to pull
    together) and of their images. Labels number the sampled models 0..k-1."""
    n_models = min(data.n_models, MAX_VIEWS // 2)
    models = np.sort(rng.choice(data.n_models, size=n_models, replace=False))
    counts = [data.counts[m] for m in models]
    per_image = max(1, min(config.views_per_image, MAX_VIEWS // max(1, sum(counts))))
    per_model = max(2, MAX_VIEWS // n_models) // per_image or 1
    picks = [rng.choice(c, size=min(c, per_model), replace=False) for c in counts]
    total = sum(len(p) for p in picks) * per_image
    pixels = np.empty((total, side, side, 3), dtype=np.uint8)
    labels = np.empty(total, dtype=np.int64)
    row = 0
    bar = tqdm(total=total, desc="preparing views", unit="view", disable=not progress)
    for label, (model, chosen) in enumerate(zip(models, picks, strict=True)):
        for i in chosen:
            image = data.load(int(model), int(i))
            for _ in range(per_image):
                pixels[row] = np.asarray(centre_square(upload_view(image, rng), side))
                labels[row] = label
                row += 1
            bar.update(per_image)
    bar.close()
    pixels, labels = pixels[:row], labels[:row]
    return ViewBank(pixels, labels, [np.flatnonzero(labels == m) for m in range(n_models)])


def _batch(
    bank: ViewBank, config: TrainingConfig, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """A balanced batch: models_per_batch models, images_per_model views of each, mirrored at
    random (a mirror image has the same style)."""
    n_models = len(bank.rows)
    models = rng.choice(n_models, size=min(config.models_per_batch, n_models), replace=False)
    rows = np.concatenate([rng.choice(bank.rows[m], size=config.images_per_model) for m in models])
    pixels = bank.pixels[rows]
    flip = rng.random(len(rows)) < 0.5
    pixels[flip] = pixels[flip, :, ::-1]
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(127.5).sub_(1.0)
    return x.contiguous(memory_format=torch.channels_last), torch.from_numpy(bank.labels[rows])


def bfloat16_trains_fast(device: str) -> bool:
    """Whether to train in bfloat16 autocast: on CUDA, and on CPUs with native bfloat16
    (measured here, AVX512-BF16: 0.27 s a step vs 0.45 s in float32); the statistics and the
    loss stay float32 either way."""
    if device.startswith("cuda"):
        return True
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def train_network(
    data: TrainingSet,
    network: NetworkConfig | None = None,
    config: TrainingConfig | None = None,
    *,
    device: str = "cpu",
    progress: bool = True,
) -> Trained:
    """Train a network on `data` (returned in eval mode, on the CPU, with a report)."""
    network = network or NetworkConfig()
    config = config or TrainingConfig()
    if data.n_models < 2:
        raise ValueError("training needs at least 2 models")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    bank = view_bank(data, config, network.canonical_side, rng, progress)
    net = AttributionNet(network).to(device).to(memory_format=torch.channels_last)
    n_models = len(bank.rows)
    # unit-length centres: at randn's length (~11) Adam's steps would barely turn them
    start = torch.nn.functional.normalize(torch.randn(n_models, network.embedding_dim), dim=1)
    centres = torch.nn.Parameter(start.to(device))
    parameters = [*net.parameters(), centres]
    optimiser = torch.optim.AdamW(
        parameters, lr=config.learning_rate, weight_decay=config.weight_decay
    )
    warmup = max(1, config.steps // 20)

    def rate(step: int) -> float:  # linear warm-up, then cosine decay to zero
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, config.steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    low_precision = bfloat16_trains_fast(device)
    started = time.perf_counter()
    losses: list[float] = []
    hits: list[float] = []
    net.train()
    for _ in tqdm(range(config.steps), desc="training", unit="step", disable=not progress):
        x, y = _batch(bank, config, rng)
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=low_precision):
            embedding = net(x).float()
        cosine = embedding @ torch.nn.functional.normalize(centres, dim=1).T
        margin = torch.nn.functional.one_hot(y, n_models).to(cosine.dtype) * config.margin
        loss = torch.nn.functional.cross_entropy(config.scale * (cosine - margin), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        hits.append(float((cosine.argmax(dim=1) == y).float().mean()))
    net.eval()
    report = TrainingReport(
        steps=config.steps,
        seconds=round(time.perf_counter() - started, 1),
        final_loss=float(np.mean(losses[-20:])),
        final_accuracy=float(np.mean(hits[-20:])),
        models=n_models,
        images=sum(data.counts),
    )
    centres = torch.nn.functional.normalize(centres.detach().cpu(), dim=1)
    return Trained(net.cpu(), centres, report, config)
