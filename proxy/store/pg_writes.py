"""The PostgreSQL store's writes: plain functions on an asyncpg connection, each run by
postgres.PostgresStore inside a transaction of its own (read committed).

SQLite orders every write through one writer; PostgreSQL takes writes from every instance
at once, so "a delete always wins" rests on row locks instead: every write for a node
locks the node's row first (the upsert itself, or `FOR SHARE`) and gives up if it finds
a tombstone, and an erase tombstones the row (locking it) before it deletes what hangs
on it. Whichever commits first, nothing is left attached to an erased node.

The tombstone is SQLite's (erase.py): content columns emptied, the searchable text too
(so the generated tsvector forgets the words), status 'deleted', deleted_at set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..model import IN_PROGRESS, Interaction
from .pg_erase import count_of
from .records import Conversation, Exchange
from .rows import INTERACTION_COLUMNS, dumps, turns_json
from .search import searchable_text

if TYPE_CHECKING:
    import asyncpg

# The database's own clock, in seconds since the epoch: leases compare against one clock
# whichever machine each instance runs on.
DB_NOW = "extract(epoch FROM clock_timestamp())::float8"

# The channel a cancel is told on (LISTEN/NOTIFY; erasures have theirs in pg_erase.py): the app
# asked to cancel a run (payload: the run's node id and its owner, JSON).
CANCEL_CHANNEL = "recall_cancel"


# Every column an upsert sets, in the order of the parameters after the computed ones.
_NODE_COLUMNS = f"{INTERACTION_COLUMNS}, input_tokens, output_tokens, run_owner, search_input, search_output"
# A cancel asked of a run stays asked while the run updates its node in progress.
_UPDATED = ", ".join([*(f"{column} = EXCLUDED.{column}" for column in
                        [c.strip() for c in _NODE_COLUMNS.split(",")] + ["lease_until"] if column != "id"),
                      "cancel_requested = interactions.cancel_requested AND EXCLUDED.status = 'in_progress'"])

# root_id and depth come from the parent when it is stored (a cassette cut by --since may
# lack it); the lease is the database's clock plus RUN_LEASE_S for a node in progress.
_SAVE_NODE = f"""
WITH parent AS (SELECT root_id, depth FROM interactions WHERE id = $8)
INSERT INTO interactions ({_NODE_COLUMNS}, lease_until, cancel_requested)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce((SELECT root_id FROM parent), $9),
        coalesce((SELECT depth + 1 FROM parent), 0), $10, $11, $12, $13, $14, $15, $16, $17, $18,
        $19, $20, $21, $22, $23,
        CASE WHEN $21::text IS NULL THEN NULL ELSE {DB_NOW} + $24::float8 END, false)
ON CONFLICT (id) DO UPDATE SET {_UPDATED}
WHERE interactions.deleted_at IS NULL
RETURNING root_id
"""

_INSERT_EXCHANGE = (
    "INSERT INTO exchanges (interaction_id, owner, upstream, front, method, path, status, latency_ms, model,"
    " input_tokens, output_tokens, stored, request_headers, request_body, response_headers, response_body,"
    " upstream_digest, error, created_at, cache_key, cache)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)"
)


async def save_node(db: asyncpg.Connection, it: Interaction, run_owner: str, lease_s: float) -> str | None:
    """Upsert a node (an in-progress one leased to `run_owner`); its root id, or None when the
    node is a tombstone (nothing written)."""
    running = it.status == IN_PROGRESS
    root: str | None = await db.fetchval(
        _SAVE_NODE,
        it.id, it.owner, it.upstream, it.front, it.mode, it.model, it.status, it.parent_id, it.root_id or it.id,
        turns_json(it.input), turns_json(it.output), dumps(it.request), dumps(it.usage.to_json()), it.error,
        it.provider_id, float(it.created), float(it.updated), it.run_id, it.usage.input_tokens,
        it.usage.output_tokens, run_owner if running else None,
        # Searchable once it ends, as on SQLite (a turn is saved in progress first, then ended).
        None if running else searchable_text(it.input), None if running else searchable_text(it.output), lease_s,
    )
    return root


async def insert_exchange(db: asyncpg.Connection, ex: Exchange) -> None:
    await db.execute(
        _INSERT_EXCHANGE,
        ex.interaction_id, ex.owner, ex.upstream, ex.front, ex.method, ex.path, ex.status,
        None if ex.latency_ms is None else float(ex.latency_ms), ex.model, ex.input_tokens, ex.output_tokens,
        bool(ex.stored), dumps(ex.request_headers) if ex.request_headers is not None else None, ex.request_body,
        dumps(ex.response_headers) if ex.response_headers is not None else None, ex.response_body,
        ex.upstream_digest, ex.error, float(ex.created), ex.cache_key, ex.cache,
    )


async def lock_live(db: asyncpg.Connection, interaction_id: str) -> bool:
    """Lock a node's row against an erase until the transaction ends; False if it is erased.
    A node not (yet) stored counts as live, as in SQLite's is_erased."""
    erased = await db.fetchval("SELECT deleted_at IS NOT NULL FROM interactions WHERE id = $1 FOR SHARE",
                               interaction_id)
    return not erased


