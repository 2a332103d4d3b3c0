"""Bulk import vs one submit per model: the same synthetic specs (scale.py's, from real zoo
features) into two fresh registries, `Registry.add` per model vs one `Registry.add_many`.

    .venv/bin/python benchmarks/bulk_import.py [--models 500] [--images 48] [--json]

Rows and spec files only (no packed sync: both would sync once the same way).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from scale import Synthetic, zoo_features

from gmi.encoders import DEFAULT_ENCODER
from gmi.registry.store import Registry
from gmi.spec.kernels import default_gamma


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--cache", default=os.environ.get("GMI_SCALE_CACHE", "~/.cache/gmi/scale"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    zoo = zoo_features(Path(args.cache).expanduser(), DEFAULT_ENCODER)
    synthetic = Synthetic(zoo, args.images, DEFAULT_ENCODER)
    gamma = default_gamma(zoo["spec"][0])
    specs = [(f"synthetic/m{i:07d}", synthetic.model(i, gamma)) for i in range(args.models)]
    out = {"models": args.models, "images_per_model": args.images}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("one_by_one_s", "add_many_s"):
            registry = Registry(Path(tmp) / mode)
            started = time.perf_counter()
            if mode == "one_by_one_s":
                for name, spec in specs:
                    registry.add(name, spec)
            else:
                registry.add_many(specs)
            out[mode] = round(time.perf_counter() - started, 2)
            shutil.rmtree(Path(tmp) / mode)
    out["speedup"] = round(out["one_by_one_s"] / out["add_many_s"], 2)
    print(json.dumps(out) if args.json else "\n".join(f"{k:>16}  {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
