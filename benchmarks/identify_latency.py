"""One image, end to end, in a warm process: the previous default against the current one.

Builds two demo-sized hubs (32 zoo models x 48 spec images) in one process, one per
configuration, then identifies 32 distinct query uploads (one per model) three times against
each, alternating, and reports medians of the wall time and of the Hub's own timings (encode,
interrogate, score). Both hubs are measured in the same run on the same machine, so the
ratio is what to read.

    .venv/bin/python benchmarks/identify_latency.py [--json]
    .venv/bin/python benchmarks/identify_latency.py --trained W.safetensors [--json]

    before   encoder `offline` (block statistics), space `identity` (as encoded)
    now      gmi's default: `offline:style+palette` + the hub-learned space (`whiten`)
    trained  (with --trained) the hub-trained encoder `trained:W` (what `gmi train` makes,
             here from weights trained by benchmarks/attribution.py) against `now`
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import tempfile
import time
from pathlib import Path

from PIL import Image

import gmi  # noqa: F401 - sets OPENBLAS_THREAD_TIMEOUT before numpy loads (PIL does not)
from gmi.hub import Hub
from gmi.zoo import load_zoo
from gmi.zoo.export import query_upload, spec_images

CONFIGS = {
    "before": {"encoder": "offline", "space": "identity"},
    "now": {"encoder": "offline:style+palette", "space": "whiten"},
}


def build(root: Path, names: list[str], configs: dict[str, dict]) -> dict[str, Hub]:
    hubs = {}
    for label, config in configs.items():
        hub = Hub(root / label, **config)
        for name in names:
            images, prompts = spec_images(name)
            hub.submit_images(name, images, prompts, progress=False)
        hubs[label] = hub
    return hubs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--trained", type=Path, help="trained weights: compare them with now")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configs = dict(CONFIGS)
    base, new = "before", "now"
    if args.trained:
        configs = {"now": CONFIGS["now"], "trained": {**CONFIGS["now"]}}
        configs["trained"]["encoder"] = f"trained:{args.trained.resolve()}"
        base, new = "now", "trained"
    names = list(load_zoo())[: args.models]
    queries = [
        Image.open(io.BytesIO(query_upload(name, i)[0])).convert("RGB")
        for i, name in enumerate(names)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        hubs = build(Path(tmp), names, configs)
        built = time.perf_counter() - started
        for hub in hubs.values():  # warm: weights loaded, index opened
            hub.identify([queries[0]], top=5)
        samples: dict[str, dict[str, list[float]]] = {
            label: {"wall_ms": [], "encode_ms": [], "interrogate_ms": [], "score_ms": []}
            for label in hubs
        }
        hits = {label: 0 for label in hubs}
        for _ in range(args.rounds):
            for name, image in zip(names, queries, strict=True):
                for label, hub in hubs.items():
                    t0 = time.perf_counter()
                    [result] = hub.identify([image], top=5)
                    samples[label]["wall_ms"].append(1000 * (time.perf_counter() - t0))
                    for key in ("encode", "interrogate", "score"):
                        samples[label][f"{key}_ms"].append(1000 * result.timings[f"{key}_s"])
                    hits[label] += result.results[0].model == name
    report = {
        label: {
            **{k: round(statistics.median(v), 2) for k, v in s.items()},
            "top1_on_these_queries": hits[label] / (args.rounds * len(names)),
            **configs[label],
        }
        for label, s in samples.items()
    }
    ratio = f"ratio_wall_{new}_over_{base}"
    report[ratio] = round(report[new]["wall_ms"] / report[base]["wall_ms"], 2)
    report["build_s"] = round(built, 1)
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print("| config | encoder | space | wall ms | encode ms | interrogate ms | score ms |")
    print("|---|---|---|---:|---:|---:|---:|")
    for label in configs:
        r = report[label]
        print(
            f"| {label} | {r['encoder']} | {r['space']} | {r['wall_ms']} | {r['encode_ms']} | "
            f"{r['interrogate_ms']} | {r['score_ms']} |"
        )
    print(f"\n{new} / {base} (median wall): {report[ratio]}x")


if __name__ == "__main__":
    main()
