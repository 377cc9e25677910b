"""Numbered schema migrations: small functions applied in order, recorded in a table.

Add a migration by appending a function to MIGRATIONS; never edit one that has
shipped. Each runs inside the transaction that records it.
"""

from __future__ import annotations

import re
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


def m003_cache_keys(db: sqlite3.Connection) -> None:
    """Each exchange's replay key and how it was answered, for the offline cache."""
    db.execute("ALTER TABLE exchanges ADD COLUMN cache_key TEXT")
    db.execute("ALTER TABLE exchanges ADD COLUMN cache TEXT")
    db.execute("CREATE INDEX exchanges_cache_key ON exchanges(cache_key) WHERE cache_key IS NOT NULL")


def _turns_text(column: str) -> str:
    """SQL for the searchable text of a turns JSON column: every part's text,
    function name, arguments and result, and the JSON of parts recall does not
    model. Media data is left out. Invalid JSON yields no text rather than an error."""
    return f"""(
        SELECT group_concat(trim(
            coalesce(json_extract(p.value, '$.text'), '') || ' ' ||
            coalesce(json_extract(p.value, '$.name'), '') || ' ' ||
            coalesce(json_extract(p.value, '$.arguments'), '') || ' ' ||
            coalesce(json_extract(p.value, '$.result'), '') || ' ' ||
            CASE WHEN json_extract(p.value, '$.kind') = 'text' THEN ''
                 ELSE coalesce(json_extract(p.value, '$.native'), '') END
        ), char(10))
        FROM json_each(CASE WHEN json_valid({column}) THEN {column} END) AS t,
             json_each(t.value, '$.parts') AS p
    )"""


def m004_search_index(db: sqlite3.Connection) -> None:
    """Full-text search over every stored input and output, kept in step by triggers.

    search_keys gives each searchable interaction a stable integer (the FTS
    rowid): interactions has no INTEGER PRIMARY KEY, so its own rowids may
    change on VACUUM. A BEFORE INSERT trigger clears the old entry because
    INSERT OR REPLACE fires no delete trigger.
    """
    db.execute("CREATE TABLE search_keys (id INTEGER PRIMARY KEY, interaction_id TEXT NOT NULL UNIQUE)")
    db.execute("CREATE VIRTUAL TABLE search_index USING fts5(input, output)")
    forget = """
        DELETE FROM search_index WHERE rowid IN (SELECT id FROM search_keys WHERE interaction_id = {ref}.id);
        DELETE FROM search_keys WHERE interaction_id = {ref}.id;
    """
    index_new = f"""
        INSERT INTO search_keys (interaction_id)
            SELECT NEW.id WHERE NEW.input IS NOT NULL OR NEW.output IS NOT NULL;
        INSERT INTO search_index (rowid, input, output)
            SELECT id, {_turns_text("NEW.input")}, {_turns_text("NEW.output")}
            FROM search_keys WHERE interaction_id = NEW.id;
    """
    db.execute(f"CREATE TRIGGER search_before_insert BEFORE INSERT ON interactions BEGIN {forget.format(ref='NEW')} END")
    db.execute(f"CREATE TRIGGER search_after_insert AFTER INSERT ON interactions BEGIN {index_new} END")
    db.execute(
        "CREATE TRIGGER search_after_update AFTER UPDATE OF input, output ON interactions"
        f" BEGIN {forget.format(ref='OLD')} {index_new} END"
    )
    db.execute(f"CREATE TRIGGER search_after_delete AFTER DELETE ON interactions BEGIN {forget.format(ref='OLD')} END")
    db.execute(
        "INSERT INTO search_keys (interaction_id) SELECT id FROM interactions"
        " WHERE input IS NOT NULL OR output IS NOT NULL ORDER BY created_at"
    )
    db.execute(
        f"INSERT INTO search_index (rowid, input, output)"
        f" SELECT k.id, {_turns_text('i.input')}, {_turns_text('i.output')}"
        " FROM search_keys AS k JOIN interactions AS i ON i.id = k.interaction_id"
    )


