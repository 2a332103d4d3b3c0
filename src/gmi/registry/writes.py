"""The one write template of every store: a model's files first (atomic), its catalogue row
last, in one transaction (SpecFiles.write_model runs it). The stores differ only in SQL
dialect (RowDialect); the rules are written once, here:

- a name already taken is refused inside the transaction unless replacing;
- a replaced model keeps its creation time, and its description / checkpoint hashes when
  the new ones are None;
- the replaced model's files are deleted only after the commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gmi.errors import ConflictError, already_exists
from gmi.spec.specification import Specification


@dataclass(frozen=True)
class RowDialect:
    """One store's SQL for the catalogue row: placeholder, tables, the hash insert that
    ignores duplicates, and the change-log insert (None where triggers keep the log)."""

    mark: str
    models: str
    hashes: str
    insert_hash: str
    log_change: str | None = None
    settings: str = "settings"


SQLITE_ROWS = RowDialect(
    "?", "models", "model_hashes", "INSERT OR IGNORE INTO model_hashes (hash, name) VALUES (?, ?)"
)
POSTGRES_ROWS = RowDialect(
    "%s",
    "gmi_models",
    "gmi_model_hashes",
    "INSERT INTO gmi_model_hashes (hash, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
    "INSERT INTO gmi_changes (name) VALUES (%s)",
    "gmi_settings",
)
ROW_COLUMNS = (
    "name, description, spec_file, spec_sha256, encoder, n_images, n_points, created, "
    "updated, extra"
)


@dataclass(frozen=True)
class ModelWrite:
    """One model's write: its name and spec, what is stored with it, whether it replaces,
    and its checkpoint hashes as stored (None: keep the current ones)."""

    name: str
    spec: Specification
    description: str | None = None
    replace: bool = False
    extra: dict[str, Any] | None = None
    thumbnails: list[bytes] | None = None
    hashes: list[str] | None = None
    kept: list[tuple[str, bytes]] | None = None  # kept spec images (gmi.submit.kept)
    # a rebuilt spec (gmi reencode): the spec file whose thumbnails and kept images it keeps
    linked_from: str | None = None


@dataclass(frozen=True)
class NewFiles:
    """The files a write made before its row: the spec file's name and digest, and when."""

    spec_file: str
    sha256: str
    now: float


@dataclass(frozen=True)
class Swap:
    """A whole-registry rewrite (gmi reencode): every model's row replaced and the settings
    changed in the one transaction. `expected` is the catalogue it was built from (name ->
    spec file): when any row was added, removed or replaced since, nothing is written."""

    expected: dict[str, str]
    settings: dict[str, str]


def check_and_set(execute: Callable[[str, tuple], Any], rows: RowDialect, swap: Swap) -> None:
    """Inside the swap's transaction, before its rows: the catalogue is still the one it was
    built from (else ConflictError, nothing written), then the new settings."""
    found = dict(execute(f"SELECT name, spec_file FROM {rows.models}", ()).fetchall())
    if found != swap.expected:
        changed = sorted(set(found.items()) ^ set(swap.expected.items()))
        raise ConflictError(
            f"{len({name for name, _ in changed})} model(s) were submitted, replaced or "
            f"removed meanwhile (e.g. {changed[0][0]!r}); nothing was changed"
        )
    m = rows.mark
    for key, value in swap.settings.items():
        execute(f"DELETE FROM {rows.settings} WHERE key = {m}", (key,))
        execute(f"INSERT INTO {rows.settings} (key, value) VALUES ({m}, {m})", (key, value))
    if rows.log_change is not None:
        execute(rows.log_change, ("",))  # replicas re-read the settings


def upsert_row(
    execute: Callable[[str, tuple], Any], rows: RowDialect, write: ModelWrite, new: NewFiles
) -> str | None:
    """The catalogue row of `write`, inside the caller's transaction (`execute` runs one
    statement and returns a cursor). Returns the replaced model's spec file, if any."""
    m, name = rows.mark, write.name
    found = execute(
        f"SELECT spec_file, created, description FROM {rows.models} WHERE name = {m}", (name,)
    ).fetchone()
    if found is not None and not write.replace:
        raise already_exists(name)
    old_file, created, description = (found[0], found[1], found[2]) if found else (None, None, "")
    if write.description is not None:
        description = write.description
    execute(f"DELETE FROM {rows.models} WHERE name = {m}", (name,))
    if write.hashes is not None:
        execute(f"DELETE FROM {rows.hashes} WHERE name = {m}", (name,))
        for model_hash in write.hashes:
            execute(rows.insert_hash, (model_hash, name))
    spec = write.spec
    execute(
        f"INSERT INTO {rows.models} ({ROW_COLUMNS}) VALUES ({', '.join([m] * 10)})",
        (
            name,
            description,
            new.spec_file,
            new.sha256,
            spec.encoder,
            int(spec.pair_features.shape[0]),
            spec.n_points,
            created if created is not None else new.now,
            new.now,
            json.dumps(write.extra or {}),
        ),
    )
    if rows.log_change is not None:
        execute(rows.log_change, (name,))
    return old_file
