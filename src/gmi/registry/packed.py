"""The packed index: every model's spec in contiguous, memory-mapped arrays beside the
registry, kept in step with it incrementally.

Layout (in the registry home):

    packed/<generation>/points.f32 ...   raw little-endian arrays, one file per array
    registry.db                         tables packed_slots, packed_prompts, packed_texts,
                                        packed_state (see gmi.registry.migrations)
    learned/<token>.safetensors         the learned parts for packed state <token>

Why it is right after any crash: the arrays are append-only and their row counts live in the
SQLite slot table, written in the SAME transaction that commits the slot. Rows written by a
transaction that never committed lie beyond every committed slot and are overwritten by the
next writer. A model is never modified in place: removing one marks its slot dead (a
tombstone); compaction rewrites the live rows into a new generation directory and switches to
it in one transaction. Readers map the files read-only; a reader holding an old generation
keeps its (unlinked) files until it lets go.

Why it always matches the registry: SQLite triggers bump `models_version` whenever a row of
`models` changes, by gmi or anything else; `sync` (run by the writer after its commit, and by
any reader that finds the versions apart) packs the models whose (name, spec sha256) have no
live slot and kills the slots whose model is gone, then records the version it reached. The
learned parts (ridge from running sufficient statistics, calibration from a bounded sample)
are updated in that transaction too: a submit costs O(its own pairs), not O(hub).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sqlite3
import uuid
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from safetensors.numpy import save

from gmi.encoders.base import l2_normalise
from gmi.errors import CorruptSpecError, StorageError
from gmi.registry.atomic import atomic_write, fsync_dir
from gmi.registry.learning import fitted_or_none, logger
from gmi.safetensors_io import load_with_metadata
from gmi.search.arrays import PackedArrays, points_are_images, spec_rows
from gmi.search.rules import padded
from gmi.settings import HubSettings
from gmi.spec.calibration import MAX_HELD_OUT, MIN_PER_MODEL, Calibration, held_out_distances
from gmi.spec.ridge import RidgeModel, RidgeStatistics
from gmi.spec.space import FittedSpace, ScatterStatistics, enough_images, fit_space
from gmi.spec.specification import Specification

PACKED_DIR = "packed"
LEARNED_DIR = "learned"
LEARNED_FORMAT = "3"
MAX_CALIBRATION_MODELS = 512  # calibration samples at most this many models: bounded cost
COMPACT_DEAD_FRACTION = 0.5  # compact when dead rows outnumber live ones (and are many)
COMPACT_MIN_DEAD_POINTS = 4096
SPACE_CHUNK = 65536  # points projected per step when a space is (re)fitted: bounded memory

# name -> (dtype, per-row width key): "d" image dim, "e" prompt dim, None a scalar per row
POINT_FILES = {
    "points": (np.float32, "d"),
    "sq_norms": (np.float32, None),
    "beta": (np.float64, None),
    "point_prompt": (np.int32, None),
    "point_text": (np.int32, None),
}
PAIR_FILES = {
    "pair_features": (np.float32, "d"),
    "pair_prompt": (np.int32, None),
    "pair_text": (np.int32, None),
}
PROMPT_FILE = ("prompts", np.float32, "e")
# a generation with a learned space (gmi.spec.space) also holds its points projected into it,
# and the space itself: the rows and the matrix they were projected with switch together
SPACE_FILE = "space.safetensors"
SPACE_POINT_FILES = {
    "space_points": (np.float32, "d"),
    "space_sq_norms": (np.float32, None),
}


def _point_files(space: FittedSpace | None) -> dict:
    """The per-point files of a generation: the space's projected rows too when it has one."""
    return {**POINT_FILES, **(SPACE_POINT_FILES if space is not None else {})}


def read_space(root: Path) -> FittedSpace | None:
    """The learned space of a generation directory, or None (points as encoded)."""
    path = root / SPACE_FILE
    if not path.exists():
        return None
    try:
        tensors, _ = load_with_metadata(path)
        return FittedSpace.from_tensors(tensors)
    except (OSError, SafetensorError, ValueError, KeyError, TypeError) as exc:
        raise CorruptSpecError(f"{path}: unreadable learned space ({exc})") from exc


def _space_rows(space: FittedSpace, points: np.ndarray) -> dict[str, np.ndarray]:
    projected = space.project(points)
    return {
        "space_points": projected,
        "space_sq_norms": np.einsum("pd,pd->p", projected, projected).astype(np.float32),
    }


def _with_space(mapped: dict, space: FittedSpace | None) -> dict:
    """PackedArrays keyword arguments: points and norms from the space rows when there are."""
    space_points = mapped.pop("space_points", None)
    space_norms = mapped.pop("space_sq_norms", None)
    if space is None:
        return mapped
    return {
        **mapped,
        "points": space_points,
        "sq_norms": space_norms,
        "space": space.matrix,
        "gamma": space.gamma,
    }


def _file(root: Path, name: str, dtype: type) -> Path:
    return root / f"{name}.{np.dtype(dtype).str.lstrip('<>|=')}"


