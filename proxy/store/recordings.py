"""Recordings in and out of the file, row by row: what a cassette holds.

proxy/replay/cassette.py turns these rows into JSONL and back (masking, base64);
here are only the statements. A row is a dict of a record's fields as stored:
JSON fields (JSON_FIELDS) as their JSON text, bodies (BODY_FIELDS) as bytes.
Rows come in three kinds: "interaction", "exchange" and "event" (a stream event).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from ..model import Turn
from .search import index_interaction

INTERACTION_FIELDS = ("id", "upstream", "front", "mode", "model", "status", "parent_id", "root_id", "depth",
                      "input", "output", "request", "usage", "input_tokens", "output_tokens", "error",
                      "provider_id", "created_at", "updated_at")
EXCHANGE_FIELDS = ("interaction_id", "upstream", "front", "method", "path", "status", "latency_ms", "model",
                   "input_tokens", "output_tokens", "stored", "request_headers", "request_body",
                   "response_headers", "response_body", "upstream_digest", "error", "created_at", "cache_key")
EVENT_FIELDS = ("interaction_id", "seq", "event_id", "at_ms", "frame")
JSON_FIELDS = frozenset({"input", "output", "request", "usage", "request_headers", "response_headers"})
BODY_FIELDS = frozenset({"request_body", "response_body", "frame"})

Row = dict[str, Any]
INTERACTION, EXCHANGE, EVENT = "interaction", "exchange", "event"


def select_recordings(db: sqlite3.Connection, *, thread: str | None = None, since: float | None = None,
                      upstream: str | None = None, skip_owner: str | None = None) -> Iterator[tuple[str, Row]]:
    """The live interactions selected, then the exchanges recorded for them (replay hits left out),
    then their stream events, one row at a time.

    `thread` is any interaction id of the thread wanted (LookupError, at once, if there is none);
    rows of `skip_owner` are left out."""
    where: list[str] = ["deleted_at IS NULL", "created_at >= ?"]
    params: list[Any] = [since or 0.0]
    if skip_owner is not None:
        where.append("owner != ?")
        params.append(skip_owner)
    if thread:
        root = db.execute("SELECT root_id FROM interactions WHERE id = ?", (thread,)).fetchone()
        if root is None:
            raise LookupError(f"no interaction '{thread}' in this database")
        where.append("root_id = ?")
        params.append(root[0])
    if upstream:
        where.append("upstream = ?")
        params.append(upstream)
    return _rows(db, where, params, thread=thread, since=since, upstream=upstream, skip_owner=skip_owner)


def _rows(db: sqlite3.Connection, where: list[str], params: list[Any], *, thread: str | None, since: float | None,
          upstream: str | None, skip_owner: str | None) -> Iterator[tuple[str, Row]]:
    ids: list[str] = []
    for row in db.execute(f"SELECT {', '.join(INTERACTION_FIELDS)} FROM interactions WHERE {' AND '.join(where)}"
                          " ORDER BY created_at, depth", params):
        ids.append(row[0])
        yield INTERACTION, dict(zip(INTERACTION_FIELDS, row, strict=True))
    exchange_where = ["stored = 1", "created_at >= ?"]
    exchange_params: list[Any] = [since or 0.0]
    if skip_owner is not None:
        exchange_where.append("owner != ?")
        exchange_params.append(skip_owner)
    if thread:
        exchange_where.append("interaction_id IN (SELECT value FROM json_each(?))")
        exchange_params.append(orjson.dumps(ids).decode())
    if upstream:
        exchange_where.append("upstream = ?")
        exchange_params.append(upstream)
    exchange_where.append("(cache IS NULL OR cache != 'hit')")
    for row in db.execute(f"SELECT {', '.join(EXCHANGE_FIELDS)} FROM exchanges WHERE {' AND '.join(exchange_where)}"
                          " ORDER BY id", exchange_params):
        yield EXCHANGE, dict(zip(EXCHANGE_FIELDS, row, strict=True))
    for row in db.execute(f"SELECT {', '.join(EVENT_FIELDS)} FROM stream_events"
                          " WHERE interaction_id IN (SELECT value FROM json_each(?)) ORDER BY interaction_id, seq",
                          (orjson.dumps(ids).decode(),)):
        yield EVENT, dict(zip(EVENT_FIELDS, row, strict=True))


def stored_turns(text: str | None) -> list[Turn]:
    """The turns of a row's `input` or `output` JSON text (none for NULL), to index them."""
    return [Turn.from_json(t) for t in (orjson.loads(text) if text else None) or []]


def insert_recordings(db: sqlite3.Connection, rows: Iterable[tuple[str, Row]], owner: str) -> dict[str, int]:
    """Load rows under `owner` (inside the caller's transaction); how many of each kind.

    Loading replaces, never appends: every row of `owner` for a request key these rows
    have is dropped first, so loading the same rows twice changes nothing and a
    re-recorded cassette replaces its stale answers instead of queueing behind them
    (the n-th identical request gets the n-th recording). Interactions and stream
    events are keyed by their ids and replaced in place. Rows of another kind are skipped."""
    loaded = list(rows)  # read twice: the request keys first, then the rows
    keys = {row["cache_key"] for kind, row in loaded if kind == EXCHANGE and row.get("cache_key")}
    db.executemany("DELETE FROM exchanges WHERE owner = ? AND cache_key = ?", [(owner, k) for k in keys])
    counts = {INTERACTION: 0, EXCHANGE: 0, EVENT: 0}
    for kind, row in loaded:
        if kind == INTERACTION:
            db.execute(f"INSERT OR REPLACE INTO interactions (owner, {', '.join(INTERACTION_FIELDS)})"
                       f" VALUES (?, {', '.join('?' * len(INTERACTION_FIELDS))})",
                       [owner, *(row.get(f) for f in INTERACTION_FIELDS)])
            index_interaction(db, row["id"], stored_turns(row.get("input")), stored_turns(row.get("output")))
        elif kind == EXCHANGE:
            if not row.get("cache_key"):  # no key to replace by: the same recording is the same row
                db.execute("DELETE FROM exchanges WHERE owner = ? AND cache_key IS NULL AND created_at = ?"
                           " AND method = ? AND path = ? AND interaction_id IS ?",
                           (owner, row.get("created_at"), row.get("method"), row.get("path"),
                            row.get("interaction_id")))
            db.execute(f"INSERT INTO exchanges (owner, {', '.join(EXCHANGE_FIELDS)})"
                       f" VALUES (?, {', '.join('?' * len(EXCHANGE_FIELDS))})",
                       [owner, *(row.get(f) for f in EXCHANGE_FIELDS)])
        elif kind == EVENT:
            db.execute(f"INSERT OR REPLACE INTO stream_events ({', '.join(EVENT_FIELDS)}) VALUES (?,?,?,?,?)",
                       (row["interaction_id"], row["seq"], row.get("event_id"), row.get("at_ms", 0.0),
                        row.get("frame")))
        else:
            continue
        counts[kind] += 1
    return counts
