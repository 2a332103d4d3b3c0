"""`gmi serve`: the HTTP API and web page (docs/service.md)."""

from __future__ import annotations

import argparse
import sys


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gmi.server.app import create_app

    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"gmi: serving on {args.host}: reachable from other machines", file=sys.stderr)
    uvicorn.run(
        create_app(args.home, device=args.device, store=args.store),
        host=args.host,
        port=args.port,
        log_level="warning",
    )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`serve`."""
    p = sub.add_parser("serve", help="run the HTTP API and web page")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)
