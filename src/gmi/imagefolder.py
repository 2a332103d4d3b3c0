"""Read a submission in the Hugging Face `imagefolder` layout, as `datasets` reads it.

A folder of images plus a metadata file naming each image and its prompt:

    metadata.jsonl   {"file_name": "0001.png", "text": "<prompt>"} per line
    metadata.csv     a header row with file_name and the caption column, then one row per image

as `datasets.load_dataset("imagefolder", data_dir=...)` accepts them: UTF-8 with or without a
byte-order mark, CRLF or LF line ends, quoted CSV fields (commas, quotes and newlines inside),
file names relative to the metadata file's folder (metadata may sit in a subfolder), extra
columns ignored, images that no row lists ignored. The prompt is the first caption column
present of `text`, `prompt`, `caption`. A folder split the `datasets` way (`train/`, `test/`,
`validation/`, also one level down, e.g. `data/train/`) is read for ONE split: `train` when
present, else the only one; which split was used is reported (`ImageFolder.split`).

Everything is validated before anything is written: the caller gets every (image, prompt) pair
or one clear error naming the file and line. One reader serves the CLI and the HTTP upload.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gmi.errors import InvalidInputError
from gmi.images import open_image

METADATA = "metadata.jsonl"
METADATA_FILES = ("metadata.jsonl", "metadata.csv")
CAPTION_COLUMNS = ("text", "prompt", "caption")
MAX_PROMPT_CHARS = 20_000
MAX_METADATA_BYTES = 64 * 1024 * 1024
# `datasets`' split keywords for folder names ("train", "train-2024", "data/train", ...)
SPLIT_KEYWORDS = {
    "train": ("train", "training"),
    "validation": ("validation", "valid", "dev", "val"),
    "test": ("test", "testing", "eval", "evaluation"),
}
_SPLIT_DIR = {
    split: re.compile(rf"({'|'.join(words)})([-._ ].*)?", re.IGNORECASE)
    for split, words in SPLIT_KEYWORDS.items()
}


@dataclass(frozen=True)
class Pair:
    path: Path
    prompt: str


@dataclass(frozen=True)
class ImageFolder:
    """The pairs of one split, and which split and metadata files they came from."""

    pairs: list[Pair]
    split: str | None  # None: the folder has no split subfolders
    metadata_files: list[Path]


def find_split(folder: Path) -> tuple[list[Path], str | None]:
    """The folders of the split to read (train, else the only split) and its name."""
    candidates = [p for p in sorted(folder.iterdir()) if p.is_dir()]
    candidates += [q for p in candidates for q in sorted(p.iterdir()) if q.is_dir()]
    found: dict[str, list[Path]] = {}
    for path in candidates:
        for split, pattern in _SPLIT_DIR.items():
            if pattern.fullmatch(path.name):
                found.setdefault(split, []).append(path)
    if not found:
        return [folder], None
    if "train" in found:
        return found["train"], "train"
    if len(found) == 1:
        [(split, paths)] = found.items()
        return paths, split
    raise InvalidInputError(
        f"{folder}: several splits ({', '.join(sorted(found))}) and no train split; "
        "submit one split's folder"
    )


def read_imagefolder(folder: str | Path) -> ImageFolder:
    """Parse and check the metadata of one split: well-formed rows, files inside the folder,
    no duplicates."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: not a directory")
    roots, split = find_split(folder)
    metadata_files = sorted(
        path
        for root in roots
        for name in METADATA_FILES
        for path in [*root.glob(name), *root.glob(f"*/{name}"), *root.glob(f"*/*/{name}")]
        if path.is_file()
    )
    if not metadata_files:
        where = f" (split {split!r})" if split else ""
        raise InvalidInputError(
            f"{folder}{where}: no metadata.jsonl or metadata.csv (the imagefolder layout needs "
            "one, naming each image and its prompt)"
        )
    kinds = {p.suffix for p in metadata_files}
    if len(kinds) > 1:
        raise InvalidInputError(
            f"{folder}: both metadata.jsonl and metadata.csv found; keep one kind"
        )
    pairs: list[Pair] = []
    seen: set[Path] = set()
    for meta in metadata_files:
        for where, record in _records(meta):
            pair = _pair(meta.parent, where, record)
            if pair.path in seen:
                raise InvalidInputError(f"{where}: {pair.path.name!r} is listed twice")
            seen.add(pair.path)
            pairs.append(pair)
    if not pairs:
        raise InvalidInputError(f"{metadata_files[0]}: lists no images")
    return ImageFolder(pairs, split, metadata_files)


