"""`gmi check [--repair]` and `gmi index status|rebuild`: keep a registry whole."""

from __future__ import annotations

import argparse
import json

from gmi.cli.common import open_hub, since_training_line
from gmi.errors import InvalidInputError


def cmd_check(args: argparse.Namespace) -> int:
    from gmi.registry.check import check_registry
    from gmi.registry.store import Registry

    if args.store:
        raise InvalidInputError(
            "gmi check verifies a SQLite registry; with --store each replica's mirror is "
            "rebuilt from PostgreSQL (delete it: gmi index rebuild) and spec files are checked "
            "by their sha256 on every read"
        )
    report = check_registry(
        Registry(args.home, create=False), repair=args.repair, grace_s=args.grace
    )
    if args.json:
        print(json.dumps(report.to_json(), indent=1))
    else:
        print(f"{report.ok}/{report.models} models whole, {len(report.orphans)} orphan files")
        for line in report.problems + [f"orphan: {o}" for o in report.orphans] + report.repaired:
            print(f"  {line}")
        if report.since_training:
            print(f"  {since_training_line(report.since_training)}")
        print("consistent" if report.consistent else "NOT consistent (see gmi check --repair)")
    return 0 if report.consistent else 1


def cmd_index(args: argparse.Namespace) -> int:
    status = open_hub(args).search_index(rebuild=args.index_command == "rebuild")
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    for key, value in status.items():
        print(f"{key}: {value}")
    return 1 if status.get("problems") else 0


def register(sub: argparse._SubParsersAction) -> None:
    """`check` and `index`."""
    p = sub.add_parser("check", help="verify every spec against the database; find orphans")
    p.add_argument(
        "--repair",
        action="store_true",
        help="delete orphan files and remove models whose spec is broken",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=60.0,
        help="repair leaves orphans younger than this many seconds (in-flight writes)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)
    p = sub.add_parser("index", help="the searcher and its index: status, rebuild")
    p.add_argument("index_command", choices=("status", "rebuild"), metavar="status|rebuild")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)
