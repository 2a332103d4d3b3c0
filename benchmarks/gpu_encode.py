"""Submission throughput per device: encode, and generate + encode with a tiny pipeline.

    .venv/bin/python benchmarks/gpu_encode.py [--devices cpu cuda] [--images 256]
        [--generate 32] [--steps 2] [--json]

- `encode`: the default encoder (`offline:style+palette`: EfficientNet-Lite0 blocks + palette)
  over --images zoo spec images (JPEG views, as a submit encodes them) in gmi's fixed-shape
  batches (gmi.encoders.batches), after one warm-up batch; plus the prompts (MiniLM).
- `generate+encode`: the tiny random Stable Diffusion of the tests (tests/tiny_hf.py; 32x32
  images, --steps steps, fp16 on CUDA as gmi runs real pipelines) makes --generate images,
  which are then encoded: the path of `submit --diffusers` / a submit-many task.

Each row: device, stage, images, seconds, images_per_s. A device that is not present is
reported as skipped, not measured. The tiny pipeline measures gmi's overhead around a
pipeline, not Stable Diffusion's speed (a real SD 1.5 step costs ~1000x more).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gmi.augment import spec_views
from gmi.encoders import load_encoder
from gmi.encoders.batches import ENCODE_BATCH, encode_in_batches
from gmi.zoo import load_prompt_set, load_zoo

ENCODER = "offline:style+palette"


def zoo_images(n: int):
    prompts = list(load_prompt_set())
    models = sorted(load_zoo())
    pairs = [(models[i % len(models)], prompts[i % len(prompts)]) for i in range(n)]
    images = [load_zoo()[m].generate(p, seed=i) for i, (m, p) in enumerate(pairs)]
    return spec_views(images, "jpeg"), [p for _, p in pairs]


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure_encode(device: str, images, prompts) -> dict:
    encoder = load_encoder(ENCODER, device)
    encode_in_batches(encoder, images[:ENCODE_BATCH], progress=False)  # warm-up (weights, kernels)
    encoder.encode_texts(prompts[:4])
    sync(device)
    started = time.perf_counter()
    encode_in_batches(encoder, images, progress=False)
    encoder.encode_texts(prompts)
    sync(device)
    seconds = time.perf_counter() - started
    return {
        "device": device,
        "stage": "encode",
        "images": len(images),
        "seconds": seconds,
        "images_per_s": len(images) / seconds,
    }


def measure_generate(device: str, count: int, steps: int, prompts) -> dict:
    from tiny_hf import make_stable_diffusion

    from gmi.generators import load_generator

    with tempfile.TemporaryDirectory() as tmp:
        source = make_stable_diffusion(Path(tmp) / "sd")
        generator = load_generator(f"diffusers:{source}", device=device, steps=steps)
        encoder = load_encoder(ENCODER, device)
        generator.generate(prompts[:2], [0, 1])  # warm-up
        sync(device)
        started = time.perf_counter()
        images = generator.generate(prompts[:count], list(range(count)))
        encode_in_batches(encoder, spec_views(images, "jpeg"), progress=False)
        encoder.encode_texts(prompts[:count])
        sync(device)
        seconds = time.perf_counter() - started
    return {
        "device": device,
        "stage": "generate+encode",
        "images": count,
        "steps": steps,
        "seconds": seconds,
        "images_per_s": count / seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--generate", type=int, default=32)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    images, prompts = zoo_images(args.images)
    rows = []
    for device in args.devices:
        if device == "cuda" and not torch.cuda.is_available():
            rows.append({"device": "cuda", "skipped": "no CUDA device here"})
            continue
        rows.append(measure_encode(device, images, prompts))
        rows.append(measure_generate(device, args.generate, args.steps, prompts))
        print(json.dumps(rows[-2:]), file=sys.stderr)
    info = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    if args.json:
        print(json.dumps({"machine": info, "rows": rows}, indent=2))
    else:
        print(info)
        for row in rows:
            print(row)


if __name__ == "__main__":
    main()
