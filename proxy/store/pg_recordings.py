"""Cassette rows into PostgreSQL (recordings.insert_recordings' rules, PostgreSQL's dialect).

Rows come as recordings.py describes them: JSON fields as their text, bodies as bytes,
times as seconds; `stored` may be SQLite's 0/1. Loading replaces, never appends.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .recordings import EVENT, EVENT_FIELDS, EXCHANGE, EXCHANGE_FIELDS, INTERACTION, INTERACTION_FIELDS, Row, _turns
from .search import searchable_text

if TYPE_CHECKING:
    import asyncpg

_FLOAT_FIELDS = frozenset({"created_at", "updated_at", "latency_ms", "at_ms"})


def _value(field: str, row: Row) -> Any:
    value = row.get(field)
    if field == "stored":
        return True if value is None else bool(value)
    if field in _FLOAT_FIELDS and value is not None:
        return float(value)
    return value


def _marks(count: int, first: int = 1) -> str:
    return ", ".join(f"${n}" for n in range(first, first + count))


_UPSERT_INTERACTION = (
    f"INSERT INTO interactions (owner, {', '.join(INTERACTION_FIELDS)}, search_input, search_output)"
    f" VALUES ({_marks(len(INTERACTION_FIELDS) + 3)})"
    " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{f} = EXCLUDED.{f}" for f in ("owner", *INTERACTION_FIELDS, "search_input", "search_output")
                if f != "id")
    + ", deleted_at = NULL"
)
_INSERT_EXCHANGE = (f"INSERT INTO exchanges (owner, {', '.join(EXCHANGE_FIELDS)})"
                    f" VALUES ({_marks(len(EXCHANGE_FIELDS) + 1)})")
_UPSERT_EVENT = (f"INSERT INTO stream_events ({', '.join(EVENT_FIELDS)}) VALUES ({_marks(len(EVENT_FIELDS))})"
                 " ON CONFLICT (interaction_id, seq) DO UPDATE SET event_id = EXCLUDED.event_id,"
                 " at_ms = EXCLUDED.at_ms, frame = EXCLUDED.frame")


async def insert_recordings(db: asyncpg.Connection, rows: Iterable[tuple[str, Row]], owner: str) -> dict[str, int]:
    """Load rows under `owner` (inside the caller's transaction); how many of each kind."""
    loaded = list(rows)  # read twice: the request keys first, then the rows
    keys = sorted({row["cache_key"] for kind, row in loaded if kind == EXCHANGE and row.get("cache_key")})
    await db.execute("DELETE FROM exchanges WHERE owner = $1 AND cache_key = ANY($2::text[])", owner, keys)
    counts = {INTERACTION: 0, EXCHANGE: 0, EVENT: 0}
    for kind, row in loaded:
        if kind == INTERACTION:
            await db.execute(_UPSERT_INTERACTION, owner, *(_value(f, row) for f in INTERACTION_FIELDS),
                             searchable_text(_turns(row.get("input"))), searchable_text(_turns(row.get("output"))))
        elif kind == EXCHANGE:
            if not row.get("cache_key"):  # no key to replace by: the same recording is the same row
                await db.execute(
                    "DELETE FROM exchanges WHERE owner = $1 AND cache_key IS NULL AND created_at = $2"
                    " AND method = $3 AND path = $4 AND interaction_id IS NOT DISTINCT FROM $5",
                    owner, _value("created_at", row), row.get("method"), row.get("path"), row.get("interaction_id"))
            await db.execute(_INSERT_EXCHANGE, owner, *(_value(f, row) for f in EXCHANGE_FIELDS))
        elif kind == EVENT:
            await db.execute(_UPSERT_EVENT, row["interaction_id"], row["seq"], row.get("event_id"),
                             float(row.get("at_ms") or 0.0), row.get("frame"))
        else:
            continue
        counts[kind] += 1
    return counts
