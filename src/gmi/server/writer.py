"""Registry writes of the service run in a separate worker process.

A submission decodes, augments and encodes dozens of images and refits the hub's learned
parts; in the server's own process that work, even on a worker thread, holds the GIL long
enough to stall the event loop (/healthz waited up to 0.3 s behind a 48-image upload). One
spawned worker process does every write, one at a time, with its own models loaded once; the
server only waits for the answer. The registry (SQLite + atomic files) is the shared state, so
the server sees a write as soon as it is committed.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def _submit(
    home: str,
    store: str | None,
    name: str,
    folder: str,
    description: str | None,
    replace: bool,
    model_hashes: list[str] | None = None,
) -> dict:
    from gmi.hub import Hub

    record = Hub(home, store=store).submit_folder(
        name,
        folder,
        description=description,
        replace=replace,
        progress=False,
        model_hashes=model_hashes,
    )
    return record.to_json()


def _remove(home: str, store: str | None, name: str) -> dict:
    from gmi.hub import Hub

    return Hub(home, store=store).remove(name).to_json()


class Writer:
    """One worker process for the writes of one registry; started on first use."""

    def __init__(self, home: Path, store: str | None = None) -> None:
        self.home = str(home)
        self.store = store  # a postgresql:// URL, or None (the SQLite registry in home)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: a forked copy of a process running torch threads can deadlock
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool

    async def submit(
        self,
        name: str,
        folder: Path,
        description: str | None,
        replace: bool,
        model_hashes: list[str] | None = None,
    ) -> dict[str, Any]:
        job = self._executor().submit(
            _submit, self.home, self.store, name, str(folder), description, replace, model_hashes
        )
        return await asyncio.wrap_future(job)

    async def remove(self, name: str) -> dict[str, Any]:
        return await asyncio.wrap_future(
            self._executor().submit(_remove, self.home, self.store, name)
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
