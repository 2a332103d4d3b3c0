"""Reading a safetensors file with its metadata: the one place gmi loads stored arrays.

safetensors never executes code on load (unlike pickle / torch.load), which is why specs and
learned models use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors import safe_open


def load_with_metadata(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """All arrays of a safetensors file and its string metadata (empty dict when none).

    Raises OSError / safetensors.SafetensorError on a missing or damaged file.
    """
    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
        arrays = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    return arrays, dict(metadata)
