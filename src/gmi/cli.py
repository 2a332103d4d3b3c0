"""The `gmi` command line: thin commands over gmi.hub.Hub.

Contract (scripts rely on it; keep it stable): `gmi submit NAME --images DIR [--description]
[--replace]`, `gmi submit-many MANIFEST [--ray auto|ADDRESS] [--workers N] --json` (one JSON
object {"submitted", "skipped", "failed": [{"name", "error"}]}; exit 0 when nothing failed, 1
otherwise), `gmi identify IMAGE... [--top K] [--json] [--together]`, `gmi models [--json]`,
`gmi info NAME`, `gmi remove NAME`. A user error prints one line `gmi: error: ...` on stderr
and exits non-zero (2 bad input, 3 not found, 4 conflict, 5 corrupt spec); never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gmi import __version__
from gmi.augment import AUGMENTS, DEFAULT_AUGMENT
from gmi.encoders import DEFAULT_ENCODER
from gmi.errors import GmiError, InvalidInputError
from gmi.metadata.summary import describe_embedded
from gmi.registry.store import default_home
from gmi.search.searchers import SEARCHER_NAMES
from gmi.spec.scoring import SCORINGS

if TYPE_CHECKING:
    from gmi.hub import Identification


def _hub(args: argparse.Namespace, **kwargs: object):
    from gmi.hub import Hub

    return Hub(args.home, device=args.device, store=args.store, **kwargs)  # type: ignore[arg-type]


def cmd_init(args: argparse.Namespace) -> int:
    from gmi.presets import preset

    base = preset(args.preset) if args.preset else {}
    hub = _hub(
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
        searcher=args.searcher,
        milvus_uri=args.milvus_uri,
    )
    settings = hub.init()
    print(f"registry {hub.home}")
    for key, value in sorted(settings.to_strings().items()):
        print(f"  {key}: {value}")
    return 0


def cmd_submit(args: argparse.Namespace) -> int:
    hub = _hub(args, encoder=args.encoder)
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
    if args.json:
        extra = {} if generated is None else {"generated": generated}
        print(json.dumps({**record.to_json(), **extra, "seconds": round(elapsed, 3)}))
    else:
        split = f" (split {record.extra['split']!r})" if record.extra.get("split") else ""
        print(
            f"submitted {record.name}: {record.n_images} images{split} -> {record.n_points} "
            f"spec points ({record.encoder}) in {elapsed:.1f}s"
        )
    return 0


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
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


def cmd_submit_many(args: argparse.Namespace) -> int:
    from gmi.submit.executors import make_executor
    from gmi.submit.manifest import read_manifest
    from gmi.submit.many import submit_many

    entries = read_manifest(args.manifest)
    hub = _hub(args, encoder=args.encoder)
    # Ray's processes (and its messages about dead workers) write to the driver's stdout:
    # they get stderr, so stdout carries the summary alone (--json is read by scripts)
    with _stdout_to_stderr():
        executor = make_executor(args.ray, args.workers, args.retries)
        try:
            result = submit_many(
                hub, entries, executor, replace=args.replace, progress=not args.quiet
            )
        finally:
            executor.close()
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(
            f"{len(result.submitted)} submitted, {len(result.skipped)} skipped (unchanged), "
            f"{len(result.failed)} failed in {result.seconds:.1f}s ({executor.name}, "
            f"{executor.workers} workers)"
        )
        for failure in result.failed:
            print(f"  failed {failure['name']}: {failure['error']}")
    return 1 if result.failed else 0


def cmd_identify(args: argparse.Namespace) -> int:
    hub = _hub(args)
    results = hub.identify(
        args.images,
        top=args.top,
        together=args.together,
        interrogator=args.interrogator,
        prompt=args.prompt,
        exact=args.exact,
    )
    if args.json:
        print(json.dumps([r.to_json() for r in results], indent=2))
        return 0
    for r in results:
        print_identification(r)
    print(
        "(score: 1 = as close as the closest of the models' own images, 0.5 = like a typical "
        "one, 0 = farther than all of them)"
    )
    return 0


PROMPT_LABELS = {
    "interrogated": "guessed prompt",
    "stated": "your prompt",
    "embedded": "prompt embedded in the image",
}


def print_identification(r: Identification) -> None:
    """One requirement's ranking for people: the prompt and where it came from, whether any
    model is a close match, and scores on the hub's calibrated 0-1 scale."""
    print(", ".join(r.images))
    for warning in r.warnings:
        print(f"  warning: {warning}")
    for meta in r.embedded:
        for line in describe_embedded(meta):
            print(f"  {line}")
    for resource in r.resources:
        print(
            f"  the image also uses {resource['name']} ({resource['role']}): "
            f"this hub's {resource['model']} ({resource['match']} match)"
        )
    if r.prompt:
        print(f"  {PROMPT_LABELS.get(r.prompt_source, 'prompt')}: {r.prompt}")
    if not r.close_match:
        print(
            "  no close match: none of these models makes images like this one "
            "(every score is below what the models' own images score)"
        )
    width = max(len(m.model) for m in r.results)
    print(f"  {'rank':>4}  {'model':<{width}}  score  match")
    for m in r.results:
        verdict = (
            "exact (checkpoint hash)"
            if m.exact_match
            else "named (checkpoint file name)"
            if m.named_match
            else "close"
            if m.close_match
            else "-"
        )
        print(f"  {m.rank:>4}  {m.model:<{width}}  {m.score:5.2f}  {verdict}")


