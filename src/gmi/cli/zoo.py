"""`gmi demo` and `gmi zoo export`: the built-in procedural model zoo."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_demo(args: argparse.Namespace) -> int:
    from gmi.demo import run_demo

    return run_demo(
        home=args.home, models=args.models, interrogator=args.interrogator, json_output=args.json
    )


def cmd_zoo_export(args: argparse.Namespace) -> int:
    from gmi.zoo.export import export_zoo

    manifest = export_zoo(
        args.dir, models=args.models, progress=not args.quiet, catalogue=args.catalogue
    )
    print(
        f"exported {len(manifest['models'])} models and {len(manifest['queries'])} test queries "
        f"to {args.dir}"
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`demo` and `zoo export`."""
    p = sub.add_parser(
        "demo", help="build a demo hub from the built-in zoo and identify held-out images"
    )
    p.add_argument("--models", type=int, default=None, help="use only the first N zoo models")
    p.add_argument("--interrogator", default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)
    p = sub.add_parser("zoo", help="the built-in procedural model zoo")
    zoo = p.add_subparsers(dest="zoo_command", required=True, metavar="ZOO_COMMAND")
    e = zoo.add_parser("export", help="write every zoo model as an imagefolder + test manifest")
    e.add_argument("dir", type=Path)
    e.add_argument("--models", type=int, default=None, help="only the first N models")
    e.add_argument(
        "--catalogue",
        default="builtin",
        choices=("builtin", "heldout"),
        help="which zoo: the built-in one or the frozen held-out one (docs/benchmark.md)",
    )
    e.add_argument("--quiet", action="store_true")
    e.set_defaults(func=cmd_zoo_export)
