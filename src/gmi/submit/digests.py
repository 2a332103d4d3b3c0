"""A cache of submit-many's input digests, so a re-run does not read every image again.

Digesting an imagefolder entry reads all its images (sha256 of their bytes): a 100,000-line
manifest took about 12 minutes on every re-run before its first task. The cache maps a
*stamp* of the entry (its settings, and each image's path, size, mtime and inode, which one
`stat` gives) to the digest of its bytes, in HOME/cache/input-digests.db (SQLite). A changed
file changes its stamp, as `make` and `rsync` assume; and the digest recorded with a model is
always of the bytes the task encoded (gmi.submit.prepare), so the cache can only decide
whether a task runs, never what is stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import sqlite3
from pathlib import Path

CACHE_FILE = Path("cache") / "input-digests.db"


class DigestCache:
    """stamp -> digest, best effort: a cache that cannot be opened or written is none. New
    digests are kept in memory and written by `commit` (into an existing home only: a run
    that registers nothing makes no folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: sqlite3.Connection | None = None
        self._pending: dict[str, str] = {}

    @classmethod
    def for_home(cls, home: str | Path) -> DigestCache:
        return cls(Path(home) / CACHE_FILE)

    def _open(self, create: bool) -> sqlite3.Connection | None:
        if self._db is None and (self.path.exists() or create):
            with contextlib.suppress(OSError, sqlite3.Error):
                self.path.parent.mkdir(exist_ok=True)
                db = sqlite3.connect(self.path, timeout=30)
                db.execute(
                    "CREATE TABLE IF NOT EXISTS digests (stamp TEXT PRIMARY KEY, digest TEXT)"
                )
                self._db = db
        return self._db

    def get(self, stamp: str) -> str | None:
        if stamp in self._pending:
            return self._pending[stamp]
        db = self._open(create=False)
        if db is None:
            return None
        try:
            found = db.execute("SELECT digest FROM digests WHERE stamp = ?", (stamp,)).fetchone()
        except sqlite3.Error:
            return None
        return found[0] if found else None

    def put(self, stamp: str, digest: str) -> None:
        self._pending[stamp] = digest

    def commit(self) -> None:
        if not self._pending or not self.path.parent.parent.is_dir():
            return
        db = self._open(create=True)
        if db is None:
            return
        with contextlib.suppress(sqlite3.Error):
            db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?)", self._pending.items())
            db.commit()
            self._pending.clear()

    def close(self) -> None:
        self.commit()
        if self._db is not None:
            self._db.close()
            self._db = None


def folder_stamp(header: dict, files: list[tuple[str, Path]]) -> str | None:
    """sha256 of the entry's settings and each (prompt, image path, size, mtime, inode), or
    None when an image cannot be stat'ed (the digest then reports it)."""
    parts = []
    try:
        for prompt, path in files:
            st = path.stat()
            parts.append([prompt, str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino])
    except OSError:
        return None
    text = json.dumps({"header": header, "files": parts}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()
