"""`gmi doctor` and `gmi plugins`: what can run here, what is registered."""

from __future__ import annotations

import argparse
import json


def cmd_doctor(args: argparse.Namespace) -> int:
    from gmi.doctor import run_checks

    checks = run_checks()
    if args.json:
        print(json.dumps([c.__dict__ for c in checks], indent=1))
        return 0
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"{'ok ' if c.ok else '-- '} {c.kind:<12} {c.name:<{width}}  {c.detail}")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from gmi.encoders import available_encoders
    from gmi.generators import available_generators
    from gmi.interrogators import available_interrogators

    print("encoders:      " + ", ".join(available_encoders()))
    print("interrogators: " + ", ".join(available_interrogators()))
    print("generators:    " + ", ".join(available_generators()))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`doctor` and `plugins`."""
    p = sub.add_parser("doctor", help="what can run here, and what to install or download")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("plugins", help="list the registered encoders and interrogators")
    p.set_defaults(func=cmd_plugins)
