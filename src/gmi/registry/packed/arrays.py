"""Reading a generation's rows: the whole committed slot table as memory-mapped PackedArrays,
a few slots' rows copied into memory (what a sync needs), and the pairs of given slots."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np

from gmi.errors import CorruptSpecError
from gmi.registry.packed.layout import (
    PACKED_DIR,
    PAIR_FILES,
    POINT_FILES,
    PROMPT_FILE,
    PackedState,
    array_file,
    map_rows,
    point_files,
    read_space,
    registry_gamma,
    space_point_files,
    widths,
    with_space,
)
from gmi.search.arrays import PackedArrays
from gmi.search.bf16 import take_rows


def open_arrays(home: Path, db: sqlite3.Connection, state: PackedState, dims: tuple[int, int]):
    """PackedArrays over the committed slots (memory maps), plus {name: problem} of the live
    slots that cannot be ranked. One SQL pass over the slot table; no spec file is read."""
    rows = db.execute(
        "SELECT name, alive, problem, point_start, point_count, pair_start, pair_count "
        "FROM packed_slots ORDER BY slot"
    ).fetchall()
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
    space = read_space(root)
    width = widths(dims, space)
    mapped = {
        name: map_rows(array_file(root, name, dtype), dtype, point_end, width[w])
        for name, (dtype, w) in POINT_FILES.items()
    }
    mapped.update(
        {
            name: map_rows(array_file(root, name, dtype), dtype, pair_end, width[w])
            for name, (dtype, w) in PAIR_FILES.items()
        }
    )
    if space is not None:
        mapped.update(
            {
                name: map_rows(array_file(root, name, dtype), dtype, point_end, width[w])
                for name, (dtype, w) in space_point_files(space).items()
            }
        )
    name, dtype, w = PROMPT_FILE
    prompts = map_rows(array_file(root, name, dtype), dtype, n_prompts, width[w])
    arrays = PackedArrays(
        names=names,
        alive=alive,
        point_offsets=point_offsets.astype(np.int64),
        prompts=prompts,
        pair_offsets=pair_offsets.astype(np.int64),
        texts=texts,
        origin=(str(home), state.generation),
        **with_space({"gamma": registry_gamma(db), **mapped}, space),
    )
    return arrays, problems


def _check_contiguous(table: np.ndarray) -> None:
    """Slots own consecutive rows in slot order (what point_offsets assumes)."""
    for col in (0, 2):
        ends = table[:-1, col] + table[:-1, col + 1]
        if len(table) > 1 and not np.array_equal(ends, table[1:, col]):
            raise CorruptSpecError("the packed index's slot table is not contiguous")


def raw_points(arrays: PackedArrays, root: Path) -> PackedArrays:
    """Arrays whose points are the encoded ones again (for compaction and checks)."""
    point_end = int(arrays.point_offsets[-1]) if arrays.n_slots else 0
    d = int(arrays.pair_features.shape[1])  # as encoded (a compact space's points are r wide)
    points = map_rows(array_file(root, "points", np.float32), np.float32, point_end, d)
    norms = map_rows(array_file(root, "sq_norms", np.float32), np.float32, point_end, None)
    return replace(arrays, points=points, sq_norms=norms, space=None, device_copies={}, origin=None)


SLOT_COLUMNS = "slot, name, spec_sha256, point_start, point_count, pair_start, pair_count"


def slot_arrays(
    home: Path, db: sqlite3.Connection, state: PackedState, dims: tuple[int, int], rows: list
) -> PackedArrays:
    """The packed rows of these slots (rows of SLOT_COLUMNS), copied into small in-memory
    PackedArrays: what a sync needs of a few models without reading the slot table whole."""
    root = home / PACKED_DIR / state.generation
    point_end = max((r[3] + r[4] for r in rows), default=0)
    pair_end = max((r[5] + r[6] for r in rows), default=0)
    space = read_space(root)
    width = widths(dims, space)
    point_rows = np.concatenate([np.arange(r[3], r[3] + r[4]) for r in rows] or [[]]).astype(int)
    pair_rows = np.concatenate([np.arange(r[5], r[5] + r[6]) for r in rows] or [[]]).astype(int)
    taken = {}
    for files, end, picked in (
        (point_files(space), point_end, point_rows),
        (PAIR_FILES, pair_end, pair_rows),
    ):
        for key, (dtype, w) in files.items():
            mapped = map_rows(array_file(root, key, dtype), dtype, end, width[w])
            taken[key] = take_rows(mapped, picked)
    n_prompts = db.execute("SELECT COALESCE(MAX(id), 0) FROM packed_prompts").fetchone()[0]
    name, dtype, w = PROMPT_FILE
    prompts = map_rows(array_file(root, name, dtype), dtype, n_prompts, width[w])
    texts = [t for (t,) in db.execute("SELECT text FROM packed_texts ORDER BY id")]
    return PackedArrays(
        names=[r[1] for r in rows],
        alive=np.ones(len(rows), dtype=bool),
        point_offsets=np.r_[0, np.cumsum([r[4] for r in rows])].astype(np.int64),
        prompts=prompts,
        pair_offsets=np.r_[0, np.cumsum([r[6] for r in rows])].astype(np.int64),
        texts=texts,
        **with_space({"gamma": registry_gamma(db), **taken}, space),
    )


def slot_pairs(home, db, state, dims, rows) -> tuple[np.ndarray, np.ndarray]:
    """The (feature, prompt) pairs of these slots, read from the packed files."""
    arrays = slot_arrays(home, db, state, dims, rows)
    return pairs_of(arrays, np.arange(arrays.n_slots))


def pairs_of(arrays: PackedArrays, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if slots.size == 0:
        return np.zeros((0, arrays.feature_dim)), np.zeros((0, arrays.prompts.shape[1]))
    rows = np.concatenate(
        [np.arange(arrays.pair_offsets[s], arrays.pair_offsets[s + 1]) for s in slots]
    )
    features = np.asarray(arrays.pair_features)[rows]
    return features, np.asarray(arrays.prompts)[np.asarray(arrays.pair_prompt)[rows]]
