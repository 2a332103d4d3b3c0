"""Checkpoint identities as the Stable Diffusion ecosystem writes them, so that the name or hash
an image's generation metadata gives can find the registered model that made it.

Every tool names a checkpoint its own way:

    autov1   8 hex     A1111 before 2022-10: sha256 of 64 KiB at offset 1 MiB, first 8 hex
    autov2   10 hex    A1111 / Forge / Fooocus "Model hash": the file's sha256, first 10 hex
    autov3   12 hex    Civitai: sha256 of a .safetensors file's tensor data, first 12 hex
    sha256   64 hex    Stability Matrix, TensorArt, Ruined Fooocus, HF Spaces, InvokeAI 2.x;
                       SwarmUI writes it `0x`-prefixed, some tools `sha256:`-prefixed
    blake3   blake3:<64 hex>   InvokeAI 4.x and later
    air      urn:air:<ecosystem>:<type>:<source>:<model>@<version>   Civitai's generator
    file     a file name (ComfyUI, SwarmUI write only that): a weaker, named match

Keys are what the registry stores and looks up (model_hashes.hash): hex hashes as lower-case
hex (the forms earlier versions stored), the others with a prefix that no hex string has. A
full sha256 is also stored as its AutoV2 prefix, which is what most images embed; an AIR also as
`civitai:<version>` because Civitai's A1111-style text gives the version id alone.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from gmi.errors import InvalidInputError

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".sft")
CHUNK = 1024 * 1024
MAX_ID_CHARS = 300

HEX_KINDS = {8: "autov1", 10: "autov2", 12: "autov3", 64: "sha256"}
HASH_KINDS = ("autov1", "autov2", "autov3", "sha256", "blake3", "air", "file")
_HEX = re.compile(r"[0-9a-f]+")
_AIR = re.compile(
    r"urn:air:(?P<ecosystem>[a-z0-9_.-]+):(?P<type>[a-z0-9_.-]+):(?P<source>[a-z0-9_.-]+):"
    r"(?P<id>[^@\s]+?)(?:@(?P<version>[^\s.]+))?(?:\.[a-z0-9]+)?"
)
_FILE_NAME = re.compile(r"[^\x00-\x1f<>\"|?*]{1,200}")


@dataclass(frozen=True)
class ModelId:
    """One identity of a checkpoint: its kind (HASH_KINDS) and normalised value."""

    kind: str
    value: str

    @property
    def exact(self) -> bool:
        """A hash or an AIR names one file; a file name may be shared by others, and
        NovelAI's internal hash names no file anyone holds."""
        return self.kind not in ("file", "novelai")

    def registry_keys(self) -> list[str]:
        """Registry keys under which a model carrying this identity is stored / found."""
        if self.kind == "sha256":
            return [self.value, self.value[:10]]
        if self.kind in ("autov1", "autov2", "autov3"):
            return [self.value]
        if self.kind == "blake3":
            return [f"blake3:{self.value}"]
        if self.kind == "air":
            keys = [self.value]
            version = _AIR.fullmatch(self.value)
            if version and version["source"] == "civitai" and version["version"]:
                keys.append(f"civitai:{version['version']}")
            return keys
        if self.kind == "novelai":
            return []
        if self.kind == "civitai_version":
            return [f"civitai:{self.value}"]
        return [f"file:{self.value}"]


def parse_model_id(value: str, *, allow_file: bool = True) -> ModelId:
    """A user's or an image's checkpoint identity, or InvalidInputError naming what is accepted.

    Hex of 8/10/12/64 digits (a `0x` or `sha256:` prefix allowed on 64), `blake3:<64 hex>`, a
    Civitai AIR URN, or (allow_file) a checkpoint file name."""
    text = str(value).strip()
    lowered = text.lower()
    if not text or len(text) > MAX_ID_CHARS:
        raise InvalidInputError(_refused(value))
    for prefix in ("0x", "sha256:"):
        if lowered.startswith(prefix) and len(lowered) == len(prefix) + 64:
            lowered = lowered[len(prefix) :]
    if _HEX.fullmatch(lowered) and len(lowered) in HEX_KINDS:
        return ModelId(HEX_KINDS[len(lowered)], lowered)
    if lowered.startswith("blake3:"):
        digest = lowered.removeprefix("blake3:")
        if _HEX.fullmatch(digest) and len(digest) == 64:
            return ModelId("blake3", digest)
        raise InvalidInputError(_refused(value))
    if lowered.startswith("urn:air:"):
        if _AIR.fullmatch(lowered):
            return ModelId("air", lowered)
        raise InvalidInputError(_refused(value))
    if allow_file and not _HEX.fullmatch(lowered):
        stem = file_stem(text)
        if stem and _FILE_NAME.fullmatch(text):
            return ModelId("file", stem)
    raise InvalidInputError(_refused(value))