def _write_rows(path: Path, start: int, rows: np.ndarray, files: dict | None = None) -> None:
    """Write rows at row `start` of a raw array file (after the last committed row). With
    `files` (path -> open handle), handles are reused and synced once by the caller before
    its commit; without, the file is synced here."""
    data = np.ascontiguousarray(rows).astype(rows.dtype.newbyteorder("<"), copy=False)
    row_bytes = data.itemsize * (int(np.prod(data.shape[1:])) if data.ndim > 1 else 1)
    handle = files.get(path) if files is not None else None
    if handle is None:
        handle = open(path, "r+b" if path.exists() else "w+b")  # noqa: SIM115 - kept open
        if files is not None:
            files[path] = handle
    handle.seek(start * row_bytes)
    handle.write(data.tobytes())
    if files is None:
        handle.truncate()
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()


def _sync_files(files: dict) -> None:
    """Make every appended row durable before the commit that makes it reachable."""
    for handle in files.values():
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
    files.clear()


def _map(path: Path, dtype: type, rows: int, width: int | None) -> np.ndarray:
    shape = (rows,) if width is None else (rows, width)
    if rows == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=np.dtype(dtype).newbyteorder("<"), mode="r", shape=shape)


@dataclass(frozen=True)
class PackedState:
    models_version: int
    packed_version: int
    token: str
    generation: str

    @property
    def in_step(self) -> bool:
        return self.models_version == self.packed_version and bool(self.token)


def read_state(db: sqlite3.Connection) -> PackedState:
    values = dict(db.execute("SELECT key, value FROM packed_state").fetchall())
    return PackedState(
        int(values.get("models_version", "0")),
        int(values.get("packed_version", "-1")),
        values.get("token", ""),
        values.get("generation", "0"),
    )


# -- reading ----------------------------------------------------------------------------
def open_arrays(home: Path, db: sqlite3.Connection, state: PackedState, dims: tuple[int, int]):
    """PackedArrays over the committed slots (memory maps), plus {name: problem} of the live
    slots that cannot be ranked. One SQL pass over the slot table; no spec file is read."""
    rows = db.execute(
        "SELECT name, alive, problem, point_start, point_count, pair_start, pair_count "
        "FROM packed_slots ORDER BY slot"
    ).fetchall()
    d, e = dims
    root = home / PACKED_DIR / state.generation
    names = [r[0] for r in rows]
    table = np.array([r[3:] for r in rows], dtype=np.int64).reshape(-1, 4)
    alive = np.array([bool(r[1]) and r[2] is None for r in rows], dtype=bool)
    problems = {r[0]: r[2] for r in rows if r[1] and r[2] is not None}
    point_end = int((table[:, 0] + table[:, 1]).max()) if len(rows) else 0
    pair_end = int((table[:, 2] + table[:, 3]).max()) if len(rows) else 0
    point_offsets = np.r_[table[:, 0], point_end].astype(np.int64) if len(rows) else np.zeros(1)
    pair_offsets = np.r_[table[:, 2], pair_end].astype(np.int64) if len(rows) else np.zeros(1)
    _check_contiguous(table)
    n_prompts = db.execute("SELECT COALESCE(MAX(id), 0) FROM packed_prompts").fetchone()[0]
    texts = [t for (t,) in db.execute("SELECT text FROM packed_texts ORDER BY id")]
    width = {"d": d, "e": e, None: None}
    mapped = {
        name: _map(_file(root, name, dtype), dtype, point_end, width[w])
        for name, (dtype, w) in POINT_FILES.items()
    }
    mapped.update(
        {
            name: _map(_file(root, name, dtype), dtype, pair_end, width[w])
            for name, (dtype, w) in PAIR_FILES.items()
        }
    )
    space = read_space(root)
    if space is not None:
        mapped.update(
            {
                name: _map(_file(root, name, dtype), dtype, point_end, width[w])
                for name, (dtype, w) in SPACE_POINT_FILES.items()
            }
        )
    name, dtype, w = PROMPT_FILE
    prompts = _map(_file(root, name, dtype), dtype, n_prompts, width[w])
    arrays = PackedArrays(
        names=names,
        alive=alive,
        point_offsets=point_offsets.astype(np.int64),
        prompts=prompts,
        pair_offsets=pair_offsets.astype(np.int64),
        texts=texts,
        origin=(str(home), state.generation),
        **_with_space({"gamma": _gamma(db), **mapped}, space),
    )
    return arrays, problems


def _check_contiguous(table: np.ndarray) -> None:
    """Slots own consecutive rows in slot order (what point_offsets assumes)."""
    for col in (0, 2):
        ends = table[:-1, col] + table[:-1, col + 1]
        if len(table) > 1 and not np.array_equal(ends, table[1:, col]):
            raise CorruptSpecError("the packed index's slot table is not contiguous")


@dataclass(frozen=True, eq=False)
class PackedIndex:
    """One committed state of the packed index, as identification uses it: the arrays, the
    learned parts, and which models were left out (and why). Immutable: a new registry state
    gives a new PackedIndex, so nothing computed for one state can answer for another."""

    arrays: PackedArrays
    token: str
    learned: dict[str, RidgeModel | Calibration] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

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