def read_metadata(folder: str | Path) -> list[Pair]:
    """The (image path, prompt) pairs of an imagefolder (see read_imagefolder)."""
    return read_imagefolder(folder).pairs


def _text(meta: Path) -> str:
    if meta.stat().st_size > MAX_METADATA_BYTES:
        raise InvalidInputError(f"{meta}: larger than {MAX_METADATA_BYTES // 2**20} MiB")
    try:
        return meta.read_bytes().decode("utf-8-sig")  # a byte-order mark is allowed
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{meta}: not UTF-8 text") from exc


def _records(meta: Path) -> list[tuple[str, object]]:
    """(location, row) per metadata row; JSON lines or CSV with a header."""
    text = _text(meta)
    if meta.suffix == ".csv":
        try:
            rows = list(csv.DictReader(io.StringIO(text, newline="")))
        except csv.Error as exc:
            raise InvalidInputError(f"{meta}: not valid CSV ({exc})") from exc
        return [(f"{meta}:{n}", row) for n, row in enumerate(rows, start=2)]
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{meta}:{number}"
        try:
            out.append((where, json.loads(line)))
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from exc
        except RecursionError as exc:
            raise InvalidInputError(f"{where}: JSON nested too deeply") from exc
    return out


def _pair(base: Path, where: str, record: object) -> Pair:
    if not isinstance(record, dict):
        raise InvalidInputError(f"{where}: each line must be a JSON object")
    name = record.get("file_name")
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{where}: 'file_name' must be a non-empty string")
    column = next((c for c in CAPTION_COLUMNS if c in record), None)
    if column is None:
        found = ", ".join(repr(k) for k in record if k != "file_name") or "none"
        raise InvalidInputError(
            f"{where}: no prompt column: name it 'text', 'prompt' or 'caption' (found: {found})"
        )
    text = record[column]
    if not isinstance(text, str):
        raise InvalidInputError(f"{where}: {column!r} (the prompt) must be a string")
    if len(text) > MAX_PROMPT_CHARS:
        raise InvalidInputError(f"{where}: prompt longer than {MAX_PROMPT_CHARS} characters")
    if "\x00" in name:
        raise InvalidInputError(f"{where}: file name contains a NUL byte")
    root = base.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(root):
        raise InvalidInputError(f"{where}: {name!r} points outside the folder")
    if not path.is_file():
        raise InvalidInputError(f"{where}: {name!r} does not exist")
    return Pair(path=path, prompt=text)


def load_imagefolder(folder: str | Path) -> tuple[list[Image.Image], list[str]]:
    """Every listed image decoded (RGB) with its prompt; any bad image aborts with its name."""
    pairs = read_metadata(folder)
    return [open_image(p.path) for p in pairs], [p.prompt for p in pairs]


def write_imagefolder(
    folder: str | Path, images: list[Image.Image], prompts: list[str], fmt: str = "png"
) -> None:
    """Write images + metadata.jsonl (used by the zoo export and the demo)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, (image, prompt) in enumerate(zip(images, prompts, strict=True)):
        name = f"{i:04d}.{fmt}"
        image.save(folder / name)
        lines.append(json.dumps({"file_name": name, "text": prompt}))
    (folder / METADATA).write_text("\n".join(lines) + "\n", encoding="utf-8")
