"""Paired top-1 difference between a method of one `gmi bench` run and a method of another
(same zoo, same queries: e.g. gmi's default against kNN on the previous default features).

    .venv/bin/python benchmarks/paired_runs.py NEW/results.json local-hub OLD/results.json knn

Prints, per images-per-query setting, top-1 of both and the paired-bootstrap 95% interval of
the difference (the requirements are resampled jointly, as `gmi bench` does within a run).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gmi.bench.metrics import paired_difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_a")
    parser.add_argument("method_a")
    parser.add_argument("run_b")
    parser.add_argument("method_b")
    args = parser.parse_args()
    a, b = (json.loads(Path(p).read_text(encoding="utf-8")) for p in (args.run_a, args.run_b))
    if a["zoo"] != b["zoo"] or a.get("split") != b.get("split"):
        parser.error("the two runs are on different zoos or splits: not paired")
    for size in a["settings"]:
        ranks_a = np.array(a["settings"][size]["methods"][args.method_a]["ranks"])
        ranks_b = np.array(b["settings"][size]["methods"][args.method_b]["ranks"])
        c = paired_difference(ranks_a == 1, ranks_b == 1)
        print(
            f"{size} image(s): {args.method_a} {np.mean(ranks_a == 1):.3f} vs {args.method_b} "
            f"{np.mean(ranks_b == 1):.3f}: {c['difference']:+.3f} "
            f"[{c['ci95_low']:+.3f}, {c['ci95_high']:+.3f}]"
        )


if __name__ == "__main__":
    main()
