"""`gmi zoo export DIR`: the zoo as files, so the same benchmark runs on any set of models.

Layout:
    DIR/manifest.json                 models (name, family, description, popularity, folder)
                                      and queries (image, model, prompt)
    DIR/models/<name>/                imagefolder: NNNN.png + metadata.jsonl (spec prompt set)
    DIR/queries/<name>/NNNN.jpg       user-style uploads (JPEG, other sizes) of test prompts
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm import tqdm

from gmi.imagefolder import write_imagefolder
from gmi.zoo import (
    SPEC_PROMPT_SET,
    SWAPPED_PAIRS,
    TEST_PROMPT_SET,
    load_prompt_set,
    load_zoo,
    stable_seed,
    upload_bytes,
)

MANIFEST = "manifest.json"
QUERY_SEED = 1_000_000


def spec_images(
    model_name: str, prompts: tuple[str, ...] | None = None, catalogue: str = "builtin"
):
    """The images a zoo model submits: one per spec prompt, seed = prompt index."""
    prompts = prompts or load_prompt_set(SPEC_PROMPT_SET)
    model = load_zoo(catalogue)[model_name]
    return [model.generate(p, seed=i) for i, p in enumerate(prompts)], list(prompts)


def query_upload(
    model_name: str, prompt_index: int, catalogue: str = "builtin"
) -> tuple[bytes, str]:
    """A held-out user upload (JPEG bytes): a test prompt, a seed never used for specs, another
    size and aspect ratio."""
    prompt = load_prompt_set(TEST_PROMPT_SET)[prompt_index]
    seed = QUERY_SEED + prompt_index
    image = load_zoo(catalogue)[model_name].generate(prompt, seed=seed)
    return upload_bytes(image, seed=stable_seed(model_name, seed)), prompt


def export_zoo(
    directory: str | Path,
    models: int | None = None,
    queries_per_model: int = 12,
    progress: bool = True,
    catalogue: str = "builtin",
) -> dict[str, Any]:
    root = Path(directory)
    zoo = list(load_zoo(catalogue).values())[: models or None]
    manifest: dict[str, Any] = {
        "format": "gmi-zoo-v1",
        "catalogue": catalogue,
        "spec_prompt_set": SPEC_PROMPT_SET,
        "test_prompt_set": TEST_PROMPT_SET,
        "models": [],
        "queries": [],
    }
    n_test = len(load_prompt_set(TEST_PROMPT_SET))
    for index, model in enumerate(tqdm(zoo, desc="exporting zoo", disable=not progress)):
        images, prompts = spec_images(model.name, catalogue=catalogue)
        write_imagefolder(root / "models" / model.name, images, prompts)
        manifest["models"].append(
            {
                "name": model.name,
                "family": model.spec.family,
                "description": model.spec.description,
                "popularity": model.spec.popularity,
                "images": f"models/{model.name}",
            }
        )
        qdir = root / "queries" / model.name
        qdir.mkdir(parents=True, exist_ok=True)
        for k in range(queries_per_model):
            prompt_index = (index * queries_per_model + k) % n_test
            data, prompt = query_upload(model.name, prompt_index, catalogue)
            name = f"queries/{model.name}/{k:04d}.jpg"
            (root / name).write_bytes(data)
            manifest["queries"].append({"image": name, "model": model.name, "prompt": prompt})
    names = [m["name"] for m in manifest["models"]]
    manifest["swapped_pairs"] = [
        list(p) for p in SWAPPED_PAIRS[catalogue] if p[0] in names and p[1] in names
    ]
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    return manifest
