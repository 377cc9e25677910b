"""PostgreSQL's schema migrations: their own numbered list, applied under an advisory lock.

SQLite's list (migrations.py) grew by ten steps; PostgreSQL's starts at the schema
those steps reached, in PostgreSQL's own types, and grows on its own from here. Add
a migration by appending SQL to PG_MIGRATIONS; never edit one that has shipped.

Instances starting together on an empty database never race: each takes the same
`pg_advisory_lock` before it looks at `schema_migrations`, so one migrates and the
others wait, then find nothing to do. An instance refuses a database migrated past
what it knows (a newer recall ran there): it would write rows that version cannot read.

How the types map from SQLite's: TEXT stays text (turns, requests and headers are kept
as the JSON text recall wrote, byte for byte, not jsonb); REAL times are double
precision seconds since the epoch; BLOB bodies and frames are bytea; flags are boolean.
Foreign keys are not declared: a cassette cut by --since holds turns whose parent it
left out, and a tombstone's exchanges go before its node (as in SQLite, where they are
declared for readers but not enforced).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

# The key of the advisory lock that serialises migrations (any constant; "recall" in ASCII).
MIGRATION_LOCK = 0x726563616C6C

# The searchable text of a node is written by the store (search.searchable_text, as for
# SQLite's FTS5 index); PostgreSQL derives the tsvector from it. 'simple' does no stemming,
# like FTS5's default tokenizer, so a word matches as it was written in any language.
_M001_SCHEMA = """
CREATE TABLE interactions (
    id text PRIMARY KEY,
    owner text NOT NULL,
    upstream text NOT NULL,
    front text NOT NULL,
    mode text NOT NULL,
    model text,
    status text NOT NULL,
    parent_id text,
    root_id text NOT NULL,
    depth integer NOT NULL DEFAULT 0,
    input text,
    output text,
    request text,
    usage text,
    input_tokens bigint,
    output_tokens bigint,
    error text,
    provider_id text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL,
    deleted_at double precision,
    run_id text,
    run_owner text,
    lease_until double precision,
    cancel_requested boolean NOT NULL DEFAULT false,
    search_input text,
    search_output text,
    search_vector tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('simple', coalesce(search_input, '')), 'A')
        || setweight(to_tsvector('simple', coalesce(search_output, '')), 'B')
    ) STORED
);
CREATE INDEX interactions_parent ON interactions (parent_id);
CREATE INDEX interactions_root ON interactions (root_id);
CREATE INDEX interactions_updated ON interactions (updated_at);
CREATE INDEX interactions_run ON interactions (run_id) WHERE run_id IS NOT NULL;
CREATE INDEX interactions_running ON interactions (lease_until) WHERE status = 'in_progress';
CREATE INDEX interactions_search ON interactions USING gin (search_vector);

CREATE TABLE exchanges (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    interaction_id text,
    owner text,
    upstream text NOT NULL,
    front text,
    method text NOT NULL,
    path text NOT NULL,
    status integer,
    latency_ms double precision,
    model text,
    input_tokens bigint,
    output_tokens bigint,
    stored boolean NOT NULL DEFAULT true,
    request_headers text,
    request_body bytea,
    response_headers text,
    response_body bytea,
    upstream_digest text,
    error text,
    created_at double precision NOT NULL,
    cache_key text,
    cache text
);
CREATE INDEX exchanges_interaction ON exchanges (interaction_id);
CREATE INDEX exchanges_created ON exchanges (created_at);
CREATE INDEX exchanges_cache_key ON exchanges (cache_key) WHERE cache_key IS NOT NULL;

CREATE TABLE stream_events (
    interaction_id text NOT NULL,
    seq integer NOT NULL,
    event_id text,
    at_ms double precision NOT NULL,
    frame bytea NOT NULL,
    PRIMARY KEY (interaction_id, seq)
);

CREATE TABLE openai_conversations (
    id text PRIMARY KEY,
    owner text NOT NULL,
    upstream text NOT NULL,
    metadata text,
    created_at double precision NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE openai_conversation_items (
    conversation_id text NOT NULL,
    seq integer NOT NULL,
    item_id text NOT NULL,
    item text NOT NULL,
    created_at double precision NOT NULL,
    PRIMARY KEY (conversation_id, seq)
);
CREATE INDEX openai_conversation_items_id ON openai_conversation_items (conversation_id, item_id);

-- Replay across instances: the n-th identical request gets the n-th recording. Each
-- replay session (a start of `recall serve --mode replay|auto` on this database, named by
-- the instances that share it) counts the requests it has served per key here.
CREATE TABLE replay_positions (
    session text NOT NULL,
    cache_key text NOT NULL,
    served bigint NOT NULL,
    PRIMARY KEY (session, cache_key)
);
"""

# Substring search (`recall search` on part of a word) through trigrams; pg_trgm is a
# trusted extension, so the database's owner may create it without being a superuser.
_M002_TRIGRAMS = """
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX interactions_search_input_trgm ON interactions USING gin (search_input gin_trgm_ops);
CREATE INDEX interactions_search_output_trgm ON interactions USING gin (search_output gin_trgm_ops);
"""

# Replay finds a key's recordings through an index of recordings only: every replay hit of
# auto mode leaves a metadata-only row under its key, and through the key's index alone the
# n-th hit of a key read the n-1 hit rows before it (SQLite's m011; the condition is
# PostgresStore.recordings' own, so the planner can prove the index covers the query).
_M003_RECORDINGS_INDEX = """
CREATE INDEX exchanges_recordings ON exchanges (cache_key, id) WHERE cache_key IS NOT NULL
    AND stored AND status IS NOT NULL AND (cache IS NULL OR cache != 'hit');
"""

PG_MIGRATIONS: list[tuple[str, str]] = [
    ("m001_schema", _M001_SCHEMA),
    ("m002_trigram_search", _M002_TRIGRAMS),
    ("m003_recordings_index", _M003_RECORDINGS_INDEX),
]


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer recall than this one."""


async def migrate(db: asyncpg.Connection) -> list[str]:
    """Apply every migration not yet recorded, under the migration lock; return the names
    applied (none when another instance got there first). Raises SchemaTooNew when the
    database records a version past the last one here."""
    await db.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, applied_at double precision NOT NULL)"
        )
        done = {row[0] for row in await db.fetch("SELECT version FROM schema_migrations")}
        newest = max(done, default=0)
        if newest > len(PG_MIGRATIONS):
            raise SchemaTooNew(
                f"the database is at schema version {newest}, newer than this recall knows"
                f" ({len(PG_MIGRATIONS)}): upgrade recall on this machine (pip install -U recall-proxy)"
            )
        applied: list[str] = []
        for version, (name, sql) in enumerate(PG_MIGRATIONS, start=1):
            if version in done:
                continue
            async with db.transaction():
                await db.execute(sql)
                await db.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
                                 version, name, time.time())
            applied.append(name)
        return applied
    finally:
        await db.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK)