# -- learned parts --------------------------------------------------------------------------
def fit_calibration(
    arrays: PackedArrays,
    image_to_prompt: RidgeModel | None,
    tau: float,
    scoring: str,
    seed: int = 0,
) -> Calibration:
    """Held-out genuine-match distances (gmi.spec.calibration) of a bounded sample: at most
    MAX_CALIBRATION_MODELS models, MAX_HELD_OUT images. Cost independent of the hub's size."""
    live = arrays.live_slots
    rng = np.random.default_rng(seed)
    chosen = (
        np.sort(rng.choice(live, MAX_CALIBRATION_MODELS, replace=False))
        if live.size > MAX_CALIBRATION_MODELS
        else live
    )
    stack, _ = padded(arrays, chosen, gram=scoring == "rkme")
    pair_counts = np.diff(arrays.pair_offsets)[chosen]
    rows = np.concatenate(
        [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in chosen]
    )
    features = np.asarray(arrays.pair_features)[rows]
    pair_model = np.repeat(np.arange(chosen.size), pair_counts)
    per_model = max(MIN_PER_MODEL, MAX_HELD_OUT // max(chosen.size, 1))
    held = []
    for m in range(chosen.size):
        mine = np.flatnonzero(pair_model == m)
        if mine.size > per_model:
            mine = np.sort(rng.choice(mine, per_model, replace=False))
        held.append(mine)
    picked = np.concatenate(held)
    predict = None
    if image_to_prompt is not None:  # every held-out image's prompt in one product
        predicted = np.zeros((features.shape[0], image_to_prompt.weights.shape[1]), np.float32)
        predicted[picked] = l2_normalise(image_to_prompt.predict(features[picked]))
        predict = predicted.__getitem__
    if arrays.space is not None:  # score where the points live; the ridge reads raw features
        queries = np.zeros_like(features)
        queries[picked] = arrays.to_space(features[picked])
        features = queries
    distances = held_out_distances(stack, features, pair_model, picked, predict, tau, scoring)
    return Calibration(np.sort(distances))


def statistics_of(arrays: PackedArrays, slots: np.ndarray, d: int, e: int) -> RidgeStatistics:
    """Ridge sufficient statistics of these slots' pairs (one pass over their rows, in
    blocks of about 65,536 pairs)."""
    stats = RidgeStatistics.empty(d, e)
    counts = np.diff(arrays.pair_offsets)
    batch: list[int] = []
    size = 0
    for slot in np.asarray(slots, dtype=np.int64):  # full rebuilds only, not per query
        batch.append(int(slot))
        size += int(counts[slot])
        if size >= 65536:
            stats = stats.add(*_pairs(arrays, np.array(batch)))
            batch, size = [], 0
    return stats.add(*_pairs(arrays, np.array(batch, dtype=np.int64))) if batch else stats


def _learned_path(home: Path, token: str) -> Path:
    return home / LEARNED_DIR / f"{token}.safetensors"


def load_learned(home: Path, token: str) -> tuple[RidgeStatistics, dict] | None:
    try:
        arrays, meta = load_with_metadata(_learned_path(home, token))
        if meta.get("format") != LEARNED_FORMAT or meta.get("token") != token:
            return None
        part = {k.split("/", 1)[0] for k in arrays}
        if not {"stats", "calibration"} <= part:
            return None

        def group(prefix: str) -> dict[str, np.ndarray]:
            return {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith(prefix + "/")}

        learned: dict[str, RidgeModel | Calibration] = {
            "calibration": Calibration.from_arrays(group("calibration"))
        }
        if "image_to_prompt" in part:
            learned["image_to_prompt"] = RidgeModel.from_arrays(group("image_to_prompt"))
        return RidgeStatistics.from_arrays(group("stats")), learned
    except (OSError, SafetensorError, ValueError, KeyError, TypeError):
        return None


def _save_learned(home: Path, token: str, stats: RidgeStatistics, learned: dict) -> None:
    arrays = {f"stats/{k}": v for k, v in stats.arrays().items()}
    for name, model in learned.items():
        arrays.update({f"{name}/{k}": np.asarray(v) for k, v in model.arrays().items()})
    (home / LEARNED_DIR).mkdir(exist_ok=True)
    atomic_write(
        _learned_path(home, token),
        save(arrays, metadata={"format": LEARNED_FORMAT, "token": token}),
    )


def learn(
    arrays: PackedArrays,
    stats: RidgeStatistics,
    settings: HubSettings,
    *,
    all_live: bool = True,
) -> dict[str, RidgeModel | Calibration]:
    """The learned parts for a state: the ridge from its statistics (or, for a young hub with
    fewer pairs than dimensions and `arrays` holding all its live models, from the pairs: the
    thin SVD is cheaper than the d x d eigendecomposition and gives the same model), and the
    calibration on the models of `arrays` (a bounded sample)."""
    learned: dict[str, RidgeModel | Calibration] = {}
    ridge = None
    if all_live and arrays.dim and 2 <= stats.n < arrays.dim:
        ridge = fitted_or_none(
            "image-to-prompt ridge", lambda: RidgeModel.fit(*_pairs(arrays, arrays.live_slots))
        )
    elif stats.n >= 2:
        ridge = fitted_or_none("image-to-prompt ridge", stats.solve)
    if ridge is not None:
        learned["image_to_prompt"] = ridge
    if arrays.live_slots.size:
        calibration = fitted_or_none(
            "calibration",
            lambda: fit_calibration(
                arrays, ridge if settings.interrogated else None, settings.tau, settings.scoring
            ),
        )
        if calibration is None and ridge is not None and settings.interrogated:
            calibration = fitted_or_none(  # the uniform-weight calibration, unlearned
                "calibration",
                lambda: fit_calibration(arrays, None, settings.tau, settings.scoring),
            )
        if calibration is not None:
            learned["calibration"] = calibration
    return learned


# -- writing ----------------------------------------------------------------------------
def spec_problem(spec: Specification, settings: HubSettings) -> str | None:
    """Why a (valid) spec cannot be ranked with this registry's others, or None."""
    if spec.encoder != settings.encoder:
        return f"built with encoder {spec.encoder!r}, the registry uses {settings.encoder!r}"
    if settings.gamma is not None and not np.isclose(spec.gamma, settings.gamma, rtol=1e-9):
        return (
            f"built with gamma {spec.gamma:.6g}, the registry uses {settings.gamma:.6g}"
            " (gmi check --repair rebuilds it)"
        )
    for label, width, fixed in (
        ("image dim", spec.points.shape[1], settings.image_dim),
        ("prompt dim", spec.point_prompts.shape[1], settings.prompt_dim),
    ):
        if fixed is not None and width != fixed:
            return f"{label} {width}, the registry's is {fixed}"
    return None


class _Appender:
    """Appends packed rows inside one write transaction (ids from the same transaction)."""

    def __init__(self, home: Path, db: sqlite3.Connection, state: PackedState) -> None:
        self.db = db
        self.root = home / PACKED_DIR / state.generation
        self.root.mkdir(parents=True, exist_ok=True)
        ends = db.execute(
            "SELECT COALESCE(MAX(point_start + point_count), 0), "
            "COALESCE(MAX(pair_start + pair_count), 0) FROM packed_slots"
        ).fetchone()
        self.point_end, self.pair_end = int(ends[0]), int(ends[1])
        self.n_prompts = db.execute("SELECT COALESCE(MAX(id), 0) FROM packed_prompts").fetchone()[0]
        self.files: dict[Path, object] = {}  # open handles, synced once before the commit
        self.space = read_space(self.root)  # new rows are projected with the current space
        self.known_prompts: dict[bytes, int] = {}
        self.known_texts: dict[str, int] = {}

    def prompt_ids(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        digests = [hashlib.sha256(v.tobytes()).digest()[:16] for v in vectors]
        found = self.known_prompts
        for digest, vector in zip(digests, vectors, strict=True):
            if digest in found:
                continue
            row = self.db.execute(
                "SELECT id FROM packed_prompts WHERE digest = ?", (digest,)
            ).fetchone()
            if row is None:
                self.n_prompts += 1
                self.db.execute(
                    "INSERT INTO packed_prompts (id, digest) VALUES (?, ?)",
                    (self.n_prompts, digest),
                )
                name, dtype, _ = PROMPT_FILE
                path = _file(self.root, name, dtype)
                _write_rows(path, self.n_prompts - 1, vector[None], self.files)
                found[digest] = self.n_prompts - 1
            else:
                found[digest] = row[0] - 1
        return np.array([found[g] for g in digests], dtype=np.int32)

    def text_ids(self, texts: list[str]) -> np.ndarray:
        out = []
        for text in texts:
            if text not in self.known_texts:
                self.db.execute("INSERT OR IGNORE INTO packed_texts (text) VALUES (?)", (text,))
                row = self.db.execute("SELECT id FROM packed_texts WHERE text = ?", (text,))
                self.known_texts[text] = row.fetchone()[0] - 1
            out.append(self.known_texts[text])
        return np.array(out, dtype=np.int32)

    def add(self, name: str, sha: str, spec: Specification | None, problem: str | None) -> None:
        if spec is None or problem is not None:
            self.db.execute(
                "INSERT INTO packed_slots (name, spec_sha256, alive, problem, point_start, "
                "point_count, pair_start, pair_count) VALUES (?, ?, 1, ?, ?, 0, ?, 0)",
                (name, sha, problem or "unusable spec", self.point_end, self.pair_end),
            )
            return
        rows = spec_rows(spec)
        rows["point_prompt"] = self.prompt_ids(spec.point_prompts)
        rows["pair_prompt"] = self.prompt_ids(spec.pair_prompts)
        rows["pair_text"] = self.text_ids(spec.prompt_texts)
        rows["point_text"] = (
            rows["pair_text"] if points_are_images(spec) else np.full(spec.n_points, -1, np.int32)
        )
        if self.space is not None:
            rows.update(_space_rows(self.space, rows["points"]))
        for key, (dtype, _) in _point_files(self.space).items():
            path = _file(self.root, key, dtype)
            _write_rows(path, self.point_end, rows[key].astype(dtype), self.files)
        for key, (dtype, _) in PAIR_FILES.items():
            path = _file(self.root, key, dtype)
            _write_rows(path, self.pair_end, rows[key].astype(dtype), self.files)
        n_points, n_pairs = spec.n_points, spec.pair_features.shape[0]
        self.db.execute(
            "INSERT INTO packed_slots (name, spec_sha256, alive, problem, point_start, "
            "point_count, pair_start, pair_count) VALUES (?, ?, 1, NULL, ?, ?, ?, ?)",
            (name, sha, self.point_end, n_points, self.pair_end, n_pairs),
        )
        self.point_end += n_points
        self.pair_end += n_pairs


SLOT_COLUMNS = "slot, name, spec_sha256, point_start, point_count, pair_start, pair_count"


def _rows_named(db: sqlite3.Connection, sql: str, names: list[str] | None) -> list[tuple]:
    """Rows of `sql` (which ends in a WHERE clause) for these names only, or all (None)."""
    if names is None:
        return [tuple(r) for r in db.execute(sql + " 1")]
    out = []
    for start in range(0, len(names), 500):
        part = names[start : start + 500]
        marks = ",".join("?" * len(part))
        out += [tuple(r) for r in db.execute(sql + f" name IN ({marks})", part)]
    return out


def sync(registry, settings: HubSettings, *, force_full: bool = False) -> PackedState:
    """Bring the packed index and the learned parts in step with the registry's models, under
    the registry's write lock. Incremental: only the models the triggers logged as changed are
    read and packed, the ridge statistics move by their pairs, the calibration uses a bounded
    sample; nothing here reads every model's row (a registry from before the change log, or a
    rebuild, falls back to one full pass). Returns the committed state."""
    home = registry.home
    with registry._write() as db:
        state = read_state(db)
        if state.in_step and not force_full:
            return state
        dims = (settings.image_dim or 0, settings.prompt_dim or 0)
        full = force_full or not state.token
        if full:  # (re)build from scratch
            for table in ("packed_slots", "packed_prompts", "packed_texts"):
                db.execute(f"DELETE FROM {table}")
            state = PackedState(state.models_version, state.packed_version, "", uuid.uuid4().hex)
            _set_state(db, generation=state.generation)
        logged = [r[0] for r in db.execute("SELECT DISTINCT name FROM packed_changes")]
        names = None if full or not logged else logged
        models = _rows_named(db, "SELECT name, spec_file, spec_sha256 FROM models WHERE", names)
        slots = _rows_named(
            db, f"SELECT {SLOT_COLUMNS} FROM packed_slots WHERE alive = 1 AND", names
        )
        wanted = {(r[0], r[2]): r for r in models}
        have = {(r[1], r[2]): r for r in slots}
        dead = [row for key, row in have.items() if key not in wanted]
        new = [row for key, row in wanted.items() if key not in have]
        previous = load_learned(home, state.token) if state.token else None
        stats = previous[0] if previous is not None and dims[0] and not full else None
        if dead:
            db.executemany(
                "UPDATE packed_slots SET alive = 0 WHERE slot = ?", [(r[0],) for r in dead]
            )
            if stats is not None:
                stats = stats.subtract(*_slot_pairs(home, db, state, dims, dead))
        appender = _Appender(home, db, state)
        for name, spec_file, sha in sorted(new):
            spec, problem = _load(registry, name, spec_file, sha)
            if spec is not None and problem is None:
                problem = spec_problem(spec, settings)
            appender.add(name, sha, spec, problem)
            if stats is not None and problem is None and spec is not None:
                stats = stats.add(spec.pair_features, spec.pair_prompts)
        _sync_files(appender.files)
        db.execute("DELETE FROM packed_changes")
        token = uuid.uuid4().hex
        if dims[0] and db.execute("SELECT 1 FROM packed_slots LIMIT 1").fetchone():
            if stats is None:  # no previous statistics: one pass over every live pair
                arrays, _ = open_arrays(home, db, state, dims)
                stats = statistics_of(arrays, arrays.live_slots, *dims)
            fitted = _space_due(home, db, state, dims, settings)
            if fitted is not None:  # a new space version: the hub re-projected into it
                state = _compact(home, db, state, dims, space=fitted)
            elif _should_compact(db):
                state = _compact(home, db, state, dims)
            sample, whole = _calibration_sample(home, db, state, dims)
            learned = learn(sample, stats, settings, all_live=whole)
            registry._storage(lambda: _save_learned(home, token, stats, learned))
        _set_state(db, packed_version=state.models_version, token=token)
        committed = PackedState(state.models_version, state.models_version, token, state.generation)
    _clean(home, committed)
    return committed


def _space_due(home, db, state, dims, settings: HubSettings) -> FittedSpace | None:
    """A newly fitted space when the registry learns one and the current generation has none
    or the hub has grown REFIT_GROWTH-fold since it was fitted; else None."""
    if settings.space != "whiten":
        return None
    live, images = db.execute(
        "SELECT COUNT(*), COALESCE(SUM(pair_count), 0) FROM packed_slots "
        "WHERE alive = 1 AND problem IS NULL AND point_count > 0"
    ).fetchone()
    current = read_space(home / PACKED_DIR / state.generation)
    if live == 0 or (current is not None and not current.due(live)):
        return None
    if current is None and not enough_images(images, dims[0]):
        return None  # a young hub ranks as encoded until it has enough images
    return _fit_hub_space(home, db, state, dims)


def _fit_hub_space(home, db, state, dims) -> FittedSpace | None:
    """Fit the space on every live model's spec images (as encoded): one streamed pass over
    the packed pair rows, d x d memory, plus a sample of 2,048 images for the kernel width."""
    arrays, _ = open_arrays(home, db, state, dims)
    live = arrays.live_slots
    counts = np.diff(arrays.pair_offsets)
    if live.size == 0 or not enough_images(int(counts[live].sum()), arrays.dim):
        return None
    stats = ScatterStatistics.empty(arrays.dim)
    for start in range(0, live.size, 1024):
        part = live[start : start + 1024]
        rows = np.concatenate(
            [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in part]
        )
        stats = stats.merge(
            ScatterStatistics.of_segments(np.asarray(arrays.pair_features[rows]), counts[part])
        )
    every = np.concatenate(
        [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in live]
    )
    sample = np.sort(np.random.default_rng(0).choice(every, min(every.size, 2048), replace=False))
    return fit_space(stats, np.asarray(arrays.pair_features[sample]), live.size)


def _slot_arrays(
    home: Path, db: sqlite3.Connection, state: PackedState, dims: tuple[int, int], rows: list
) -> PackedArrays:
    """The packed rows of these slots (rows of SLOT_COLUMNS), copied into small in-memory
    PackedArrays: what a sync needs of a few models without reading the slot table whole."""
    d, e = dims
    root = home / PACKED_DIR / state.generation
    point_end = max((r[3] + r[4] for r in rows), default=0)
    pair_end = max((r[5] + r[6] for r in rows), default=0)
    width = {"d": d, "e": e, None: None}
    point_rows = np.concatenate([np.arange(r[3], r[3] + r[4]) for r in rows] or [[]]).astype(int)
    pair_rows = np.concatenate([np.arange(r[5], r[5] + r[6]) for r in rows] or [[]]).astype(int)
    taken = {}
    space = read_space(root)
    for files, end, picked in (
        (_point_files(space), point_end, point_rows),
        (PAIR_FILES, pair_end, pair_rows),
    ):
        for key, (dtype, w) in files.items():
            mapped = _map(_file(root, key, dtype), dtype, end, width[w])
            taken[key] = np.array(mapped[picked])
    n_prompts = db.execute("SELECT COALESCE(MAX(id), 0) FROM packed_prompts").fetchone()[0]
    name, dtype, w = PROMPT_FILE
    prompts = _map(_file(root, name, dtype), dtype, n_prompts, width[w])
    texts = [t for (t,) in db.execute("SELECT text FROM packed_texts ORDER BY id")]
    return PackedArrays(
        names=[r[1] for r in rows],
        alive=np.ones(len(rows), dtype=bool),
        point_offsets=np.r_[0, np.cumsum([r[4] for r in rows])].astype(np.int64),
        prompts=prompts,
        pair_offsets=np.r_[0, np.cumsum([r[6] for r in rows])].astype(np.int64),
        texts=texts,
        **_with_space({"gamma": _gamma(db), **taken}, space),
    )


def _gamma(db: sqlite3.Connection) -> float:
    row = db.execute("SELECT value FROM settings WHERE key = 'gamma'").fetchone()
    return float(row[0]) if row else 1.0


def _slot_pairs(home, db, state, dims, rows) -> tuple[np.ndarray, np.ndarray]:
    """The (feature, prompt) pairs of these slots, read from the packed files."""
    arrays = _slot_arrays(home, db, state, dims, rows)
    return _pairs(arrays, np.arange(arrays.n_slots))


def _calibration_sample(home, db, state, dims) -> tuple[PackedArrays, bool]:
    """The live models the calibration is computed on, and whether they are all of them: all
    up to MAX_CALIBRATION_MODELS, else that many drawn at random (by slot id, without reading
    the slot table whole), in slot order."""
    live_sql = f"SELECT {SLOT_COLUMNS} FROM packed_slots WHERE alive = 1 AND problem IS NULL"
    count = db.execute("SELECT COUNT(*) FROM packed_slots WHERE alive = 1 AND problem IS NULL")
    n_live = count.fetchone()[0]
    if n_live <= MAX_CALIBRATION_MODELS:
        rows = [tuple(r) for r in db.execute(live_sql + " ORDER BY slot")]
    else:
        low, high = db.execute("SELECT MIN(slot), MAX(slot) FROM packed_slots").fetchone()
        rng = np.random.default_rng(0)
        found: dict[int, tuple] = {}
        while len(found) < MAX_CALIBRATION_MODELS:
            ids = sorted({int(i) for i in rng.integers(low, high + 1, 2 * MAX_CALIBRATION_MODELS)})
            marks = ",".join("?" * len(ids))
            for row in db.execute(live_sql + f" AND slot IN ({marks})", ids):
                found.setdefault(row[0], tuple(row))
        rows = [found[k] for k in sorted(found)[:MAX_CALIBRATION_MODELS]]
    return _slot_arrays(home, db, state, dims, rows), n_live <= MAX_CALIBRATION_MODELS


def _load(registry, name: str, spec_file: str, sha: str):
    from gmi.registry.store import ModelRecord

    record = ModelRecord(name, "", spec_file, sha, "", 0, 0, 0.0, 0.0, {})
    try:
        return registry.load_spec(record), None
    except CorruptSpecError as exc:
        return None, str(exc)


def _pairs(arrays: PackedArrays, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if slots.size == 0:
        return np.zeros((0, arrays.dim)), np.zeros((0, arrays.prompts.shape[1]))
    rows = np.concatenate(
        [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in slots]
    )
    features = np.asarray(arrays.pair_features)[rows]
    return features, np.asarray(arrays.prompts)[np.asarray(arrays.pair_prompt)[rows]]


def _should_compact(db: sqlite3.Connection) -> bool:
    dead, total = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN alive = 0 THEN point_count ELSE 0 END), 0), "
        "COALESCE(SUM(point_count), 0) FROM packed_slots"
    ).fetchone()
    return dead >= COMPACT_MIN_DEAD_POINTS and dead > COMPACT_DEAD_FRACTION * total


