"""Generate a model's spec images for a prompt set, resumably, as an imagefolder.

Image i of prompt p gets seed `p_index * images_per_prompt + i`, so every model of a hub sees
the same (prompt, seed) grid. Images already in the folder (listed in its metadata.jsonl with
the same prompt AND made by the same generator, its `maker` identity: generator, LoRA, steps)
are reused: an interrupted run continues where it stopped, and a folder left by another
generator (a model removed and submitted again differently) is generated anew. The metadata
is rewritten atomically after every batch.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from gmi.errors import InvalidInputError
from gmi.imagefolder import METADATA
from gmi.images import open_image
from gmi.registry.atomic import atomic_write

REAL_PROMPT_SET = "real-prompts-v1"


def load_prompts(path: str | Path | None) -> list[str]:
    """A prompt file (one per line, '#' comments), or gmi's standard set for real models."""
    if path is None:
        text = resources.files("gmi.generators").joinpath(f"data/{REAL_PROMPT_SET}.txt").read_text()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path}: cannot read the prompt file ({exc})") from exc
    prompts = [
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]
    if not prompts:
        raise InvalidInputError(f"{path}: no prompts in the file")
    return prompts


def generate_imagefolder(
    generator: object,
    prompts: list[str],
    folder: str | Path,
    images_per_prompt: int = 1,
    batch_size: int = 8,
    progress: bool = True,
    maker: str = "",
) -> tuple[list[Image.Image], list[str], int]:
    """Fill `folder` with images for every (prompt, seed); returns images, their prompts and
    how many were newly generated. `maker` names what makes the images (see module doc)."""
    if images_per_prompt < 1:
        raise InvalidInputError("--images-per-prompt must be at least 1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = [
        (f"{p_i:04d}_{k}.png", prompt, p_i * images_per_prompt + k)
        for p_i, prompt in enumerate(prompts)
        for k in range(images_per_prompt)
    ]
    done = _existing(folder, maker)
    todo = [w for w in wanted if done.get(w[0]) != w[1] or not (folder / w[0]).exists()]
    bar = tqdm(
        total=len(wanted),
        initial=len(wanted) - len(todo),
        desc="generating",
        unit="image",
        disable=not progress,
    )
    for start in range(0, len(todo), batch_size):
        chunk = todo[start : start + batch_size]
        images = generator.generate([c[1] for c in chunk], [c[2] for c in chunk])  # type: ignore[attr-defined]
        for (name, prompt, _), image in zip(chunk, images, strict=True):
            buffer_path = folder / name
            image.save(buffer_path.with_suffix(".tmp.png"))
            buffer_path.with_suffix(".tmp.png").replace(buffer_path)
            done[name] = prompt
        _write_metadata(folder, {w[0]: done[w[0]] for w in wanted if w[0] in done}, maker)
        bar.update(len(chunk))
    bar.close()
    images = [open_image(folder / w[0]) for w in wanted]
    return images, [w[1] for w in wanted], len(todo)


def _existing(folder: Path, maker: str) -> dict[str, str]:
    """file name -> prompt of the images this maker left in the folder."""
    meta = folder / METADATA
    if not meta.exists():
        return {}
    out = {}
    for line in meta.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
            if record.get("generator", "") != maker:
                continue  # another generator's image: generated again
            out[str(record["file_name"])] = str(record["text"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue  # a damaged line: that image is generated again
    return out


def _write_metadata(folder: Path, records: dict[str, str], maker: str) -> None:
    lines = [
        json.dumps({"file_name": name, "text": text, "generator": maker})
        for name, text in records.items()
    ]
    atomic_write(folder / METADATA, ("\n".join(lines) + "\n").encode())
