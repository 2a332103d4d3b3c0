"""Checkpoint hashes as Stable Diffusion front-ends compute them, so that an image's embedded
"Model hash: <hex>" can name the registered model that made it.

AUTOMATIC1111 / Forge write AutoV2: the first 10 hex digits of the sha256 of the whole
checkpoint file (`.safetensors` or `.ckpt`); Civitai lists the same value. gmi records, for a
model generated from local weights, the AutoV2 of every single-file checkpoint it was given (a
file, or the top-level `*.safetensors` / `*.ckpt` files of a diffusers folder, where hub
repositories keep the single-file version that front-ends load).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
CHUNK = 1024 * 1024


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def autov2(path: str | Path) -> str:
    """AUTOMATIC1111's "Model hash" of a checkpoint file."""
    return file_sha256(path)[:10]


def checkpoint_hashes(source: str | Path) -> list[str]:
    """Full sha256 of each single-file checkpoint at a local source (a file or a diffusers
    folder's top level); [] for a hub id or a folder without one. The registry stores each
    with its AutoV2 form."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return [file_sha256(path)]
    if path.is_dir():
        return [
            file_sha256(p)
            for p in sorted(path.iterdir())
            if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES
        ]
    return []