def _compact(home, db, state, dims, space: FittedSpace | None = None):
    """Rewrite the live slots' rows into a new generation, in this transaction; with `space`,
    the new generation lives in that (newly fitted) space: its rows are projected afresh
    from the points as encoded (one pass over the hub, amortised by FittedSpace.due)."""
    raw, _ = open_arrays(home, db, state, dims)
    old_root = home / PACKED_DIR / state.generation
    space = space or read_space(old_root)
    arrays = raw if raw.space is None else _raw_points(raw, old_root)
    generation = uuid.uuid4().hex
    root = home / PACKED_DIR / generation
    root.mkdir(parents=True)
    keep = np.flatnonzero(arrays.alive | (arrays.point_counts == 0))
    slot_ids = [r[0] for r in db.execute("SELECT slot FROM packed_slots ORDER BY slot")]
    point_rows = np.concatenate(
        [np.arange(arrays.point_offsets[s], arrays.point_offsets[s + 1]) for s in keep] or [[]]
    ).astype(np.int64)
    pair_rows = np.concatenate(
        [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in keep] or [[]]
    ).astype(np.int64)
    for files, rows in ((POINT_FILES, point_rows), (PAIR_FILES, pair_rows)):
        for key, (dtype, _) in files.items():
            _write_rows(_file(root, key, dtype), 0, np.asarray(getattr(arrays, key))[rows])
    if space is not None:
        for start in range(0, point_rows.size, SPACE_CHUNK):
            chunk = np.asarray(arrays.points[point_rows[start : start + SPACE_CHUNK]])
            for key, values in _space_rows(space, chunk).items():
                _write_rows(_file(root, key, SPACE_POINT_FILES[key][0]), start, values)
        atomic_write(root / SPACE_FILE, save(space.to_tensors()))
    name, dtype, _ = PROMPT_FILE
    _write_rows(_file(root, name, dtype), 0, np.asarray(arrays.prompts))
    kept_ids = ",".join(str(slot_ids[s]) for s in keep) or "NULL"
    db.execute(f"DELETE FROM packed_slots WHERE slot NOT IN ({kept_ids})")
    point_start = pair_start = 0
    for s in keep:
        n_points = int(arrays.point_counts[s])
        n_pairs = int(arrays.pair_offsets[s + 1] - arrays.pair_offsets[s])
        db.execute(
            "UPDATE packed_slots SET point_start = ?, pair_start = ? WHERE slot = ?",
            (point_start, pair_start, slot_ids[s]),
        )
        point_start += n_points
        pair_start += n_pairs
    fsync_dir(root)
    _set_state(db, generation=generation)
    return PackedState(state.models_version, state.packed_version, state.token, generation)


