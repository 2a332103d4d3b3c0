"""HubIndex: everything identification needs from a registry, loaded once and held in memory.

The stacked specs (for vectorised scoring) plus every spec image's (feature, prompt) pair, which
the `retrieval` interrogator and the kNN baseline search.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from gmi.spec.scoring import SpecStack
from gmi.spec.specification import Specification


@dataclass(frozen=True)
class HubIndex:
    stack: SpecStack
    pair_features: np.ndarray  # [P, d] float32, all models' spec images
    pair_prompts: np.ndarray  # [P, e] float32
    pair_texts: list[str]
    pair_model: np.ndarray  # [P] int: index into stack.names

    @classmethod
    def from_specs(cls, names: Sequence[str], specs: Sequence[Specification]) -> HubIndex:
        stack = SpecStack.from_specs(names, specs)
        return cls(
            stack=stack,
            pair_features=np.concatenate([s.pair_features for s in specs]).astype(np.float32),
            pair_prompts=np.concatenate([s.pair_prompts for s in specs]).astype(np.float32),
            pair_texts=[t for s in specs for t in s.prompt_texts],
            pair_model=np.concatenate(
                [np.full(len(s.prompt_texts), i, dtype=np.int64) for i, s in enumerate(specs)]
            ),
        )

    @property
    def names(self) -> list[str]:
        return self.stack.names
