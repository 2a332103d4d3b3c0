"""`gmi submit` (one model) and `gmi submit-many` (a manifest, resumably, in parallel)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from gmi.cli.common import add_executor_arguments, on_executor, open_hub, since_training_line


def near_duplicate_line(name: str, duplicate) -> str:
    """The warning a submit prints for a near-duplicate (scripts look for its words)."""
    why = (
        "it was submitted with a checkpoint identity registered for it"
        if duplicate.reason == "checkpoint"
        else "their images cannot be told apart"
    )
    return f"{name} is a near-duplicate of {duplicate.model} ({why})"


def note_since_training(hub, names: list[str]) -> None:
    """Say on stderr when just-submitted models are ones the hub's trained encoder never saw."""
    from gmi.attribution.weights import models_since_training

    store = hub.registry()
    records = [r for r in store.list() if r.name in set(names)]
    unseen = models_since_training(hub.home, store.settings().get("encoder", ""), records)
    if unseen:
        print(f"gmi: note: {since_training_line(unseen)}", file=sys.stderr)


def cmd_submit(args: argparse.Namespace) -> int:
    hub = open_hub(args, encoder=args.encoder)
    started = time.perf_counter()
    from gmi.submit.manifest import ManifestEntry

    entry = ManifestEntry(
        args.name,
        images=args.images,
        generator=f"diffusers:{args.diffusers}" if args.diffusers else None,
        lora=args.lora,
        prompts=args.prompts,
        steps=args.steps,
        images_per_prompt=args.images_per_prompt,
        description=args.description,
        model_hashes=tuple(args.model_hash or ()),
        keep_images=args.keep_images,
    )
    record, made = hub.submit_entry(entry, replace=args.replace, progress=not args.quiet)
    generated = made if args.diffusers else None
    elapsed = time.perf_counter() - started
    duplicate = hub.near_duplicate(record.name)
    if duplicate is not None:
        print(f"gmi: warning: {near_duplicate_line(record.name, duplicate)}", file=sys.stderr)
    note_since_training(hub, [record.name])
    if args.json:
        extra = {} if generated is None else {"generated": generated}
        extra["near_duplicate_of"] = duplicate.model if duplicate else None
        print(json.dumps({**record.to_json(), **extra, "seconds": round(elapsed, 3)}))
    else:
        split = f" (split {record.extra['split']!r})" if record.extra.get("split") else ""
        print(
            f"submitted {record.name}: {record.n_images} images{split} -> {record.n_points} "
            f"spec points ({record.encoder}) in {elapsed:.1f}s"
        )
    return 0


def cmd_submit_many(args: argparse.Namespace) -> int:
    from gmi.submit.manifest import read_manifest
    from gmi.submit.many import submit_many

    entries = read_manifest(args.manifest)
    hub = open_hub(args, encoder=args.encoder)
    # Ray's processes (and its messages about dead workers) write to the driver's stdout:
    # on_executor gives them stderr, so stdout carries the summary alone (--json is read)
    result = on_executor(
        args,
        lambda executor: submit_many(
            hub, entries, executor, replace=args.replace, progress=not args.quiet
        ),
    )
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"{len(result.submitted)} submitted, {len(result.skipped)} skipped (unchanged), "
            f"{len(result.failed)} failed in {result.seconds:.1f}s "
            f"({result.executor['executor']}, {result.executor['workers']} workers)"
        )
        for failure in result.failed:
            print(f"  failed {failure['name']}: {failure['error']}")
    for found in result.near_duplicates:
        print(
            f"gmi: warning: {found['name']} is a near-duplicate of {found['near_duplicate_of']}",
            file=sys.stderr,
        )
    if result.submitted:
        note_since_training(hub, result.submitted)
    return 1 if result.failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """`submit` and `submit-many`."""
    _register_submit(sub)
    _register_submit_many(sub)


def _register_submit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="add a model from its generated images")
    p.add_argument("name")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--images",
        type=Path,
        help="imagefolder: image files + metadata.jsonl with file_name and text",
    )
    source.add_argument(
        "--diffusers",
        metavar="ID_OR_PATH",
        help="generate the spec images with this diffusers text-to-image pipeline",
    )
    p.add_argument("--lora", help="LoRA weights to load into the pipeline")
    p.add_argument(
        "--prompts",
        type=Path,
        help="prompt file, one per line (default: gmi's standard set for real models)",
    )
    p.add_argument("--images-per-prompt", type=int, default=1)
    p.add_argument("--steps", type=int, default=30, help="inference steps (default 30)")
    p.add_argument(
        "--keep-images",
        type=Path,
        help="where generated images are kept and resumed from (default: <home>/generated/<name>)",
    )
    p.add_argument(
        "--description", default=None, help="what the model makes (kept on --replace if omitted)"
    )
    p.add_argument("--replace", action="store_true", help="overwrite an existing model")
    p.add_argument(
        "--model-hash",
        action="append",
        metavar="HASH",
        help="an identity of the model's checkpoint, repeatable: AutoV1/AutoV2/AutoV3 (8, 10, "
        "12 hex: A1111 'Model hash', Civitai), sha256 (64 hex, 0x allowed), blake3:<hex> "
        "(InvokeAI), a Civitai AIR (urn:air:...) or the checkpoint's file name. Images naming "
        "a hash or AIR are exact matches, a file name a named match. Computed for --diffusers "
        "with local single-file weights (sha256, AutoV1/V2/V3, blake3, file name)",
    )
    p.add_argument("--encoder", help="encoder, for a new registry (default: offline)")
    p.add_argument("--json", action="store_true", help="print the stored record as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_submit)


def _register_submit_many(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "submit-many",
        help="add every model of a manifest (JSON lines or CSV), in parallel, resumably",
    )
    p.add_argument(
        "manifest",
        type=Path,
        metavar="MANIFEST",
        help='one model per line: {"name", "images": DIR} or {"name", "diffusers": ID_OR_PATH, '
        '"lora", "prompts": FILE, "steps", "images_per_prompt"}, optional "description"',
    )
    add_executor_arguments(p)
    p.add_argument(
        "--replace", action="store_true", help="update models registered with other inputs"
    )
    p.add_argument("--encoder", help="encoder, for a new registry (default: offline)")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_submit_many)
