"""What every command shares: the Hub a command's global options name, and stdout kept for
the answer while child processes write."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def open_hub(args: argparse.Namespace, **kwargs: object):
    """The Hub of `--home`, `--device` and `--store` (settings for a new registry in kwargs)."""
    from gmi.hub import Hub

    return Hub(args.home, device=args.device, store=args.store, **kwargs)  # type: ignore[arg-type]


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """File descriptor 1 points at stderr inside (for child processes too), then back."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def on_executor(args: argparse.Namespace, work: Callable[[Any], T]) -> T:
    """Run `work(executor)` on the executor --ray / --workers / --retries name, closed after;
    Ray's processes write to stdout, so it points at stderr meanwhile (stdout carries the
    command's answer alone)."""
    from gmi.submit.executors import make_executor

    with stdout_to_stderr():
        executor = make_executor(args.ray, args.workers, args.retries)
        try:
            return work(executor)
        finally:
            executor.close()


def add_executor_arguments(p: argparse.ArgumentParser) -> None:
    """Where a command's per-model tasks run (submit-many, reencode, train)."""
    p.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run the tasks on Ray: local (a private instance here), auto (the cluster this "
        "machine joined with `ray start`) or a cluster address",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="tasks at once (default: 1 in this process; with --ray, the cluster's CPUs)",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        help="times a task whose worker process died is run again (default 2)",
    )


def since_training_line(names: list[str]) -> str:
    """The note for models a hub's trained encoder never saw (docs/training.md: they are
    identified less well than the models it was trained on, until the hub trains again)."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"{len(names)} model(s) submitted after the encoder was trained ({shown}): "
        "run gmi train again to serve them as well as the others"
    )
