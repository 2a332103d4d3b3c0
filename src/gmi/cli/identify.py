"""`gmi identify`: rank the registered models for example images, for people or --json."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from gmi.cli.common import open_hub
from gmi.metadata.summary import describe_embedded

if TYPE_CHECKING:
    from gmi.hub import Identification


def cmd_identify(args: argparse.Namespace) -> int:
    hub = open_hub(args)
    results = hub.identify(
        args.images,
        top=args.top,
        together=args.together,
        interrogator=args.interrogator,
        prompt=args.prompt,
        exact=args.exact,
    )
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
        return 0
    for r in results:
        print_identification(r)
    print(
        "(score: 1 = as close as the closest of the models' own images, 0.5 = like a typical "
        "one, 0 = farther than all of them)"
    )
    return 0


PROMPT_LABELS = {
    "interrogated": "guessed prompt",
    "stated": "your prompt",
    "embedded": "prompt embedded in the image",
}


def print_identification(r: Identification) -> None:
    """One requirement's ranking for people: the prompt and where it came from, whether any
    model is a close match, and scores on the hub's calibrated 0-1 scale."""
    print(", ".join(r.images))
    for warning in r.warnings:
        print(f"  warning: {warning}")
    for meta in r.embedded:
        for line in describe_embedded(meta):
            print(f"  {line}")
    for resource in r.resources:
        print(
            f"  the image also uses {resource['name']} ({resource['role']}): "
            f"this hub's {resource['model']} ({resource['match']} match)"
        )
    if r.prompt:
        print(f"  {PROMPT_LABELS.get(r.prompt_source, 'prompt')}: {r.prompt}")
    if not r.close_match:
        print(
            "  no close match: none of these models makes images like this one "
            "(every score is below what the models' own images score)"
        )
    width = max(len(m.model) for m in r.results)
    print(f"  {'rank':>4}  {'model':<{width}}  score  match")
    for m in r.results:
        verdict = (
            "exact (checkpoint hash)"
            if m.exact_match
            else "named (checkpoint file name)"
            if m.named_match
            else "close"
            if m.close_match
            else "-"
        )
        print(f"  {m.rank:>4}  {m.model:<{width}}  {m.score:5.2f}  {verdict}")


def register(sub: argparse._SubParsersAction) -> None:
    """`identify`."""
    p = sub.add_parser("identify", help="rank the registered models for example image(s)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--top", type=int, default=5, help="how many models to list (default 5)")
    p.add_argument(
        "--together",
        action="store_true",
        help="treat all images as ONE requirement (several examples)",
    )
    p.add_argument(
        "--interrogator",
        help="override the registry's interrogator ('none' = prompt-agnostic RKME baseline)",
    )
    p.add_argument(
        "--prompt",
        help="the prompt you will use, if you know it: replaces the "
        "interrogated one and tells apart models that differ only in how they "
        "follow prompts",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="score every model, even when the registry's searcher shortlists (a reference)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_identify)
