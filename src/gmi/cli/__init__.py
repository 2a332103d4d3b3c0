"""The `gmi` command line: thin commands over gmi.hub.Hub, one module per command group, each
command's arguments beside its handler (gmi/cli/<group>.py: `register(sub)` + `cmd_*`).

Contract (scripts rely on it; keep it stable): `gmi submit NAME --images DIR [--description]
[--replace]`, `gmi submit-many MANIFEST [--ray auto|ADDRESS] [--workers N] --json` (one JSON
object {"submitted", "skipped", "failed": [{"name", "error"}]}; exit 0 when nothing failed, 1
otherwise), `gmi identify IMAGE... [--top K] [--json] [--together]`, `gmi models [--json]`,
`gmi info NAME`, `gmi remove NAME`. A user error prints one line `gmi: error: ...` on stderr
and exits non-zero (2 bad input, 3 not found, 4 conflict, 5 corrupt spec); never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from gmi import __version__
from gmi.cli import (
    bench,
    catalogue,
    doctor,
    identify,
    init,
    maintenance,
    serve,
    submit,
    train,
    zoo,
)
from gmi.cli.identify import print_identification
from gmi.errors import GmiError
from gmi.search.ranking import DEVICES

__all__ = ["build_parser", "main", "print_identification"]

# the command groups, in the order `gmi --help` lists their commands
COMMAND_GROUPS = (init, submit, identify, catalogue, train, zoo, bench, maintenance, serve, doctor)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gmi",
        description="Generative Model Identification: find the models that make images like yours.",
    )
    parser.add_argument("--version", action="version", version=f"gmi {__version__}")
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="registry directory (default: $GMI_HOME or ~/.local/share/gmi)",
    )
    parser.add_argument(
        "--store",
        default=os.environ.get("GMI_STORE") or None,
        help="postgresql://... : the catalogue and settings in PostgreSQL, shared by several "
        "gmi processes or servers; --home is then the shared folder of spec files "
        "(default: $GMI_STORE, else the SQLite registry in --home)",
    )
    parser.add_argument(
        "--device",
        choices=DEVICES,
        default="auto",
        help="where encoders, interrogators and scoring run (default auto: CUDA when present)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(sub)
    _accept_home_everywhere(sub)
    return parser


def _accept_home_everywhere(subparsers: argparse._SubParsersAction) -> None:
    """`--home` works before or after the subcommand (`gmi serve --home X`). The subcommands'
    copies default to SUPPRESS so they never overwrite a value given before the subcommand."""
    for command in subparsers.choices.values():
        command.add_argument(
            "--home", type=Path, default=argparse.SUPPRESS, help="registry directory"
        )
        command.add_argument(
            "--device",
            choices=DEVICES,
            default=argparse.SUPPRESS,
            help="where encoders, interrogators and scoring run",
        )
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                _accept_home_everywhere(action)


TEXT_ARGUMENTS = ("prompt", "description")


def _check_text_arguments(args: argparse.Namespace) -> None:
    """Text a user typed must be UTF-8 (a non-UTF-8 argument arrives as lone surrogates and
    would fail deep inside, with a traceback) and hold no NUL; paths may be any bytes."""
    from gmi.registry.validation import validate_text

    for key in TEXT_ARGUMENTS:
        value = getattr(args, key, None)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                validate_text(item, f"--{key}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check_text_arguments(args)
        return int(args.func(args) or 0)
    except GmiError as exc:
        print(f"gmi: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("gmi: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
