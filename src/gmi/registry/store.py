"""The registry: where a hub keeps its models.

Layout of a registry home (``--home`` or ``$GMI_HOME``, default ``~/.local/share/gmi``):

    registry.db        SQLite (WAL): settings + one row per model
    specs/<id>.safetensors   one spec per model (arrays + JSON header), named by a random id

Write order makes every change all-or-nothing: the spec file is written atomically first, the
database row last in one transaction. A crash before the commit leaves at most an orphan file
(no row points at it; `Registry.orphans()` finds it), never a row without its spec.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gmi.errors import (
    CorruptRegistryError,
    InvalidInputError,
    NotFoundError,
    StorageError,
    already_exists,
)
from gmi.registry import validation
from gmi.registry.atomic import atomic_write, delete_if_older
from gmi.registry.files import FOLDERS, SPEC_DIR, THUMB_DIR, ModelRecord, SpecFiles
from gmi.registry.migrations import MIGRATIONS, statements
from gmi.registry.packed.index import PackedIndex
from gmi.registry.packed.layout import PackedSource
from gmi.registry.packed.reader import open_index, state_token
from gmi.registry.packed.writer import sync
from gmi.registry.sqlite import SqliteDatabase
from gmi.registry.validation import MAX_LOOKUP_KEYS, checked_submission, models_with_identity
from gmi.registry.writes import SQLITE_ROWS, ModelWrite, Swap
from gmi.spec.specification import Specification

__all__ = ["SPEC_DIR", "THUMB_DIR", "ModelRecord", "Registry", "SpecFiles"]


def __getattr__(name: str) -> object:
    """The validation names' old import path (gmi.registry.validation), for one release."""
    if name in validation.__all__:
        return getattr(validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from gmi.settings import HubSettings

DB_NAME = "registry.db"


def default_home() -> Path:
    """$GMI_HOME, else $XDG_DATA_HOME/gmi, else ~/.local/share/gmi."""
    if os.environ.get("GMI_HOME"):
        return Path(os.environ["GMI_HOME"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "gmi"


class Registry(SpecFiles):
    """A registry home on disk. Cheap to open; every method opens its own short transaction."""

    def __init__(self, home: str | Path | None = None, *, create: bool = True) -> None:
        self.home = Path(home).expanduser() if home is not None else default_home()
        self.db_path = self.home / DB_NAME
        self.spec_dir = self.home / SPEC_DIR
        if self.home.exists() and not self.home.is_dir():
            raise InvalidInputError(f"{self.home}: the registry home is a file, not a directory")
        if self.db_path.exists() and not self.db_path.is_file():
            raise CorruptRegistryError(f"{self.db_path}: not a gmi registry database")
        if not self.db_path.exists():
            if not create:
                raise NotFoundError(f"{self.home}: no gmi registry here (submit a model first)")
            self._storage(lambda: self.spec_dir.mkdir(parents=True, exist_ok=True))
        # Reads never write: a registry on a read-only disk (or one this account may only
        # read) is opened read-only, and every read works.
        self.read_only = not os.access(self.home, os.W_OK)
        if not self.read_only:
            self._storage(lambda: self.spec_dir.mkdir(parents=True, exist_ok=True))
        with self._connect() as db:
            self._migrate(db)

    # -- database plumbing (gmi.registry.sqlite) --------------------------------------------
    def _connect(self, write: bool = False) -> AbstractContextManager[sqlite3.Connection]:
        return SqliteDatabase(self.db_path, self.home, self.read_only).connect(write)

    def _write(self) -> AbstractContextManager[sqlite3.Connection]:
        return SqliteDatabase(self.db_path, self.home, self.read_only).write()

    def write_transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """The registry's one write lock, as an IMMEDIATE transaction: for a store that keeps
        this registry as its mirror (gmi.registry.postgres)."""
        return self._write()

    def _migrate(self, db: sqlite3.Connection) -> None:
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            raise CorruptRegistryError(
                f"{self.db_path}: not a gmi registry database ({exc})"
            ) from exc
        if version > len(MIGRATIONS):
            raise CorruptRegistryError(
                f"{self.db_path}: written by a newer gmi (schema {version}, this gmi knows "
                f"{len(MIGRATIONS)}); upgrade gmi"
            )
        if version == 0 and tables:
            raise CorruptRegistryError(
                f"{self.db_path}: an SQLite database of something else "
                f"(tables {', '.join(sorted(tables)[:5])}), not a gmi registry"
            )
        if version == len(MIGRATIONS):
            return
        if self.read_only:
            raise StorageError(f"{self.home}: the registry needs an upgrade but is read-only")
        db.execute("BEGIN IMMEDIATE")
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # -- settings ----------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        with self._connect() as db:
            return {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM settings")}

    def set_settings(self, values: dict[str, str], *, overwrite: bool = False) -> dict[str, str]:
        """Store settings; without overwrite, existing keys keep their value. Returns all."""
        with self._write() as db:
            for key, value in values.items():
                verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
                db.execute(f"{verb} INTO settings (key, value) VALUES (?, ?)", (key, str(value)))
            return {r["key"]: r["value"] for r in db.execute("SELECT key, value FROM settings")}

    # -- models ------------------------------------------------------------------------
    def add(
        self,
        name: str,
        spec: Specification,
        *,
        description: str | None = None,
        replace: bool = False,
        extra: dict[str, Any] | None = None,
        thumbnails: list[bytes] | None = None,
        model_hashes: list[str] | None = None,
        kept: list[tuple[str, bytes]] | None = None,
    ) -> ModelRecord:
        """Store a spec (and its example thumbnails and kept images, gmi.submit.kept): files
        first (atomic), row last (one transaction). On replace, description=None /
        model_hashes=None keep the old ones."""
        hashes = checked_submission(name, description, model_hashes)
        if not replace and self.exists(name):  # early, friendly check; re-checked under lock
            raise already_exists(name)
        if self.read_only:
            raise StorageError(f"{self.home}: the registry is read-only here; nothing was changed")
        write = ModelWrite(name, spec, description, replace, extra, thumbnails, hashes, kept)
        self.write_model(write, self._write, SQLITE_ROWS)
        return self.get(name)

    def add_many(
        self, models: Sequence[tuple[str, Specification]], *, replace: bool = False
    ) -> int:
        """Store many specs in ONE transaction (files first, all rows last): a bulk import of
        a catalogue or a benchmark hub, without one commit and fsync per model. All or
        nothing; a name already taken (without replace) refuses the whole batch. The packed
        index is brought in step by the next sync, once. Returns how many were stored."""
        if self.read_only:
            raise StorageError(f"{self.home}: the registry is read-only here; nothing was changed")
        writes = [
            ModelWrite(name, spec, replace=replace, hashes=checked_submission(name, None, None))
            for name, spec in models
        ]
        self.write_models(writes, self._write, SQLITE_ROWS)
        return len(writes)

    def replace_all(self, writes: Sequence[ModelWrite], swap: Swap) -> None:
        """Every model rewritten and the settings changed in ONE transaction (gmi reencode),
        refused whole when the catalogue moved since `swap.expected`."""
        if self.read_only:
            raise StorageError(f"{self.home}: the registry is read-only here; nothing was changed")
        self.write_models(writes, self._write, SQLITE_ROWS, swap)

    def remove(self, name: str) -> ModelRecord:
        with self._write() as db:
            row = db.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
            if row is None:
                raise NotFoundError(f"no model named {name!r}")
            db.execute("DELETE FROM models WHERE name = ?", (name,))
            db.execute("DELETE FROM model_hashes WHERE name = ?", (name,))
        record = _record(row)
        self._delete_files(record.spec_file)
        return record

    def exists(self, name: str) -> bool:
        with self._connect() as db:
            return db.execute("SELECT 1 FROM models WHERE name = ?", (name,)).fetchone() is not None

    def get(self, name: str) -> ModelRecord:
        with self._connect() as db:
            row = db.execute("SELECT * FROM models WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise NotFoundError(f"no model named {name!r}")
        return _record(row)

    def model_hashes(self, name: str) -> list[str]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT hash FROM model_hashes WHERE name = ? ORDER BY hash", (name,)
            ).fetchall()
        return [r[0] for r in rows]

    def models_with_hash(self, model_hash: str) -> list[str]:
        return models_with_identity(self, model_hash)

    def models_with_keys(self, keys: list[str]) -> dict[str, list[str]]:
        """key -> registered models stored under it (one indexed look-up, not a scan)."""
        wanted = sorted(set(keys))[:MAX_LOOKUP_KEYS]
        if not wanted:
            return {}
        with self._connect() as db:
            rows = db.execute(
                f"SELECT h.hash, m.name FROM model_hashes h JOIN models m ON m.name = h.name "
                f"WHERE h.hash IN ({','.join('?' * len(wanted))}) ORDER BY m.name",
                wanted,
            ).fetchall()
        out: dict[str, list[str]] = {}
        for key, name in rows:
            out.setdefault(key, []).append(name)
        return out

    def list(self) -> list[ModelRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT * FROM models ORDER BY name").fetchall()
        return [_record(r) for r in rows]

    def load_all(self) -> tuple[list[ModelRecord], list[Specification]]:
        records = self.list()
        return records, [self.load_spec(r) for r in records]

    def count(self) -> int:
        with self._connect() as db:
            return int(db.execute("SELECT COUNT(*) FROM models").fetchone()[0])

    def page(self, offset: int, limit: int) -> list[ModelRecord]:
        """Records sorted by name, `limit` of them from `offset` (the catalogue's pages)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM models ORDER BY name LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
        return [_record(r) for r in rows]

    def descriptions(self, names: list[str]) -> dict[str, str]:
        """name -> description for these models only (one query)."""
        if not names:
            return {}
        marks = ",".join("?" * len(names))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT name, description FROM models WHERE name IN ({marks})", names
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def list_names(self, limit: int | None = None) -> list[str]:
        """Model names, sorted (a catalogue page without loading records' extras)."""
        with self._connect() as db:
            sql = "SELECT name FROM models ORDER BY name"
            rows = db.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
            return [r[0] for r in rows.fetchall()]

    # -- the packed index (gmi.registry.packed) -------------------------------------------
    def packed_source(self) -> PackedSource:
        """What the packed index needs of this home: its database and spec files."""
        return PackedSource(
            home=self.home,
            read_only=self.read_only,
            connect=self._connect,
            write=self._write,
            guard=self._storage,
            spec_files=self,
        )

    def index_token(self) -> str:
        return state_token(self.packed_source())

    def open_index(self, settings: HubSettings) -> PackedIndex:
        return open_index(self.packed_source(), settings)

    def sync_index(self, settings: HubSettings, *, full: bool = False) -> None:
        sync(self.packed_source(), settings, force_full=full)

    # -- repair (gmi check): every change under the write lock, after re-verifying ------------
    def remove_if(self, record: ModelRecord, still_broken: Callable[[], bool]) -> bool:
        """Remove a model only if its row still points at the same spec file and that file is
        still broken, both checked inside the write transaction (a replace that committed
        meanwhile is never undone)."""
        with self._write() as db:
            row = db.execute("SELECT spec_file FROM models WHERE name = ?", (record.name,))
            current = row.fetchone()
            if current is None or current["spec_file"] != record.spec_file or not still_broken():
                return False
            db.execute("DELETE FROM models WHERE name = ?", (record.name,))
            db.execute("DELETE FROM model_hashes WHERE name = ?", (record.name,))
        self._delete_files(record.spec_file)
        return True

    def replace_spec_if(
        self, record: ModelRecord, spec: Specification, still_needed: Callable[[], bool]
    ) -> bool:
        """Swap a model's spec for a rebuilt one (same images, thumbnails, kept images,
        description and hashes), only if the row still points at the spec that was checked."""
        data = spec.to_bytes()
        spec_file = f"{uuid.uuid4().hex}.safetensors"
        atomic_write(self.spec_dir / spec_file, data)
        self.copy_folders(record.spec_file, spec_file)
        swapped = False
        try:
            with self._write() as db:
                row = db.execute(
                    "SELECT spec_file FROM models WHERE name = ?", (record.name,)
                ).fetchone()
                if row is not None and row["spec_file"] == record.spec_file and still_needed():
                    db.execute(
                        "UPDATE models SET spec_file = ?, spec_sha256 = ?, n_points = ?, "
                        "updated = ? WHERE name = ?",
                        (
                            spec_file,
                            hashlib.sha256(data).hexdigest(),
                            spec.n_points,
                            time.time(),
                            record.name,
                        ),
                    )
                    swapped = True
        finally:
            self._delete_files(record.spec_file if swapped else spec_file)
        return swapped

    def delete_orphan(self, path: Path, grace_s: float) -> bool:
        """Delete a file or thumbnail folder that no row points at and that is older than
        grace_s; checked under the write lock (a submit's row is inserted under it)."""
        with self._write() as db:
            used = {r[0] for r in db.execute("SELECT spec_file FROM models")}
            if path.name in used or path.name in {Path(u).stem for u in used}:
                return False
            return delete_if_older(path, grace_s)

    def orphans(self) -> list[Path]:
        """Spec files (and temp files) that no row points at: left by an interrupted write."""
        with self._connect() as db:
            used = {r[0] for r in db.execute("SELECT spec_file FROM models")}
        stems = {Path(u).stem for u in used}
        stray = [p for p in self.spec_dir.iterdir() if p.name not in used]
        for kind in FOLDERS:  # thumbnails, kept images
            if (self.home / kind).is_dir():
                stray += [p for p in (self.home / kind).iterdir() if p.name not in stems]
        return sorted(stray)


def _record(row: sqlite3.Row) -> ModelRecord:
    return ModelRecord(
        name=row["name"],
        description=row["description"],
        spec_file=row["spec_file"],
        spec_sha256=row["spec_sha256"],
        encoder=row["encoder"],
        n_images=row["n_images"],
        n_points=row["n_points"],
        created=row["created"],
        updated=row["updated"],
        extra=json.loads(row["extra"]),
    )
