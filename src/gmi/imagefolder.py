"""Read a submission in the Hugging Face imagefolder layout: images + metadata.jsonl.

Each line of metadata.jsonl is {"file_name": "0001.png", "text": "<prompt>"}. Everything is
validated before anything is written: the caller gets every (image, prompt) pair or one clear
error naming the file and line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from gmi.errors import InvalidInputError
from gmi.images import open_image

METADATA = "metadata.jsonl"
MAX_PROMPT_CHARS = 20_000


@dataclass(frozen=True)
class Pair:
    path: Path
    prompt: str


def read_metadata(folder: str | Path) -> list[Pair]:
    """Parse and check metadata.jsonl: well-formed lines, files inside the folder, no duplicates."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInputError(f"{folder}: not a directory")
    meta = folder / METADATA
    if not meta.is_file():
        raise InvalidInputError(f"{folder}: no {METADATA} (imagefolder layout needs one)")
    root = folder.resolve()
    pairs: list[Pair] = []
    seen: set[str] = set()
    try:
        lines = meta.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"{meta}: not UTF-8 text") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{meta}:{number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(f"{where}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise InvalidInputError(f"{where}: each line must be a JSON object")
        name, text = record.get("file_name"), record.get("text")
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{where}: 'file_name' must be a non-empty string")
        if not isinstance(text, str):
            raise InvalidInputError(f"{where}: 'text' (the prompt) must be a string")
        if len(text) > MAX_PROMPT_CHARS:
            raise InvalidInputError(f"{where}: prompt longer than {MAX_PROMPT_CHARS} characters")
        if "\x00" in name:
            raise InvalidInputError(f"{where}: file name contains a NUL byte")
        path = (folder / name).resolve()
        if not path.is_relative_to(root):
            raise InvalidInputError(f"{where}: {name!r} points outside the folder")
        if name in seen:
            raise InvalidInputError(f"{where}: {name!r} is listed twice")
        seen.add(name)
        if not path.is_file():
            raise InvalidInputError(f"{where}: {name!r} does not exist")
        pairs.append(Pair(path=path, prompt=text))
    if not pairs:
        raise InvalidInputError(f"{meta}: lists no images")
    return pairs


def load_imagefolder(folder: str | Path) -> tuple[list[Image.Image], list[str]]:
    """Every listed image decoded (RGB) with its prompt; any bad image aborts with its name."""
    pairs = read_metadata(folder)
    images = [open_image(p.path) for p in pairs]
    return images, [p.prompt for p in pairs]


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
