"""A submission manifest: the models to add in one `gmi submit-many` run, one per line.

JSON lines (one object per line) or CSV (a header row, the same keys as columns):

    {"name": "anime-v3", "images": "crawl/anime-v3"}                       an imagefolder
    {"name": "sd15-lora", "diffusers": "runwayml/stable-diffusion-v1-5",   a pipeline to run
     "lora": "loras/ink.safetensors", "prompts": "prompts.txt", "steps": 30,
     "images_per_prompt": 2, "description": "ink drawings"}
    {"name": "flat", "generator": "zoo:flat-base", "prompts": "p.txt"}    any registered
                                                                           generator by name

Relative paths are read from the manifest's folder. The whole manifest is checked before any
work starts (a malformed line is one error naming it); what can only fail while a model is
made (a missing folder, weights that do not load) fails that model alone.

Each entry has a digest of its inputs (image bytes and prompts, or the generator, LoRA,
prompts and steps, plus description and checkpoint hashes), recorded with the model: a re-run
skips a model whose inputs did not change, whoever submitted it (`gmi submit` records it too).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gmi.errors import InvalidInputError
from gmi.generators import GENERATORS
from gmi.model_hash import parse_model_id
from gmi.registry.validation import validate_description, validate_name
from gmi.submit.digests import DigestCache, folder_stamp

DIGEST_VERSION = 1
KEYS = {
    "name",
    "images",
    "diffusers",
    "generator",
    "lora",
    "prompts",
    "steps",
    "images_per_prompt",
    "description",
    "model_hashes",
    "keep_images",
}
DEFAULT_STEPS = 30
MAX_MANIFEST_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class ManifestEntry:
    """One model to submit: from an imagefolder (`images`) or by running a generator
    (`generator`, e.g. "diffusers:<id-or-path>", "zoo:<name>") over a prompt file."""

    name: str
    images: Path | None = None
    generator: str | None = None
    lora: str | None = None
    prompts: Path | None = None
    steps: int = DEFAULT_STEPS
    images_per_prompt: int = 1
    description: str | None = None
    model_hashes: tuple[str, ...] = ()
    keep_images: Path | None = None  # where generated images are kept (default <home>/generated)

    def __post_init__(self) -> None:
        validate_name(self.name)
        validate_description(self.description)  # before any work, not after encoding
        if (self.images is None) == (self.generator is None):
            raise InvalidInputError("give exactly one of images, diffusers or generator")
        if self.images is not None:
            extras = [k for k in ("lora", "prompts", "keep_images") if getattr(self, k)]
            if extras:
                raise InvalidInputError(f"{', '.join(extras)} apply to generated models only")
        else:
            kind = str(self.generator).partition(":")[0]
            if kind not in GENERATORS:
                raise InvalidInputError(
                    f"unknown generator {self.generator!r}; registered: {', '.join(GENERATORS)}"
                )
            if self.lora and kind != "diffusers":
                raise InvalidInputError("lora applies to diffusers pipelines only")
        if self.steps < 1 or self.images_per_prompt < 1:
            raise InvalidInputError("steps and images_per_prompt must be at least 1")
        for model_hash in self.model_hashes:
            parse_model_id(model_hash)

    @property
    def diffusers_source(self) -> str | None:
        """The pipeline's id or folder, for a diffusers entry."""
        kind, _, source = str(self.generator).partition(":")
        return source if kind == "diffusers" else None

    def inputs_digest(self, cache: DigestCache | None = None) -> str:
        """sha256 of everything the model's spec and record are made from. Reads the images
        (content, not paths or times: a moved folder is the same model) or the prompt file;
        raises InvalidInputError when they cannot be read. With a cache (gmi.submit.digests)
        an unchanged folder is stat'ed, not read."""
        from gmi.generators.submission import load_prompts
        from gmi.imagefolder import read_imagefolder

        if self.images is not None:
            found = read_imagefolder(self.images)
            stamp = None
            if cache is not None:
                header = {**self._digest_settings(), "split": found.split}
                stamp = folder_stamp(header, [(p.prompt, p.path) for p in found.pairs])
                cached = cache.get(stamp) if stamp else None
                if cached:
                    return cached
            contents = (read_image_bytes(pair.path) for pair in found.pairs)
            prompts = (pair.prompt for pair in found.pairs)
            digest = self.folder_digest(found.split, zip(prompts, contents, strict=True))
            if cache is not None and stamp:
                cache.put(stamp, digest)
            return digest
        digest = hashlib.sha256()
        settings = self._digest_settings()
        settings.update(
            generator=self.generator,
            lora=self.lora,
            steps=self.steps,
            images_per_prompt=self.images_per_prompt,
            prompts=load_prompts(self.prompts),
        )
        digest.update(json.dumps(settings, sort_keys=True).encode())
        return "sha256:" + digest.hexdigest()

    def folder_digest(self, split: str | None, pairs: Iterable[tuple[str, bytes]]) -> str:
        """The digest of an imagefolder entry from (prompt, image bytes) pairs: the task that
        encodes the images digests the very bytes it decodes, so a folder changed during a
        run is recorded under the digest of what was encoded."""
        digest = hashlib.sha256()
        header = {**self._digest_settings(), "split": split}
        digest.update(json.dumps(header, sort_keys=True).encode())
        for prompt, content in pairs:
            digest.update(json.dumps([prompt]).encode())
            digest.update(hashlib.sha256(content).digest())
        return "sha256:" + digest.hexdigest()

    def _digest_settings(self) -> dict[str, Any]:
        return {
            "version": DIGEST_VERSION,
            "description": self.description,
            "model_hashes": sorted(self.model_hashes),
        }

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if v not in (None, (), [])}
        for key in ("images", "prompts", "keep_images"):
            if key in out:
                out[key] = str(out[key])
        out["model_hashes"] = list(self.model_hashes)
        return out