def m005_conversation_views(db: sqlite3.Connection) -> None:
    """Views for people reading the file in sqlite3 or Datasette (docs/SCHEMA.md).

    Both leave deleted nodes (tombstones) out.
    """
    db.execute(
        """
        CREATE VIEW turns AS
        SELECT i.root_id AS thread_id, i.id AS interaction_id, i.parent_id, i.depth,
               side.name AS side, t.key AS position,
               json_extract(t.value, '$.role') AS role,
               (SELECT group_concat(json_extract(p.value, '$.text'), '')
                  FROM json_each(t.value, '$.parts') AS p
                 WHERE json_extract(p.value, '$.kind') = 'text') AS text,
               (SELECT group_concat(DISTINCT json_extract(p.value, '$.kind'))
                  FROM json_each(t.value, '$.parts') AS p) AS kinds,
               json_extract(t.value, '$.parts') AS parts,
               i.upstream, i.model, i.status,
               datetime(i.created_at, 'unixepoch') AS created
        FROM interactions AS i
        JOIN (SELECT 'input' AS name UNION ALL SELECT 'output') AS side
        JOIN json_each(CASE side.name WHEN 'input' THEN i.input ELSE i.output END) AS t
        WHERE i.deleted_at IS NULL
        """
    )
    db.execute(
        """
        CREATE VIEW conversations AS
        SELECT i.root_id AS thread_id,
               count(*) AS interactions,
               group_concat(DISTINCT i.upstream) AS upstreams,
               group_concat(DISTINCT i.model) AS models,
               sum(i.input_tokens) AS input_tokens,
               sum(i.output_tokens) AS output_tokens,
               datetime(min(i.created_at), 'unixepoch') AS started,
               datetime(max(i.updated_at), 'unixepoch') AS last_activity,
               min(i.created_at) AS started_at,
               max(i.updated_at) AS last_activity_at,
               (SELECT substr((SELECT group_concat(json_extract(p.value, '$.text'), '')
                                 FROM json_each(first.input, '$[0].parts') AS p
                                WHERE json_extract(p.value, '$.kind') = 'text'), 1, 200)
                  FROM interactions AS first
                 WHERE first.root_id = i.root_id AND first.deleted_at IS NULL
                 ORDER BY first.depth, first.created_at LIMIT 1) AS title
        FROM interactions AS i
        WHERE i.deleted_at IS NULL
        GROUP BY i.root_id
        """
    )


