"""`gmi reencode` and `gmi train`: a hub's encoder changed, every spec rebuilt from its kept
images (gmi.submit.reencode, gmi.attribution.hub_training)."""

from __future__ import annotations

import argparse
import json

from gmi.cli.common import add_executor_arguments, on_executor, open_hub


def cmd_reencode(args: argparse.Namespace) -> int:
    from gmi.submit.reencode import reencode

    hub = open_hub(args)
    result = on_executor(
        args, lambda executor: reencode(hub, args.encoder, executor, progress=not args.quiet)
    )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"re-encoded {result.models} models with {result.encoder} (was "
            f"{result.previous_encoder}; {result.encoded} encoded now, {result.resumed} "
            f"resumed) in {result.seconds:.1f}s"
        )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from gmi.attribution.hub_training import train_hub
    from gmi.attribution.training import TrainingConfig

    if args.steps is not None and args.steps < 1:
        from gmi.errors import InvalidInputError

        raise InvalidInputError("--steps must be at least 1")
    config = TrainingConfig(seed=args.seed)
    if args.steps is not None:
        config = TrainingConfig(steps=args.steps, seed=args.seed)
    hub = open_hub(args)
    result = on_executor(
        args, lambda executor: train_hub(hub, config, executor, progress=not args.quiet)
    )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        report = result.training["report"]
        print(
            f"trained {result.encoder} on {result.images} images of {result.models} models in "
            f"{result.train_s:.0f}s (training accuracy {report['final_accuracy']:.2f}); "
            f"hub re-encoded in {result.reencoded.seconds:.1f}s: identify uses it now"
        )
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """`reencode` and `train`."""
    p = sub.add_parser(
        "reencode",
        help="rebuild every model's spec from its kept images (another encoder, or the same)",
    )
    p.add_argument("--encoder", help="the encoder to switch to (default: the registry's own)")
    add_executor_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_reencode)
    p = sub.add_parser(
        "train",
        help="train an attribution encoder on the hub's own images and re-encode the hub",
    )
    p.add_argument("--steps", type=int, help="training steps (default: the tested number)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same weights")
    add_executor_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)
