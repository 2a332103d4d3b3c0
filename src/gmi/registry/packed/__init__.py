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

The package, one job per file: layout (files, rows, state, PackedSource), arrays (reading
rows), index (PackedIndex, the query-time snapshot), learned (ridge and calibration), writer
(sync), maintenance (space refits, compaction, cleaning), reader (open_index, state_token),
check (gmi check).
"""

from gmi.registry.packed.arrays import open_arrays
from gmi.registry.packed.check import check_packed
from gmi.registry.packed.index import PackedIndex
from gmi.registry.packed.layout import (
    LEARNED_DIR,
    PACKED_DIR,
    PackedSource,
    PackedState,
    read_space,
    read_state,
)
from gmi.registry.packed.learned import learn, load_learned, statistics_of
from gmi.registry.packed.reader import open_index, state_token
from gmi.registry.packed.writer import spec_problem, sync

__all__ = [
    "LEARNED_DIR",
    "PACKED_DIR",
    "PackedIndex",
    "PackedSource",
    "PackedState",
    "check_packed",
    "learn",
    "load_learned",
    "open_arrays",
    "open_index",
    "read_space",
    "read_state",
    "spec_problem",
    "state_token",
    "statistics_of",
    "sync",
]
