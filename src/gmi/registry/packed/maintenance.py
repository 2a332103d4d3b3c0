"""Keeping a generation healthy inside a sync's transaction: refitting the learned space when
it is due (re-projecting the hub into a new generation), compacting when dead rows outnumber
live ones, and dropping other generations' files afterwards."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
import uuid
from pathlib import Path

import numpy as np
from safetensors.numpy import save

from gmi.registry.atomic import atomic_write, fsync_dir
from gmi.registry.packed.arrays import open_arrays, raw_points
from gmi.registry.packed.layout import (
    LEARNED_DIR,
    PACKED_DIR,
    PAIR_FILES,
    POINT_FILES,
    PROMPT_FILE,
    SPACE_CHUNK,
    SPACE_FILE,
    PackedState,
    array_file,
    read_space,
    set_state,
    space_point_files,
    space_rows,
    write_rows,
)
from gmi.settings import HubSettings
from gmi.spec.space import FittedSpace, ScatterStatistics, enough_images, fit_space

COMPACT_DEAD_FRACTION = 0.5  # compact when dead rows outnumber live ones (and are many)


COMPACT_MIN_DEAD_POINTS = 4096


def space_due(home, db, state, dims, settings: HubSettings) -> FittedSpace | None:
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
    return _fit_hub_space(home, db, state, dims, settings)


def _fit_hub_space(home, db, state, dims, settings: HubSettings) -> FittedSpace | None:
    """Fit the space on every live model's spec images (as encoded): one streamed pass over
    the packed pair rows, d x d memory, plus a sample of 2,048 images for the kernel width."""
    arrays, _ = open_arrays(home, db, state, dims)
    live = arrays.live_slots
    counts = np.diff(arrays.pair_offsets)
    if live.size == 0 or not enough_images(int(counts[live].sum()), arrays.feature_dim):
        return None
    stats = ScatterStatistics.empty(arrays.feature_dim)
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
    return fit_space(
        stats,
        np.asarray(arrays.pair_features[sample]),
        live.size,
        dims=settings.space_dims,
        storage=settings.space_storage,
    )


def should_compact(db: sqlite3.Connection) -> bool:
    dead, total = db.execute(
        "SELECT COALESCE(SUM(CASE WHEN alive = 0 THEN point_count ELSE 0 END), 0), "
        "COALESCE(SUM(point_count), 0) FROM packed_slots"
    ).fetchone()
    return dead >= COMPACT_MIN_DEAD_POINTS and dead > COMPACT_DEAD_FRACTION * total


def compact(home, db, state, dims, space: FittedSpace | None = None):
    """Rewrite the live slots' rows into a new generation, in this transaction; with `space`,
    the new generation lives in that (newly fitted) space: its rows are projected afresh
    from the points as encoded (one pass over the hub, amortised by FittedSpace.due)."""
    raw, _ = open_arrays(home, db, state, dims)
    old_root = home / PACKED_DIR / state.generation
    space = space or read_space(old_root)
    arrays = raw if raw.space is None else raw_points(raw, old_root)
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
            write_rows(array_file(root, key, dtype), 0, np.asarray(getattr(arrays, key))[rows])
    if space is not None:
        files = space_point_files(space)
        for start in range(0, point_rows.size, SPACE_CHUNK):
            chunk = np.asarray(arrays.points[point_rows[start : start + SPACE_CHUNK]])
            for key, values in space_rows(space, chunk).items():
                write_rows(array_file(root, key, files[key][0]), start, values)
        atomic_write(root / SPACE_FILE, save(space.to_tensors()))
    name, dtype, _ = PROMPT_FILE
    write_rows(array_file(root, name, dtype), 0, np.asarray(arrays.prompts))
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
    set_state(db, generation=generation)
    return PackedState(state.models_version, state.packed_version, state.token, generation)


def clean(home: Path, state: PackedState) -> None:
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
