"""The submitting stage's work, separated from the registry write so it can run anywhere.

`encode_specification` turns a model's (image, prompt) pairs into its specification; every
submit path (`Hub.submit_images`, `gmi submit`, each `submit-many` task in-process, in a pool
process or on a Ray worker) calls it, so they build the same bytes on the same device.
`prepare_entry` does a whole manifest entry where it runs (read or generate the images,
encode, build) and returns plain bytes: the spec as safetensors, the thumbnails as JPEG. The
driver alone writes them to the registry (one writer, atomic), after checking the spec as if
read from disk.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from gmi.augment import spec_views
from gmi.encoders import load_encoder
from gmi.encoders.batches import encode_in_batches
from gmi.errors import InvalidInputError
from gmi.settings import HubSettings
from gmi.spec.kernels import default_gamma
from gmi.spec.specification import Specification, build_specification
from gmi.submit.kept import kept_files
from gmi.submit.manifest import ManifestEntry, read_image_bytes

THUMBNAIL_SIDE = 160


def thumbnail_bytes(image: Image.Image) -> bytes:
    """A small JPEG of a spec image, kept so people can see what a model makes."""
    small = image.convert("RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()


def encode_specification(
    name: str,
    images: Sequence[Image.Image],
    prompts: Sequence[str],
    settings: HubSettings,
    device: str,
    *,
    progress: bool = False,
    home: str | None = None,
) -> Specification:
    """Encode a model's pairs (as its registry's settings say) and build its spec. With no
    gamma fixed yet, the registry's first model fixes it from its own features. home: the
    registry's folder (a trained encoder's weights are there)."""
    if len(images) != len(prompts):
        raise InvalidInputError("each image needs exactly one prompt")
    if len(images) < 2:
        raise InvalidInputError("a specification needs at least 2 generated images")
    encoder = load_encoder(settings.encoder, device, home)
    views = spec_views(list(images), settings.augment)
    features = encode_in_batches(encoder, views, f"encoding {name}", progress)
    prompt_embeddings = encoder.encode_texts(list(prompts))
    gamma = settings.gamma
    if gamma is None:
        try:
            gamma = default_gamma(features)
        except ValueError as exc:  # e.g. every image the same (all black)
            raise InvalidInputError(
                f"{name}: {exc}; a registry's first model fixes the kernel width from its "
                "images, so they must differ"
            ) from exc
    return build_specification(
        features,
        prompt_embeddings,
        list(prompts),
        encoder=encoder.name,
        gamma=gamma,
        n_points=settings.n_points,
    )


def rebuild_with_gamma(spec: Specification, gamma: float, n_points: int | None) -> Specification:
    """The same model's spec at another kernel width (a concurrent first submit fixed the
    registry's gamma first): the spec keeps every image's features, so nothing is re-encoded."""
    return build_specification(
        spec.pair_features,
        spec.pair_prompts,
        spec.prompt_texts,
        encoder=spec.encoder,
        gamma=gamma,
        n_points=n_points,
    )


@dataclass(frozen=True)
class Job:
    """What a task needs besides its entry: the registry's settings (gamma fixed), where
    generated images are kept, and the device ("auto": CUDA when the task got one)."""

    home: str
    settings: dict[str, str]
    device: str = "auto"
    progress: bool = False


@dataclass
class PreparedModel:
    """A model made where it ran, as plain bytes for the driver."""

    spec: bytes  # safetensors (Specification.to_bytes)
    thumbnails: list[bytes]
    generated: int = 0  # images newly generated (the rest were resumed from disk)
    model_hashes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    inputs: str | None = None  # the digest of the bytes encoded (imagefolders)
    kept: list[tuple[str, bytes]] = field(default_factory=list)  # gmi.submit.kept


def generated_folder(home: str | Path, entry: ManifestEntry) -> Path:
    """Where a generated model's images are kept, and resumed from after an interruption."""
    if entry.keep_images is not None:
        return Path(entry.keep_images)
    return default_generated_folder(home, entry.name)


def default_generated_folder(home: str | Path, name: str) -> Path:
    """HUB/generated/<name>, one folder per name: `/` is spelled `~` (a character no model
    name holds, so `a/b` and `a__b` never share a folder)."""
    return Path(home) / "generated" / name.replace("/", "~")


def maker_of(entry: ManifestEntry) -> str:
    """What makes a generated entry's images (the generator, its LoRA and steps): images
    kept by another maker are never resumed."""
    return json.dumps(
        {"generator": entry.generator, "lora": entry.lora, "steps": entry.steps},
        sort_keys=True,
    )


def prepare_entry(entry: ManifestEntry, job: Job) -> PreparedModel:
    """Read or generate one model's images, encode them and build its spec (a task: runs in
    the driver, a pool process or on a Ray worker; must stay importable by reference)."""
    from gmi.generators import load_generator
    from gmi.generators.submission import generate_imagefolder, load_prompts
    from gmi.imagefolder import read_imagefolder
    from gmi.images import open_image
    from gmi.model_hash import checkpoint_hashes
    from gmi.search.ranking import resolve_device

    device = resolve_device(job.device)
    settings = HubSettings.from_strings(job.settings)
    hashes = list(entry.model_hashes)
    extra: dict[str, Any] = {}
    generated = 0
    originals: list[tuple[str, bytes] | None] | None = None  # generated: kept as PNG
    inputs = None  # a generated entry's digest is of its settings: the driver's stands
    if entry.images is not None:
        found = read_imagefolder(entry.images)
        contents = [read_image_bytes(p.path) for p in found.pairs]  # read once: digested
        prompts = [p.prompt for p in found.pairs]
        inputs = entry.folder_digest(found.split, zip(prompts, contents, strict=True))
        images = [open_image(c, str(p.path)) for c, p in zip(contents, found.pairs, strict=True)]
        originals = [(p.path.suffix, c) for p, c in zip(found.pairs, contents, strict=True)]
        if found.split:
            extra["split"] = found.split
    else:
        options: dict[str, Any] = {}
        source = entry.diffusers_source
        if source is not None:
            options = {"lora": entry.lora, "device": device, "steps": entry.steps}
            if not entry.lora:  # a LoRA makes another model than its base checkpoint
                hashes += [h for h in checkpoint_hashes(source) if h not in hashes]
        generator = load_generator(str(entry.generator), **options)
        images, prompts, generated = generate_imagefolder(
            generator,
            load_prompts(entry.prompts),
            generated_folder(job.home, entry),
            entry.images_per_prompt,
            progress=job.progress,
            maker=maker_of(entry),
        )
    spec = encode_specification(
        entry.name, images, prompts, settings, device, progress=job.progress, home=job.home
    )
    return PreparedModel(
        spec=spec.to_bytes(),
        thumbnails=[thumbnail_bytes(im) for im in images],
        generated=generated,
        model_hashes=hashes,
        extra=extra,
        inputs=inputs,
        kept=kept_files(settings.keep_images, images, prompts, originals),
    )
