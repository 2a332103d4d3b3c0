"""Opening the packed index for identification: the committed state as a PackedIndex (syncing
first when the registry moved on and this process may write; the last packed state when the
disk cannot take the update), and the one small read that tells whether it moved on."""

from __future__ import annotations

import contextlib

from gmi.errors import StorageError
from gmi.registry.learning import logger
from gmi.registry.packed.arrays import open_arrays
from gmi.registry.packed.index import PackedIndex
from gmi.registry.packed.layout import PackedFeatures, PackedSource, read_state
from gmi.registry.packed.learned import learn, load_learned, save_learned, statistics_of
from gmi.registry.packed.writer import sync
from gmi.settings import HubSettings


def open_index(source: PackedSource, settings: HubSettings) -> PackedIndex:
    """The current committed state as a PackedIndex (syncing first if the registry moved on
    and this process may write)."""
    dims = (settings.image_dim or 0, settings.prompt_dim or 0)
    for attempt in range(3):
        with source.connect() as db:
            state = read_state(db)
        if not state.in_step:
            try:
                if source.read_only:
                    raise StorageError(
                        f"{source.home}: the packed index is behind the registry and the "
                        "registry is read-only here; run `gmi check --repair` where it is "
                        "writable"
                    )
                sync(source, settings)
            except StorageError as exc:  # a full or read-only disk: an identification
                if not state.token:  # needs no write, so it ranks the last packed state
                    raise
                if attempt == 0:
                    logger.warning(
                        "gmi: %s; ranking the models of the last packed state (the newest "
                        "changes are not ranked until the index can be updated)",
                        exc,
                    )
        with source.connect() as db:
            db.execute("BEGIN")  # one consistent snapshot of the state and the slot table
            state = read_state(db)
            # the rows' own encoder and widths (settings may already name the next ones)
            packed = PackedFeatures.read(db)
            if packed is not None and packed.image_dim and packed.prompt_dim:
                dims = (packed.image_dim, packed.prompt_dim)
            arrays, problems = open_arrays(source.home, db, state, dims)
            db.execute("COMMIT")
        encoder = packed.encoder if packed is not None else None
        found = load_learned(source.home, state.token)
        if found is not None:
            return PackedIndex(arrays, state.token, found[1], problems, encoder)
        if attempt < 2 and state_token(source) != state.token:
            continue  # a newer state committed meanwhile (and removed this one's file)
        break
    # the learned file of the committed state is missing (e.g. deleted): refit, O(hub), rare
    stats = statistics_of(arrays, arrays.live_slots, arrays.feature_dim, arrays.prompts.shape[1])
    learned = learn(arrays, stats, settings)
    if not source.read_only:
        with contextlib.suppress(OSError, StorageError):
            save_learned(source.home, state.token, stats, learned)
    return PackedIndex(arrays, state.token, learned, problems, encoder)


def state_token(source: PackedSource) -> str:
    """The committed packed state's token, or "" when the index is behind the registry
    (one small SQL read: what every identify checks to pick up other processes' writes)."""
    with source.connect() as db:
        state = read_state(db)
    return state.token if state.in_step else ""
