"""Recordings in and out of PostgreSQL, row by row: recordings.py's rows, same shapes.

A row is what a cassette holds (recordings.py's docstring): JSON fields as their text,
bodies as bytes, and `stored` as SQLite's 1 or 0, so that a cassette exported from either
backend is the same file. Loading replaces by request key exactly as insert_recordings does,
and writes each node's searchable text (search.searchable_text) as the server's store does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .recordings import (
    EVENT,
    EVENT_FIELDS,
    EXCHANGE,
    EXCHANGE_FIELDS,
    INTERACTION,
    INTERACTION_FIELDS,
    Row,
    stored_turns,
)
from .search import searchable_text

if TYPE_CHECKING:
    import asyncpg

# Rows fetched per trip while a cassette is written.
EXPORT_BATCH = 500


def _flag(value: Any) -> bool | None:
    """A cassette's `stored` (1, 0, true or false) as PostgreSQL's boolean."""
    return None if value is None else bool(value)


def _exchange_row(record: Any) -> Row:
    row = dict(zip(EXCHANGE_FIELDS, tuple(record), strict=True))
    row["stored"] = int(row["stored"])
    return row


async def thread_root(db: asyncpg.Connection, interaction_id: str) -> str | None:
    root: str | None = await db.fetchval("SELECT root_id FROM interactions WHERE id = $1", interaction_id)
    return root


async def select_recordings(db: asyncpg.Connection, *, root: str | None, since: float | None, upstream: str | None,
                            skip_owner: str | None) -> AsyncIterator[tuple[str, Row]]:
    """The live interactions selected, then the exchanges recorded for them (replay hits left
    out), then their stream events (recordings.select_recordings' order), EXPORT_BATCH rows a trip."""
    ids: list[str] = [row[0] for row in await db.fetch(
        "SELECT id FROM interactions WHERE deleted_at IS NULL AND created_at >= $1"
        " AND ($2::text IS NULL OR owner != $2) AND ($3::text IS NULL OR root_id = $3)"
        " AND ($4::text IS NULL OR upstream = $4) ORDER BY created_at, depth, id",
        since or 0.0, skip_owner, root, upstream)]
    for start in range(0, len(ids), EXPORT_BATCH):
        chunk = ids[start:start + EXPORT_BATCH]
        rows = {row[0]: row for row in await db.fetch(
            f"SELECT {', '.join(INTERACTION_FIELDS)} FROM interactions WHERE id = ANY($1::text[])", chunk)}
        for interaction_id in chunk:
            if interaction_id in rows:
                yield INTERACTION, dict(zip(INTERACTION_FIELDS, tuple(rows[interaction_id]), strict=True))
    after = 0
    while True:
        batch = await db.fetch(
            f"SELECT id, {', '.join(EXCHANGE_FIELDS)} FROM exchanges"
            " WHERE id > $1 AND stored AND created_at >= $2 AND ($3::text IS NULL OR owner != $3)"
            " AND ($4::text[] IS NULL OR interaction_id = ANY($4::text[])) AND ($5::text IS NULL OR upstream = $5)"
            " AND (cache IS NULL OR cache != 'hit') ORDER BY id LIMIT $6",
            after, since or 0.0, skip_owner, ids if root else None, upstream, EXPORT_BATCH)
        if not batch:
            break
        for row in batch:
            yield EXCHANGE, _exchange_row(tuple(row)[1:])
        after = batch[-1][0]
    in_order = sorted(ids)  # by interaction id, then seq, as SQLite orders them (byte-wise)
    for start in range(0, len(in_order), EXPORT_BATCH):
        for row in await db.fetch(f"SELECT {', '.join(EVENT_FIELDS)} FROM stream_events"
                                  " WHERE interaction_id = ANY($1::text[]) ORDER BY interaction_id COLLATE \"C\", seq",
                                  in_order[start:start + EXPORT_BATCH]):
            yield EVENT, dict(zip(EVENT_FIELDS, tuple(row), strict=True))


async def insert_recordings(db: asyncpg.Connection, rows: list[tuple[str, Row]], owner: str) -> dict[str, int]:
    """Load rows under `owner` (inside the caller's transaction); how many of each kind
    (recordings.insert_recordings says how loading replaces)."""
    keys = sorted({row["cache_key"] for kind, row in rows if kind == EXCHANGE and row.get("cache_key")})
    await db.execute("DELETE FROM exchanges WHERE owner = $1 AND cache_key = ANY($2::text[])", owner, keys)
    counts = {INTERACTION: 0, EXCHANGE: 0, EVENT: 0}
    node_columns = ("owner", *INTERACTION_FIELDS, "search_input", "search_output")
    exchange_columns = ("owner", *EXCHANGE_FIELDS)
    for kind, row in rows:
        if kind == INTERACTION:
            # A replace, as SQLite's INSERT OR REPLACE: what the row does not name starts afresh.
            await db.execute("DELETE FROM interactions WHERE id = $1", row["id"])
            await db.execute(
                f"INSERT INTO interactions ({', '.join(node_columns)})"
                f" VALUES ({', '.join(f'${n}' for n in range(1, len(node_columns) + 1))})",
                owner, *(row.get(f) for f in INTERACTION_FIELDS),
                searchable_text(stored_turns(row.get("input"))), searchable_text(stored_turns(row.get("output"))))
        elif kind == EXCHANGE:
            if not row.get("cache_key"):  # no key to replace by: the same recording is the same row
                await db.execute("DELETE FROM exchanges WHERE owner = $1 AND cache_key IS NULL AND created_at = $2"
                                 " AND method = $3 AND path = $4 AND interaction_id IS NOT DISTINCT FROM $5",
                                 owner, row.get("created_at"), row.get("method"), row.get("path"),
                                 row.get("interaction_id"))
            await db.execute(
                f"INSERT INTO exchanges ({', '.join(exchange_columns)})"
                f" VALUES ({', '.join(f'${n}' for n in range(1, len(exchange_columns) + 1))})",
                owner, *(_flag(row.get(f)) if f == "stored" else row.get(f) for f in EXCHANGE_FIELDS))
        elif kind == EVENT:
            await db.execute(
                f"INSERT INTO stream_events ({', '.join(EVENT_FIELDS)}) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (interaction_id, seq) DO UPDATE SET event_id = excluded.event_id,"
                " at_ms = excluded.at_ms, frame = excluded.frame",
                row["interaction_id"], row["seq"], row.get("event_id"), row.get("at_ms", 0.0), row.get("frame"))
        else:
            continue
        counts[kind] += 1
    return counts
