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

import time
from typing import TYPE_CHECKING, Any

from ..model import IN_PROGRESS, Interaction
from .records import Conversation, Exchange, Removed
from .rows import INTERACTION_COLUMNS, dumps, turns_json
from .search import searchable_text

if TYPE_CHECKING:
    import asyncpg

# The database's own clock, in seconds since the epoch: leases compare against one clock
# whichever machine each instance runs on.
DB_NOW = "extract(epoch FROM clock_timestamp())::float8"

# Channels instances tell each other on (LISTEN/NOTIFY). `recall_erased`: a node or more
# was erased (payload: its id, or '*' for a purge): drop cached chains. `recall_cancel`: the
# app asked to cancel a run (payload: the run's node id and its owner, JSON).
ERASED_CHANNEL = "recall_erased"
CANCEL_CHANNEL = "recall_cancel"
PURGED = "*"

_TOMBSTONE = (
    "UPDATE interactions SET input = NULL, output = NULL, request = NULL, error = NULL, search_input = NULL,"
    " search_output = NULL, status = 'deleted', deleted_at = $2, updated_at = $2, run_owner = NULL,"
    " lease_until = NULL, cancel_requested = false"
)

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
        it.usage.output_tokens, run_owner if running else None, searchable_text(it.input),
        searchable_text(it.output), lease_s,
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


async def erase_interactions(db: asyncpg.Connection, ids: list[str]) -> Removed:
    """Tombstone these nodes and delete their exchanges and events (erase.erase_interactions);
    the other instances are told to drop their cached chains when this commits."""
    removed = Removed()
    erased = await db.fetch(f"{_TOMBSTONE} WHERE id = ANY($1::text[]) AND deleted_at IS NULL RETURNING id",
                            ids, time.time())
    removed.interactions = len(erased)
    removed.exchanges = _count(await db.execute("DELETE FROM exchanges WHERE interaction_id = ANY($1::text[])", ids))
    await db.execute("DELETE FROM stream_events WHERE interaction_id = ANY($1::text[])", ids)
    if removed.interactions:
        await db.execute("SELECT pg_notify($1, $2)", ERASED_CHANNEL, ids[0] if len(ids) == 1 else PURGED)
    return removed


def _count(status: str) -> int:
    """The row count of a command's status ("DELETE 3")."""
    return int(status.rsplit(" ", 1)[-1]) if status and status.rsplit(" ", 1)[-1].isdigit() else 0


# Rows one purge step erases: each step is a short transaction of its own.
PURGE_BATCH = 500


class Purge:
    """Erasing everything recorded before `cutoff`, a batch per step (erase.Purge's rules):
    old nodes become tombstones, old exchanges go, and threads with nothing live and nothing
    newer are deleted outright unless one of their turns was still running."""

    def __init__(self, cutoff: float, batch: int = PURGE_BATCH) -> None:
        self.cutoff = cutoff
        self.batch = batch
        self.removed = Removed()
        self.running: set[str] = set()
        self._phase = 0

    async def step(self, db: asyncpg.Connection) -> bool:
        """Erase one batch; whether there is more to do."""
        phases = (self._nodes, self._exchanges, self._threads)
        while self._phase < len(phases):
            if await phases[self._phase](db):
                return True
            self._phase += 1
        return False

    async def _nodes(self, db: asyncpg.Connection) -> bool:
        # SKIP LOCKED: a node another instance is writing right now is taken on a later step.
        rows = await db.fetch("SELECT id, root_id, status FROM interactions WHERE created_at < $1"
                              " AND deleted_at IS NULL LIMIT $2 FOR UPDATE SKIP LOCKED", self.cutoff, self.batch)
        if not rows:
            return False
        self.running.update(row[1] for row in rows if row[2] == IN_PROGRESS)
        removed = await erase_interactions(db, [row[0] for row in rows])
        self.removed.interactions += removed.interactions
        self.removed.exchanges += removed.exchanges
        return True

    async def _exchanges(self, db: asyncpg.Connection) -> bool:
        deleted = _count(await db.execute(
            "DELETE FROM exchanges WHERE id IN (SELECT id FROM exchanges WHERE created_at < $1 LIMIT $2)",
            self.cutoff, self.batch))
        self.removed.exchanges += deleted
        return deleted > 0

    async def _threads(self, db: asyncpg.Connection) -> bool:
        dead = [row[0] for row in await db.fetch(
            "SELECT root_id FROM interactions GROUP BY root_id HAVING bool_and(deleted_at IS NOT NULL)"
            " AND max(created_at) < $1 AND NOT (root_id = ANY($2::text[])) LIMIT $3",
            self.cutoff, sorted(self.running), self.batch)]
        if not dead:
            return False
        # Still dead: nothing newer came under the thread since it was found.
        for thread_id in dead:
            gone = _count(await db.execute(
                "DELETE FROM interactions WHERE root_id = $1 AND NOT EXISTS (SELECT 1 FROM interactions"
                " WHERE root_id = $1 AND (deleted_at IS NULL OR created_at >= $2))", thread_id, self.cutoff))
            if gone:
                self.removed.threads += 1
            else:
                self.running.add(thread_id)  # kept: not to be looked at again by this purge
        return True


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
    if _count(await db.execute("UPDATE openai_conversations SET updated_at = $2 WHERE id = $1",
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
    return _count(await db.execute(
        "DELETE FROM openai_conversation_items WHERE conversation_id = $1 AND item_id = $2",
        conversation_id, item_id)) > 0
