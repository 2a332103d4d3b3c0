"""What a `gmi submit-many` re-run spends before its first task: digesting the manifest.

    .venv/bin/python benchmarks/submit_many_rerun.py [--entries 300] [--images 12]
        [--side 256] [--json]

Makes --entries imagefolders of --images PNGs (distinct bytes each) and a manifest naming
them, then times the digest pass three ways: no cache (every image read and hashed, as every
re-run did before the cache), the first run with the cache (reads and fills it) and a
re-run with the cache (each image stat'ed, none read). Reports seconds and the ratio.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gmi.imagefolder import write_imagefolder
from gmi.submit.digests import DigestCache
from gmi.submit.manifest import read_manifest


def make_manifest(root: Path, entries: int, images: int, side: int) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for e in range(entries):
        folder = root / f"m{e:05d}"
        pictures = [
            Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8))
            for _ in range(images)
        ]
        write_imagefolder(folder, pictures, [f"prompt {i}" for i in range(images)])
        rows.append(json.dumps({"name": f"m{e:05d}", "images": str(folder)}))
    manifest = root / "m.jsonl"
    manifest.write_text("\n".join(rows) + "\n")
    return manifest


def timed(entries, cache: DigestCache | None) -> float:
    started = time.perf_counter()
    for entry in entries:
        entry.inputs_digest(cache)
    if cache is not None:
        cache.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=300)
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--side", type=int, default=256, help="image side in pixels")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = make_manifest(root, args.entries, args.images, args.side)
        entries = read_manifest(manifest)
        (root / "hub").mkdir()
        no_cache = timed(entries, None)
        first = timed(entries, DigestCache.for_home(root / "hub"))
        rerun = timed(entries, DigestCache.for_home(root / "hub"))
    out = {
        "entries": args.entries,
        "images_per_entry": args.images,
        "image_side": args.side,
        "no_cache_s": round(no_cache, 3),
        "first_run_with_cache_s": round(first, 3),
        "rerun_with_cache_s": round(rerun, 3),
        "rerun_speedup": round(no_cache / rerun, 1),
    }
    print(json.dumps(out) if args.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