def _refused(value: object) -> str:
    return (
        f"model hash {str(value)[:80]!r} is not a checkpoint identity: give AutoV1/AutoV2/AutoV3 "
        "(8, 10 or 12 hex), a sha256 (64 hex, 0x allowed), blake3:<64 hex>, a Civitai AIR URN "
        "(urn:air:...) or the checkpoint's file name"
    )


def file_stem(name: str) -> str:
    """A checkpoint file name as tools compare it: no folders, no weight suffix, lower case
    (ComfyUI writes `SDXL/juggernaut.safetensors`, A1111 `juggernaut`)."""
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    lowered = base.lower()
    for suffix in WEIGHT_SUFFIXES:
        if lowered.endswith(suffix):
            lowered = lowered[: -len(suffix)]
            break
    return lowered.strip()


def identity_of(value: str) -> ModelId | None:
    """What an image's text names as a checkpoint hash, or None when it is no known form (a
    metadata value is untrusted: it is never an error)."""
    try:
        return parse_model_id(value, allow_file=False)
    except InvalidInputError:
        return None


def stored_keys(values: list[str] | tuple[str, ...]) -> list[str]:
    """The registry keys for a submission's --model-hash values (refuses a bad one)."""
    return sorted({key for v in values for key in parse_model_id(v).registry_keys()})


# -- computing a local checkpoint's hashes ---------------------------------------------------
def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def autov2(path: str | Path) -> str:
    """AUTOMATIC1111's "Model hash" of a checkpoint file."""
    return file_sha256(path)[:10]


def file_identities(path: str | Path) -> list[str]:
    """Every hash the ecosystem uses for one checkpoint file, in one pass over its bytes:
    sha256 (stored with its AutoV2 form), AutoV1, AutoV3 for .safetensors, blake3 (when the
    `blake3` package is installed) and the file name."""
    path = Path(path)
    full = hashlib.sha256()
    tensors = hashlib.sha256() if path.suffix == ".safetensors" else None
    blake = _blake3()
    skip = _safetensors_header_bytes(path) if tensors is not None else 0
    offset = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            full.update(chunk)
            if blake is not None:
                blake.update(chunk)
            if tensors is not None and offset + len(chunk) > skip:
                tensors.update(chunk[max(0, skip - offset) :])
            offset += len(chunk)
        handle.seek(0x100000)
        legacy = handle.read(0x10000)
    out = [full.hexdigest()]
    if len(legacy) == 0x10000:
        out.append(hashlib.sha256(legacy).hexdigest()[:8])
    if tensors is not None and skip:
        out.append(tensors.hexdigest()[:12])
    if blake is not None:
        out.append(f"blake3:{blake.hexdigest()}")
    out.append(path.name)
    return out


def _blake3():
    try:
        from blake3 import blake3
    except ImportError:
        return None
    return blake3()


def _safetensors_header_bytes(path: Path) -> int:
    """Bytes before a .safetensors file's tensor data (8-byte length + JSON header), 0 if the
    file is not one."""
    with open(path, "rb") as handle:
        head = handle.read(8)
    if len(head) < 8:
        return 0
    size = int.from_bytes(head, "little")
    return 8 + size if 0 < size < path.stat().st_size else 0


def checkpoint_hashes(source: str | Path) -> list[str]:
    """The identities of each single-file checkpoint at a local source (a file or a diffusers
    folder's top level); [] for a hub id or a folder without one."""
    path = Path(source).expanduser()
    if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES:
        return file_identities(path)
    if path.is_dir():
        return [
            identity
            for p in sorted(path.iterdir())
            if p.is_file() and p.suffix in CHECKPOINT_SUFFIXES
            for identity in file_identities(p)
        ]
    return []
