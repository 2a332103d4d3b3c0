"""`gmi init`: create a registry and fix its encoder and settings."""

from __future__ import annotations

import argparse

from gmi.augment import AUGMENTS
from gmi.cli.common import open_hub
from gmi.search.rules import SCORINGS
from gmi.search.searchers import SEARCHER_NAMES
from gmi.settings import COMBINES
from gmi.spec.space import DEFAULT_SPACE_DIMS, SPACES
from gmi.submit.kept import KEEP_IMAGES


def cmd_init(args: argparse.Namespace) -> int:
    from gmi.presets import preset

    base = preset(args.preset) if args.preset else {}
    hub = open_hub(
        args,
        encoder=args.encoder or base.get("encoder"),
        interrogator=args.interrogator or base.get("interrogator"),
        n_points=args.points,
        gamma=args.gamma,
        tau=args.tau,
        augment=args.augment or base.get("augment"),
        combine=args.combine,
        scoring=args.scoring or base.get("scoring"),
        space=args.space or base.get("space"),
        space_dims=args.space_dims,
        searcher=args.searcher,
        milvus_uri=args.milvus_uri,
        keep_images=args.keep_images,
    )
    settings = hub.init()
    print(f"registry {hub.home}")
    for key, value in sorted(settings.to_strings().items()):
        print(f"  {key}: {value}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`init` and its options."""
    p = sub.add_parser("init", help="create a registry and fix its encoder and settings")
    p.add_argument(
        "--preset",
        help="offline (default) or paper (CLIP + CLIP-Interrogator); explicit options override it",
    )
    p.add_argument("--encoder", help="image/prompt encoder (default: offline)")
    p.add_argument("--interrogator", help="default interrogator (default: hub)")
    p.add_argument("--points", type=int, help="spec points per model (default: one per image)")
    p.add_argument("--gamma", type=float, help="kernel width (default: median heuristic)")
    p.add_argument("--tau", type=float, help="prompt-kernel temperature")
    p.add_argument("--augment", choices=AUGMENTS, help="spec image views (default: jpeg)")
    p.add_argument(
        "--keep-images",
        choices=KEEP_IMAGES,
        help="what a submit keeps of its images, for `gmi reencode` and `gmi train`: "
        "original (default: the bytes as submitted), jpeg (a copy of at most 1024 px, "
        "quality 95) or none",
    )
    p.add_argument(
        "--scoring",
        choices=SCORINGS,
        help="local (default, measured best) or rkme (the paper's weighted RKME)",
    )
    p.add_argument(
        "--combine",
        choices=COMBINES,
        help="several images per requirement: mean of distances or one joint set",
    )
    p.add_argument(
        "--space",
        choices=SPACES,
        help="where spec points and queries are compared: whiten (default) = a space the hub "
        "learns from its own images, refitted as it grows; identity = as encoded",
    )
    p.add_argument(
        "--space-dims",
        type=int,
        metavar="R",
        help=f"directions the learned space keeps (default {DEFAULT_SPACE_DIMS}; points packed "
        "R wide in bfloat16); 0 = all of them, float32 (as registries before compact spaces)",
    )
    p.add_argument(
        "--searcher",
        choices=SEARCHER_NAMES,
        help="how models are found for a query: exact (default) scores every model; ann "
        "shortlists them from a FAISS index kept beside the registry (hubs of 10^5+ models); "
        "milvus from a Milvus collection (--milvus-uri)",
    )
    p.add_argument(
        "--milvus-uri",
        help="for --searcher milvus: a .db file (Milvus Lite, default HOME/milvus.db) or "
        "http://HOST:19530 (a Milvus server)",
    )
    p.set_defaults(func=cmd_init)
