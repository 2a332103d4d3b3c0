"""The near-duplicate rule (gmi.identify.duplicates) on the zoos: copies vs siblings.

For every model M of a zoo, a COPY is M's spec prompts drawn again with other seeds (a
re-upload of the same model under another name). The hub's index holds every model as
submitted (the bench's in-memory index: the registry default's learned space and kernel).

- detection: the copy is flagged as a near-duplicate of M (tested against the CANDIDATES
  models closest to it, as a submit does);
- false alarm: M itself, submitted to a hub that holds every OTHER model, is flagged as a
  near-duplicate of one of them (its siblings are the closest).

    python benchmarks/near_duplicates.py --zoo builtin --json
    python benchmarks/near_duplicates.py --zoo heldout --encoder trained:W.safetensors
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from gmi.augment import spec_views
from gmi.bench.data import builtin_data
from gmi.bench.methods import BenchContext
from gmi.encoders import DEFAULT_ENCODER
from gmi.encoders.batches import encode_in_batches
from gmi.identify.duplicates import CANDIDATES, ModelImages, mmd2, test_copy
from gmi.zoo import load_zoo

COPY_SEED = 10_000


def closest(new: np.ndarray, others: dict[str, np.ndarray], gamma: float) -> list[str]:
    """The models whose images are closest to `new` (smallest MMD^2), best first."""
    order = sorted(others, key=lambda name: mmd2(new, others[name], gamma))
    return order[:CANDIDATES]


def flagged(new: ModelImages, others: dict[str, ModelImages], gamma: float) -> str | None:
    points = {name: images.points for name, images in others.items()}
    for name in closest(new.points, points, gamma):
        _, statistic, threshold = test_copy(new, others[name], gamma)
        if statistic <= threshold:
            return name
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--zoo", default="builtin", choices=("builtin", "heldout"))
    p.add_argument("--encoder", default=DEFAULT_ENCODER)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    started = time.perf_counter()
    data = builtin_data(catalogue=args.zoo, queries_per_model=1, progress=False)
    ctx = BenchContext(data, args.encoder, [[0]], space="whiten", space_dims=128, progress=False)
    arrays = ctx.index().arrays
    gamma = arrays.gamma
    prompts = ctx.spec_prompt_embeddings

    def images(features: np.ndarray, model_index: int) -> ModelImages:
        model = data.models[model_index]
        return ModelImages(features, arrays.to_space(features), model.prompts, prompts[model_index])

    spec = {m.name: images(ctx.features[0][i], i) for i, m in enumerate(data.models)}
    zoo = load_zoo(args.zoo)
    rows = []
    for index, model in enumerate(data.models):
        again = [
            zoo[model.name].generate(prompt, seed=COPY_SEED + i)
            for i, prompt in enumerate(model.prompts)
        ]
        copy = images(encode_in_batches(ctx.encoder, spec_views(again, "jpeg"), "", False), index)
        others = {n: v for n, v in spec.items() if n != model.name}
        rows.append(
            {
                "model": model.name,
                "family": model.family,
                "copy_flagged_as": flagged(copy, spec, gamma),
                "alone_flagged_as": flagged(spec[model.name], others, gamma),
            }
        )
    detected = sum(r["copy_flagged_as"] == r["model"] for r in rows)
    false_alarms = [r for r in rows if r["alone_flagged_as"] is not None]
    summary = {
        "zoo": args.zoo,
        "encoder": args.encoder,
        "models": len(rows),
        "copies_detected": detected,
        "false_alarms": len(false_alarms),
        "false_alarm_pairs": [[r["model"], r["alone_flagged_as"]] for r in false_alarms],
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }
    print(json.dumps(summary, indent=None if args.json else 1))


if __name__ == "__main__":
    main()
