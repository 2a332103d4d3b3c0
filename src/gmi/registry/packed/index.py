"""PackedIndex: one committed state of the packed index as identification reads it (the
arrays, the learned parts, the models left out), with what the interrogators derive from it
once per state. Nothing here writes or reads settings: a snapshot, not a store."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from gmi.encoders.base import l2_normalise
from gmi.registry.learning import fitted_or_none
from gmi.search.arrays import PackedArrays
from gmi.spec.calibration import Calibration
from gmi.spec.ridge import RidgeModel
from gmi.spec.specification import Specification


@dataclass(frozen=True, eq=False)
class PackedIndex:
    """One committed state of the packed index, as identification uses it: the arrays, the
    learned parts, and which models were left out (and why). Immutable: a new registry state
    gives a new PackedIndex, so nothing computed for one state can answer for another."""

    arrays: PackedArrays
    token: str
    learned: dict[str, RidgeModel | Calibration] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    # the encoder the rows were made by (None: in memory, or packed before gmi recorded it):
    # identification encodes queries with it, so a query and the rows always agree even
    # while `gmi reencode` switches the hub to another encoder
    encoder: str | None = None

    @classmethod
    def from_specs(
        cls, names: list[str], specs: list[Specification], **learned: RidgeModel | Calibration
    ) -> PackedIndex:
        """In memory, from specs (the benchmark; tests)."""
        return cls(PackedArrays.from_specs(names, specs), token="", learned=dict(learned))

    @cached_property
    def live(self) -> np.ndarray:
        return self.arrays.live_slots

    @cached_property
    def names(self) -> list[str]:
        """Names of the ranked models (live slots), in slot order."""
        return [self.arrays.names[s] for s in self.live]

    @cached_property
    def position(self) -> dict[str, int]:
        """Model name -> its slot (built once per state)."""
        return {self.arrays.names[s]: int(s) for s in self.live}

    @cached_property
    def _live_pairs(self) -> np.ndarray:
        a = self.arrays
        return np.flatnonzero(np.repeat(a.alive, np.diff(a.pair_offsets)))

    @cached_property
    def image_to_prompt(self) -> RidgeModel | None:
        """The `hub` interrogator's ridge: the stored one, else fitted on the live pairs;
        None when it cannot be fitted (the interrogator then asks for uniform weights)."""
        model = self.learned.get("image_to_prompt")
        if isinstance(model, RidgeModel):
            return model
        rows = self._live_pairs
        a = self.arrays
        return fitted_or_none(
            "image-to-prompt ridge",
            lambda: RidgeModel.fit(
                np.asarray(a.pair_features)[rows], a.prompts[a.pair_prompt[rows]]
            ),
        )

    @cached_property
    def _standard_prompts(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        a = self.arrays
        rows = self._live_pairs
        texts = np.asarray(a.pair_text)[rows]
        ids, first = np.unique(texts, return_index=True)
        embeddings = np.asarray(a.prompts)[np.asarray(a.pair_prompt)[rows[first]]]
        return [a.texts[i] for i in ids], embeddings, ids

    def standard_prompts(self) -> tuple[list[str], np.ndarray]:
        """The distinct spec prompts of the live models and their embeddings [U, e]."""
        texts, embeddings, _ = self._standard_prompts
        return texts, embeddings

    @cached_property
    def text_visuals(self) -> np.ndarray:
        """[texts, d]: per spec prompt text, the mean image feature over every live model that
        drew it: what the hub's models make of that prompt (the visual prompt kernel's space).
        One pass over the live pairs, computed on first use per state (stated prompts)."""
        from scipy.sparse import csr_matrix

        a = self.arrays
        rows = self._live_pairs
        texts = np.asarray(a.pair_text)[rows]
        n_texts = len(a.texts)
        member = csr_matrix(
            (np.ones(rows.size), (texts, np.arange(rows.size))), (n_texts, rows.size)
        )
        sums = member @ np.asarray(a.pair_features, dtype=np.float64)[rows]
        counts = np.bincount(texts, minlength=n_texts)
        return (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)

    @cached_property
    def prompt_to_visual(self) -> RidgeModel | None:
        """Prompt embedding -> visual vector, fitted on the live standard prompts (None when
        it cannot be: a stated prompt then weighs the points uniformly)."""
        _, embeddings, ids = self._standard_prompts
        return fitted_or_none(
            "prompt-to-visual ridge", lambda: RidgeModel.fit(embeddings, self.text_visuals[ids])
        )

    @cached_property
    def unit_pair_features(self) -> np.ndarray:
        """All pair features with unit rows (the `retrieval` interrogator); dead rows zero."""
        features = np.array(self.arrays.pair_features, dtype=np.float32)
        features[~np.repeat(self.arrays.alive, np.diff(self.arrays.pair_offsets))] = 0.0
        return l2_normalise(features)

    def pair_prompt_vectors(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.arrays.prompts)[np.asarray(self.arrays.pair_prompt)[rows]]

    def pair_text(self, row: int) -> str:
        return self.arrays.texts[int(self.arrays.pair_text[row])]

    def example_prompts(self, name: str, n: int) -> list[str]:
        """The first n prompts of a ranked model's spec images ([] for one left out)."""
        slot = self.position.get(name)
        if slot is None:
            return []
        rows = self.pair_rows(slot)[:n]
        return [self.pair_text(int(r)) for r in rows]

    def pair_rows(self, slot: int) -> np.ndarray:
        return np.arange(self.arrays.pair_offsets[slot], self.arrays.pair_offsets[slot + 1])
