"""How well "no close match" works: miss rate on the zoo's own queries, false-alarm rate on
images no zoo model made (scikit-image's sample photos and drawings, several views each).

    .venv/bin/python benchmarks/no_match.py [--home HUB] [--queries-per-model 4] [--json]

A miss: a zoo query (held-out test prompt, JPEG upload) whose ranking says "no close match".
A false alarm: an out-of-zoo image whose ranking claims a close match. Rates are reported for
several quantiles of the calibration (gmi.spec.calibration.CLOSE_QUANTILE is the default).
Needs scikit-image (`pip install scikit-image`) for the out-of-zoo images; it is not a gmi
dependency.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gmi.hub import Hub
from gmi.spec.calibration import CLOSE_QUANTILE
from gmi.zoo import load_zoo
from gmi.zoo.export import query_upload, spec_images

QUANTILES = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999, 1.0)
SAMPLES = [
    "astronaut",
    "brick",
    "camera",
    "cat",
    "chelsea",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "horse",
    "hubble_deep_field",
    "immunohistochemistry",
    "logo",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
    "clock",
    "cell",
]


def out_of_zoo_images() -> list[tuple[str, Image.Image]]:
    """Each scikit-image sample, as a JPEG upload in four views: whole, centre crop, left
    half, downscaled; 84 images that no zoo model drew."""
    from skimage import data

    out = []
    for name in SAMPLES:
        array = np.asarray(getattr(data, name)())
        if array.dtype != np.uint8:
            array = (255 * (array.astype(np.float64) / max(float(array.max()), 1e-9))).astype(
                np.uint8
            )
        image = Image.fromarray(array).convert("RGB")
        w, h = image.size
        views = {
            "whole": image,
            "centre": image.crop((w // 5, h // 5, w - w // 5, h - h // 5)),
            "left": image.crop((0, 0, w // 2, h)),
            "small": image.resize((max(w // 3, 32), max(h // 3, 32))),
        }
        for view, picture in views.items():
            buffer = io.BytesIO()
            picture.save(buffer, format="JPEG", quality=88)
            out.append((f"{name}-{view}", Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")))
    return out


def build_zoo_hub(home: Path) -> Hub:
    hub = Hub(home)
    for name in load_zoo():
        images, prompts = spec_images(name)
        hub.submit_images(name, images, prompts, progress=False)
    return hub


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, help="an existing zoo hub (default: build one)")
    parser.add_argument("--queries-per-model", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(args.home) if args.home else build_zoo_hub(Path(tmp) / "hub")
        names = hub.index().names
        zoo_queries, truth = [], []
        for m, name in enumerate(names):
            for k in range(args.queries_per_model):
                data, _ = query_upload(name, (m * args.queries_per_model + k) % 48)
                zoo_queries.append(Image.open(io.BytesIO(data)).convert("RGB"))
                truth.append(name)
        outside = out_of_zoo_images()
        zoo_results = hub.identify(zoo_queries, top=len(names))
        zoo_best = np.array([r.results[0].distance for r in zoo_results])
        true_scores = np.array(
            [
                next(m.score for m in r.results if m.model == t)
                for r, t in zip(zoo_results, truth, strict=True)
            ]
        )
        out_results = hub.identify([im for _, im in outside], top=1)
        out_best = np.array([r.results[0].distance for r in out_results])
        held_out = hub.index().learned["calibration"].held_out
    rows = []
    for q in QUANTILES:
        threshold = float(np.quantile(held_out, q))
        rows.append(
            {
                "quantile": q,
                "threshold": round(threshold, 4),
                "miss_rate": round(float(np.mean(zoo_best > threshold)), 4),
                "false_alarm_rate": round(float(np.mean(out_best <= threshold)), 4),
            }
        )
    report = {
        "zoo_queries": len(zoo_best),
        "out_of_zoo_images": len(out_best),
        "default_quantile": CLOSE_QUANTILE,
        "rates": rows,
        "false_alarms_at_default": [
            name
            for (name, _), d in zip(outside, out_best, strict=True)
            if d <= float(np.quantile(held_out, CLOSE_QUANTILE))
        ],
        "true_model_score_median": round(float(np.median(true_scores)), 3),
        "true_model_score_quartiles": [
            round(float(q), 3) for q in np.quantile(true_scores, [0.25, 0.75])
        ],
        "top_score_median": round(float(np.median([r.results[0].score for r in zoo_results])), 3),
        "zoo_best_distance_max": round(float(zoo_best.max()), 3),
        "out_of_zoo_best_distance_min": round(float(out_best.min()), 3),
        "held_out_max": round(float(held_out.max()), 3),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['zoo_queries']} zoo queries, {report['out_of_zoo_images']} out-of-zoo images")
    print(f"{'quantile':>8}  {'threshold':>9}  {'miss':>6}  {'false alarm':>11}")
    for row in rows:
        mark = "  <- default" if row["quantile"] == CLOSE_QUANTILE else ""
        print(
            f"{row['quantile']:>8}  {row['threshold']:>9.3f}  {row['miss_rate']:>6.3f}  "
            f"{row['false_alarm_rate']:>11.3f}{mark}"
        )
    print(
        f"largest zoo distance {report['zoo_best_distance_max']}, smallest out-of-zoo "
        f"distance {report['out_of_zoo_best_distance_min']}"
    )
    print(
        f"score of the true model on zoo queries: median {report['true_model_score_median']}, "
        f"quartiles {report['true_model_score_quartiles']}; top score median "
        f"{report['top_score_median']}"
    )
    print("false alarms at the default:", ", ".join(report["false_alarms_at_default"]) or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