def cmd_models(args: argparse.Namespace) -> int:
    records = _hub(args).models()
    if args.json:
        print(json.dumps([r.to_json() for r in records], indent=2))
        return 0
    if not records:
        print(f"no models in {args.home or default_home()}")
        return 0
    width = max(len(r.name) for r in records)
    print(f"{'model':<{width}}  images  points  description")
    for r in records:
        print(f"{r.name:<{width}}  {r.n_images:>6}  {r.n_points:>6}  {r.description}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    record, spec = _hub(args).info(args.name)
    info = {
        **record.to_json(),
        "gamma": spec.gamma,
        "prompt_set": spec.prompt_set,
        "image_dim": int(spec.points.shape[1]),
        "prompt_dim": int(spec.point_prompts.shape[1]),
        "gmi_version": spec.gmi_version,
        "example_prompts": spec.prompt_texts[:5],
        "model_hashes": _hub(args).registry().model_hashes(record.name),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    record = _hub(args).remove(args.name)
    print(f"removed {record.name}")
    return 0


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
        split=args.split,
    )
    if args.json:
        print(json.dumps({k: v for k, v in results.items() if k != "report_markdown"}, indent=1))
    else:
        print(results["report_markdown"])
        print(f"results, CSV and plots in {args.out} ({results['runtime_s']}s)")
    return 0


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
        print("consistent" if report.consistent else "NOT consistent (see gmi check --repair)")
    return 0 if report.consistent else 1


def cmd_index(args: argparse.Namespace) -> int:
    status = _hub(args).search_index(rebuild=args.index_command == "rebuild")
    if args.json:
        print(json.dumps(status, indent=1))
        return 0
    for key, value in status.items():
        print(f"{key}: {value}")
    return 1 if status.get("problems") else 0


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
        choices=("auto", "cpu", "cuda"),
        default="auto",
        help="where encoders, interrogators and scoring run (default auto: CUDA when present)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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
        "--scoring",
        choices=SCORINGS,
        help="local (default, measured best) or rkme (the paper's weighted RKME)",
    )
    p.add_argument(
        "--combine",
        choices=("mean", "joint"),
        help="several images per requirement: mean of distances or one joint set",
    )
    p.add_argument(
        "--space",
        choices=("identity", "whiten"),
        help="where spec points and queries are compared: whiten (default) = a space the hub "
        "learns from its own images, refitted as it grows; identity = as encoded",
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
    p.add_argument(
        "--replace", action="store_true", help="update models registered with other inputs"
    )
    p.add_argument("--encoder", help="encoder, for a new registry (default: offline)")
    p.add_argument("--json", action="store_true", help="print one JSON summary object")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_submit_many)

    p = sub.add_parser("identify", help="rank the registered models for example image(s)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("--top", type=int, default=5, help="how many models to list (default 5)")
    p.add_argument(
        "--together",
        action="store_true",
        help="treat all images as ONE requirement (several examples)",
    )
    p.add_argument(
        "--interrogator",
        help="override the registry's interrogator ('none' = prompt-agnostic RKME baseline)",
    )
    p.add_argument(
        "--prompt",
        help="the prompt you will use, if you know it: replaces the "
        "interrogated one and tells apart models that differ only in how they "
        "follow prompts",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="score every model, even when the registry's searcher shortlists (a reference)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_identify)

    p = sub.add_parser("models", help="list registered models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("info", help="show one model's record and specification")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("remove", help="delete a model")
    p.add_argument("name")
    p.set_defaults(func=cmd_remove)

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
        choices=("identity", "whiten"),
        help="where methods score: whiten (default, as a new registry) = the space learned "
        "from the spec images; identity = as encoded. knn is always plain reverse image search",
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

    p = sub.add_parser("serve", help="run the HTTP API and web page")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("doctor", help="what can run here, and what to install or download")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("plugins", help="list the registered encoders and interrogators")
    p.set_defaults(func=cmd_plugins)
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
            choices=("auto", "cpu", "cuda"),
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
    from gmi.registry.store import validate_text

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
