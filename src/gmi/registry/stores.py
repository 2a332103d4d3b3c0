"""The store seam's one place that picks: where a registry's catalogue lives.

    (no URL)        SQLite in the home (gmi.registry.store.Registry)
    postgresql://   PostgreSQL (gmi.registry.postgres.SCHEMES), spec files in the home, a
                    local SQLite mirror for the packed index (PostgresStore)

Both implement gmi.registry.base.Store and write through one template (gmi.registry.writes).
"""

from __future__ import annotations

from pathlib import Path

from gmi.registry.base import Store
from gmi.registry.postgres import PostgresStore
from gmi.registry.store import Registry, default_home


def open_store(home: str | Path | None, url: str | None = None, *, create: bool = True) -> Store:
    """The registry store of `home`: SQLite there, or the catalogue at `url` (anything but
    a postgresql:// URL is one clear InvalidInputError)."""
    if url is None:
        return Registry(home, create=create)
    return PostgresStore(url, home if home is not None else default_home(), create=create)
