"""Numbered schema migrations: small functions applied in order, recorded in a table.

Add a migration by appending a function to MIGRATIONS; never edit one that has
shipped. Each runs inside the transaction that records it.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable


def m001_interactions_and_exchanges(db: sqlite3.Connection) -> None:
    db.execute(
        """
        CREATE TABLE interactions (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            upstream TEXT NOT NULL,
            front TEXT NOT NULL,
            mode TEXT NOT NULL,
            model TEXT,
            status TEXT NOT NULL,
            parent_id TEXT,
            root_id TEXT NOT NULL,
            depth INTEGER NOT NULL DEFAULT 0,
            input TEXT,
            output TEXT,
            request TEXT,
            usage TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            error TEXT,
            provider_id TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            deleted_at REAL
        )
        """
    )
    db.execute("CREATE INDEX interactions_parent ON interactions(parent_id)")
    db.execute("CREATE INDEX interactions_root ON interactions(root_id)")
    db.execute("CREATE INDEX interactions_updated ON interactions(updated_at)")
    db.execute("CREATE INDEX interactions_status ON interactions(status) WHERE status = 'in_progress'")
    db.execute(
        """
        CREATE TABLE exchanges (
            id INTEGER PRIMARY KEY,
            interaction_id TEXT,
            owner TEXT,
            upstream TEXT NOT NULL,
            front TEXT,
            method TEXT NOT NULL,
            path TEXT NOT NULL,
            status INTEGER,
            latency_ms REAL,
            model TEXT,
            input_tokens INTEGER,
            output_tokens INTEGER,
            stored INTEGER NOT NULL DEFAULT 1,
            request_headers TEXT,
            request_body BLOB,
            response_headers TEXT,
            response_body BLOB,
            upstream_digest TEXT,
            error TEXT,
            created_at REAL NOT NULL
        )
        """
    )
    db.execute("CREATE INDEX exchanges_interaction ON exchanges(interaction_id)")
    db.execute("CREATE INDEX exchanges_created ON exchanges(created_at)")


def m002_stream_events(db: sqlite3.Connection) -> None:
    """Every SSE event an app was sent, byte for byte, for resuming and replaying streams."""
    db.execute(
        """
        CREATE TABLE stream_events (
            interaction_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            event_id TEXT,
            at_ms REAL NOT NULL,
            frame BLOB NOT NULL,
            PRIMARY KEY (interaction_id, seq)
        ) WITHOUT ROWID
        """
    )


def m003_interaction_run_ids(db: sqlite3.Connection) -> None:
    """The run id a front API names beside the interaction id (Parallel task runs)."""
    db.execute("ALTER TABLE interactions ADD COLUMN run_id TEXT")
    db.execute("CREATE INDEX interactions_run ON interactions(run_id) WHERE run_id IS NOT NULL")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_interactions_and_exchanges,
    m002_stream_events,
    m003_interaction_run_ids,
]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply every migration not yet recorded; return the names applied."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
    applied = []
    for version, migration in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        # The connection is in autocommit mode (isolation_level=None), so the
        # transaction is explicit: DDL and its record land together or not at all.
        db.execute("BEGIN IMMEDIATE")
        try:
            migration(db)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (version, migration.__name__, time.time()),
            )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        applied.append(migration.__name__)
    return applied
