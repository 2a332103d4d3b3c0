"""A model's specification: what the hub keeps of a model, as plain arrays + JSON metadata.

On disk a spec is ONE safetensors file: the arrays, with the JSON metadata in the header's
``__metadata__`` (encoder id, gamma, K, prompt-set hash, created time, gmi version, sha256 of
the arrays). One file means one atomic rename; safetensors means no code is ever executed on
load (never pickle).
"""

from __future__ import annotations

import hashlib
import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save

from gmi import __version__
from gmi.errors import CorruptSpecError
from gmi.safetensors_io import load_bytes_with_metadata, load_with_metadata
from gmi.spec.kernels import median_heuristic_gamma
from gmi.spec.rkme import build_reduced_set

FORMAT_VERSION = 1
_ARRAYS = ("points", "beta", "point_prompts", "pair_features", "pair_prompts")


@dataclass
class Specification:
    """Weighted RKME specification S_m = {(c_j, beta_j, q_j)} plus the model's image-prompt pairs.

    points        [K, d] float32  reduced-set points c_j in the encoder's image space
    beta          [K]    float64  their weights (>= 0, mass kept, see gmi.spec.rkme)
    point_prompts [K, e] float32  the prompt context q_j of each point (L2-normalised)
    pair_features [N, d] float32  every spec image's feature (for retrieval / kNN)
    pair_prompts  [N, e] float32  the embedding of the prompt of each spec image
    prompt_texts  N strings       the prompt of each spec image
    """

    points: np.ndarray
    beta: np.ndarray
    point_prompts: np.ndarray
    pair_features: np.ndarray
    pair_prompts: np.ndarray
    prompt_texts: list[str]
    gamma: float
    encoder: str
    prompt_set: str
    created: float = field(default_factory=time.time)
    gmi_version: str = __version__

    @property
    def n_points(self) -> int:
        return int(self.points.shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        return {
            "points": np.ascontiguousarray(self.points, dtype=np.float32),
            "beta": np.ascontiguousarray(self.beta, dtype=np.float64),
            "point_prompts": np.ascontiguousarray(self.point_prompts, dtype=np.float32),
            "pair_features": np.ascontiguousarray(self.pair_features, dtype=np.float32),
            "pair_prompts": np.ascontiguousarray(self.pair_prompts, dtype=np.float32),
        }

    def metadata(self, arrays_sha256: str) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "encoder": self.encoder,
            "gamma": self.gamma,
            "n_points": self.n_points,
            "n_images": int(self.pair_features.shape[0]),
            "prompt_set": self.prompt_set,
            "created": self.created,
            "gmi_version": self.gmi_version,
            "arrays_sha256": arrays_sha256,
            "prompt_texts": self.prompt_texts,
        }

    def to_bytes(self) -> bytes:
        """Serialise to safetensors bytes (arrays + JSON metadata in the header)."""
        arrays = self.arrays()
        meta = self.metadata(arrays_sha256(arrays))
        return save(arrays, metadata={"gmi": json.dumps(meta)})

    @classmethod
    def load(cls, path: str | Path, label: str | None = None) -> Specification:
        """Load and verify a spec file; any damage raises CorruptSpecError (messages start with
        `label`, e.g. "model 'x'", else the path)."""
        where = label or str(path)
        try:
            arrays, metadata = load_with_metadata(Path(path))
        except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
            raise CorruptSpecError(f"{where}: not a readable gmi specification ({exc})") from exc
        return cls._checked(arrays, metadata, where)

    @classmethod
    def from_bytes(cls, data: bytes, label: str = "specification") -> Specification:
        """Verify and load spec bytes (`to_bytes`), as strictly as a file: a spec made on
        another machine is checked before the registry stores it."""
        try:
            arrays, metadata = load_bytes_with_metadata(data)
        except (SafetensorError, ValueError, TypeError, struct.error) as exc:
            raise CorruptSpecError(f"{label}: not a readable gmi specification ({exc})") from exc
        return cls._checked(arrays, metadata, label)

    @classmethod
    def _checked(
        cls, arrays: dict[str, np.ndarray], metadata: dict[str, str], where: str
    ) -> Specification:
        try:
            meta = json.loads(metadata["gmi"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptSpecError(f"{where}: not a readable gmi specification ({exc})") from exc
        missing = [name for name in _ARRAYS if name not in arrays]
        if missing:
            raise CorruptSpecError(f"{where}: specification lacks arrays {missing}")
        if meta.get("format_version") != FORMAT_VERSION:
            raise CorruptSpecError(f"{where}: unsupported format {meta.get('format_version')}")
        if arrays_sha256(arrays) != meta.get("arrays_sha256"):
            raise CorruptSpecError(f"{where}: array checksum mismatch")
        try:
            spec = cls(
                points=arrays["points"],
                beta=arrays["beta"],
                point_prompts=arrays["point_prompts"],
                pair_features=arrays["pair_features"],
                pair_prompts=arrays["pair_prompts"],
                prompt_texts=list(meta["prompt_texts"]),
                gamma=float(meta["gamma"]),
                encoder=str(meta["encoder"]),
                prompt_set=str(meta["prompt_set"]),
                created=float(meta["created"]),
                gmi_version=str(meta["gmi_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptSpecError(f"{where}: bad specification metadata ({exc})") from exc
        problem = spec.problem()
        if problem:
            raise CorruptSpecError(f"{where}: {problem}")
        return spec

    def problem(self) -> str | None:
        """What makes this spec unusable, or None. A checksum proves the file is what was
        written, not that it is sane: a crafted file can carry NaNs or mismatched shapes, which
        would otherwise crash identify far from their cause."""
        shapes = {name: np.shape(array) for name, array in self.arrays().items()}
        k, n = shapes["points"][:1], shapes["pair_features"][:1]
        if len(shapes["points"]) != 2 or shapes["points"][0] < 1 or shapes["points"][1] < 1:
            return f"points must be a non-empty [K, d] array, not {shapes['points']}"
        d = shapes["points"][1]
        if shapes["beta"] != k:
            return f"beta has shape {shapes['beta']}, expected ({k[0]},)"
        if len(shapes["point_prompts"]) != 2 or shapes["point_prompts"][:1] != k:
            return f"point_prompts has shape {shapes['point_prompts']} for {k[0]} points"
        e = shapes["point_prompts"][1]
        if len(shapes["pair_features"]) != 2 or n[0] < 1 or shapes["pair_features"][1] != d:
            return f"pair_features has shape {shapes['pair_features']}, image dimension {d}"
        if shapes["pair_prompts"] != (n[0], e):
            return f"pair_prompts has shape {shapes['pair_prompts']}, expected ({n[0]}, {e})"
        if len(self.prompt_texts) != n[0] or not all(isinstance(t, str) for t in self.prompt_texts):
            return f"{len(self.prompt_texts)} prompt texts for {n[0]} images"
        for name, array in self.arrays().items():
            if not np.all(np.isfinite(array)):
                return f"{name} holds NaN or infinite values"
        if np.any(self.beta < 0) or float(np.sum(self.beta)) <= 0:
            return "beta must be >= 0 with a positive sum"
        if not (np.isfinite(self.gamma) and self.gamma > 0):
            return f"gamma must be a positive number, not {self.gamma}"
        return None


def arrays_sha256(arrays: dict[str, np.ndarray]) -> str:
    """Hash of the arrays' names, dtypes, shapes and bytes, in a fixed order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def prompt_set_id(prompts: list[str]) -> str:
    """A short content hash of the sorted distinct prompts (same prompts, same id)."""
    joined = "\n".join(sorted(set(prompts)))
    return "sha256:" + hashlib.sha256(joined.encode()).hexdigest()[:16]


def build_specification(
    image_features: np.ndarray,
    prompt_embeddings: np.ndarray,
    prompt_texts: list[str],
    *,
    encoder: str,
    gamma: float | None = None,
    n_points: int | None = None,
    seed: int = 0,
) -> Specification:
    """Build a weighted RKME spec from a model's encoded (image, prompt) pairs.

    gamma=None uses the median heuristic on these features. n_points=None keeps one point per
    image (the paper's simplest form, c_j = z_j, q_j = T(p_j)). With fewer points, each point's
    prompt context q_j is the normalised mean prompt embedding of the images nearest to it.
    """
    z = np.asarray(image_features, dtype=np.float32)
    q = np.asarray(prompt_embeddings, dtype=np.float32)
    if z.ndim != 2 or q.ndim != 2 or z.shape[0] != q.shape[0] or z.shape[0] != len(prompt_texts):
        raise ValueError("image features, prompt embeddings and prompts must pair up one to one")
    if gamma is None:
        gamma = median_heuristic_gamma(z)
    reduced = build_reduced_set(z, n_points or z.shape[0], gamma, seed=seed)
    k = reduced.points.shape[0]
    point_prompts = np.zeros((k, q.shape[1]), dtype=np.float64)
    np.add.at(point_prompts, reduced.assignment, q.astype(np.float64))
    norms = np.linalg.norm(point_prompts, axis=1, keepdims=True)
    point_prompts = (point_prompts / np.maximum(norms, 1e-12)).astype(np.float32)
    return Specification(
        points=reduced.points,
        beta=reduced.beta,
        point_prompts=point_prompts,
        pair_features=z,
        pair_prompts=q,
        prompt_texts=list(prompt_texts),
        gamma=float(gamma),
        encoder=encoder,
        prompt_set=prompt_set_id(list(prompt_texts)),
    )