def _raw_points(arrays: PackedArrays, root: Path) -> PackedArrays:
    """Arrays whose points are the encoded ones again (for compaction and checks)."""
    point_end = int(arrays.point_offsets[-1]) if arrays.n_slots else 0
    points = _map(_file(root, "points", np.float32), np.float32, point_end, arrays.dim)
    norms = _map(_file(root, "sq_norms", np.float32), np.float32, point_end, None)
    return replace(arrays, points=points, sq_norms=norms, space=None, device_copies={}, origin=None)


def _set_state(db: sqlite3.Connection, **values: object) -> None:
    for key, value in values.items():
        db.execute(
            "INSERT OR REPLACE INTO packed_state (key, value) VALUES (?, ?)", (key, str(value))
        )


def _clean(home: Path, state: PackedState) -> None:
    """Drop other generations' arrays and other states' learned files (best effort; a reader
    holding them keeps its open maps)."""
    with contextlib.suppress(OSError):
        for path in (home / PACKED_DIR).iterdir():
            if path.name != state.generation:
                shutil.rmtree(path, ignore_errors=True)
    with contextlib.suppress(OSError):
        for path in (home / LEARNED_DIR).iterdir():
            if path.name != f"{state.token}.safetensors":
                path.unlink(missing_ok=True)


