"""A registry whose catalogue and settings live in PostgreSQL (`--store postgresql://...`), so
that several `gmi serve` replicas behind one address share one hub.

What lives where:

    PostgreSQL        settings, one row per model, checkpoint hashes, a change log
    --home (shared)   spec files and thumbnails (an NFS/SMB share, a mounted bucket...)
    each replica      its packed index: a local SQLite mirror of the catalogue (under
                      $XDG_CACHE_HOME/gmi/postgres/), brought in step from the change log

Write order keeps every change all-or-nothing, as in the SQLite registry: the spec file is
written atomically first, the catalogue row last in one PostgreSQL transaction. Writers take a
transaction-scoped advisory lock, so change-log versions commit in the order they are numbered
and a replica that has read up to version v has seen every change <= v.

Reading: every identification asks PostgreSQL for the newest change-log version (one small
query); when it moved, the replica copies the changed catalogue rows into its mirror and the
mirror's packed index syncs incrementally (gmi.registry.packed), reading only the changed
models' spec files from the shared home. A model submitted through one replica is identified
by every replica's next query.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gmi.errors import InvalidInputError, NotFoundError, StoreUnavailableError, already_exists
from gmi.registry.dsn import redacted, scrubbed
from gmi.registry.files import SPEC_DIR, ModelRecord, SpecFiles
from gmi.registry.store import Registry
from gmi.registry.validation import MAX_LOOKUP_KEYS, checked_submission, models_with_identity
from gmi.registry.writes import POSTGRES_ROWS, ModelWrite, Swap
from gmi.spec.specification import Specification

if TYPE_CHECKING:
    from gmi.registry.packed.index import PackedIndex
    from gmi.settings import HubSettings

SCHEMES = ("postgresql://", "postgres://")
SCHEMA = """
CREATE TABLE IF NOT EXISTS gmi_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS gmi_models (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    spec_file TEXT NOT NULL UNIQUE,
    spec_sha256 TEXT NOT NULL,
    encoder TEXT NOT NULL,
    n_images INTEGER NOT NULL,
    n_points INTEGER NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL,
    extra TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS gmi_model_hashes (
    hash TEXT NOT NULL, name TEXT NOT NULL, PRIMARY KEY (hash, name)
);
CREATE INDEX IF NOT EXISTS gmi_model_hashes_by_name ON gmi_model_hashes (name);
CREATE TABLE IF NOT EXISTS gmi_changes (version BIGSERIAL PRIMARY KEY, name TEXT NOT NULL);
ALTER TABLE gmi_changes ADD COLUMN IF NOT EXISTS
    stamp TEXT NOT NULL DEFAULT gen_random_uuid()::text;
INSERT INTO gmi_settings (key, value)
    SELECT 'space', 'identity' WHERE EXISTS (SELECT 1 FROM gmi_settings WHERE key = 'encoder')
    ON CONFLICT (key) DO NOTHING;
INSERT INTO gmi_settings (key, value)
    SELECT 'space_dims', '0' WHERE EXISTS (SELECT 1 FROM gmi_settings WHERE key = 'encoder')
    ON CONFLICT (key) DO NOTHING;
"""
# The two INSERTs are the SQLite registry's migrations 5 and 6 (gmi.registry.migrations): a
# store an older gmi created has settings but no 'space' / 'space_dims' row, and reading the
# defaults would silently re-rank it in another space. A new store writes every setting in
# one transaction (set_settings), so it never has the encoder without them.
SCHEMA_LOCK = 0x676D6901  # advisory lock keys ("gmi" + 1, + 2)
WRITE_LOCK = 0x676D6902
COLUMNS = (
    "name, description, spec_file, spec_sha256, encoder, n_images, n_points, created, "
    "updated, extra"
)
SEEN_KEY = "postgres_version"  # the mirror's settings row: change-log version it has copied
# ... and that change's random stamp: a database restored from a backup (or another database
# at the same URL) reuses version numbers, never stamps, so the mirror knows to copy it anew
STAMP_KEY = "postgres_stamp"


def is_store_url(value: str | None) -> bool:
    return bool(value) and str(value).startswith(SCHEMES)


def mirror_dir(url: str, home: Path) -> Path:
    """This machine's mirror of one (database, shared home) pair."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "gmi" / "postgres"
    key = hashlib.sha256(f"{url}\n{Path(home).resolve()}".encode()).hexdigest()[:16]
    return base / key


def _record(row: tuple) -> ModelRecord:
    name, description, spec_file, sha, encoder, n_images, n_points, created, updated, extra = row
    return ModelRecord(
        name, description, spec_file, sha, encoder, n_images, n_points, created, updated,
        json.loads(extra),
    )  # fmt: skip


class PostgresStore(SpecFiles):
    """The Store interface (gmi.registry.base) over PostgreSQL + a shared folder."""

    def __init__(self, url: str, home: str | Path, *, create: bool = True) -> None:
        if not is_store_url(url):
            raise InvalidInputError(f"--store must be a postgresql:// URL, not {url[:40]!r}")
        self.url = url
        self.home = Path(home).expanduser()
        self.spec_dir = self.home / SPEC_DIR
        if self.home.exists() and not self.home.is_dir():
            raise InvalidInputError(f"{self.home}: the shared home is a file, not a directory")
        if create:
            self._storage(lambda: self.spec_dir.mkdir(parents=True, exist_ok=True))
        elif not self.spec_dir.is_dir():
            raise NotFoundError(f"{self.home}: no shared gmi home here (no {SPEC_DIR}/ folder)")
        self.read_only = not os.access(self.home, os.W_OK)
        with self._transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cur.execute(SCHEMA)
        self._mirror: Registry | None = None

    # -- PostgreSQL plumbing ---------------------------------------------------------------
    @contextmanager
    def _transaction(self, write: bool = False) -> Iterator[Any]:
        """One transaction (committed on success); a writer holds the write lock, so change
        versions commit in order. An unreachable server is one line naming it."""
        try:
            import psycopg
        except ImportError:
            raise StoreUnavailableError(
                "a postgresql:// store needs psycopg (pip install 'psycopg[binary]')"
            ) from None
        try:
            with psycopg.connect(self.url, connect_timeout=10) as conn, conn.cursor() as cur:
                if write:
                    cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
                yield cur
        except psycopg.ProgrammingError as exc:  # an URL libpq cannot parse
            raise InvalidInputError(
                f"--store {redacted(self.url)}: {scrubbed(str(exc), self.url)[:200]}"
            ) from None
        except psycopg.OperationalError as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise StoreUnavailableError(
                f"PostgreSQL at {redacted(self.url)}: {scrubbed(first, self.url)[:200]}"
            ) from None

    # -- settings ----------------------------------------------------------------------------
    def settings(self) -> dict[str, str]:
        with self._transaction() as cur:
            cur.execute("SELECT key, value FROM gmi_settings")
            return dict(cur.fetchall())

    def set_settings(self, values: dict[str, str], *, overwrite: bool = False) -> dict[str, str]:
        conflict = "DO UPDATE SET value = EXCLUDED.value" if overwrite else "DO NOTHING"
        with self._transaction(write=True) as cur:
            for key, value in values.items():
                cur.execute(
                    "INSERT INTO gmi_settings (key, value) VALUES (%s, %s) "
                    f"ON CONFLICT (key) {conflict}",
                    (key, str(value)),
                )
            cur.execute("INSERT INTO gmi_changes (name) VALUES ('')")  # replicas re-read them
            cur.execute("SELECT key, value FROM gmi_settings")
            return dict(cur.fetchall())

    # -- the catalogue ------------------------------------------------------------------------
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
        """Files first (atomic), the row last (one transaction), as Registry.add."""
        hashes = checked_submission(name, description, model_hashes)
        if not replace and self.exists(name):
            raise already_exists(name)
        write = ModelWrite(name, spec, description, replace, extra, thumbnails, hashes, kept)
        self.write_model(write, lambda: self._transaction(write=True), POSTGRES_ROWS)
        return self.get(name)

    def replace_all(self, writes: Sequence[ModelWrite], swap: Swap) -> None:
        """As Registry.replace_all: every row and the settings in one transaction."""
        self.write_models(writes, lambda: self._transaction(write=True), POSTGRES_ROWS, swap)

    def remove(self, name: str) -> ModelRecord:
        with self._transaction(write=True) as cur:
            cur.execute(f"SELECT {COLUMNS} FROM gmi_models WHERE name = %s", (name,))
            row = cur.fetchone()
            if row is None:
                raise NotFoundError(f"no model named {name!r}")
            cur.execute("DELETE FROM gmi_models WHERE name = %s", (name,))
            cur.execute("DELETE FROM gmi_model_hashes WHERE name = %s", (name,))
            cur.execute("INSERT INTO gmi_changes (name) VALUES (%s)", (name,))
        record = _record(row)
        self._delete_files(record.spec_file)
        return record

    def exists(self, name: str) -> bool:
        with self._transaction() as cur:
            cur.execute("SELECT 1 FROM gmi_models WHERE name = %s", (name,))
            return cur.fetchone() is not None

    def get(self, name: str) -> ModelRecord:
        with self._transaction() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM gmi_models WHERE name = %s", (name,))
            row = cur.fetchone()
        if row is None:
            raise NotFoundError(f"no model named {name!r}")
        return _record(row)

    def list(self) -> list[ModelRecord]:
        with self._transaction() as cur:
            cur.execute(f"SELECT {COLUMNS} FROM gmi_models ORDER BY name")
            return [_record(r) for r in cur.fetchall()]

    def list_names(self, limit: int | None = None) -> list[str]:
        with self._transaction() as cur:
            cur.execute("SELECT name FROM gmi_models ORDER BY name LIMIT %s", (limit,))
            return [r[0] for r in cur.fetchall()]

    def count(self) -> int:
        with self._transaction() as cur:
            cur.execute("SELECT COUNT(*) FROM gmi_models")
            return int(cur.fetchone()[0])

    def page(self, offset: int, limit: int) -> list[ModelRecord]:
        with self._transaction() as cur:
            cur.execute(
                f"SELECT {COLUMNS} FROM gmi_models ORDER BY name LIMIT %s OFFSET %s",
                (limit, offset),
            )
            return [_record(r) for r in cur.fetchall()]

    def descriptions(self, names: list[str]) -> dict[str, str]:
        if not names:
            return {}
        with self._transaction() as cur:
            cur.execute(
                "SELECT name, description FROM gmi_models WHERE name = ANY(%s)", (list(names),)
            )
            return dict(cur.fetchall())

    def model_hashes(self, name: str) -> list[str]:
        with self._transaction() as cur:
            cur.execute("SELECT hash FROM gmi_model_hashes WHERE name = %s ORDER BY hash", (name,))
            return [r[0] for r in cur.fetchall()]

    def models_with_hash(self, model_hash: str) -> list[str]:
        return models_with_identity(self, model_hash)  # type: ignore[arg-type]

    def models_with_keys(self, keys: list[str]) -> dict[str, list[str]]:
        wanted = sorted(set(keys))[:MAX_LOOKUP_KEYS]
        if not wanted:
            return {}
        with self._transaction() as cur:
            cur.execute(
                "SELECT h.hash, m.name FROM gmi_model_hashes h JOIN gmi_models m "
                "ON m.name = h.name WHERE h.hash = ANY(%s) ORDER BY m.name",
                (wanted,),
            )
            rows = cur.fetchall()
        out: dict[str, list[str]] = {}
        for key, name in rows:
            out.setdefault(key, []).append(name)
        return out

    # -- the packed index: this replica's mirror ----------------------------------------------
    def mirror(self) -> Registry:
        if self._mirror is None:
            self._mirror = Registry(mirror_dir(self.url, self.home))
        return self._mirror

    def refresh_mirror(self) -> Registry:
        """Copy what changed in PostgreSQL since the mirror's version into the mirror (one
        small query when nothing did). The mirror's rows point at the shared spec files. When
        the change log no longer holds the mirror's last change (restored from a backup: the
        version went back, or a new change took its number) the mirror is copied anew."""
        mirror = self.mirror()
        saved = mirror.settings()
        seen, seen_stamp = int(saved.get(SEEN_KEY, "-1")), saved.get(STAMP_KEY)
        with self._transaction() as cur:
            cur.execute(
                "SELECT COALESCE(MAX(version), 0), "
                "(SELECT stamp FROM gmi_changes WHERE version = %s) FROM gmi_changes",
                (seen,),
            )
            newest, stamp_at_seen = cur.fetchone()
        diverged = seen > 0 and (newest < seen or stamp_at_seen != seen_stamp)
        if int(newest) == seen and not diverged:
            return mirror
        full = seen < 0 or diverged
        with self._transaction() as cur:  # one snapshot: rows as of `newest` or later
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("SELECT version, stamp FROM gmi_changes ORDER BY version DESC LIMIT 1")
            newest, newest_stamp = cur.fetchone() or (0, "")
            if full:
                cur.execute("SELECT name FROM gmi_models")
            else:
                cur.execute(
                    "SELECT DISTINCT name FROM gmi_changes WHERE version > %s AND name <> ''",
                    (seen,),
                )
            names = [r[0] for r in cur.fetchall()]
            cur.execute(f"SELECT {COLUMNS} FROM gmi_models WHERE name = ANY(%s)", (names,))
            rows = cur.fetchall()
            cur.execute("SELECT key, value FROM gmi_settings")
            settings = cur.fetchall()
        with mirror.write_transaction() as db:
            found = dict(
                db.execute(
                    "SELECT key, value FROM settings WHERE key IN (?, ?)", (SEEN_KEY, STAMP_KEY)
                ).fetchall()
            )
            if found.get(STAMP_KEY) == newest_stamp or (
                not full and int(found.get(SEEN_KEY, -1)) > int(newest)
            ):
                return mirror  # another process of this machine got there first
            if full:
                db.execute("DELETE FROM models")
            db.executemany("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", settings)
            db.executemany("DELETE FROM models WHERE name = ?", [(n,) for n in names])
            db.executemany(
                f"INSERT INTO models ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",
                [(r[0], r[1], str(self.spec_dir / r[2]), *r[3:]) for r in rows],
            )
            db.executemany(
                "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                [(SEEN_KEY, int(newest)), (STAMP_KEY, newest_stamp)],
            )
        return mirror

    def index_token(self) -> str:
        return self.refresh_mirror().index_token()

    def open_index(self, settings: HubSettings) -> PackedIndex:
        return self.refresh_mirror().open_index(settings)

    def sync_index(self, settings: HubSettings, *, full: bool = False) -> None:
        self.refresh_mirror().sync_index(settings, full=full)


def open_store(url: str, home: str | Path, *, create: bool = True) -> PostgresStore:
    return PostgresStore(url, home, create=create)
