"""`gmi bench`: the evaluation protocol (docs/benchmark.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from gmi.augment import AUGMENTS, DEFAULT_AUGMENT
from gmi.encoders import DEFAULT_ENCODER
from gmi.spec.space import DEFAULT_SPACE_DIMS, SPACES


def cmd_bench(args: argparse.Namespace) -> int:
    from gmi.bench.runner import run_bench

    results = run_bench(
        zoo=args.zoo,
        methods=args.methods,
        images_per_query=args.images_per_query,
        out_dir=args.out,
        quick=args.quick,
        encoder=args.encoder,
        augment=args.augment,
        queries_per_model=args.queries_per_model,
        progress=not args.quiet,
        space=args.space,
        space_dims=args.space_dims,
        split=args.split,
    )
    if args.json:
        print(json.dumps({k: v for k, v in results.items() if k != "report_markdown"}, indent=1))
    else:
        print(results["report_markdown"])
        print(f"results, CSV and plots in {args.out} ({results['runtime_s']}s)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`bench`."""
    p = sub.add_parser("bench", help="run the evaluation protocol and compare methods")
    p.add_argument(
        "--zoo",
        default="builtin",
        help="'builtin', 'heldout' (the frozen second zoo) or a `gmi zoo export` directory",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods to compare (default: all; see docs/benchmark.md)",
    )
    p.add_argument(
        "--images-per-query",
        nargs="+",
        type=int,
        default=None,
        help="example images per requirement; several values run several settings (default: 1 4)",
    )
    p.add_argument("--out", type=Path, default=Path("bench-out"), help="output directory")
    p.add_argument("--quick", action="store_true", help="8 models, 8 queries each (CI)")
    p.add_argument("--encoder", default=DEFAULT_ENCODER)
    p.add_argument(
        "--augment",
        default=DEFAULT_AUGMENT,
        choices=AUGMENTS,
        help="how spec images are encoded (default: jpeg, as users upload)",
    )
    p.add_argument("--queries-per-model", type=int, default=None)
    p.add_argument(
        "--space",
        default="whiten",
        choices=SPACES,
        help="where methods score: whiten (default, as a new registry) = the space learned "
        "from the spec images; identity = as encoded. knn is always plain reverse image search",
    )
    p.add_argument(
        "--space-dims",
        type=int,
        default=DEFAULT_SPACE_DIMS,
        metavar="R",
        help=f"directions the learned space keeps (default {DEFAULT_SPACE_DIMS}, as a new "
        "registry, bfloat16 points; 0 = all, float32)",
    )
    p.add_argument(
        "--split",
        default="test",
        choices=("test", "val"),
        help="test: the protocol's queries; val: a tuning split (held-out spec prompts) that "
        "never touches them (docs/benchmark.md)",
    )
    p.add_argument("--json", action="store_true", help="print results.json instead of tables")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_bench)