def open_index(registry, settings: HubSettings) -> PackedIndex:
    """The current committed state as a PackedIndex (syncing first if the registry moved on
    and this process may write)."""
    dims = (settings.image_dim or 0, settings.prompt_dim or 0)
    for attempt in range(3):
        with registry._connect() as db:
            state = read_state(db)
        if not state.in_step:
            try:
                if registry.read_only:
                    raise StorageError(
                        f"{registry.home}: the packed index is behind the registry and the "
                        "registry is read-only here; run `gmi check --repair` where it is "
                        "writable"
                    )
                sync(registry, settings)
            except StorageError as exc:  # a full or read-only disk: an identification
                if not state.token:  # needs no write, so it ranks the last packed state
                    raise
                if attempt == 0:
                    logger.warning(
                        "gmi: %s; ranking the models of the last packed state (the newest "
                        "changes are not ranked until the index can be updated)",
                        exc,
                    )
        with registry._connect() as db:
            db.execute("BEGIN")  # one consistent snapshot of the state and the slot table
            state = read_state(db)
            arrays, problems = open_arrays(registry.home, db, state, dims)
            db.execute("COMMIT")
        found = load_learned(registry.home, state.token)
        if found is not None:
            return PackedIndex(arrays, state.token, found[1], problems)
        if attempt < 2 and state_token(registry) != state.token:
            continue  # a newer state committed meanwhile (and removed this one's file)
        break
    # the learned file of the committed state is missing (e.g. deleted): refit, O(hub), rare
    stats = statistics_of(arrays, arrays.live_slots, arrays.dim, arrays.prompts.shape[1])
    learned = learn(arrays, stats, settings)
    if not registry.read_only:
        with contextlib.suppress(OSError, StorageError):
            _save_learned(registry.home, state.token, stats, learned)
    return PackedIndex(arrays, state.token, learned, problems)


