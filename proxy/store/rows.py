"""How interactions and exchanges map to rows of the SQLite file, both ways.

The async store (sqlite.py) and the command line's reads (audit_db.py) build
the same model from the same columns, so the column lists and the mappings
live here once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson

from ..model import Interaction, Turn, Usage
from .records import Exchange

# The columns an Interaction is read from, in _row_to_interaction's order.
INTERACTION_COLUMNS = (
    "id, owner, upstream, front, mode, model, status, parent_id, root_id, depth,"
    " input, output, request, usage, error, provider_id, created_at, updated_at, run_id"
)

EXCHANGE_COLUMNS = (
    "upstream, method, path, created_at, status, latency_ms, interaction_id, owner, front, model,"
    " input_tokens, output_tokens, stored, request_headers, request_body, response_headers, response_body,"
    " upstream_digest, error, cache_key, cache"
)


def chain_query(param: str) -> str:
    """A chain, root first: the node `param` names and its ancestors by parent pointer, erased
    ones skipped (`param`: the driver's placeholder, `?` for SQLite, `$1` for asyncpg)."""
    return f"""
        WITH RECURSIVE chain(id, parent_id, hop) AS (
            SELECT id, parent_id, 0 FROM interactions WHERE id = {param}
            UNION ALL
            SELECT i.id, i.parent_id, chain.hop + 1
            FROM interactions AS i JOIN chain ON i.id = chain.parent_id
        )
        SELECT {qualified(INTERACTION_COLUMNS, "i")}
        FROM chain JOIN interactions AS i ON i.id = chain.id
        WHERE i.deleted_at IS NULL
        ORDER BY chain.hop DESC
    """


def recent_nodes_query(status: str, limit: str) -> str:
    """The most recently updated nodes not of a status (interactions_updated), newest first, for
    the start's warm (placeholders as the driver spells them)."""
    return (f"SELECT id, root_id FROM interactions WHERE deleted_at IS NULL AND status != {status}"
            f" ORDER BY updated_at DESC LIMIT {limit}")


def qualified(columns: str, table: str) -> str:
    """A column list with each column named by its table's alias (`i.id, i.owner, …`), for joins."""
    return ", ".join(f"{table}.{column.strip()}" for column in columns.split(","))


def dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def turns_json(turns: list[Turn]) -> str:
    return dumps([t.to_json() for t in turns])


def _turns(text: str | None) -> list[Turn]:
    return [Turn.from_json(t) for t in orjson.loads(text)] if text else []


def interaction_from_row(row: Sequence[Any]) -> Interaction:
    (id_, owner, upstream, front, mode, model, status, parent_id, root_id, _depth,
     input_, output, request, usage, error, provider_id, created, updated, run_id) = row
    return Interaction(
        id=id_, owner=owner, upstream=upstream, front=front, mode=mode, model=model, status=status,
        parent_id=parent_id, root_id=root_id, input=_turns(input_), output=_turns(output),
        request=orjson.loads(request) if request else {}, usage=Usage(**orjson.loads(usage)) if usage else Usage(),
        error=error, provider_id=provider_id, created=created, updated=updated, run_id=run_id,
    )


_INPUT_AT = [column.strip() for column in INTERACTION_COLUMNS.split(",")].index("input")


def content_bytes(row: Sequence[Any]) -> int:
    """The stored size of a node's turns (its input and output JSON), from a row of INTERACTION_COLUMNS."""
    input_, output = row[_INPUT_AT], row[_INPUT_AT + 1]
    return len(input_ or "") + len(output or "")


def exchange_from_row(r: Sequence[Any]) -> Exchange:
    return Exchange(
        upstream=r[0], method=r[1], path=r[2], created=r[3], status=r[4], latency_ms=r[5],
        interaction_id=r[6], owner=r[7], front=r[8], model=r[9], input_tokens=r[10],
        output_tokens=r[11], stored=bool(r[12]),
        request_headers=orjson.loads(r[13]) if r[13] else None, request_body=r[14],
        response_headers=orjson.loads(r[15]) if r[15] else None, response_body=r[16],
        upstream_digest=r[17], error=r[18], cache_key=r[19], cache=r[20],
    )


def insert_exchange(db: sqlite3.Connection, ex: Exchange) -> int:
    cursor = db.execute(
        "INSERT INTO exchanges (interaction_id, owner, upstream, front, method, path, status, latency_ms, model,"
        " input_tokens, output_tokens, stored, request_headers, request_body, response_headers, response_body,"
        " upstream_digest, error, created_at, cache_key, cache) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            ex.interaction_id, ex.owner, ex.upstream, ex.front, ex.method, ex.path, ex.status, ex.latency_ms,
            ex.model, ex.input_tokens, ex.output_tokens, int(ex.stored),
            dumps(ex.request_headers) if ex.request_headers is not None else None, ex.request_body,
            dumps(ex.response_headers) if ex.response_headers is not None else None, ex.response_body,
            ex.upstream_digest, ex.error, ex.created, ex.cache_key, ex.cache,
        ),
    )
    return int(cursor.lastrowid or 0)
