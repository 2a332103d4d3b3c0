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
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from gmi.errors import GmiError


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


class WriterDied(GmiError):
    """The write worker process died during this write (killed, out of memory): the write
    either committed whole or left nothing (atomic), and the next write gets a new worker."""

    exit_code = 8


class Writer:
    """One worker process for the writes of one registry; started on first use, and again
    after it dies (a dead worker used to break every later write until a restart)."""

    def __init__(self, home: Path, store: str | None = None) -> None:
        self.home = str(home)
        self.store = store  # a postgresql:// URL, or None (the SQLite registry in home)
        self._pool: ProcessPoolExecutor | None = None
        self.restarts = 0
        self.died: str | None = None  # why the last worker ended, until its successor runs
        self._warm: Future | None = None  # the successor's first (empty) job

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: a forked copy of a process running torch threads can deadlock
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=context)
        return self._pool

    def _discard(self, reason: str) -> None:
        """Drop a dead worker and start its successor at once (its first job is empty):
        /healthz is degraded from the death until the successor runs."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        self.restarts += 1
        self.died = reason
        self._warm = self._executor().submit(os.getpid)

    def problem(self) -> str | None:
        """What /healthz reports: the write worker's death until its successor runs."""
        if self._pool is not None and getattr(self._pool, "_broken", False):
            self._discard("the write worker process died; restarting it")
        warm = self._warm
        if self.died and warm is not None and warm.done() and warm.exception() is None:
            self.died, self._warm = None, None
        return self.died

    async def _run(self, fn: Any, *args: Any) -> dict[str, Any]:
        for _attempt in range(2):
            try:
                job = self._executor().submit(fn, *args)
            except BrokenProcessPool:  # died while idle: nothing of this write ran yet
                self._discard("the write worker process died while idle; restarted")
                continue
            try:
                result = await asyncio.wrap_future(job)
            except BrokenProcessPool:
                self._discard("the write worker process died during a write; restarted")
                raise WriterDied(
                    "the write worker process died during this write (nothing partial was "
                    "kept); try again"
                ) from None
            self.died = None
            return result
        raise WriterDied("the write worker process could not be started")

    async def submit(
        self,
        name: str,
        folder: Path,
        description: str | None,
        replace: bool,
        model_hashes: list[str] | None = None,
    ) -> dict[str, Any]:
        return await self._run(
            _submit, self.home, self.store, name, str(folder), description, replace, model_hashes
        )

    async def remove(self, name: str) -> dict[str, Any]:
        return await self._run(_remove, self.home, self.store, name)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
