"""Hub scale: index size, open time, submit time and score latency of a synthetic hub of N
models, and the top-10 agreement of the fast scoring paths with the float64 reference.

    .venv/bin/python benchmarks/scale.py --models N [--queries Q] [--device cpu|cuda]
        [--backend auto|numpy|torch] [--images K] [--encoder NAME] [--space identity|whiten]
        [--json]

Without configuration options it measures what a new registry uses (gmi.encoders
DEFAULT_ENCODER, gmi.spec.space DEFAULT_SPACE); "config" in the output says what ran.

The synthetic hub is built from REAL features: the offline encoder's features of the built-in
zoo's spec images and held-out query uploads (32 styles). Synthetic model i takes zoo model
(i mod 32)'s spec features, shifted by its own random offset (its "style", about half the
zoo's within-model spread) plus per-image noise; a query of model i is a real held-out query
feature of its zoo model with the same offset and fresh noise. Siblings of one zoo model are
therefore close and hard to tell apart, as fine-tunes of one base are on a real hub.

The hub is a real registry (spec files, SQLite rows, the packed index) built through the
normal write path and cached under --cache (default ~/.cache/gmi/scale) for reuse; its packed
index is brought in step by one sync (bulk import). Prints ONE JSON object with --json:
models, p50_ms, p95_ms (score latency per query, one query at a time, incl. top-10 selection),
batch32_ms (per query, 32 queries in one call), top10_agreement (vs float64), open_s (fresh
process: open registry + map the index), rss_mb (this process after scoring), submit_s and
remove_s (one more model into the hub, beyond encoding), index_mb (packed files on disk),
spec_mb (spec files), config (encoder, space, dims, dtype of the scanned points).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from gmi.encoders import DEFAULT_ENCODER
from gmi.registry import packed
from gmi.registry.store import Registry
from gmi.search import ranking
from gmi.search.bf16 import Bf16Rows
from gmi.search.weights import PointWeights
from gmi.settings import HubSettings
from gmi.spec.kernels import default_gamma
from gmi.spec.space import DEFAULT_SPACE, SPACES
from gmi.spec.specification import build_specification

ZOO_IMAGES = 24  # spec images encoded per zoo model
ZOO_QUERIES = 4  # held-out query uploads encoded per zoo model
OFFSET_SCALE = 0.5  # a synthetic model's style offset, relative to the within-model spread
NOISE_SCALE = 0.25  # per-image noise, relative to the within-model spread


def _suffix(encoder: str, space: str = "identity") -> str:
    """Cache names: the configuration measured before issue 13 keeps its old names."""
    tag = "" if encoder == "offline" else "-" + encoder.replace(":", "_").replace("+", "_")
    return tag + ("" if space == "identity" else f"-{space}")


def zoo_features(cache: Path, encoder_name: str = "offline") -> dict[str, np.ndarray]:
    """Real features of the zoo (encoded once, cached as safetensors)."""
    path = cache / f"zoo_features{_suffix(encoder_name)}.safetensors"
    if path.exists():
        return load_file(path)
    from gmi.augment import spec_views
    from gmi.encoders import load_encoder
    from gmi.images import open_image
    from gmi.zoo import load_zoo
    from gmi.zoo.export import query_upload, spec_images

    encoder = load_encoder(encoder_name)
    spec, prompts, queries, query_prompts, texts = [], [], [], [], []
    for name in tqdm(list(load_zoo()), desc="encoding the zoo", file=sys.stderr):
        images, words = spec_images(name)
        images, words = images[:ZOO_IMAGES], words[:ZOO_IMAGES]
        spec.append(encoder.encode_images(spec_views(images, "jpeg")))
        prompts.append(encoder.encode_texts(words))
        texts += words
        uploads = [query_upload(name, i) for i in range(ZOO_QUERIES)]
        queries.append(encoder.encode_images([open_image(data) for data, _ in uploads]))
        query_prompts.append(encoder.encode_texts([p for _, p in uploads]))
    out = {
        "spec": np.stack(spec),
        "prompts": np.stack(prompts),
        "queries": np.stack(queries),
        "query_prompts": np.stack(query_prompts),
        "text_index": np.array([sorted(set(texts)).index(t) for t in texts], np.int32),
    }
    cache.mkdir(parents=True, exist_ok=True)
    save_file(out, path, metadata={"texts": json.dumps(sorted(set(texts)))})
    return out


class Synthetic:
    """Deterministic synthetic models and queries from the zoo's real features."""

    def __init__(
        self, zoo: dict[str, np.ndarray], images: int, encoder: str = "offline", seed: int = 0
    ) -> None:
        self.zoo = zoo
        self.encoder = encoder
        self.images = images
        self.seed = seed
        spec = zoo["spec"].astype(np.float64)
        spread = np.sqrt(((spec - spec.mean(axis=1, keepdims=True)) ** 2).sum(-1).mean())
        self.dim = spec.shape[2]
        self.offset = OFFSET_SCALE * spread / np.sqrt(self.dim)
        self.noise = NOISE_SCALE * spread / np.sqrt(self.dim)
        self.n_zoo = spec.shape[0]
        self.texts = [f"zoo prompt {i}" for i in range(zoo["text_index"].max() + 1)]

    def style_offset(self, i: int) -> np.ndarray:
        return np.random.default_rng([self.seed, i, 1]).normal(size=self.dim) * self.offset

    def model(self, i: int, gamma: float):
        rng = np.random.default_rng([self.seed, i, 2])
        base = i % self.n_zoo
        rows = rng.choice(self.zoo["spec"].shape[1], self.images, replace=True)
        noise = rng.normal(size=(self.images, self.dim)) * self.noise
        z = (self.zoo["spec"][base, rows] + self.style_offset(i) + noise).astype(np.float32)
        q = self.zoo["prompts"][base, rows]
        words = [
            self.texts[self.zoo["text_index"][base * self.zoo["spec"].shape[1] + r]] for r in rows
        ]
        return build_specification(z, q, words, encoder=self.encoder, gamma=gamma)

    def query(self, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, i, 3, j])
        base = i % self.n_zoo
        k = j % self.zoo["queries"].shape[1]
        z = (
            self.zoo["queries"][base, k]
            + self.style_offset(i)
            + rng.normal(size=self.dim) * self.noise
        )
        return z.astype(np.float32), self.zoo["query_prompts"][base, k]


