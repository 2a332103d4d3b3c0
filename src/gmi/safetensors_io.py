"""Reading a safetensors file with its metadata: the one place gmi loads stored arrays.

safetensors never executes code on load (unlike pickle / torch.load), which is why specs and
learned models use it.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load


def load_with_metadata(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All arrays of a safetensors file and its string metadata (empty dict when none).

    Raises OSError / safetensors.SafetensorError on a missing or damaged file.
    """
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
        arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return arrays, dict(metadata)


def load_bytes_with_metadata(data: bytes) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The same from bytes in memory (a spec sent by a worker). Raises ValueError /
    safetensors.SafetensorError on damaged bytes."""
    arrays = load(data)  # validates the whole buffer: header, offsets, dtypes
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    metadata = header.get("__metadata__") or {}
    if not isinstance(metadata, dict):
        raise ValueError("safetensors metadata is not an object")
    return arrays, {str(k): str(v) for k, v in metadata.items()}