async def insert_frames(db: asyncpg.Connection, interaction_id: str,
                        frames: list[tuple[int, str | None, float, bytes]]) -> None:
    """A stream's events in one statement; a seq written again replaces its event."""
    await db.execute(
        "INSERT INTO stream_events (interaction_id, seq, event_id, at_ms, frame)"
        " SELECT $1, * FROM unnest($2::integer[], $3::text[], $4::float8[], $5::bytea[])"
        " ON CONFLICT (interaction_id, seq) DO UPDATE SET event_id = EXCLUDED.event_id, at_ms = EXCLUDED.at_ms,"
        " frame = EXCLUDED.frame",
        interaction_id, [f[0] for f in frames], [f[1] for f in frames], [float(f[2]) for f in frames],
        [f[3] for f in frames],
    )


# -- conversations (conversations.py's statements, PostgreSQL's dialect) ---------------------

SELECT_CONVERSATION = "SELECT id, owner, upstream, metadata, created_at FROM openai_conversations WHERE id = $1"
SELECT_ITEMS = "SELECT item FROM openai_conversation_items WHERE conversation_id = $1 ORDER BY seq"


async def insert_conversation(db: asyncpg.Connection, conversation: Conversation,
                              items: list[tuple[str, Any]]) -> None:
    await db.execute(
        "INSERT INTO openai_conversations (id, owner, upstream, metadata, created_at, updated_at)"
        " VALUES ($1, $2, $3, $4, $5, $5)",
        conversation.id, conversation.owner, conversation.upstream, dumps(conversation.metadata),
        float(conversation.created))
    await _append_items(db, conversation.id, items, conversation.created)


async def append_items(db: asyncpg.Connection, conversation_id: str, items: list[tuple[str, Any]],
                       now: float) -> None:
    """Items after the last. The UPDATE locks the conversation's row, so two instances appending
    at once take turns for `seq`; a conversation deleted meanwhile keeps nothing."""
    if count_of(await db.execute("UPDATE openai_conversations SET updated_at = $2 WHERE id = $1",
                               conversation_id, now)):
        await _append_items(db, conversation_id, items, now)


async def _append_items(db: asyncpg.Connection, conversation_id: str, items: list[tuple[str, Any]],
                        now: float) -> None:
    last: int = await db.fetchval(
        "SELECT coalesce(max(seq), 0) FROM openai_conversation_items WHERE conversation_id = $1", conversation_id)
    await db.executemany(
        "INSERT INTO openai_conversation_items (conversation_id, seq, item_id, item, created_at)"
        " VALUES ($1, $2, $3, $4, $5)",
        [(conversation_id, last + n, item_id, dumps(item), float(now))
         for n, (item_id, item) in enumerate(items, start=1)],
    )


async def delete_conversation(db: asyncpg.Connection, conversation_id: str) -> None:
    """The conversation, every item in it and the recorded calls made on it."""
    await db.execute("DELETE FROM openai_conversation_items WHERE conversation_id = $1", conversation_id)
    await db.execute("DELETE FROM exchanges WHERE interaction_id = $1", conversation_id)
    await db.execute("DELETE FROM openai_conversations WHERE id = $1", conversation_id)


async def delete_item(db: asyncpg.Connection, conversation_id: str, item_id: str) -> bool:
    return count_of(await db.execute(
        "DELETE FROM openai_conversation_items WHERE conversation_id = $1 AND item_id = $2",
        conversation_id, item_id)) > 0