BULK_BATCH = 1000  # models per transaction when a hub is built (Registry.add_many)


def build_hub(home: Path, synthetic: Synthetic, n: int, settings: HubSettings) -> None:
    """A real registry of n synthetic models, bulk-imported: spec files written and rows
    committed BULK_BATCH models per transaction (Registry.add_many), then ONE packed sync."""
    registry = Registry(home)
    registry.set_settings(settings.to_strings())
    have = set(registry.list_names())
    todo = [i for i in range(n) if f"synthetic/m{i:07d}" not in have]
    t0 = time.perf_counter()
    bar = tqdm(total=len(todo), desc=f"building a {n}-model hub", file=sys.stderr, mininterval=5)
    for start in range(0, len(todo), BULK_BATCH):
        batch = todo[start : start + BULK_BATCH]
        registry.add_many(
            [(f"synthetic/m{i:07d}", synthetic.model(i, settings.gamma)) for i in batch]
        )
        bar.update(len(batch))
    bar.close()
    rows_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    packed.sync(registry.packed_source(), settings)
    built = {"models": n, "rows_s": rows_s, "sync_s": time.perf_counter() - t0}
    (home / "built.json").write_text(json.dumps(built))


def _dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def _rss_mb(field: str = "VmRSS") -> float:
    """Resident memory (MB); field "RssAnon": without the memory-mapped files' pages (the
    packed points), which the kernel drops under pressure and reads back."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


OPEN_SCRIPT = """
import sys, time
t0 = time.perf_counter()
from gmi.hub import Hub
t1 = time.perf_counter()
index = Hub(sys.argv[1]).index()
t2 = time.perf_counter()
print(t2 - t1, t1 - t0, len(index.names))
"""


def config_of(encoder: str, space: str, arrays) -> dict:
    """What a row measured: the encoder, the space the points are scanned in, their
    dimensions and storage type (the contract of scale.py / ann.py --json)."""
    return {
        "encoder": encoder,
        "space": space if arrays.space is not None else "identity",
        "dims": int(arrays.dim),
        "dtype": "bfloat16" if isinstance(arrays.points, Bf16Rows) else "float32",
    }


def measure(args: argparse.Namespace) -> dict:
    cache = Path(args.cache).expanduser()
    zoo = zoo_features(cache, args.encoder)
    synthetic = Synthetic(zoo, args.images, args.encoder)
    gamma = default_gamma(zoo["spec"][0])
    settings = HubSettings(
        encoder=args.encoder,
        gamma=gamma,
        image_dim=zoo["spec"].shape[2],
        prompt_dim=zoo["prompts"].shape[2],
        space=args.space,
    )
    home = cache / f"hub-{args.models}-{args.images}{_suffix(args.encoder, args.space)}"
    built = home / "built.json"
    if not built.exists() or json.loads(built.read_text())["models"] != args.models:
        build_hub(home, synthetic, args.models, settings)
    registry = Registry(home)

    # open the index in a fresh process (imports excluded)
    opened = subprocess.run(
        [sys.executable, "-c", OPEN_SCRIPT, str(home)], capture_output=True, text=True, check=True
    )
    open_s, import_s, usable = opened.stdout.split()
    index = packed.open_index(registry.packed_source(), settings)
    arrays = index.arrays

    rng = np.random.default_rng(1)
    targets = rng.choice(args.models, args.queries, replace=args.queries > args.models)
    pairs = [synthetic.query(int(i), j) for j, i in enumerate(targets)]
    features = np.stack([f for f, _ in pairs])
    prompts = np.stack([p for _, p in pairs])
    device = ranking.resolve_device(args.device)

    def score(rows: list[int], backend: str) -> np.ndarray:
        weights = PointWeights.from_prompts(prompts[rows], len(rows), settings.tau)
        groups = [[r] for r in range(len(rows))]
        d = ranking.distances(
            arrays, features[rows], weights, groups, backend=backend, device=device
        )
        return np.stack([ranking.top_k(row, 10) for row in d])

    score([0], args.backend)  # warm-up (device copy, caches)
    times, fast = [], []
    for q in range(args.queries):
        t0 = time.perf_counter()
        fast.append(score([q], args.backend)[0])
        times.append(time.perf_counter() - t0)
    batch = list(range(min(32, args.queries)))
    t0 = time.perf_counter()
    score(batch, args.backend)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(batch)
    rss = _rss_mb()
    n_ref = min(args.queries, args.reference_queries)
    reference = [score([q], "reference")[0] for q in range(n_ref)]
    agree = np.mean([list(a) == list(b) for a, b in zip(fast[:n_ref], reference, strict=True)])
    hits = np.mean(
        [
            arrays.names[int(r[0])] == f"synthetic/m{int(t):07d}"
            for r, t in zip(fast, targets, strict=True)
        ]
    )

    # one more model into the hub, beyond encoding (spec built beforehand), then out again
    extra = synthetic.model(10**7 - 1, gamma)
    t0 = time.perf_counter()
    registry.add("synthetic/extra", extra, replace=True)
    packed.sync(registry.packed_source(), settings)
    submit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    registry.remove("synthetic/extra")
    packed.sync(registry.packed_source(), settings)
    remove_s = time.perf_counter() - t0

    percentiles = np.percentile(np.array(times) * 1000, [50, 95])
    return {
        "models": args.models,
        "images_per_model": args.images,
        "dim": int(arrays.dim),
        "encoder": args.encoder,
        "space": args.space,
        "queries": args.queries,
        # what "auto" ran: torch on CUDA, numpy on the CPU
        "backend": args.backend
        if args.backend != "auto"
        else ("torch" if device == "cuda" else "numpy"),
        "device": device,
        "p50_ms": round(float(percentiles[0]), 2),
        "p95_ms": round(float(percentiles[1]), 2),
        "batch32_ms": round(batch_ms, 2),
        "top10_agreement": float(agree),
        "reference_queries": n_ref,
        "top1_hit_rate": float(hits),
        "open_s": round(float(open_s), 3),
        "import_s": round(float(import_s), 3),
        "rss_mb": rss,
        "submit_s": round(submit_s, 3),
        "remove_s": round(remove_s, 3),
        "index_mb": _dir_mb(home / packed.PACKED_DIR),
        "spec_mb": _dir_mb(home / "specs"),
        "usable": int(usable),
        "config": config_of(args.encoder, args.space, arrays),
        "median_ms_check": round(1000 * statistics.median(times), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, required=True)
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--reference-queries", type=int, default=64)
    parser.add_argument("--images", type=int, default=48, help="spec images per model")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--backend", choices=("auto", "numpy", "torch"), default="auto")
    parser.add_argument("--cache", default=os.environ.get("GMI_SCALE_CACHE", "~/.cache/gmi/scale"))
    parser.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help=f"default: the registry default, {DEFAULT_ENCODER} (offline: the 544-d figures "
        "before issue 13)",
    )
    parser.add_argument(
        "--space",
        choices=SPACES,
        default=DEFAULT_SPACE,
        help=f"default: the registry default, {DEFAULT_SPACE} (whiten: the hub-learned space, "
        "fitted at build, queries projected per call; identity: as encoded)",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>18}  {value}")


if __name__ == "__main__":
    main()