def state_token(registry) -> str:
    """The committed packed state's token, or "" when the index is behind the registry
    (one small SQL read: what every identify checks to pick up other processes' writes)."""
    with registry._connect() as db:
        state = read_state(db)
    return state.token if state.in_step else ""


__all__ = ["PackedIndex", "open_index", "state_token", "sync"]


def check_packed(registry, settings: HubSettings) -> list[str]:
    """What is wrong with the packed index (`gmi check`): behind the registry, a model
    without exactly one live slot, a slot without its model, rows that differ from the spec
    file, array files too short, the learned parts missing. [] when it is whole. O(hub)."""
    problems: list[str] = []
    dims = (settings.image_dim or 0, settings.prompt_dim or 0)
    if not registry.read_only and not state_token(registry):
        with contextlib.suppress(OSError, StorageError, CorruptSpecError):
            sync(registry, settings)
    try:
        with registry._connect() as db:
            db.execute("BEGIN")
            state = read_state(db)
            models = {
                r[0]: r for r in db.execute("SELECT name, spec_file, spec_sha256 FROM models")
            }
            live = db.execute(
                "SELECT name, spec_sha256, problem FROM packed_slots WHERE alive = 1 ORDER BY slot"
            ).fetchall()
            arrays = open_arrays(registry.home, db, state, dims)[0] if dims[0] else None
            db.execute("COMMIT")
    except (OSError, ValueError, CorruptSpecError) as exc:
        return [f"packed index: cannot be opened ({exc})"]
    if not state.in_step:
        return ["packed index: behind the registry (the next identify or --repair updates it)"]
    seen: dict[str, int] = {}
    for name, sha, _ in live:
        seen[name] = seen.get(name, 0) + 1
        if name not in models or models[name][2] != sha:
            problems.append(f"packed index: slot of {name!r} has no such model")
    problems += [
        f"packed index: {name!r} has {seen.get(name, 0)} live slots"
        for name in models
        if seen.get(name, 0) != 1
    ]
    if arrays is not None:
        projected = arrays if arrays.space is not None else None
        if projected is not None:
            root = registry.home / PACKED_DIR / state.generation
            arrays = _raw_points(arrays, root)
            space = read_space(root)
        for slot in np.flatnonzero(arrays.alive):
            name = arrays.names[slot]
            if name not in models:
                continue
            spec, _ = _load(registry, name, models[name][1], models[name][2])
            if spec is None:
                continue  # the spec file itself is reported by check_registry
            packed = arrays.spec_arrays(int(slot))
            same = all(
                np.array_equal(packed[key], np.asarray(getattr(spec, key), dtype=packed[key].dtype))
                for key in ("points", "beta", "point_prompts", "pair_features", "pair_prompts")
            ) and [arrays.texts[t] for t in packed["pair_texts"]] == list(spec.prompt_texts)
            if same and projected is not None and space is not None:
                rows = slice(projected.point_offsets[slot], projected.point_offsets[slot + 1])
                expected = _space_rows(space, np.asarray(spec.points, dtype=np.float32))
                same = np.allclose(
                    projected.points[rows], expected["space_points"], rtol=1e-4, atol=1e-4
                ) and np.allclose(projected.sq_norms[rows], expected["space_sq_norms"], rtol=1e-4)
            if not same:
                problems.append(f"packed index: the rows of {name!r} differ from its spec file")
    learned = _learned_path(registry.home, state.token)
    if learned.exists() and load_learned(registry.home, state.token) is None:
        problems.append("packed index: the learned-parts file is damaged (repair refits it)")
    return problems  # a missing learned file is a cache miss (refitted on open), not a fault
