"""The packed index's writer: `sync` packs the models the change log names (or all, on a
rebuild) under the registry's write lock, moves the learned parts by their pairs and commits
the new state in the same transaction; rows are appended after the last committed row."""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from pathlib import Path

import numpy as np

from gmi.registry.packed.arrays import SLOT_COLUMNS, open_arrays, slot_pairs
from gmi.registry.packed.layout import (
    PACKED_DIR,
    PAIR_FILES,
    PROMPT_FILE,
    PackedFeatures,
    PackedSource,
    PackedState,
    array_file,
    numpy_dtype,
    point_files,
    read_space,
    read_state,
    set_state,
    space_rows,
    spec_or_problem,
    sync_files,
    write_rows,
)
from gmi.registry.packed.learned import (
    calibration_sample,
    learn,
    load_learned,
    save_learned,
    statistics_of,
)
from gmi.registry.packed.maintenance import clean, compact, should_compact, space_due
from gmi.search.arrays import points_are_images, spec_rows
from gmi.settings import HubSettings
from gmi.spec.specification import Specification


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
                path = array_file(self.root, name, dtype)
                write_rows(path, self.n_prompts - 1, vector[None], self.files)
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
            rows.update(space_rows(self.space, rows["points"]))
        for key, (dtype, _) in point_files(self.space).items():
            path = array_file(self.root, key, dtype)
            write_rows(path, self.point_end, rows[key].astype(numpy_dtype(dtype)), self.files)
        for key, (dtype, _) in PAIR_FILES.items():
            path = array_file(self.root, key, dtype)
            write_rows(path, self.pair_end, rows[key].astype(dtype), self.files)
        n_points, n_pairs = spec.n_points, spec.pair_features.shape[0]
        self.db.execute(
            "INSERT INTO packed_slots (name, spec_sha256, alive, problem, point_start, "
            "point_count, pair_start, pair_count) VALUES (?, ?, 1, NULL, ?, ?, ?, ?)",
            (name, sha, self.point_end, n_points, self.pair_end, n_pairs),
        )
        self.point_end += n_points
        self.pair_end += n_pairs


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


def sync(source: PackedSource, settings: HubSettings, *, force_full: bool = False) -> PackedState:
    """Bring the packed index and the learned parts in step with the registry's models, under
    the registry's write lock. Incremental: only the models the triggers logged as changed are
    read and packed, the ridge statistics move by their pairs, the calibration uses a bounded
    sample; nothing here reads every model's row (a registry from before the change log, or a
    rebuild, falls back to one full pass). Returns the committed state."""
    home = source.home
    features = PackedFeatures.of(settings)
    with source.write() as db:
        state = read_state(db)
        packed_for = PackedFeatures.read(db) or features  # unrecorded: as the settings say
        if state.in_step and not force_full and packed_for == features:
            return state
        dims = (settings.image_dim or 0, settings.prompt_dim or 0)
        # rows packed for other features (gmi reencode changed the encoder) are rebuilt
        full = force_full or not state.token or packed_for != features
        if full:  # (re)build from scratch
            for table in ("packed_slots", "packed_prompts", "packed_texts"):
                db.execute(f"DELETE FROM {table}")
            state = PackedState(state.models_version, state.packed_version, "", uuid.uuid4().hex)
            set_state(db, generation=state.generation)
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
                stats = stats.subtract(*slot_pairs(home, db, state, dims, dead))
        appender = _Appender(home, db, state)
        for name, spec_file, sha in sorted(new):
            spec, problem = spec_or_problem(source, name, spec_file, sha)
            if spec is not None and problem is None:
                problem = spec_problem(spec, settings)
            appender.add(name, sha, spec, problem)
            if stats is not None and problem is None and spec is not None:
                stats = stats.add(spec.pair_features, spec.pair_prompts)
        sync_files(appender.files)
        db.execute("DELETE FROM packed_changes")
        token = uuid.uuid4().hex
        if dims[0] and db.execute("SELECT 1 FROM packed_slots LIMIT 1").fetchone():
            if stats is None:  # no previous statistics: one pass over every live pair
                arrays, _ = open_arrays(home, db, state, dims)
                stats = statistics_of(arrays, arrays.live_slots, *dims)
            fitted = space_due(home, db, state, dims, settings)
            if fitted is not None:  # a new space version: the hub re-projected into it
                state = compact(home, db, state, dims, space=fitted)
            elif should_compact(db):
                state = compact(home, db, state, dims)
            sample, whole = calibration_sample(home, db, state, dims)
            learned = learn(sample, stats, settings, all_live=whole)
            source.guard(lambda: save_learned(home, token, stats, learned))
        set_state(db, packed_version=state.models_version, token=token, features=features.to_text())
        committed = PackedState(state.models_version, state.models_version, token, state.generation)
    clean(home, committed)
    return committed
