"""Synthetic hubs straight into packed arrays (no registry), for the search benchmarks
(ann.py, compact_space.py): scale.py's models (real zoo features: model i = zoo model i mod 32
shifted by its own random style offset, plus per-image noise), one point per image, beta
uniform, built vectorised in chunks.

In a learned space the hub is generated IN that space: a model's points are
P(zoo image) + P(offset) + noise', with P the space's centred projection and the 1,056-d noise
N(0, s^2 I) drawn as its projection N(0, s^2 W'W) (r-d normals times a Cholesky factor): the
same distribution as projecting raw points, without drawing 48 x 1,056 normals per model, so
that 10^6 models (48 M points) are made in minutes. With `folder`, the point rows are a file
there (memory-mapped, as a registry's are) and reused when asked for again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from scale import ZOO_IMAGES, Synthetic
from tqdm import tqdm

from gmi.search.arrays import PackedArrays
from gmi.search.bf16 import Bf16Rows
from gmi.spec.space import DEFAULT_SPACE_DIMS, fit_space_of, storage_of

CHUNK_MODELS = 4096


def synthetic_arrays(
    synthetic: Synthetic,
    n: int,
    images: int,
    gamma: float,
    space=None,
    folder: Path | None = None,
) -> PackedArrays:
    """n synthetic models of `images` points each; with `space`, r wide in its storage."""
    zoo = synthetic.zoo
    if space is None:
        stored, sq_norms, point_prompt = _raw_points(synthetic, n, images)
    else:
        stored, sq_norms, point_prompt = _space_points(synthetic, n, images, space, folder)
    prompts = zoo["prompts"].reshape(-1, zoo["prompts"].shape[-1]).astype(np.float32)
    prompts /= np.linalg.norm(prompts, axis=1, keepdims=True)
    return PackedArrays(
        names=[f"synthetic/m{i:07d}" for i in range(n)],
        alive=np.ones(n, bool),
        point_offsets=np.arange(0, n * images + 1, images, dtype=np.int64),
        points=Bf16Rows(stored) if stored.dtype == np.uint16 else stored,
        sq_norms=sq_norms,
        beta=np.full(n * images, 1.0 / images),
        point_prompt=point_prompt,
        point_text=np.full(n * images, -1, np.int32),
        prompts=prompts,
        pair_offsets=np.zeros(n + 1, np.int64),
        pair_features=np.zeros((0, synthetic.dim), np.float32),
        pair_prompt=np.zeros(0, np.int32),
        pair_text=np.zeros(0, np.int32),
        texts=[],
        gamma=gamma if space is None else space.gamma,
        space=space,
    )


def _chunks(synthetic: Synthetic, n: int, images: int, rng: np.random.Generator):
    """(start, end, zoo base [m], zoo rows [m, images]) per chunk of models."""
    for s in range(0, n, CHUNK_MODELS):
        e = min(s + CHUNK_MODELS, n)
        base = np.arange(s, e) % synthetic.n_zoo
        yield s, e, base, rng.integers(0, ZOO_IMAGES, size=(e - s, images))


def _raw_points(synthetic: Synthetic, n: int, images: int):
    """The points as encoded (d wide, float32)."""
    d = synthetic.dim
    stored = np.empty((n * images, d), np.float32)
    point_prompt = np.empty(n * images, np.int32)
    rng = np.random.default_rng([synthetic.seed, 42])
    for s, e, base, rows in _chunks(synthetic, n, images, rng):
        offsets = np.stack([synthetic.style_offset(int(i)) for i in range(s, e)])
        noise = rng.normal(size=(e - s, images, d)) * synthetic.noise
        block = synthetic.zoo["spec"][base[:, None], rows] + offsets[:, None, :] + noise
        stored[s * images : e * images] = block.reshape(-1, d)
        point_prompt[s * images : e * images] = (base[:, None] * ZOO_IMAGES + rows).ravel()
    return stored, np.einsum("pd,pd->p", stored, stored).astype(np.float32), point_prompt


def _space_points(synthetic: Synthetic, n: int, images: int, space, folder: Path | None):
    """The points generated in the learned space (module docstring), stored as it stores."""
    r = space.dims
    bf16 = space.storage == "bfloat16"
    files = _files(folder, synthetic, n, images, space) if folder is not None else None
    if files is not None and files["done"].exists():
        return (
            np.load(files["points"], mmap_mode="r"),
            np.load(files["sq_norms"]),
            np.load(files["prompt"]),
        )
    shape, dtype = (n * images, r), np.uint16 if bf16 else np.float32
    if files is None:
        stored = np.empty(shape, dtype)
    else:
        stored = np.lib.format.open_memmap(files["points"], "w+", dtype, shape)
    sq_norms = np.empty(n * images, np.float32)
    point_prompt = np.empty(n * images, np.int32)
    zoo = space.project(synthetic.zoo["spec"].reshape(-1, synthetic.dim))
    zoo = zoo.reshape(synthetic.n_zoo, -1, r).astype(np.float64)
    matrix = np.asarray(space.matrix, np.float64)
    noise_factor = np.linalg.cholesky(matrix.T @ matrix + 1e-12 * np.eye(r)).T * synthetic.noise
    rng = np.random.default_rng([synthetic.seed, 42])
    bar = tqdm(total=n, desc=f"{n} synthetic models", mininterval=10, disable=n < 10**5)
    for s, e, base, rows in _chunks(synthetic, n, images, rng):
        offsets = np.stack([synthetic.style_offset(int(i)) for i in range(s, e)]) @ matrix
        noise = rng.standard_normal(size=((e - s) * images, r)) @ noise_factor
        block = zoo[base[:, None], rows] + offsets[:, None, :]
        block = (block.reshape(-1, r) + noise).astype(np.float32)
        values = Bf16Rows.of(block) if bf16 else block
        decoded = np.asarray(values, dtype=np.float64)  # the norms of the values stored
        sq_norms[s * images : e * images] = np.einsum("pd,pd->p", decoded, decoded)
        stored[s * images : e * images] = values.bits if bf16 else values
        point_prompt[s * images : e * images] = (base[:, None] * ZOO_IMAGES + rows).ravel()
        bar.update(e - s)
    bar.close()
    if files is None:
        return stored, sq_norms, point_prompt
    stored.flush()
    del stored
    np.save(files["sq_norms"], sq_norms)
    np.save(files["prompt"], point_prompt)
    files["done"].write_text(json.dumps({"models": n, "images": images, "dims": r}))
    return np.load(files["points"], mmap_mode="r"), sq_norms, point_prompt


def _files(folder: Path, synthetic: Synthetic, n: int, images: int, space) -> dict[str, Path]:
    """Where a hub's generated rows are kept: named by what made them (the space by a digest
    of its matrix), so another configuration never reads them."""
    digest = hashlib.sha256(np.asarray(space.matrix, np.float32).tobytes()).hexdigest()[:12]
    name = f"hub-{n}-{images}-{synthetic.encoder.replace(':', '_')}-r{space.dims}-{digest}"
    folder = Path(folder) / name
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "points": folder / "points.npy",
        "sq_norms": folder / "sq_norms.npy",
        "prompt": folder / "point_prompt.npy",
        "done": folder / "done.json",
    }


def points_bytes(arrays: PackedArrays) -> int:
    points = arrays.points
    return points.bits.nbytes if isinstance(points, Bf16Rows) else points.nbytes


def space_of(arrays: PackedArrays, images: int, models: int = 2048, dims: int | None = None):
    """The hub-learned space fitted on (up to) the first 2,048 models' points, as a registry
    fits it on its spec images (labels = models); `dims` directions (default: a new
    registry's, DEFAULT_SPACE_DIMS; 0 = all), stored as a registry with those dims stores."""
    dims = DEFAULT_SPACE_DIMS if dims is None else dims
    n = min(models, arrays.n_slots)
    points = np.asarray(arrays.points[: n * images]).reshape(n, images, -1)
    return fit_space_of(list(points), dims=dims, storage=storage_of(dims))


__all__ = ["points_bytes", "space_of", "synthetic_arrays"]