def m006_openai_conversations(db: sqlite3.Connection) -> None:
    """OpenAI Conversations that recall keeps: the object, and its items in order.

    Named for the API: `conversations` is the view of threads (m005)."""
    db.execute(
        """
        CREATE TABLE openai_conversations (
            id TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            upstream TEXT NOT NULL,
            metadata TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        )
        """
    )
    db.execute(
        """
        CREATE TABLE openai_conversation_items (
            conversation_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            item_id TEXT NOT NULL,
            item TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (conversation_id, seq)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX openai_conversation_items_id ON openai_conversation_items(conversation_id, item_id)")


def m007_interaction_run_ids(db: sqlite3.Connection) -> None:
    """The run id a front API names beside the interaction id (Parallel task runs)."""
    db.execute("ALTER TABLE interactions ADD COLUMN run_id TEXT")
    db.execute("CREATE INDEX interactions_run ON interactions(run_id) WHERE run_id IS NOT NULL")


def m008_search_indexed_by_the_writer(db: sqlite3.Connection) -> None:
    """New and replaced nodes are indexed by the writer (store/search.py), in the same
    transaction, from the turns it holds; the insert triggers parsed the JSON again."""
    db.execute("DROP TRIGGER search_before_insert")
    db.execute("DROP TRIGGER search_after_insert")


def m009_run_leases(db: sqlite3.Connection) -> None:
    """An in-progress node names the process running its turn and how long that process
    vouches for it (a heartbeat renews it): another recall on the same file fails only the
    runs whose owner is gone."""
    db.execute("ALTER TABLE interactions ADD COLUMN run_owner TEXT")
    db.execute("ALTER TABLE interactions ADD COLUMN lease_until REAL")
    db.execute("CREATE INDEX interactions_running ON interactions(lease_until) WHERE status = 'in_progress'")


# Column -> what it points at, declared by m010 for tools that read the file (Datasette, sqlite-utils).
_FOREIGN_KEYS = {
    "interactions": {"parent_id": "interactions(id)", "root_id": "interactions(id)"},
    "exchanges": {"interaction_id": "interactions(id)"},
    "stream_events": {"interaction_id": "interactions(id)"},
    "search_keys": {"interaction_id": "interactions(id)"},
    "openai_conversation_items": {"conversation_id": "openai_conversations(id)"},
}


def m010_declared_foreign_keys(db: sqlite3.Connection) -> None:
    """Declare the links between the tables, so Datasette shows an exchange's or a turn's
    interaction and parent as links, and lists what points at an interaction.

    SQLite cannot add a constraint to a table: each one is rebuilt by its documented
    recipe (https://www.sqlite.org/lang_altertable.html#otheralter): create the new
    table, copy the rows, drop the old, rename, then make its indexes and triggers
    again. Views and triggers are dropped first and made again last, because a
    rename checks every view and trigger in the schema (the search triggers on
    interactions read search_keys, which is rebuilt too). The keys are declared, not
    enforced (proxy/store/sqlite.py keeps PRAGMA foreign_keys off): a cassette cut by
    --since holds turns whose parent it left out, and a tombstone's exchanges go
    before the node does.
    """
    views = db.execute("SELECT type, name, sql FROM sqlite_master WHERE type IN ('view', 'trigger')"
                       " ORDER BY type = 'trigger'").fetchall()
    for kind, name, _ in views:
        db.execute(f'DROP {kind.upper()} IF EXISTS "{name}"')
    for table, links in _FOREIGN_KEYS.items():
        (create,) = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()
        extras = db.execute("SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type = 'index'"
                            " AND sql IS NOT NULL", (table,)).fetchall()
        new_sql = re.sub(rf"^(\s*CREATE TABLE\s+){table}\b", rf"\g<1>{table}_rebuilt", create, count=1)
        for column, target in links.items():
            # The column's definition runs to the next comma or closing parenthesis at depth 0.
            new_sql, found = re.subn(rf"(\b{column}\s+TEXT(?:\s+NOT NULL)?(?:\s+UNIQUE)?)(?=\s*[,)])",
                                     rf"\1 REFERENCES {target}", new_sql, count=1)
            if found != 1:
                raise RuntimeError(f"m010: cannot find the column {table}.{column} in {create!r}")
        columns = ", ".join(f'"{row[1]}"' for row in db.execute(f'PRAGMA table_info("{table}")'))
        db.execute(new_sql)
        db.execute(f'INSERT INTO "{table}_rebuilt" ({columns}) SELECT {columns} FROM "{table}"')
        db.execute(f'DROP TABLE "{table}"')
        db.execute(f'ALTER TABLE "{table}_rebuilt" RENAME TO "{table}"')
        for (sql,) in extras:
            db.execute(sql)
    for _, name, sql in views:
        if name == "turns":
            # The turn's key in the full-text index, so Datasette can search the view people
            # read (fts_table search_index, fts_pk search_key: docs/datasette.json).
            sql = sql.replace("i.upstream, i.model, i.status,", "i.upstream, i.model, i.status,\n"
                              "               (SELECT k.id FROM search_keys AS k WHERE k.interaction_id = i.id)"
                              " AS search_key,", 1)
        db.execute(sql)


def m011_recordings_index(db: sqlite3.Connection) -> None:
    """Replay finds a key's recordings through an index of recordings only. Every replay hit
    leaves a metadata-only row under its key (for `recall stats`), so through the key's index
    alone the n-th hit of a key read the n-1 hit rows before it, and a replayed suite's hits
    grew dearer with every run; the condition is Store.recordings' own (SQLite uses the index
    only for a query that repeats it)."""
    db.execute("CREATE INDEX exchanges_recordings ON exchanges(cache_key) WHERE cache_key IS NOT NULL"
               " AND stored = 1 AND status IS NOT NULL AND (cache IS NULL OR cache != 'hit')")


def m012_search_forgets_erasures_only(db: sqlite3.Connection) -> None:
    """The update trigger re-indexed a node by parsing its stored JSON again whenever its input
    or output changed; the writer now ends a turn with an UPDATE in place and indexes it itself
    (store/search.py), so the trigger only forgets what an erasure empties."""
    db.execute("DROP TRIGGER search_after_update")
    db.execute(
        "CREATE TRIGGER search_after_update AFTER UPDATE OF input, output ON interactions"
        " WHEN NEW.input IS NULL AND NEW.output IS NULL BEGIN"
        " DELETE FROM search_index WHERE rowid IN (SELECT id FROM search_keys WHERE interaction_id = OLD.id);"
        " DELETE FROM search_keys WHERE interaction_id = OLD.id;"
        " END"
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    m001_interactions_and_exchanges,
    m002_stream_events,
    m003_cache_keys,
    m004_search_index,
    m005_conversation_views,
    m006_openai_conversations,
    m007_interaction_run_ids,
    m008_search_indexed_by_the_writer,
    m009_run_leases,
    m010_declared_foreign_keys,
    m011_recordings_index,
    m012_search_forgets_erasures_only,
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
