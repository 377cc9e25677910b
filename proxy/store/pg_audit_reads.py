"""The audit reads on PostgreSQL: threads, nodes, chains, exchanges, events, exports.

The same questions as audit_db.py asks SQLite, in PostgreSQL's dialect, each an async
function of one asyncpg connection (pg_audit.py runs them on its own thread). Rows come
back in the column order of rows.py, so the records are built by the same mappings.

Where SQLite reads its `conversations` view, the grouping is written out here
(PostgreSQL's schema has no views). Orders that SQLite leaves to chance are pinned
(ties broken by id), and text sorts byte-wise (COLLATE "C"), as SQLite's does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .records import Exchange, IdNotFound, Node, Served, StreamEvent, ThreadKey, ThreadSummary
from .rows import EXCHANGE_COLUMNS, INTERACTION_COLUMNS, exchange_from_row, interaction_from_row, qualified

if TYPE_CHECKING:
    import asyncpg

NODE_COLUMNS = qualified(INTERACTION_COLUMNS, "i") + ", i.depth, i.deleted_at"

# A thread's title: the text parts of the first input turn of its first live node, 200 characters.
THREAD_TITLE = """(
    SELECT left((SELECT string_agg(p.value ->> 'text', '' ORDER BY p.n)
                 FROM json_array_elements(first.input::json -> 0 -> 'parts') WITH ORDINALITY AS p(value, n)
                 WHERE p.value ->> 'kind' = 'text'), 200)
    FROM interactions AS first
    WHERE first.root_id = {root} AND first.deleted_at IS NULL
    ORDER BY first.depth, first.created_at, first.id LIMIT 1
)"""

# The nodes an export takes: a time window ($1, $2) and one thread ($3), each optional.
_EXPORT_WINDOW = ("($1::float8 IS NULL OR created_at >= $1) AND ($2::float8 IS NULL OR created_at < $2)"
                  " AND ($3::text IS NULL OR root_id = $3)")


def node_of(row: Sequence[Any]) -> Node:
    values = tuple(row)
    return Node(interaction_from_row(values[:-2]), depth=values[-2], deleted_at=values[-1])


def _split(listed: str | None) -> list[str]:
    return listed.split(",") if listed else []


async def complete_id(db: asyncpg.Connection, given: str, *, shown: int = 10) -> str:
    """The interaction id that is `given`, or the only one that starts with it (audit_db.complete_id)."""
    if not given:
        raise IdNotFound(given, [])
    if await db.fetchval("SELECT 1 FROM interactions WHERE id = $1", given):
        return given
    # starts_with, not a range on the key: a range follows the database's collation, not bytes.
    found = [row[0] for row in await db.fetch(
        "SELECT id FROM interactions WHERE starts_with(id, $1) ORDER BY id COLLATE \"C\" LIMIT $2", given, shown + 1)]
    if len(found) == 1:
        only: str = found[0]
        return only
    raise IdNotFound(given, found)


async def last_id(db: asyncpg.Connection) -> str | None:
    found: str | None = await db.fetchval("SELECT id FROM interactions WHERE deleted_at IS NULL"
                                          " ORDER BY created_at DESC, depth DESC, id DESC LIMIT 1")
    return found


async def purge_preview(db: asyncpg.Connection, cutoff: float) -> list[tuple[str, int, bool, str | None]]:
    rows = await db.fetch(
        f"""
        SELECT i.root_id, count(*) FILTER (WHERE i.created_at < $1 AND i.deleted_at IS NULL),
               max(i.created_at) < $1, {THREAD_TITLE.format(root="i.root_id")}
        FROM interactions AS i GROUP BY i.root_id
        HAVING count(*) FILTER (WHERE i.created_at < $1 AND i.deleted_at IS NULL) > 0
        ORDER BY max(i.created_at), i.root_id
        """, cutoff)
    return [(row[0], row[1], bool(row[2]), row[3]) for row in rows]


async def threads(db: asyncpg.Connection, *, upstream: str | None, model: str | None, since: float | None,
                  until: float | None, limit: int, after: ThreadKey | None,
                  status: str | None) -> list[ThreadSummary]:
    """Newest first by last activity, keyset-paged as audit_db.AuditDB.threads is."""
    keys = await db.fetch(
        """
        SELECT DISTINCT i.root_id COLLATE "C" AS root_id, i.updated_at FROM interactions AS i
        WHERE i.deleted_at IS NULL
          AND i.updated_at <= coalesce($1::float8, 1e308)
          AND ($1::float8 IS NULL OR i.updated_at < $1 OR i.root_id COLLATE "C" > $2::text)
          AND i.updated_at >= coalesce($3::float8, -1e308) AND i.updated_at < coalesce($4::float8, 1e308)
          AND i.updated_at = (SELECT max(j.updated_at) FROM interactions AS j
                              WHERE j.root_id = i.root_id AND j.deleted_at IS NULL)
          AND ($5::text IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = i.root_id
               AND j.deleted_at IS NULL AND j.upstream = $5))
          AND ($6::text IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = i.root_id
               AND j.deleted_at IS NULL AND j.model = $6))
          AND ($7::text IS NULL OR EXISTS (SELECT 1 FROM interactions AS j WHERE j.root_id = i.root_id
               AND j.deleted_at IS NULL AND j.status = $7))
        ORDER BY i.updated_at DESC, root_id
        LIMIT $8
        """,
        after[0] if after else None, after[1] if after else None, since, until, upstream, model, status, limit,
    )
    if not keys:
        return []
    ids = [row[0] for row in keys]
    rows = await db.fetch(
        f"""
        SELECT i.root_id, count(*), string_agg(DISTINCT i.upstream, ','), string_agg(DISTINCT i.model, ','),
               sum(i.input_tokens)::bigint, sum(i.output_tokens)::bigint, min(i.created_at), max(i.updated_at),
               {THREAD_TITLE.format(root="i.root_id")},
               count(*) FILTER (WHERE i.status = 'failed'), count(*) FILTER (WHERE i.status = 'in_progress')
        FROM interactions AS i
        WHERE i.root_id = ANY($1::text[]) AND i.deleted_at IS NULL
        GROUP BY i.root_id
        """,
        ids,
    )
    found = {r[0]: ThreadSummary(r[0], r[1], _split(r[2]), _split(r[3]), r[4], r[5], r[6], r[7], r[8],
                                 failed=r[9], in_progress=r[10]) for r in rows}
    return [found[thread_id] for thread_id in ids if thread_id in found]


async def node(db: asyncpg.Connection, interaction_id: str) -> Node | None:
    row = await db.fetchrow(f"SELECT {NODE_COLUMNS} FROM interactions AS i WHERE i.id = $1", interaction_id)
    return node_of(row) if row else None


async def chain(db: asyncpg.Connection, interaction_id: str) -> list[Node]:
    rows = await db.fetch(
        f"""
        WITH RECURSIVE chain(id, hop) AS (
            SELECT id, 0 FROM interactions WHERE id = $1
            UNION ALL
            SELECT i.parent_id, chain.hop + 1
            FROM interactions AS i JOIN chain ON i.id = chain.id
            WHERE i.parent_id IS NOT NULL
        )
        SELECT {NODE_COLUMNS} FROM chain JOIN interactions AS i ON i.id = chain.id
        ORDER BY chain.hop DESC
        """,
        interaction_id,
    )
    return [node_of(r) for r in rows]


async def thread(db: asyncpg.Connection, thread_id: str) -> list[Node]:
    rows = await db.fetch(f"SELECT {NODE_COLUMNS} FROM interactions AS i WHERE i.root_id = $1"
                          " ORDER BY i.depth, i.created_at, i.id", thread_id)
    return [node_of(r) for r in rows]


async def exchanges(db: asyncpg.Connection, interaction_id: str) -> list[Exchange]:
    rows = await db.fetch(f"SELECT {EXCHANGE_COLUMNS} FROM exchanges WHERE interaction_id = $1 ORDER BY id",
                          interaction_id)
    return [exchange_from_row(tuple(r)) for r in rows]


async def served(db: asyncpg.Connection, thread_id: str) -> dict[str, Served]:
    rows = await db.fetch(
        """
        SELECT i.id, (SELECT count(*) FROM exchanges WHERE interaction_id = i.id),
               e.status, e.latency_ms, e.cache,
               (SELECT count(*) FROM stream_events WHERE interaction_id = i.id)
        FROM interactions AS i
        LEFT JOIN exchanges AS e ON e.id = (SELECT min(id) FROM exchanges WHERE interaction_id = i.id)
        WHERE i.root_id = $1
        """,
        thread_id,
    )
    return {r[0]: Served(*tuple(r)[1:]) for r in rows}


async def stream_events(db: asyncpg.Connection, interaction_id: str, after_seq: int = 0,
                        limit: int | None = None) -> list[StreamEvent]:
    rows = await db.fetch("SELECT seq, event_id, at_ms, frame FROM stream_events WHERE interaction_id = $1"
                          " AND seq > $2 ORDER BY seq LIMIT $3", interaction_id, after_seq, limit)
    return [StreamEvent(*tuple(r)) for r in rows]


async def count(db: asyncpg.Connection, since: float | None, until: float | None, thread_id: str | None) -> int:
    counted: int = await db.fetchval(f"SELECT count(*) FROM interactions WHERE {_EXPORT_WINDOW}",
                                     since, until, thread_id)
    return counted


async def export_roots(db: asyncpg.Connection, since: float | None, until: float | None,
                       thread_id: str | None) -> list[str]:
    """The threads an export takes, oldest first."""
    rows = await db.fetch(f"SELECT root_id FROM interactions WHERE {_EXPORT_WINDOW}"
                          " GROUP BY root_id ORDER BY min(created_at), root_id COLLATE \"C\"", since, until, thread_id)
    return [row[0] for row in rows]


async def export_thread(db: asyncpg.Connection, since: float | None, until: float | None,
                        root_id: str) -> list[Node]:
    """One thread's nodes in the window, parents before children."""
    rows = await db.fetch(f"SELECT {NODE_COLUMNS} FROM interactions AS i WHERE {_EXPORT_WINDOW}"
                          " ORDER BY depth, created_at, id", since, until, root_id)
    return [node_of(r) for r in rows]

