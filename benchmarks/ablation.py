"""Ablation: image feature x spec views x interrogator x scoring, one image and four.

    .venv/bin/python benchmarks/ablation.py > ablation.md     (about 6 minutes on 2 cores)

Runs `gmi bench` (library call) once per (encoder, augment) configuration on the built-in zoo
and prints one markdown table of top-1 / top-4 accuracy.
"""

from __future__ import annotations

import tempfile
import time

from gmi.bench.runner import run_bench

CONFIGS = [
    ("offline:pooled", "jpeg"),
    ("offline:style+pooled", "jpeg"),
    ("offline", "none"),
    ("offline", "jpeg"),
]
METHODS = [
    "rkme",
    "knn",
    "weighted-retrieval",
    "weighted-hub",
    "local-retrieval",
    "local-hub",
    "weighted-stated",
    "local-stated",
]


def main() -> None:
    started = time.perf_counter()
    rows = []
    for encoder, augment in CONFIGS:
        with tempfile.TemporaryDirectory() as out:
            results = run_bench(
                methods=METHODS, out_dir=out, encoder=encoder, augment=augment, progress=False
            )
        for size, setting in results["settings"].items():
            cells = [
                f"{setting['methods'][m]['top1']:.3f} / {setting['methods'][m]['top4']:.3f}"
                for m in METHODS
            ]
            rows.append(f"| {encoder} | {augment} | {size} | " + " | ".join(cells) + " |")
    print("| features | spec views | images | " + " | ".join(METHODS) + " |")
    print("|---" * (3 + len(METHODS)) + "|")
    print("\n".join(rows))
    print(f"\n({time.perf_counter() - started:.0f}s; cells are top-1 / top-4)")


if __name__ == "__main__":
    main()
