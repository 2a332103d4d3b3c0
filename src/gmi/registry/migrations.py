"""The SQLite registry's schema, as numbered migrations (applied in order, never edited).

A registry records how many it has applied (`PRAGMA user_version`); opening one applies the
rest in order (gmi.registry.store). Kept apart, as llm keeps its migrations: the
schema's history is one file to read.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

MIGRATIONS = [
    # 1: settings + models
    """
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE models (
        name TEXT PRIMARY KEY,
        description TEXT NOT NULL DEFAULT '',
        spec_file TEXT NOT NULL UNIQUE,
        spec_sha256 TEXT NOT NULL,
        encoder TEXT NOT NULL,
        n_images INTEGER NOT NULL,
        n_points INTEGER NOT NULL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        extra TEXT NOT NULL DEFAULT '{}'
    );
    """,
    # 2: checkpoint hashes (A1111 "Model hash"), looked up by the hash an image embeds
    """
    CREATE TABLE model_hashes (
        hash TEXT NOT NULL,
        name TEXT NOT NULL,
        PRIMARY KEY (hash, name)
    );
    CREATE INDEX model_hashes_by_name ON model_hashes (name);
    """,
    # 3: the packed index (gmi.registry.packed): slots, shared prompt/text tables, its state,
    # and triggers that record every change of `models`, whoever makes it
    """
    CREATE TABLE packed_state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    INSERT INTO packed_state (key, value) VALUES ('models_version', '1');
    CREATE TABLE packed_slots (
        slot INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        spec_sha256 TEXT NOT NULL,
        alive INTEGER NOT NULL,
        problem TEXT,
        point_start INTEGER NOT NULL,
        point_count INTEGER NOT NULL,
        pair_start INTEGER NOT NULL,
        pair_count INTEGER NOT NULL
    );
    CREATE INDEX packed_slots_live ON packed_slots (alive, name);
    CREATE TABLE packed_prompts (id INTEGER PRIMARY KEY, digest BLOB NOT NULL UNIQUE);
    CREATE TABLE packed_texts (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE);
    CREATE TRIGGER models_inserted AFTER INSERT ON models BEGIN
        UPDATE packed_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'models_version';
    END;
    CREATE TRIGGER models_updated AFTER UPDATE ON models BEGIN
        UPDATE packed_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'models_version';
    END;
    CREATE TRIGGER models_deleted AFTER DELETE ON models BEGIN
        UPDATE packed_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'models_version';
    END;
    """,
    # 4: the triggers also log WHICH models changed, so a sync reads only those rows
    """
    CREATE TABLE packed_changes (name TEXT NOT NULL);
    DROP TRIGGER models_inserted;
    DROP TRIGGER models_updated;
    DROP TRIGGER models_deleted;
    CREATE TRIGGER models_inserted AFTER INSERT ON models BEGIN
        UPDATE packed_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'models_version';
        INSERT INTO packed_changes (name) VALUES (NEW.name);
    END;
    CREATE TRIGGER models_updated AFTER UPDATE ON models BEGIN
        UPDATE packed_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'models_version';
        INSERT INTO packed_changes (name) VALUES (OLD.name);
        INSERT INTO packed_changes (name) VALUES (NEW.name);
    END;
    CREATE TRIGGER models_deleted AFTER DELETE ON models BEGIN
        UPDATE packed_state SET value = CAST(value AS INTEGER) + 1 WHERE key = 'models_version';
        INSERT INTO packed_changes (name) VALUES (OLD.name);
    END;
    """,
    # 5: registries from before the hub-learned space keep ranking as encoded (a new
    # registry has no settings yet when it migrates, and stores the default space later)
    """
    INSERT OR IGNORE INTO settings (key, value)
        SELECT 'space', 'identity' WHERE EXISTS (SELECT 1 FROM settings WHERE key = 'encoder');
    """,
    # 6: registries from before compact spaces keep their full-width float32 space (a refit
    # stays as it was fitted); a new registry stores the default dims with its settings
    """
    INSERT OR IGNORE INTO settings (key, value)
        SELECT 'space_dims', '0' WHERE EXISTS (SELECT 1 FROM settings WHERE key = 'encoder');
    """,
]


def statements(script: str) -> Iterator[str]:
    """The complete SQL statements of a script (trigger bodies hold ';' of their own)."""
    buffer = ""
    for piece in script.split(";"):
        buffer += piece + ";"
        if not buffer.strip(" \n;"):
            buffer = ""
        elif sqlite3.complete_statement(buffer):
            yield buffer
            buffer = ""
