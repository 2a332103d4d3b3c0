"""The snapshot cache: the one packed-index state a process ranks with, swapped when the
registry moves on (in this process or any other)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from gmi.errors import CorruptSpecError, NotFoundError
from gmi.registry.base import Store
from gmi.registry.packed.index import PackedIndex
from gmi.settings import HubSettings


class IndexSnapshots:
    """Holds the current PackedIndex. Every `current` call checks the registry's state with
    one small read, so writes made by other processes are picked up without a restart; the
    index is reopened (memory maps, no spec file parsed) only when the state changed. Each
    snapshot is immutable, so readers score unlocked; the swap takes a small lock."""

    def __init__(self) -> None:
        self.loaded: PackedIndex | None = None  # as last loaded (no reload): health probes
        self.error: str | None = None  # why the last open failed, if it did
        self._lock = threading.Lock()

    def current(
        self, registry: Store, settings: Callable[[], HubSettings], home: Path
    ) -> PackedIndex:
        """The index of the registry's committed state. A model whose spec is damaged,
        crafted or incompatible is left out and named in `skipped`; only a registry with no
        usable model at all is an error."""
        token = registry.index_token()
        found = self.loaded
        if found is not None and token and found.token == token:
            return found
        with self._lock:
            if self.loaded is not None and token and self.loaded.token == token:
                return self.loaded
            index = registry.open_index(settings())
            if not index.names and not index.skipped:
                self.loaded, self.error = None, None
                raise NotFoundError(f"{home}: the registry has no models (submit one first)")
            if not index.names:
                reasons = "; ".join(f"model {n!r}: {w}" for n, w in index.skipped.items())
                self.loaded, self.error = None, f"no usable model ({reasons})"
                raise CorruptSpecError(f"{home}: no usable model ({reasons}); run gmi check")
            self.loaded, self.error = index, None
            return index
