"""`gmi models`, `gmi info NAME`, `gmi similar NAME`, `gmi remove NAME`: the catalogue."""

from __future__ import annotations

import argparse
import json

from gmi.cli.common import open_hub
from gmi.registry.store import default_home


def cmd_models(args: argparse.Namespace) -> int:
    records = open_hub(args).models()
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        print(f"no models in {args.home or default_home()}")
        return 0
    width = max(len(r.name) for r in records)
    print(f"{'model':<{width}}  images  points  description")
    for r in records:
        print(f"{r.name:<{width}}  {r.n_images:>6}  {r.n_points:>6}  {r.description}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    record, spec = open_hub(args).info(args.name)
    info = {
        **record.to_json(),
        "gamma": spec.gamma,
        "prompt_set": spec.prompt_set,
        "image_dim": int(spec.points.shape[1]),
        "prompt_dim": int(spec.point_prompts.shape[1]),
        "gmi_version": spec.gmi_version,
        "example_prompts": spec.prompt_texts[:5],
        "model_hashes": open_hub(args).registry().model_hashes(record.name),
        "kept_images": record.extra.get("kept_images")
        or "none (submitted before gmi kept spec images, or with keep_images=none): "
        "gmi reencode cannot rebuild this model's spec",
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def cmd_similar(args: argparse.Namespace) -> int:
    found = open_hub(args).similar(args.name, top=args.top, exact=args.exact)
    if args.json:
        print(json.dumps([m.to_json() for m in found], indent=2))
        return 0
    width = max([len(m.model) for m in found] + [5])
    print(f"{'model':<{width}}  score  distance")
    for m in found:
        print(f"{m.model:<{width}}  {m.score:5.3f}  {m.distance:8.4f}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    record = open_hub(args).remove(args.name)
    print(f"removed {record.name}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`models`, `info`, `similar` and `remove`."""
    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)
    p = sub.add_parser("info", help="show one model's record and specification")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
    p = sub.add_parser(
        "similar", help="the models whose images are most like this model's own spec images"
    )
    p.add_argument("name")
    p.add_argument("--top", type=int, default=5)
    p.add_argument("--exact", action="store_true", help="score every model (no shortlist)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_similar)
    p = sub.add_parser("remove", help="delete a model")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)