def read_image_bytes(path: Path) -> bytes:
    """One spec image's bytes (size-limited like every image gmi opens)."""
    from gmi.images import MAX_FILE_BYTES

    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InvalidInputError(f"{path}: file is larger than {MAX_FILE_BYTES // 2**20} MiB")
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"{path}: cannot be read ({exc})") from exc


def read_manifest(path: str | Path) -> list[ManifestEntry]:
    """Every entry of a JSON-lines (or .csv) manifest, checked; one error naming the line."""
    path = Path(path)
    if path.is_dir():  # the commonest slip: the folder of model folders instead of a manifest
        raise InvalidInputError(
            f"{path}: is a directory; submit-many reads a manifest file, one JSON object per "
            'line such as {"name": "my-model", "images": "DIR"} (one folder: gmi submit)'
        )
    try:
        if path.stat().st_size > MAX_MANIFEST_BYTES:
            raise InvalidInputError(f"{path}: manifest over {MAX_MANIFEST_BYTES} bytes")
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read the manifest ({exc})") from exc
    rows = _csv_rows(text, path) if path.suffix.lower() == ".csv" else _jsonl_rows(text, path)
    entries: list[ManifestEntry] = []
    seen: dict[str, int] = {}
    for line, row in rows:
        where = f"{path}:{line}"
        try:
            entry = _entry(row, path.parent.resolve())
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: {exc}") from exc
        if entry.name in seen:
            raise InvalidInputError(
                f"{where}: model {entry.name!r} is already listed on line {seen[entry.name]}"
            )
        seen[entry.name] = line
        entries.append(entry)
    if not entries:
        raise InvalidInputError(f"{path}: the manifest lists no models")
    return entries


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{path}:{number}: not JSON ({exc.msg})") from exc
        if not isinstance(row, dict):
            raise InvalidInputError(f"{path}:{number}: each line must be a JSON object")
        rows.append((number, row))
    return rows


def _csv_rows(text: str, path: Path) -> list[tuple[int, dict[str, Any]]]:
    """CSV: empty cells are absent keys; model_hashes separated by spaces."""
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        if row.get(None):  # type: ignore[call-overload]  # cells past the header's columns
            raise InvalidInputError(
                f"{path}:{reader.line_num}: {len(row[None])} more cells than the header has "  # type: ignore[index]
                "columns (quote a cell that holds a comma)"
            )
        values: dict[str, Any] = {k: v for k, v in row.items() if k and v not in (None, "")}
        if "model_hashes" in values:
            values["model_hashes"] = str(values["model_hashes"]).split()
        for key in ("steps", "images_per_prompt"):
            if key in values:
                with contextlib.suppress(ValueError):  # else reported as a wrong type
                    values[key] = int(values[key])
        rows.append((reader.line_num, values))
    return rows


def _entry(row: dict[str, Any], base: Path) -> ManifestEntry:
    unknown = sorted(set(row) - KEYS)
    if unknown:
        raise InvalidInputError(f"unknown keys {unknown}; valid: {', '.join(sorted(KEYS))}")
    for key, kind in (("steps", int), ("images_per_prompt", int)):
        if key in row and (not isinstance(row[key], kind) or isinstance(row[key], bool)):
            raise InvalidInputError(f"{key} must be an integer")
    for key in ("name", "images", "diffusers", "generator", "lora", "prompts", "description"):
        if key in row and not isinstance(row[key], str):
            raise InvalidInputError(f"{key} must be a string")
    hashes = row.get("model_hashes", [])
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise InvalidInputError("model_hashes must be a list of strings")
    if "name" not in row:
        raise InvalidInputError("every model needs a name")
    if "diffusers" in row and "generator" in row:
        raise InvalidInputError("give diffusers or generator, not both")
    generator = row.get("generator")
    if "diffusers" in row:
        generator = f"diffusers:{_local_or_id(row['diffusers'], base)}"
    return ManifestEntry(
        name=row["name"],
        images=_path(row.get("images"), base),
        generator=generator,
        lora=_local_or_id(row["lora"], base) if row.get("lora") else None,
        prompts=_path(row.get("prompts"), base),
        steps=row.get("steps", DEFAULT_STEPS),
        images_per_prompt=row.get("images_per_prompt", 1),
        description=row.get("description"),
        model_hashes=tuple(hashes),
        keep_images=_path(row.get("keep_images"), base),
    )


def _path(value: str | None, base: Path) -> Path | None:
    if value is None:
        return None
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path


def _local_or_id(value: str, base: Path) -> str:
    """A path relative to the manifest when one exists there, else as given (a hub id)."""
    local = base / Path(value).expanduser()
    return str(local) if not Path(value).is_absolute() and local.exists() else value
