"""SQLite plumbing of a registry home: connections that never need free space to read,
IMMEDIATE write transactions (writers queue on the lock), WAL, and a full or read-only disk
reported as StorageError, a file that is not a registry as CorruptRegistryError."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gmi.errors import CorruptRegistryError, StorageError


class SqliteDatabase:
    """The registry.db of one home; `read_only` homes are opened immutable (no locks)."""

    def __init__(self, db_path: Path, home: Path, read_only: bool) -> None:
        self.db_path = db_path
        self.home = home
        self.read_only = read_only

    def open(self, immutable: bool) -> sqlite3.Connection:
        try:
            if immutable:
                # no locks and no -shm file (which a read-only or full disk cannot hold); only
                # for reading where nothing can write anyway
                return sqlite3.connect(
                    f"file:{self.db_path}?mode=ro&immutable=1", uri=True, isolation_level=None
                )
            return sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        except sqlite3.Error as exc:
            raise CorruptRegistryError(f"{self.db_path}: cannot be opened ({exc})") from exc

    @contextmanager
    def connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection; reads fall back to a read-only one when the disk cannot hold SQLite's
        shared-memory file (full), so that reading never needs free space."""
        db = self.open(immutable=self.read_only)
        try:
            try:
                db.execute("PRAGMA busy_timeout = 60000")
                if not self.read_only:
                    set_wal(db)
                    db.execute("PRAGMA synchronous = FULL")
            except sqlite3.OperationalError as exc:
                if not is_storage_failure(exc):
                    raise CorruptRegistryError(
                        f"{self.db_path}: not a gmi registry database ({exc})"
                    ) from exc
                if write or self.read_only:
                    raise StorageError(
                        f"{self.home}: cannot write the registry ({exc}); nothing was changed"
                    ) from exc
                db.close()
                db = self.open(immutable=True)
            except sqlite3.DatabaseError as exc:
                raise CorruptRegistryError(
                    f"{self.db_path}: not a gmi registry database ({exc})"
                ) from exc
            db.row_factory = sqlite3.Row
            yield db
        except sqlite3.OperationalError as exc:
            if is_storage_failure(exc):
                raise StorageError(
                    f"{self.home}: cannot write the registry ({exc}); nothing was changed"
                ) from exc
            raise
        finally:
            db.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """An IMMEDIATE transaction: writers queue on the lock instead of failing mid-way."""
        if self.read_only:
            raise StorageError(f"{self.home}: the registry is read-only here; nothing was changed")
        with self.connect(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def set_wal(db: sqlite3.Connection, timeout_s: float = 60.0) -> None:
    """Switch to WAL. Two processes creating a registry at once race for the lock this takes,
    and SQLite does not wait on its busy handler here: retry until the other is done."""
    if str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal":
        return  # already: asking again would queue behind any writer's lock
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def is_storage_failure(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return any(
        word in text
        for word in ("disk is full", "readonly", "read-only", "disk i/o", "unable to open")
    )
